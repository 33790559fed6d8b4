"""Saleor's GraphQL API: the upcoming promotions (`saleor_scaling.promotions`), read
nightly by retrain with an app token that holds MANAGE_DISCOUNTS.

The shop's API is outside this stack, so it is read as a hostile server could answer:
HTTPS only (plain HTTP only to 127.0.0.1, for tests), no redirect followed (urllib would
send the token along to wherever it points), no proxy taken from the environment, a
timeout on every socket operation and a deadline on the whole read (all pages), the body read
no further than `MAX_PAGE_BYTES` + 1 whatever its Content-Length says, and at most
`MAX_PAGES` pages. The token comes from Secrets Manager, read when the promotions are.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from http.client import HTTPResponse
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from saleor_scaling.promotions import (
    MAX_PAGE_BYTES,
    MAX_PAGES,
    PAGE_SIZE,
    PROMOTIONS_QUERY,
    Promotion,
    PromotionsError,
    parse_page,
    printable,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
else:
    SecretsManagerClient = Any

SOCKET_TIMEOUT_SECONDS = 10.0
READ_DEADLINE_SECONDS = 30.0
"""All pages: a server that trickles its answer a byte at a time is cut off here, so the
read adds at most this (plus one socket timeout) to the night's run, whose model is
already published or kept by then."""
MAX_TOKEN_LENGTH = 4096
_CHUNK = 16 * 1024


def check_api_url(url: str) -> str:
    """The GraphQL endpoint, refused unless HTTPS (or HTTP to 127.0.0.1) without credentials."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise PromotionsError("the Saleor API URL must not hold credentials")
    local = parts.scheme == "http" and parts.hostname == "127.0.0.1"
    if not (parts.scheme == "https" or local) or not parts.hostname:
        raise PromotionsError(f"the Saleor API URL {printable(url, 100)!r} is not https://HOST/...")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        raise PromotionsError("the Saleor API answered with a redirect, which is not followed")


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class SaleorPromotions:
    def __init__(
        self,
        api_url: str,
        token: Callable[[], str],
        *,
        timeout: float = SOCKET_TIMEOUT_SECONDS,
        deadline: float = READ_DEADLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = api_url
        self._token = token
        self._timeout, self._deadline, self._clock = timeout, deadline, clock

    def upcoming(self, now: int, days_ahead: int) -> list[Promotion]:
        """Promotions starting from `now` to `days_ahead` days later, soonest first; more
        than MAX_PAGES pages is refused rather than read in part."""
        check_api_url(self._url)
        token = _checked_token(self._token())
        started = self._clock()
        variables: dict[str, Any] = {
            "first": PAGE_SIZE,
            "after": None,
            "from": _iso(now),
            "until": _iso(now + days_ahead * 86400),
        }
        promotions: list[Promotion] = []
        try:
            for _ in range(MAX_PAGES):
                body = self._post({"query": PROMOTIONS_QUERY, "variables": variables}, token, started)
                # Before any message is cut from it, so that no part of the token is quoted.
                page = parse_page(body.replace(token.encode(), b"[token]"))
                promotions.extend(page.promotions)
                if not page.has_next_page:
                    return promotions
                variables["after"] = page.end_cursor
        except PromotionsError as error:
            # The shop's own words end up in the report and the log: never with the token.
            raise PromotionsError(str(error).replace(token, "[token]")) from None
        raise PromotionsError(f"more than {MAX_PAGES} pages of {PAGE_SIZE} upcoming promotions: not read")

    def _post(self, body: dict[str, Any], token: str, started: float) -> bytes:
        request = urllib.request.Request(
            self._url,
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                return self._bounded_body(response, started)
        except urllib.error.HTTPError as error:
            reason = "the token was refused" if error.code in (401, 403) else "the shop's API failed"
            raise PromotionsError(f"HTTP {error.code} from the Saleor API: {reason}") from None
        except (urllib.error.URLError, OSError) as error:  # no network, DNS, TLS, timeout
            raise PromotionsError(f"the Saleor API could not be reached: {type(error).__name__}") from None

    def _bounded_body(self, response: HTTPResponse, started: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_PAGE_BYTES:
            raise PromotionsError(f"the promotions response is {declared} bytes, over {MAX_PAGE_BYTES}")
        body = bytearray()
        while len(body) <= MAX_PAGE_BYTES:
            if self._clock() - started > self._deadline:
                raise PromotionsError(f"reading the promotions took over {self._deadline:g} s")
            chunk = response.read1(min(_CHUNK, MAX_PAGE_BYTES + 1 - len(body)))
            if not chunk:
                return bytes(body)
            body.extend(chunk)
        raise PromotionsError(f"the promotions response is over {MAX_PAGE_BYTES} bytes")


def _checked_token(token: str) -> str:
    token = token.strip()
    # A line break in a header value would let the secret's text add headers of its own.
    if not (0 < len(token) <= MAX_TOKEN_LENGTH and token.isascii() and token.isprintable()) or " " in token:
        raise PromotionsError("the promotions token is empty, too long or not one printable ASCII word")
    return token


def secret_token(client: SecretsManagerClient, secret_arn: str) -> Callable[[], str]:
    """Reads the app token (the secret's string, nothing else) when called."""

    def read() -> str:
        value = client.get_secret_value(SecretId=secret_arn).get("SecretString")
        if not isinstance(value, str):
            raise PromotionsError("the promotions token secret holds no SecretString")
        return value

    return read


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
