"""Runs last (by its name): nothing the whole suite wrote may hold the fixtures' customer data or secrets.

Scanned:
- every delivery log line under the session's ``log_root`` (every relay started through conftest's
  ``relay`` fixture, and ``relay health``, writes there): no raw email, phone, name, address, IP, user
  agent, token or secret, and not even their hashes (a log line names match keys, never values);
- every SQLite database in the session's temp folder (ledgers, health checks): no raw customer data
  or secret in any column; the IP and user agent, which Meta wants unhashed, only inside the payload of
  an event that may still be sent (never a sent one), or in a thank-you post whose order's event is not
  decided yet (a post is bound to its order by the user agent, so it keeps it until then);
- the texts of the errors the relay raises or answers with for inputs full of customer data, and what
  it logs to the console meanwhile.

The first tests below drive every path that writes (sent, failed, retried, held, unpaid, cancelled,
token check), so the scan has material even when this file runs alone; the scan then insists it saw
lines, rows and texts, and a planted leak proves the scanner finds one.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from conftest import FIXTURES, KEY, SECRET, TOKEN, order_body, signed_headers
from relay.core import lightspeed
from relay.core.config import load_shop
from relay.core.errors import RelayError
from relay.core.normalize import normalize, sha256_hex
from relay.core.order import parse_webhook
from relay.core.ports import HttpResponse
from relay.core.signature import verify
from relay.jobs import health
from relay_tools.fakes import graph_error
from test_dashboard import ADMIN as DASHBOARD_ADMIN
from test_health import NEW_TOKEN
from test_status import ADMIN as STATUS_ADMIN

PII_FIELDS = ("email", "phone", "mobile", "firstname", "middlename", "lastname", "name", "street", "street2",
              "zipcode", "city", "remoteip", "useragent", "birthdate", "companyname", "nationalid")
BROWSER_FIELDS = ("remoteip", "useragent")   # sent unhashed by design: allowed in a sendable payload only
# States whose event may still go to Meta: open ones, a failed one (``relay replay`` can resend it inside
# Meta's 7-day window) and a skipped one (a later webhook can revive it). A sent row never goes again.
# An expired one never does either, but the core still keeps its browser fields: tolerated here, and
# pinned as a known defect by test_an_expired_event_keeps_no_ip_or_user_agent below.
SENDABLE = ("waiting", "due", "sending", "retry", "failed")
MIN_LENGTH = 5                               # shorter values ("142", "B", "nl") are not identifying alone


def _field(key: str) -> str | None:
    low = key.lower()
    for name in PII_FIELDS:
        if low == name or low.endswith(name) and low.startswith(("addressbilling", "addressshipping")):
            return name
    return None


def _walk(node: object) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            name = _field(key) if isinstance(key, str) else None
            if name and isinstance(value, str) and len(value.strip()) >= MIN_LENGTH:
                yield name, value.strip()
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def customer_values() -> dict[str, str]:
    """Needle → the fixture field it comes from, raw and as normalized before hashing."""
    needles: dict[str, str] = {}
    for file in sorted((FIXTURES / "lightspeed").glob("*.json")):
        for name, value in _walk(json.loads(file.read_text())):
            needles[value] = name
            needles.setdefault(value.lower(), name)
            for field in {"email": ("em",), "phone": ("ph",), "mobile": ("ph",), "zipcode": ("zp",)}.get(name, ()):
                normalized = normalize(field, value, "NL")
                if normalized and len(normalized) >= MIN_LENGTH:
                    needles.setdefault(normalized, name)
    return needles


def secret_values() -> dict[str, str]:
    basic = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    return {TOKEN: "meta token", NEW_TOKEN: "meta token", KEY: "lightspeed key", SECRET: "lightspeed secret",
            basic: "lightspeed basic auth", STATUS_ADMIN: "admin token", DASHBOARD_ADMIN: "admin token"}


CUSTOMER = customer_values()
SECRETS = secret_values()
HASHES = {sha256_hex(v): f"hash of {name}" for v, name in CUSTOMER.items()}
BROWSER = {v: n for v, n in CUSTOMER.items() if n in BROWSER_FIELDS}


def hits(text: str, needles: dict[str, str]) -> list[str]:
    low = text.lower()
    return sorted({name for needle, name in needles.items() if needle.lower() in low})


# --- scanners -----------------------------------------------------------------------------------------------


def scan_logs(root: Path) -> tuple[int, list[str]]:
    lines, found = 0, []
    everything = {**CUSTOMER, **SECRETS, **HASHES}
    for file in sorted(root.rglob("*.ndjson")):
        for number, raw in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            lines += 1
            found += [f"{file.relative_to(root)}:{number}: {what}" for what in hits(raw, everything)]
    return lines, found


def scan_databases(base: Path) -> tuple[int, list[str]]:
    rows, found = 0, []
    always = {k: v for k, v in {**CUSTOMER, **SECRETS}.items() if k not in BROWSER}
    for file in sorted(base.rglob("*.db")):
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"'):
                    rows += 1
                    record = dict(row)
                    for column, value in record.items():
                        if not isinstance(value, str):
                            continue
                        where = f"{file.relative_to(base)} {table}.{column}"
                        found += [f"{where}: {what}" for what in hits(value, always)]
                        browser_ok = (table == "outbox" and column == "payload" and record.get("state") in SENDABLE
                                      or table == "bridge" and column in ("ip", "user_agent")
                                      and record.get("verdict") is None)   # a post whose order is undecided
                        if not browser_ok:
                            found += [f"{where} ({record.get('state')}): {what}" for what in hits(value, BROWSER)]
        finally:
            conn.close()
    return rows, found


# --- drive every path that writes ---------------------------------------------------------------------------


def post(relay, body: bytes, headers: dict[str, str]) -> httpx.Response:
    answer = httpx.post(f"{relay.url}/?shop=vik", content=body, headers=headers)
    relay.drain()
    return answer


def test_every_writing_path_runs_through_a_relay_and_the_console_stays_clean(relay, meta, caplog):
    caplog.set_level(logging.INFO, logger="relay")
    assert post(relay, order_body(), signed_headers(order_body())).json()["status"] == "accepted"
    meta.reject_event_ids.add("purchase_ORD04300")
    body = order_body(id=384271700, number="ORD04300")
    assert post(relay, body, signed_headers(body)).json()["status"] == "accepted"
    meta.script.append(graph_error(503, 2, "Service temporarily unavailable", transient=True))
    body = order_body(id=384271701, number="ORD04301")
    assert post(relay, body, signed_headers(body)).json()["status"] == "accepted"
    unpaid = order_body(id=384271702, number="ORD04302", paymentStatus="not_paid")
    assert post(relay, unpaid, signed_headers(unpaid)).json()["status"] == "ignored"
    cancelled = order_body(id=384271703, number="ORD04303", status="cancelled", paymentStatus="not_paid")
    assert post(relay, cancelled, signed_headers(cancelled)).json()["status"] == "ignored"
    meta.valid_tokens = {"some-other-token"}
    relay.call(health.run_daily(relay.relay.runtime()))
    body = order_body(id=384271720, number="ORD04320")
    post(relay, body, signed_headers(body))                                   # held: stays queued
    rt = relay.relay.runtime()
    relay.call(rt.log.flush(rt.blobs, rt.clock()))
    states = {r["state"] for r in relay.call(relay.relay.runtime().ledger.rows("vik"))}
    assert {"sent", "failed", "retry", "due", "waiting", "skipped"} <= states
    assert caplog.text.count('"kind": "attempt"') >= 3
    assert hits(caplog.text, {**CUSTOMER, **SECRETS, **HASHES}) == []


def test_an_expired_event_keeps_no_ip_or_user_agent(relay, clock):
    clock.advance(7 * 86400)
    body = order_body()
    assert post(relay, body, signed_headers(body)).json()["status"] == "ignored"
    (row,) = relay.call(relay.relay.runtime().ledger.rows("vik"))
    assert row["state"] == "expired"
    assert hits(row["payload"], BROWSER) == []

def error_texts(relay) -> list[str]:
    """What errors say for inputs full of customer data and secrets: raised, and answered over HTTP."""
    texts: list[str] = []
    raw = order_body()

    def raised(call) -> None:
        try:
            call()
        except RelayError as exc:
            texts.extend([str(exc), repr(exc)])
        else:
            raise AssertionError("expected an error")

    raised(lambda: verify(raw, "0" * 32, load_shop(relay.relay.env, "vik").lightspeed_secret))
    broken = raw.replace(b'"createdAt":"', b'"createdAt":"not a date ', 1)
    raised(lambda: parse_webhook(broken))
    raised(lambda: parse_webhook(raw[:-40]))
    raised(lambda: load_shop({"HALF_META_ACCESS_TOKEN": TOKEN}, "half"))
    shop = load_shop(relay.relay.env, "vik")
    for status in (401, 403, 404, 500):
        echo = json.dumps({"error": {"message": f"{KEY} {SECRET} marielle.vandenbroek@example.nl"}}).encode()
        raised(lambda status=status, echo=echo: lightspeed.parse_currency(HttpResponse(status, {}, echo), shop))
    check = health.parse_debug_token(HttpResponse(400, {}, json.dumps({"error": {
        "code": 190, "message": f"Invalid OAuth access token - Cannot parse access token {TOKEN}"}}).encode()), 0)
    texts.append(repr(check))
    for body, headers in ((raw, signed_headers(raw, secret="wrong-secret")),
                          (broken, signed_headers(broken)),
                          (raw[:-40], signed_headers(raw[:-40]))):
        answer = httpx.post(f"{relay.url}/?shop=vik", content=body, headers=headers)
        assert answer.status_code in (400, 401)
        texts.append(answer.text)
    return texts


def test_error_texts_and_console_log_hold_no_customer_data_or_secret(relay, caplog):
    caplog.set_level(logging.INFO, logger="relay")
    texts = error_texts(relay)
    assert len(texts) >= 15
    everything = {**CUSTOMER, **SECRETS}
    found = [f"{t[:60]!r}: {what}" for t in texts for what in hits(t, everything)]
    found += [f"console: {what}" for what in hits(caplog.text, {**everything, **HASHES})]
    assert found == []


# --- the scan -----------------------------------------------------------------------------------------------


def test_the_scanner_finds_a_planted_leak():
    with tempfile.TemporaryDirectory() as name:        # outside the session folder the final scan reads
        planted(Path(name))


def planted(folder: Path) -> None:
    (folder / "logs").mkdir()
    (folder / "logs" / "x.ndjson").write_text(json.dumps({"error": "mail marielle.vandenbroek@example.nl"}) + "\n")
    conn = sqlite3.connect(folder / "planted.db")
    conn.execute("CREATE TABLE outbox (state TEXT, payload TEXT, last_error TEXT)")
    conn.execute("INSERT INTO outbox VALUES ('sent', ?, ?)", ('{"client_ip_address":"2001:db8:3c4d:15::1a2f"}',
                                                              f"token {TOKEN}"))
    conn.execute("INSERT INTO outbox VALUES ('retry', ?, NULL)", ('{"client_ip_address":"2001:db8:3c4d:15::1a2f"}',))
    conn.commit()
    conn.close()
    assert "x.ndjson:1: email" in scan_logs(folder / "logs")[1]
    rows, found = scan_databases(folder)
    assert rows == 2
    assert sorted(f.split(": ")[-1] for f in found) == ["meta token", "remoteip"]


def test_nothing_the_suite_wrote_holds_customer_data_or_secrets(log_root, tmp_path_factory):
    lines, in_logs = scan_logs(log_root)
    rows, in_databases = scan_databases(tmp_path_factory.getbasetemp())
    print(f"\nno-PII scan: {lines} delivery log lines, {rows} database rows, {len(CUSTOMER)} customer values, "
          f"{len(SECRETS)} secrets")
    assert lines >= 5 and rows >= 5, "nothing to scan: the delivery log or the ledgers were not written"
    assert in_logs == []
    assert in_databases == []
