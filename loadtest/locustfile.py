"""Saleor shoppers through the load balancer: `locust -f loadtest/locustfile.py --host URL`.

The host is the shop's ALB: the stack's ShopUrl with or without its /graphql/ path.
Journeys are weighted as a shop's traffic is: most visitors browse, some search, fewer
build a cart, a few check out and some of those complete the order. The channel, products
and variants are discovered at start (docs/loadtest.md); nothing about the catalogue is
hard-coded. How each answer counts (success, expected refusal, failure) is decided in
loadtest/outcomes.py. The load shape is chosen by LOAD_SHAPE (loadtest/shapes.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import RescheduleTask

from loadtest.operations import OPERATIONS
from loadtest.outcomes import PERMISSION_DENIED, TOKEN_REFUSALS, Outcome, classify, dig
from loadtest.shapes import shape_class

LOG = logging.getLogger("loadtest")

FALLBACK_SEARCH_TERMS = ("shirt", "juice", "hoodie", "shoes", "gift")
"""Searched for only when the discovered product names give no word to search for."""
ADDRESS = {
    "firstName": "Load",
    "lastName": "Test",
    "streetAddress1": "1470 Pinewood Avenue",
    "city": "Michigan City",
    "postalCode": "46360",
    "country": "US",
    "countryArea": "IN",
    "phone": "+12125094995",
}
DEFAULT_CHANNEL = "default-channel"
"""The DEFAULT_CHANNEL_SLUG this project's stack gives Saleor (infra-cfn/app.yaml), also
the channel Saleor's demo catalogue creates. Saleor's API does not say which channel is
the shop's default, so SALEOR_DEFAULT_CHANNEL names it for a shop set up otherwise."""
PAGE_SIZE = 24


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError as error:
        raise SystemExit(f"{name} must be a number: {error}") from None


def _think_time() -> tuple[float, float]:
    low, _, high = (os.environ.get("SHOPPER_THINK_SECONDS") or "1,5").partition(",")
    return float(low), float(high or low)


COMPLETE_SHARE = _float_env("CHECKOUT_COMPLETE_SHARE", 0.25)
"""Share of checkout journeys that call checkoutComplete at the end."""

OUTCOMES: Counter[str] = Counter()
"""Ends of checkoutComplete: 'order' or the expected error codes; logged at the end."""


class JourneyAborted(RescheduleTask):
    """Ends the journey: the failure is already in the request statistics."""


class DiscoveryFailed(JourneyAborted):
    """Discovery found no channel or nothing to sell: no shop traffic can be sent. Recorded
    as a failure named "discovery" (with each failed request's own row), so that a run that
    loads nothing fails (Locust exits 1) instead of reporting success."""


def default_channel() -> tuple[str, str]:
    """The shop's default channel and where that came from."""
    configured = os.environ.get("SALEOR_DEFAULT_CHANNEL", "").strip()
    if configured:
        return configured, "SALEOR_DEFAULT_CHANNEL"
    return DEFAULT_CHANNEL, "the stack's DEFAULT_CHANNEL_SLUG; SALEOR_DEFAULT_CHANNEL to change"


class Catalogue:
    """What the shop sells in the chosen channel, discovered once per Locust process and
    shared by every simulated shopper."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # gevent-patched under Locust: waiting shoppers yield
        self.channel = ""
        self.channel_reason = ""
        """Why this channel: SALEOR_CHANNEL, the shop's default, the only one listed ..."""
        self.products: list[dict[str, Any]] = []
        self.categories: list[str] = []
        self.search_terms: list[str] = []
        self.token_warned = False
        """The refused SALEOR_TOKEN was reported: once per process, not at every retry."""

    def ready(self) -> bool:
        return bool(self.channel and self.products)


CATALOGUE = Catalogue()


def _in_stock(variant: dict[str, Any]) -> bool:
    # quantityAvailable is null when stock is not tracked (nor limited): buyable.
    quantity = variant.get("quantityAvailable")
    return bool(variant.get("id")) and (quantity is None or quantity > 0)


