"""No email, phone, name, address or secret in the ledger's bytes, the logs or any error text."""

from __future__ import annotations

import json
import re

import httpx

from conftest import FIXTURES, KEY, PAID_HEADERS, PAID_RAW, SECRET, TOKEN, order_body, signed_headers
from relay_tools.fakes import Reply, graph_error

ORDER = json.loads(PAID_RAW)["order"]
MISSING = json.loads((FIXTURES / "lightspeed" / "webhook-order-paid-missing-optional.json").read_text())["order"]


def pii_strings() -> set[str]:
    """Every customer value of both fixtures that must never be stored or logged in the clear."""
    values = set()
    for order in (ORDER, MISSING):
        for key in ("email", "phone", "mobile", "firstname", "lastname", "birthDate", "addressBillingStreet",
                    "addressBillingZipcode", "addressBillingName", "addressBillingCity"):
            if isinstance(order.get(key), str) and order[key]:
                values.add(order[key])
    values |= {"06-12345678", "0612345678", "31612345678", "+31 6 12345678", "marielle", "Mariëlle", "1015 KK",
               "1015kk", "1988-04-23", "19880423", "vandenbroek@"}
    return {v for v in values if len(v) >= 4}


SECRETS = {SECRET, TOKEN, KEY}


def scan(text: str, where: str) -> None:
    """Whole-word, case-insensitive: ``Gent`` is a city, ``client_user_agent`` is not a leak."""
    leaks = [v for v in pii_strings() | SECRETS
             if re.search(r"(?<![a-z0-9])" + re.escape(v) + r"(?![a-z0-9])", text, re.IGNORECASE)]
    assert not leaks, f"{where} contains {leaks}"


def test_nothing_raw_in_ledger_logs_or_errors(relay, meta, clock, log_root, tmp_path):
    answers = []
    # a paid order (sent), a Meta rejection, a bad token, unusable and unsigned bodies
    answers.append(httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"]))
    relay.drain()
    meta.script.append(graph_error(400, 100, "Invalid parameter", subcode=2804050))
    second = order_body(id=1, number="ORD2")
    answers.append(httpx.post(f"{relay.url}/?shop=vik", content=second, headers=signed_headers(second)))
    relay.drain()
    meta.script.append(Reply(400, {"error": {"code": 190, "message": "Error validating access token"}}))
    third = order_body(id=2, number="ORD3", paymentStatus="paid")
    answers.append(httpx.post(f"{relay.url}/?shop=vik", content=third, headers=signed_headers(third)))
    relay.drain()
    answers.append(httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers={"X-Signature": "0" * 32}))
    garbage = PAID_RAW[:-5]
    answers.append(httpx.post(f"{relay.url}/?shop=vik", content=garbage, headers=signed_headers(garbage)))
    relay.relay.env.pop("VIK_META_PIXEL_ID")
    answers.append(httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"]))
    assert [a.status_code for a in answers] == [200, 200, 200, 401, 400, 500]

    for answer in answers:
        scan(answer.text, f"HTTP answer {answer.status_code}")
    relay.call(relay.relay.db.run("PRAGMA wal_checkpoint(FULL)"))
    for path in tmp_path.glob("relay.db*"):
        scan(path.read_bytes().decode("utf-8", "replace"), path.name)
    logs = list((log_root / tmp_path.name).rglob("*.ndjson"))
    assert logs, "the relay wrote no delivery log"
    for path in logs:
        scan(path.read_text(), str(path))
    rows = relay.call(relay.relay.runtime().ledger.rows())
    assert {r["state"] for r in rows} == {"sent", "failed", "retry"}
    for r in rows:
        scan(json.dumps(r, ensure_ascii=False), f"ledger row {r['order_id']}")


def test_rows_past_the_window_forget_ip_and_user_agent(relay, meta, clock):
    from conftest import order_body

    unpaid = order_body(id=7, number="ORD7", paymentStatus="not_paid")
    rejected = order_body(id=8, number="ORD8")
    meta.reject_event_ids.add("purchase_ORD8")
    for body in (unpaid, rejected):
        httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
        relay.drain()
    rows = {r["order_id"]: r for r in relay.call(relay.relay.runtime().ledger.rows())}
    assert (rows[7]["state"], rows[8]["state"]) == ("waiting", "failed")
    assert "2001:db8:3c4d:15::1a2f" in rows[7]["payload"]          # may still be paid and sent
    clock.advance(7 * 86400)
    relay.call(relay.relay.sweep())        # the cron pass, on a shop with nothing left to send
    for stored in relay.call(relay.relay.runtime().ledger.rows()):
        user = json.loads(stored["payload"])["user_data"]
        assert "client_ip_address" not in user and "client_user_agent" not in user
        assert user["em"], "the hashed keys stay"
