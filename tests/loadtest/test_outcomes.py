"""How one GraphQL answer counts: success, expected refusal, or failure with a message."""

from __future__ import annotations

import json

from loadtest.outcomes import PERMISSION_DENIED, classify, dig

DENIED = {
    "message": "To access this path, you need one of the following permissions: AUTHENTICATED_APP",
    "extensions": {"exception": {"code": "PermissionDenied"}},
}


def answer(**payload):
    return json.dumps(payload)


def test_data_without_errors_is_a_success():
    outcome = classify("ProductList", 200, answer(data={"products": {"edges": []}}))
    assert outcome.ok
    assert outcome.data == {"products": {"edges": []}}


def test_http_errors_fail_with_the_status_and_any_graphql_message():
    assert classify("ProductList", 502, "<html>Bad Gateway</html>").failure == "HTTP 502"
    invalid = classify("ProductList", 400, answer(errors=[{"message": "Cannot query field 'x'"}]))
    assert invalid.failure == "HTTP 400: Cannot query field 'x'"
    assert classify("ProductList", 0, None).failure == "HTTP 0, no answer"


def test_a_request_never_answered_names_its_innermost_error():
    # As requests raises it: its ConnectionError wraps urllib3's, which wraps the socket's.
    try:
        try:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError as refused:
                raise RuntimeError("Failed to establish a new connection") from refused
        except RuntimeError as wrapped:
            raise ConnectionError(
                "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded"
            ) from wrapped
    except ConnectionError as error:
        outcome = classify("ProductList", 0, None, no_answer_error=error)
    # Before: "HTTP 0", with nothing listening on every request.
    assert not outcome.ok
    assert outcome.failure == "HTTP 0, no answer: ConnectionRefusedError: [Errno 111] Connection refused"
    timeout = classify("ProductList", 0, None, no_answer_error=TimeoutError("timed out"))
    assert timeout.failure == "HTTP 0, no answer: TimeoutError: timed out"


def test_a_200_that_is_not_json_fails():
    assert classify("ProductList", 200, "<html>").failure == "answer is not a JSON object"
    assert classify("ProductList", 200, "[1]").failure == "answer is not a JSON object"


def test_top_level_errors_fail_with_their_messages():
    outcome = classify(
        "SearchProducts", 200, answer(data={"products": None}, errors=[{"message": "a"}, {"message": "b"}])
    )
    assert not outcome.ok
    assert outcome.failure == "a; b"


def test_a_permission_refusal_is_expected_only_where_the_caller_says_so():
    body = answer(data={"channels": None}, errors=[DENIED])
    assert not classify("Channels", 200, body).ok
    allowed = classify("Channels", 200, body, permission_denied_expected=True)
    assert allowed.ok
    assert allowed.expected == (PERMISSION_DENIED,)
    assert allowed.data == {"channels": None}
    other = answer(data=None, errors=[DENIED, {"message": "boom"}])
    assert not classify("Channels", 200, other, permission_denied_expected=True).ok


EXPIRED = {"message": "Signature has expired", "extensions": {"exception": {"code": "ExpiredSignatureError"}}}


def test_a_refused_token_is_expected_only_where_the_caller_says_so():
    body = answer(errors=[EXPIRED])  # what Saleor answers, HTTP 200, to an expired staff token
    refused = classify("Channels", 200, body, permission_denied_expected=True)
    assert not refused.ok
    assert refused.failure == "Signature has expired"
    allowed = classify("Channels", 200, body, permission_denied_expected=True, token_refusal_expected=True)
    assert allowed.ok
    assert allowed.expected == ("ExpiredSignatureError",)
    assert allowed.data == {}
    # the message alone, as some versions answer, and a bad signature, count the same
    assert classify(
        "Channels", 200, answer(errors=[{"message": "Signature has expired"}]), token_refusal_expected=True
    ).expected == ("ExpiredSignatureError",)
    bad = {
        "message": "Signature verification failed",
        "extensions": {"exception": {"code": "InvalidSignatureError"}},
    }
    assert classify("Channels", 200, answer(errors=[bad]), token_refusal_expected=True).ok
    # other errors beside it still fail
    assert not classify(
        "Channels", 200, answer(errors=[EXPIRED, {"message": "boom"}]), token_refusal_expected=True
    ).ok


def test_mutation_errors_fail_with_code_message_and_field():
    body = answer(
        data={
            "checkoutCreate": {
                "checkout": None,
                "errors": [{"field": "lines", "message": "Insufficient stock", "code": "INSUFFICIENT_STOCK"}],
            }
        }
    )
    outcome = classify("CheckoutCreate", 200, body)
    assert not outcome.ok
    assert outcome.failure == "INSUFFICIENT_STOCK: Insufficient stock (lines)"


def test_an_unpaid_checkout_complete_is_an_expected_outcome():
    def complete(code):
        error = {"field": None, "message": "not paid", "code": code}
        return answer(data={"checkoutComplete": {"order": None, "errors": [error]}})

    outcome = classify("CheckoutComplete", 200, complete("CHECKOUT_NOT_FULLY_PAID"))
    assert outcome.ok
    assert outcome.expected == ("CHECKOUT_NOT_FULLY_PAID",)
    assert classify("CheckoutComplete", 200, complete("PAYMENT_ERROR")).ok
    assert not classify("CheckoutComplete", 200, complete("INSUFFICIENT_STOCK")).ok
    # the same code from any other mutation is a failure
    assert not classify("CheckoutEmailUpdate", 200, complete("CHECKOUT_NOT_FULLY_PAID")).ok


def test_a_missing_required_path_fails():
    body = answer(data={"checkoutCreate": {"checkout": None, "errors": []}})
    outcome = classify("CheckoutCreate", 200, body, require=("checkoutCreate.checkout.id",))
    assert outcome.failure == "answer has no checkoutCreate.checkout.id"
    assert classify("ProductList", 200, answer(data=None)).failure == "answer has no data"


def test_dig():
    assert dig({"a": {"b": 1}}, "a.b") == 1
    assert dig({"a": None}, "a.b") is None
    assert dig({"a": [1]}, "a.b") is None
