"""Saleor shoppers through the load balancer: `locust -f loadtest/locustfile.py --host URL`.

The host is the shop's ALB (the stack's ShopUrl without /graphql/, or with it: both work).
Journeys, weighted as a shop's traffic is: most visitors browse, some search, fewer build
a cart, a few check out. The channel, products and variants are discovered at start; set
SALEOR_CHANNEL to pick a channel. A 200 answer with GraphQL `errors`, or a mutation's
non-empty `errors` list, is a failure carrying the error message.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from typing import Any

from locust import HttpUser, LoadTestShape, between, task
from locust.exception import RescheduleTask, StopUser

from loadtest.operations import EXPECTED_COMPLETE_ERRORS, OPERATIONS
from loadtest.shapes import shape_from_env

SEARCH_TERMS = ("shirt", "juice", "hoodie", "beer", "sneakers", "cushion", "monospace", "apple")
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


class Catalogue:
    """What the shop sells, discovered once per run and shared by every simulated user."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.channel = ""
        self.products: list[dict[str, Any]] = []
        self.categories: list[str] = []

    def ready(self) -> bool:
        return bool(self.channel and self.products)


CATALOGUE = Catalogue()


class GraphQLError(RescheduleTask):
    """Ends the journey quietly: the failure is already in the request statistics."""


def _think_time() -> tuple[float, float]:
    low, _, high = os.environ.get("SHOPPER_THINK_SECONDS", "1,5").partition(",")
    return float(low), float(high or low)


class Shopper(HttpUser):
    # A shopper reads a page before the next click (SHOPPER_THINK_SECONDS="min,max").
    wait_time = between(*_think_time())

    def on_start(self) -> None:
        with CATALOGUE.lock:
            if not CATALOGUE.ready():
                try:
                    self.discover()
                except GraphQLError as error:
                    raise StopUser() from error

    def graphql(self, operation: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one named operation; failures are recorded with the GraphQL message."""
        path = "/graphql/" if not self.host or not self.host.rstrip("/").endswith("/graphql") else ""
        body = {"operationName": operation, "query": OPERATIONS[operation], "variables": variables or {}}
        with self.client.post(path, json=body, name=operation, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                raise GraphQLError(operation)
            try:
                payload = response.json()
            except ValueError:
                response.failure("answer is not JSON")
                raise GraphQLError(operation) from None
            if payload.get("errors"):
                response.failure("; ".join(str(error.get("message")) for error in payload["errors"]))
                raise GraphQLError(operation)
            data: dict[str, Any] = payload.get("data") or {}
            mutation_errors = [
                error
                for result in data.values()
                if isinstance(result, dict)
                for error in result.get("errors") or []
            ]
            expected = operation == "CheckoutComplete" and all(
                error.get("code") in EXPECTED_COMPLETE_ERRORS for error in mutation_errors
            )
            if mutation_errors and not expected:
                response.failure("; ".join(f"{e.get('code')}: {e.get('message')}" for e in mutation_errors))
                raise GraphQLError(operation)
            response.success()
            return data

    def discover(self) -> None:
        channels = self.graphql("Channels").get("channels") or []
        wanted = os.environ.get("SALEOR_CHANNEL", "")
        active = [c for c in channels if c.get("isActive")] or channels
        chosen = next((c for c in active if c["slug"] == wanted), active[0] if active else None)
        if chosen is None:
            raise GraphQLError("the shop has no channel")
        CATALOGUE.channel = chosen["slug"]
        page = self.graphql("ProductList", {"channel": CATALOGUE.channel, "first": 100})["products"]
        CATALOGUE.products = [
            edge["node"]
            for edge in page["edges"]
            if any(v.get("id") for v in edge["node"].get("variants") or [])
        ]
        categories = self.graphql("Categories", {"first": 20})["categories"]
        CATALOGUE.categories = [edge["node"]["slug"] for edge in categories["edges"]]
        if not CATALOGUE.products:
            raise GraphQLError(f"channel {CATALOGUE.channel} sells nothing with variants")

    def product(self) -> dict[str, Any]:
        return random.choice(CATALOGUE.products)

    def variant(self) -> str:
        variants = [v["id"] for v in self.product().get("variants") or [] if v.get("id")]
        return random.choice(variants) if variants else self.variant()

    @task(40)
    def browse(self) -> None:
        """Listing pages, then a category."""
        page = self.graphql("ProductList", {"channel": CATALOGUE.channel, "first": 24})["products"]
        if page["pageInfo"]["hasNextPage"]:
            self.graphql(
                "ProductList",
                {"channel": CATALOGUE.channel, "first": 24, "after": page["pageInfo"]["endCursor"]},
            )
        if CATALOGUE.categories:
            slug = random.choice(CATALOGUE.categories)
            self.graphql("CategoryProducts", {"slug": slug, "channel": CATALOGUE.channel, "first": 24})

    @task(25)
    def open_product(self) -> None:
        self.graphql("ProductDetails", {"slug": self.product()["slug"], "channel": CATALOGUE.channel})

    @task(15)
    def search(self) -> None:
        self.graphql(
            "SearchProducts",
            {"search": random.choice(SEARCH_TERMS), "channel": CATALOGUE.channel, "first": 24},
        )

    @task(8)
    def build_cart(self) -> None:
        self.start_checkout()

    @task(4)
    def checkout(self) -> None:
        checkout_id = self.start_checkout()
        self.graphql(
            "CheckoutEmailUpdate",
            {"id": checkout_id, "email": f"shopper-{uuid.uuid4().hex[:12]}@example.com"},
        )
        shipping = self.graphql("CheckoutShippingAddressUpdate", {"id": checkout_id, "address": ADDRESS})
        self.graphql("CheckoutBillingAddressUpdate", {"id": checkout_id, "address": ADDRESS})
        methods = (shipping["checkoutShippingAddressUpdate"]["checkout"] or {}).get("shippingMethods") or []
        usable = [m["id"] for m in methods if m.get("active", True)]
        if not usable:
            return
        self.graphql("CheckoutDeliveryMethodUpdate", {"id": checkout_id, "deliveryMethodId": usable[0]})
        if random.random() < 0.25:
            self.graphql("CheckoutComplete", {"id": checkout_id})

    def start_checkout(self) -> str:
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        created = self.graphql(
            "CheckoutCreate", {"channel": CATALOGUE.channel, "variantId": self.variant(), "email": email}
        )
        checkout_id: str = created["checkoutCreate"]["checkout"]["id"]
        for _ in range(random.randint(0, 2)):
            self.graphql("CheckoutLinesAdd", {"id": checkout_id, "variantId": self.variant(), "quantity": 1})
        return checkout_id


_SHAPE = shape_from_env()

if _SHAPE is not None:

    class SelectedShape(LoadTestShape):
        """The shape LOAD_SHAPE names (loadtest/shapes.py)."""

        def tick(self) -> tuple[int, float] | None:
            assert _SHAPE is not None
            return _SHAPE.users_at(self.get_run_time())  # type: ignore[no-untyped-call]