class Shopper(HttpUser):
    """One visitor of the shop; each task is one visit of a kind."""

    wait_time = between(*_think_time())  # reading a page before the next click

    def on_start(self) -> None:
        # A failing start must not kill the shopper: its tasks try discovery again.
        with contextlib.suppress(RescheduleTask):
            self.ensure_catalogue()

    # -- one request -------------------------------------------------------------------

    def graphql(
        self,
        operation: str,
        variables: dict[str, Any] | None = None,
        *,
        require: tuple[str, ...] = (),
        token: str = "",
        permission_denied_expected: bool = False,
    ) -> dict[str, Any]:
        """POST one named operation; its answer is judged by loadtest.outcomes.classify,
        a failure is recorded under the operation's name and ends the journey."""
        return self.graphql_outcome(
            operation,
            variables,
            require=require,
            token=token,
            permission_denied_expected=permission_denied_expected,
        ).data

    def graphql_outcome(
        self,
        operation: str,
        variables: dict[str, Any] | None = None,
        *,
        require: tuple[str, ...] = (),
        token: str = "",
        permission_denied_expected: bool = False,
        token_refusal_expected: bool = False,
    ) -> Outcome:
        """graphql(), answering the whole outcome: what was expected, not only the data."""
        base = (self.host or "").rstrip("/")
        path = "" if base.endswith("/graphql") else "/graphql/"
        body = {"operationName": operation, "query": OPERATIONS[operation], "variables": variables or {}}
        headers = {"Authorization": f"Bearer {token}"} if token else None
        with self.client.post(
            path, json=body, headers=headers, name=operation, catch_response=True
        ) as response:
            outcome = classify(
                operation,
                response.status_code,
                response.text,
                no_answer_error=response.error,
                require=require,
                permission_denied_expected=permission_denied_expected,
                token_refusal_expected=token_refusal_expected,
            )
            if not outcome.ok:
                response.failure(outcome.failure)
                raise JourneyAborted(operation)
            response.success()
        if operation == "CheckoutComplete":
            made = dig(outcome.data, "checkoutComplete.order.id") is not None
            OUTCOMES.update(outcome.expected or (("order",) if made else ("no order",)))
        return outcome

    # -- discovery ---------------------------------------------------------------------

    def ensure_catalogue(self) -> None:
        if CATALOGUE.ready():
            return
        with CATALOGUE.lock:
            if CATALOGUE.ready():
                return
            started = time.perf_counter()
            try:
                self.discover()
            except JourneyAborted as aborted:
                reason = (
                    str(aborted)
                    if isinstance(aborted, DiscoveryFailed)
                    else f"{aborted} failed, so no shop traffic can be sent (see its own row)"
                )
                self.environment.events.request.fire(
                    request_type="discovery",
                    name="discovery",
                    response_time=(time.perf_counter() - started) * 1000,
                    response_length=0,
                    response=None,
                    context={},
                    exception=DiscoveryFailed(reason),
                )
                raise DiscoveryFailed(reason) from None

    def discover(self) -> None:
        CATALOGUE.channel, CATALOGUE.channel_reason = self.discover_channel_and_reason()
        products = self.graphql(
            "ProductList", {"channel": CATALOGUE.channel, "first": 100}, require=("products.edges",)
        )["products"]["edges"]
        buyable = []
        for edge in products:
            node = edge.get("node") or {}
            variants = [v for v in node.get("variants") or [] if _in_stock(v)]
            if node.get("slug") and variants and node.get("isAvailable") is not False:
                buyable.append({**node, "variants": variants})
        categories = self.graphql("Categories", {"first": 20}, require=("categories.edges",))
        CATALOGUE.categories = [e["node"]["slug"] for e in categories["categories"]["edges"] if e.get("node")]
        if not buyable:
            message = (
                f"channel {CATALOGUE.channel} has no product with a variant in stock among its first 100"
            )
            LOG.error(message)
            raise DiscoveryFailed(message)
        CATALOGUE.products = buyable
        # Shoppers search for words of the catalogue's own product names (and sometimes miss).
        words = {
            w.lower() for p in buyable for w in str(p.get("name", "")).split() if len(w) >= 4 and w.isalpha()
        }
        CATALOGUE.search_terms = sorted(words) or list(FALLBACK_SEARCH_TERMS)
        LOG.info(
            "channel %s, %s: %d buyable products, %d categories",
            CATALOGUE.channel,
            CATALOGUE.channel_reason,
            len(buyable),
            len(CATALOGUE.categories),
        )

    def discover_channel(self) -> str:
        return self.discover_channel_and_reason()[0]

    def discover_channel_and_reason(self) -> tuple[str, str]:
        """The channel and why it was chosen: SALEOR_CHANNEL if set; else, from the channel
        list (which needs an app or staff token, SALEOR_TOKEN), the only active channel, or
        the shop's default channel (`default_channel`) if it is active there, else the first
        active one; else (the list refused: anonymous, or the token refused) the shop's
        default channel."""
        wanted = os.environ.get("SALEOR_CHANNEL", "").strip()
        reason = "SALEOR_CHANNEL"
        if not wanted:
            default, source = default_channel()
            token = os.environ.get("SALEOR_TOKEN", "").strip()
            outcome = self.graphql_outcome(
                "Channels", token=token, permission_denied_expected=True, token_refusal_expected=bool(token)
            )
            refused = sorted(set(outcome.expected) & TOKEN_REFUSALS)
            if token and PERMISSION_DENIED in outcome.expected:
                # Saleor reads a bearer that is not a JWT as an app token; one it does not
                # know (mistyped, or its app deleted) authorises nothing, without an error.
                refused.append(
                    f"{PERMISSION_DENIED}: Saleor knows no app with this token; mistyped or deleted?"
                )
            if refused and not CATALOGUE.token_warned:
                CATALOGUE.token_warned = True
                LOG.warning(
                    "SALEOR_TOKEN was refused (%s): the channel list is skipped and discovery falls "
                    "back to %s (or SALEOR_CHANNEL). Staff tokens expire after 5 minutes: use an "
                    "app token, which does not (docs/loadtest.md, Tokens)",
                    ", ".join(refused),
                    default,
                )
            listed = outcome.data.get("channels")
            active = [str(c["slug"]) for c in listed or [] if c.get("isActive") and c.get("slug")]
            if len(active) == 1:
                return active[0], "the only active channel listed"
            if default in active:
                # Saleor lists channels by slug (channel-pln before default-channel): the
                # shop's own default is the one its traffic goes to, when it is there.
                return (
                    default,
                    f"the shop's default channel ({source}), active among the {len(active)} channels listed",
                )
            if active:
                return active[0], (
                    f"the first of the {len(active)} active channels listed: the default channel "
                    f"{default} ({source}) is not among them"
                )
            wanted = default
            why = f"refused ({', '.join(refused)})" if refused else "needs SALEOR_TOKEN, an app token"
            reason = f"the shop's default channel ({source}): the channel list {why}"
        found = self.graphql("ChannelBySlug", {"slug": wanted}).get("channel")
        if not found:
            message = f"channel {wanted!r} does not exist: set SALEOR_CHANNEL to the shop's channel slug"
            LOG.error(message)
            raise DiscoveryFailed(message)
        return str(found["slug"]), reason

    def product(self) -> dict[str, Any]:
        return random.choice(CATALOGUE.products)

    def search_term(self) -> str:
        term = random.choice(CATALOGUE.search_terms or FALLBACK_SEARCH_TERMS)
        return term if random.random() < 0.9 else term[:-1]  # a typo now and then

    def variant(self) -> str:
        return str(random.choice(self.product()["variants"])["id"])

    # -- journeys ----------------------------------------------------------------------

    @task(40)
    def browse(self) -> None:
        """Listing pages (the next one by cursor), then a category."""
        self.ensure_catalogue()
        channel = CATALOGUE.channel
        page = self.graphql(
            "ProductList", {"channel": channel, "first": PAGE_SIZE}, require=("products.pageInfo",)
        )["products"]
        if page["pageInfo"].get("hasNextPage") and random.random() < 0.5:
            cursor = page["pageInfo"].get("endCursor")
            self.graphql("ProductList", {"channel": channel, "first": PAGE_SIZE, "after": cursor})
        if CATALOGUE.categories:
            slug = random.choice(CATALOGUE.categories)
            self.graphql("CategoryProducts", {"slug": slug, "channel": channel, "first": PAGE_SIZE})

    @task(25)
    def open_product(self) -> None:
        self.ensure_catalogue()
        self.graphql(
            "ProductDetails",
            {"slug": self.product()["slug"], "channel": CATALOGUE.channel},
            require=("product.id",),
        )

    @task(15)
    def search(self) -> None:
        self.ensure_catalogue()
        self.graphql(
            "SearchProducts",
            {"search": self.search_term(), "channel": CATALOGUE.channel, "first": PAGE_SIZE},
        )

    @task(8)
    def build_cart(self) -> None:
        """A cart that is left behind, as most are."""
        self.ensure_catalogue()
        self.start_checkout()

    @task(4)
    def checkout(self) -> None:
        """Cart, e-mail, addresses, the first shipping method; some complete the order."""
        self.ensure_catalogue()
        checkout_id = self.start_checkout()
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        self.graphql("CheckoutEmailUpdate", {"id": checkout_id, "email": email})
        shipping = self.graphql(
            "CheckoutShippingAddressUpdate",
            {"id": checkout_id, "address": ADDRESS},
            require=("checkoutShippingAddressUpdate.checkout",),
        )
        self.graphql("CheckoutBillingAddressUpdate", {"id": checkout_id, "address": ADDRESS})
        checkout = shipping["checkoutShippingAddressUpdate"]["checkout"]
        if checkout.get("isShippingRequired", True):
            methods = [m["id"] for m in checkout.get("shippingMethods") or [] if m.get("active", True)]
            if not methods:
                LOG.warning(
                    "no shipping method for %s: check the channel's shipping zones", ADDRESS["country"]
                )
                return
            self.graphql("CheckoutDeliveryMethodUpdate", {"id": checkout_id, "deliveryMethodId": methods[0]})
        if random.random() < COMPLETE_SHARE:
            self.graphql("CheckoutComplete", {"id": checkout_id})

    def start_checkout(self) -> str:
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        created = self.graphql(
            "CheckoutCreate",
            {"channel": CATALOGUE.channel, "variantId": self.variant(), "email": email},
            require=("checkoutCreate.checkout.id",),
        )
        checkout_id = str(dig(created, "checkoutCreate.checkout.id"))
        for _ in range(random.randint(0, 2)):
            self.graphql("CheckoutLinesAdd", {"id": checkout_id, "variantId": self.variant(), "quantity": 1})
        return checkout_id


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _report_checkout_outcomes(environment: Environment, **_: Any) -> None:
    if OUTCOMES:
        summary = ", ".join(f"{name} {count}" for name, count in sorted(OUTCOMES.items()))
        LOG.info("checkoutComplete outcomes: %s (unpaid codes are expected, see docs)", summary)


SelectedShape = shape_class(os.environ.get("LOAD_SHAPE", ""))
"""The LoadTestShape that LOAD_SHAPE names, or None: Locust's own -u/-r/-t then apply."""
