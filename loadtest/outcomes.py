"""What one GraphQL answer means for the load test: success, an expected refusal, or a
failure with a message. Pure (no Locust import), so tests can check it directly.

Rules, in order:

* an HTTP status other than 200 is a failure (``HTTP 502``, with the GraphQL messages
  when the body carries any: Saleor answers 400 to an invalid query); ``HTTP 0`` is a
  request never answered, and its failure names the innermost error (``HTTP 0, no answer:
  ConnectionRefusedError: [Errno 111] Connection refused``, a timeout ...);
* a body that is not a JSON object is a failure;
* top-level ``errors`` make a failure carrying their messages, except a permission refusal
  where the caller said one is expected (discovery asking for the channel list anonymously),
  and a refused token where the caller said so (discovery's SALEOR_TOKEN expired or
  invalid: Saleor answers 200 with ``Signature has expired``, ``ExpiredSignatureError``);
* a mutation payload with a non-empty ``errors`` list is a failure (``CODE: message``),
  except codes listed as expected for that operation (checkoutComplete without payment);
* a required path of the answer (``checkoutCreate.checkout.id``) that is absent or null is
  a failure: the journey cannot go on, and the statistics say why.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.operations import EXPECTED_COMPLETE_ERRORS

EXPECTED_MUTATION_ERRORS: Mapping[str, frozenset[str]] = {"CheckoutComplete": EXPECTED_COMPLETE_ERRORS}
"""Operation name -> mutation error codes that are a normal answer to a load-test shopper."""

PERMISSION_DENIED = "PermissionDenied"
TOKEN_REFUSALS = frozenset(
    {
        "ExpiredSignatureError",  # a staff token (tokenCreate) lives 5 minutes
        "InvalidSignatureError",
        "DecodeError",
        "InvalidTokenError",
        "JSONWebTokenError",
        "JSONWebTokenExpired",
    }
)
"""Codes of Saleor's answer to a bearer token it cannot accept (PyJWT's exception names,
which Saleor reports as ``extensions.exception.code``)."""
TOKEN_MESSAGES = {"signature has expired": "ExpiredSignatureError", "invalid token": "InvalidTokenError"}
"""Messages that mean the same when an answer carries no code."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    failure: str = ""
    """Why the request failed (what Locust records); empty when ok."""
    expected: tuple[str, ...] = ()
    """Codes of an expected refusal (ok, but not the answer a shopper hopes for)."""
    data: dict[str, Any] = field(default_factory=dict)


def _messages(errors: Sequence[Any]) -> str:
    texts = [str(error.get("message", error)) if isinstance(error, dict) else str(error) for error in errors]
    return "; ".join(texts) or "errors"


def is_permission_denied(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    exception = (error.get("extensions") or {}).get("exception") or {}
    code = exception.get("code") if isinstance(exception, dict) else None
    return code == PERMISSION_DENIED or "permission" in str(error.get("message", "")).lower()


def token_refusal(error: Any) -> str | None:
    """The code of a refused-token error (expired, bad signature, not a token), else None."""
    if not isinstance(error, dict):
        return None
    exception = (error.get("extensions") or {}).get("exception") or {}
    code = exception.get("code") if isinstance(exception, dict) else None
    if code in TOKEN_REFUSALS:
        return str(code)
    return TOKEN_MESSAGES.get(str(error.get("message", "")).strip().lower())


def no_answer(error: BaseException | None) -> str:
    """``HTTP 0`` and why: the innermost error of the chain (requests wraps urllib3's,
    which wraps the socket's: ConnectionRefusedError says more than ConnectionError)."""
    if error is None:
        return "HTTP 0, no answer"
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return f"HTTP 0, no answer: {type(error).__name__}: {error}"


def dig(data: Any, path: str) -> Any:
    """data['a']['b']['c'] for path 'a.b.c'; None where any step is missing."""
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def classify(
    operation: str,
    status: int,
    text: str | None,
    *,
    require: Collection[str] = (),
    permission_denied_expected: bool = False,
    token_refusal_expected: bool = False,
    no_answer_error: BaseException | None = None,
) -> Outcome:
    """How the answer counts; `no_answer_error` is why a request got none (status 0)."""
    if status == 0:
        return Outcome(False, no_answer(no_answer_error))
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = None
    errors = payload.get("errors") if isinstance(payload, dict) else None

    if status != 200:
        detail = f": {_messages(errors)}" if errors else ""
        return Outcome(False, f"HTTP {status}{detail}")
    if not isinstance(payload, dict):
        return Outcome(False, "answer is not a JSON object")
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    if errors:
        if permission_denied_expected and all(is_permission_denied(error) for error in errors):
            return Outcome(True, expected=(PERMISSION_DENIED,), data=data)
        refused = [token_refusal(error) for error in errors] if token_refusal_expected else []
        if refused and all(refused):
            return Outcome(True, expected=tuple(sorted({str(code) for code in refused})), data=data)
        return Outcome(False, _messages(errors))
    if not data:
        return Outcome(False, "answer has no data")

    mutation_errors = [
        error
        for result in data.values()
        if isinstance(result, dict)
        for error in result.get("errors") or []
        if isinstance(error, dict)
    ]
    codes = tuple(str(error.get("code")) for error in mutation_errors)
    if mutation_errors:
        allowed = EXPECTED_MUTATION_ERRORS.get(operation, frozenset())
        if not all(code in allowed for code in codes):
            return Outcome(
                False,
                "; ".join(
                    f"{error.get('code')}: {error.get('message')}"
                    + (f" ({error['field']})" if error.get("field") else "")
                    for error in mutation_errors
                ),
            )
        return Outcome(True, expected=codes, data=data)

    for path in require:
        if dig(data, path) is None:
            return Outcome(False, f"answer has no {path}")
    return Outcome(True, data=data)
