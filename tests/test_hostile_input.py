"""Validly signed but hostile webhooks: every one answers 2xx or 4xx with a reason, never 5xx, and
nothing nonsensical reaches Meta (docs/EVENTS.md, "Hostile input")."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import FIXTURE_NOW, PAID_RAW, SECRET, order_body, shop_env, signed_headers
from relay.core.signature import sign
from relay_tools.server import LocalRelay, ServerThread


def post(relay, body: bytes, shop: str = "vik", headers: dict[str, str] | None = None) -> httpx.Response:
    answer = httpx.post(f"{relay.url}/", params={"shop": shop}, content=body,
                        headers=headers or signed_headers(body))
    relay.drain()
    return answer


def rows(relay) -> list[dict]:
    return relay.call(relay.relay.runtime().ledger.rows())


def with_order(**changes) -> bytes:
    return order_body(**changes)


def raw_order(text: str) -> bytes:
    """The paid fixture with its ``"priceIncl"`` total replaced by raw JSON text (numbers json.dumps cannot write)."""
    data = json.loads(PAID_RAW)
    data["order"]["priceIncl"] = "@TOTAL@"
    return json.dumps(data, separators=(",", ":")).encode().replace(b'"@TOTAL@"', text.encode())


@pytest.fixture
def kiss(meta, lightspeed, tmp_path, log_root, clock):
    """A relay with a second shop, KISS, whose name has every letter that a non-ASCII one folds into."""
    env = {**shop_env(meta, lightspeed), **shop_env(meta, lightspeed, shop="KISS")}
    server = ServerThread(LocalRelay(env, tmp_path / "kiss.db", log_root / tmp_path.name, clock=clock,
                                     sweep_interval=None)).start()
    yield server
    server.stop()


@pytest.mark.parametrize("alias", [
    "k\u0131ss",        # dotless ı: upper() is I
    "ki\u017fs",        # long ſ: upper() is S
    "\u212aiss",        # Kelvin sign: lower() is k
    "kiss\u0307",       # a combining dot
    "ｋｉｓｓ",          # full-width letters
])
def test_a_non_ascii_spelling_of_a_shop_is_404_and_stores_nothing(kiss, meta, alias):
    answer = post(kiss, PAID_RAW, shop=alias)
    assert answer.status_code == 404
    assert "ASCII" in answer.json()["error"]
    assert rows(kiss) == [] and meta.event_posts == []
    assert post(kiss, PAID_RAW, shop="kiss").json()["status"] == "accepted"


def test_an_ascii_upper_case_spelling_is_the_same_shop(relay, meta):
    assert post(relay, PAID_RAW, shop="VIK").json()["status"] == "accepted"
    assert post(relay, PAID_RAW, shop="vik").json()["status"] == "duplicate"
    assert {r["shop"] for r in rows(relay)} == {"vik"}
    assert len(meta.event_posts) == 1


@pytest.mark.parametrize(("body", "says"), [
    (raw_order("1e26"), "priceIncl"),
    (raw_order("1" * 5000), "number too long"),
    (raw_order("1e9999999999999999999999"), "number too large"),     # Decimal cannot hold it: was a 500
    (b'{"order":' + b"[" * 20000 + b"]" * 20000 + b"}", "nests deeper"),
    (with_order(id=2**63), '"id"'),
    (with_order(id=10**30), '"id"'),
    (with_order(priceIncl=-140.4), "negative"),
    (with_order(number="N" * 200), "number"),
])
def test_signed_bodies_that_cannot_be_an_order_are_4xx_with_a_reason(relay, meta, body, says):
    answer = post(relay, body)
    assert answer.status_code == 400
    assert says in answer.json()["error"]
    assert rows(relay) == [] and meta.event_posts == []


def test_lone_surrogates_are_replaced_before_hashing_and_storing(relay, meta):
    body = PAID_RAW.replace(b'"firstname":"Mari\\u00eblle"', b'"firstname":"Mari\\ud800lle"')
    assert body != PAID_RAW
    answer = post(relay, body)
    assert answer.status_code == 200 and answer.json()["status"] == "accepted"
    assert rows(relay)[0]["state"] == "sent"
    assert "fn" in meta.events()[0]["user_data"]


def test_surrogates_in_the_order_number_still_answer_and_store(relay, meta):
    answer = post(relay, with_order(number="ORD\ud800"))
    assert answer.status_code == 200
    assert answer.json()["event_id"] == "purchase_ORD\ufffd"
    assert meta.events()[0]["event_id"] == "purchase_ORD\ufffd"


def test_a_remote_ip_that_is_no_ip_address_is_dropped(relay, meta):
    assert post(relay, with_order(remoteIp="'; DROP TABLE outbox; --")).json()["status"] == "accepted"
    user = meta.events()[0]["user_data"]
    assert "client_ip_address" not in user and "client_user_agent" in user


def test_a_created_at_in_the_future_is_sent_as_the_time_received(relay, meta):
    assert post(relay, with_order(createdAt="2031-01-01T00:00:00+01:00")).json()["status"] == "accepted"
    assert meta.events()[0]["event_time"] == FIXTURE_NOW


def test_negative_or_absurd_quantities_leave_the_line_out(relay, meta):
    data = json.loads(PAID_RAW)
    lines = data["order"]["products"]["resource"]["embedded"]
    lines[0]["quantityOrdered"] = -2
    lines[1]["quantityOrdered"] = 10**12
    body = json.dumps(data, separators=(",", ":")).encode()
    assert post(relay, body).json()["status"] == "accepted"
    contents = meta.events()[0]["custom_data"]["contents"]
    assert [c["id"] for c in contents] == [str(lines[2]["variant"]["resource"]["id"])]
    assert contents[0]["quantity"] == 3


def test_an_event_id_template_that_makes_ids_too_long_refuses_the_order(meta, lightspeed, tmp_path, log_root, clock):
    env = shop_env(meta, lightspeed, VIK_EVENT_ID_TEMPLATE="{number}" + "x" * 120)
    server = ServerThread(LocalRelay(env, tmp_path / "r.db", log_root / tmp_path.name, clock=clock,
                                     sweep_interval=None)).start()
    try:
        answer = post(server, PAID_RAW)
        assert answer.status_code == 400 and "event_id" in answer.json()["error"]
        assert rows(server) == [] and meta.event_posts == []
    finally:
        server.stop()


def test_an_unsigned_hostile_body_is_still_401(relay):
    body = raw_order("1e26")
    answer = post(relay, body, headers={"X-Signature": sign(body, SECRET + "x")})
    assert answer.status_code == 401
