"""Every GraphQL operation the load test sends, in one place, so that a test can check
each against Saleor's real schema (tests/loadtest/test_operations.py)."""

from __future__ import annotations

CHANNELS = """
query Channels {
  channels { slug isActive }
}
"""
# `channels` (and Channel.isActive) need an app or staff token (SALEOR_TOKEN): an anonymous
# shopper is denied, and discovery falls back to CHANNEL_BY_SLUG, which anyone may ask.

CHANNEL_BY_SLUG = """
query ChannelBySlug($slug: String!) {
  channel(slug: $slug) { id slug }
}
"""

PRODUCT_LIST = """
query ProductList($channel: String!, $first: Int!, $after: String) {
  products(channel: $channel, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id slug name isAvailable
      pricing { priceRange { start { gross { amount currency } } } }
      variants { id quantityAvailable } } }
  }
}
"""

CATEGORIES = """
query Categories($first: Int!) {
  categories(first: $first, level: 0) { edges { node { id slug name } } }
}
"""

CATEGORY_PRODUCTS = """
query CategoryProducts($slug: String!, $channel: String!, $first: Int!) {
  category(slug: $slug) {
    id name
    products(channel: $channel, first: $first) {
      edges { node { id slug name thumbnail { url } } }
    }
  }
}
"""

SEARCH_PRODUCTS = """
query SearchProducts($search: String!, $channel: String!, $first: Int!) {
  products(search: $search, channel: $channel, first: $first) {
    totalCount
    edges { node { id slug name } }
  }
}
"""

PRODUCT_DETAILS = """
query ProductDetails($slug: String!, $channel: String!) {
  product(slug: $slug, channel: $channel) {
    id name description seoTitle
    category { id name }
    pricing { onSale priceRange { start { gross { amount currency } } } }
    variants { id name quantityAvailable pricing { price { gross { amount currency } } } }
  }
}
"""

CHECKOUT_CREATE = """
mutation CheckoutCreate($channel: String!, $variantId: ID!, $email: String!) {
  checkoutCreate(input: {channel: $channel, email: $email, lines: [{quantity: 1, variantId: $variantId}]}) {
    checkout { id totalPrice { gross { amount currency } } }
    errors { field message code }
  }
}
"""

CHECKOUT_LINES_ADD = """
mutation CheckoutLinesAdd($id: ID!, $variantId: ID!, $quantity: Int!) {
  checkoutLinesAdd(id: $id, lines: [{quantity: $quantity, variantId: $variantId}]) {
    checkout { id lines { id quantity } }
    errors { field message code }
  }
}
"""

CHECKOUT_EMAIL_UPDATE = """
mutation CheckoutEmailUpdate($id: ID!, $email: String!) {
  checkoutEmailUpdate(id: $id, email: $email) {
    checkout { id email }
    errors { field message code }
  }
}
"""

CHECKOUT_SHIPPING_ADDRESS_UPDATE = """
mutation CheckoutShippingAddressUpdate($id: ID!, $address: AddressInput!) {
  checkoutShippingAddressUpdate(id: $id, shippingAddress: $address) {
    checkout { id isShippingRequired shippingMethods { id name active } }
    errors { field message code }
  }
}
"""

CHECKOUT_BILLING_ADDRESS_UPDATE = """
mutation CheckoutBillingAddressUpdate($id: ID!, $address: AddressInput!) {
  checkoutBillingAddressUpdate(id: $id, billingAddress: $address) {
    checkout { id }
    errors { field message code }
  }
}
"""

CHECKOUT_DELIVERY_METHOD_UPDATE = """
mutation CheckoutDeliveryMethodUpdate($id: ID!, $deliveryMethodId: ID!) {
  checkoutDeliveryMethodUpdate(id: $id, deliveryMethodId: $deliveryMethodId) {
    checkout { id totalPrice { gross { amount currency } } }
    errors { field message code }
  }
}
"""

CHECKOUT_COMPLETE = """
mutation CheckoutComplete($id: ID!) {
  checkoutComplete(id: $id) {
    order { id number }
    confirmationNeeded
    errors { field message code }
  }
}
"""

OPERATIONS: dict[str, str] = {
    "Channels": CHANNELS,
    "ChannelBySlug": CHANNEL_BY_SLUG,
    "ProductList": PRODUCT_LIST,
    "Categories": CATEGORIES,
    "CategoryProducts": CATEGORY_PRODUCTS,
    "SearchProducts": SEARCH_PRODUCTS,
    "ProductDetails": PRODUCT_DETAILS,
    "CheckoutCreate": CHECKOUT_CREATE,
    "CheckoutLinesAdd": CHECKOUT_LINES_ADD,
    "CheckoutEmailUpdate": CHECKOUT_EMAIL_UPDATE,
    "CheckoutShippingAddressUpdate": CHECKOUT_SHIPPING_ADDRESS_UPDATE,
    "CheckoutBillingAddressUpdate": CHECKOUT_BILLING_ADDRESS_UPDATE,
    "CheckoutDeliveryMethodUpdate": CHECKOUT_DELIVERY_METHOD_UPDATE,
    "CheckoutComplete": CHECKOUT_COMPLETE,
}
"""Operation name -> document; the locustfile sends nothing else."""

EXPECTED_COMPLETE_ERRORS = frozenset({"CHECKOUT_NOT_FULLY_PAID", "PAYMENT_ERROR"})
"""checkoutComplete codes that are a shop's normal answer to a load-test shopper who does
not pay (the test drives no payment gateway): an expected outcome, counted as a success.
Anything else (INSUFFICIENT_STOCK, INVALID_SHIPPING_METHOD, ...) is a failure."""

ALLOWED_DEPRECATIONS = frozenset({"Product.variants"})
"""Deprecated fields the operations may still use. Product.variants is deprecated in favour
of the paginated Product.productVariants, which only exists from Saleor 3.21 on; the plain
list works on every 3.x the stack can run (SaleorImageTag)."""
