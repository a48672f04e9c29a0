"""What the local server's edge must refuse as the Worker does: credential headers sent twice, and a
body cut short of its Content-Length (the sender went away): 4xx and nothing stored or sent."""

from __future__ import annotations

import socket

import httpx
import pytest

from conftest import order_body, shop_env, signed_headers
from relay.web import routes
from relay.web.http import Request, joined_headers, repeated_credential

ADMIN = "admin-token-for-edge-tests-90d3aa"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


def rows(relay) -> list[dict]:
    return relay.call(relay.relay.runtime().ledger.rows())


@pytest.mark.parametrize("name", ["X-Signature", "X-Shop-Id"])
def test_a_webhook_repeating_a_credential_header_is_401_and_stores_nothing(relay, meta, name):
    body = order_body()
    good = signed_headers(body)
    decoy = {"X-Signature": "0" * 32, "X-Shop-Id": "999999"}[name]
    for order in ((decoy, good[name]), (good[name], good[name])):      # the valid one last, or the same twice
        headers = [(k, v) for k, v in good.items() if k != name] + [(name, value) for value in order]
        answer = httpx.post(f"{relay.url}/?shop=vik", content=body, headers=headers)
        relay.drain()
        assert answer.status_code == 401, order
        assert f"{name} more than once" in answer.json()["error"]
    assert rows(relay) == [] and meta.event_posts == []
    accepted = httpx.post(f"{relay.url}/?shop=vik", content=body, headers=good)
    assert accepted.json()["status"] == "accepted"


def test_a_repeated_authorization_header_is_401_on_the_admin_routes(relay):
    bearer = f"Bearer {ADMIN}"
    for path in ("/status", "/dashboard"):
        answer = httpx.get(f"{relay.url}{path}", headers=[("Authorization", "Bearer wrong"),
                                                           ("Authorization", bearer)])
        assert answer.status_code == 401 and "Authorization more than once" in answer.text
    assert httpx.get(f"{relay.url}/status", headers={"Authorization": bearer}).status_code == 200


def test_the_rule_is_the_one_the_workers_headers_need():
    """The Worker's Headers join repeats with ", "; the local edge joins them the same way, one check reads both."""
    joined = joined_headers([("X-Signature", "a" * 32), ("x-signature", "b" * 32), ("X-Event", "orders/paid")])
    assert joined == {"x-signature": f"{'a' * 32}, {'b' * 32}", "x-event": "orders/paid"}
    assert repeated_credential(joined) == "x-signature"
    assert repeated_credential({"x-signature": "a" * 32, "x-shop-id": "318842, 318842"}) == "x-shop-id"
    assert repeated_credential({"x-signature": "a" * 32, "x-shop-id": "318842", "authorization": "Bearer t"}) is None


def raw_post(relay, head: bytes, body: bytes) -> bytes:
    """Send a request by hand, then close our sending side: the server sees the body end early."""
    host, port = relay.sock.getsockname()[:2]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(head + body)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_a_body_shorter_than_its_content_length_is_400_and_stores_nothing(relay, meta):
    body = order_body()
    for declared in (len(body) + 100, len(body) * 2):
        # a whole, validly signed order arrives, but the sender declared more and went away: it is not the body
        head = (f"POST /?shop=vik HTTP/1.1\r\nHost: {relay.url[7:]}\r\nContent-Length: {declared}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in signed_headers(body).items()) + "\r\n").encode()
        answer = raw_post(relay, head, body)
        relay.drain()
        assert rows(relay) == [] and meta.event_posts == []
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]   # nothing, to a gone client
    # the whole body, declared rightly, is accepted on the same server
    complete = httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    assert complete.json()["status"] == "accepted"


def test_the_routes_answer_400_to_a_body_shorter_than_declared(relay, meta):
    """What the edge hands the routes when the body came up short: the answer the sender would get."""
    body = order_body()
    headers = {k.lower(): v for k, v in signed_headers(body).items()} | {"content-length": str(len(body) + 1)}

    async def read_body() -> bytes:
        return body

    request = Request("POST", "/", {"shop": "vik"}, headers, read_body)
    answer = relay.call(routes.handle(relay.relay.runtime(), request))
    assert answer.status == 400 and "ended before its Content-Length" in answer.body["error"]
    assert rows(relay) == []
