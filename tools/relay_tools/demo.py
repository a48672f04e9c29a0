"""``relay demo``: one signed Lightspeed webhook through the real relay, against loopback fakes.

No account, no internet: fake Meta and fake Lightspeed run on 127.0.0.1, the relay runs as
``relay serve`` does (uvicorn, SQLite, a log folder), and the sample order is the shared paid
fixture with its times moved to now so that it is inside Meta's 7-day window.

It ends with a few plain sentences for a shop owner (``--json`` prints the requests, the ledger row and
the log lines in full, for a developer), and leaves nothing behind: its folder is temporary.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from relay.core.signature import sign
from relay_tools import logs_cli
from relay_tools.fakes import FakeLightspeed, FakeMeta, Recorded
from relay_tools.server import LocalRelay, ServerThread

SAMPLE = Path(__file__).with_name("sample_webhook.json")
SECRET = "fixture-only-api-secret-5c1e9a07d3b2"
KEY = "demo-api-key"
TOKEN = "demo-meta-access-token"
PIXEL = "1234567890123456"
SAMPLE_TIMES = ("2025-11-18T21:47:09+01:00", "2025-11-18T21:48:31+01:00")


def demo_env(meta_url: str, lightspeed_url: str) -> dict[str, str]:
    return {
        "DEMO_LIGHTSPEED_API_KEY": KEY,
        "DEMO_LIGHTSPEED_API_SECRET": SECRET,
        "DEMO_LIGHTSPEED_SHOP_ID": "318842",
        "DEMO_META_ACCESS_TOKEN": TOKEN,
        "DEMO_META_PIXEL_ID": PIXEL,
        "DEMO_SHOP_URL": "https://demo-shop.example",
        "META_GRAPH_URL": meta_url,
        "LIGHTSPEED_API_URL": lightspeed_url,
    }


def sample_body(now: float) -> bytes:
    """The fixture's exact bytes, with its two timestamps moved to a few minutes before ``now``."""
    body = SAMPLE.read_bytes()
    for offset, old in zip((180, 60), SAMPLE_TIMES, strict=True):
        new = datetime.fromtimestamp(int(now) - offset, UTC).isoformat()
        body = body.replace(old.encode(), new.encode())
    return body


def money(value: float, currency: str) -> str:
    """``€ 140,40``: as the shop owner reads an amount (a comma before the cents, dots between thousands)."""
    symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency)
    text = f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{symbol} {text}"


def _section(title: str, value: Any) -> None:
    print(f"\n== {title}")
    print(value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False))


@dataclass
class Seen:
    """What one demo run saw: the two answers, Meta's requests, the ledger row and the log lines in time order."""

    size: int
    first: httpx.Response
    again: httpx.Response
    posts: list[Recorded]
    row: dict[str, Any]
    log: list[tuple[str, dict[str, Any]]]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for post in self.posts for event in post.json()["data"]]

    @property
    def ok(self) -> bool:
        return (len(self.events) == 1 and self.first.status_code == 200
                and self.first.json().get("status") == "accepted" and self.again.json().get("status") == "duplicate")


def summary(seen: Seen) -> list[str]:
    """The demo in plain sentences, ending with the one line that says whether it did what the relay promises."""
    number = seen.row["order_number"]
    events = seen.events
    data = events[0].get("custom_data", {}) if events else {}
    amount = money(float(data.get("value") or 0), str(data.get("currency") or "EUR"))
    keys = [k for k in str(seen.row.get("match_keys") or "").split(",") if k]
    out = [
        f"1. Lightspeed sent order {number} (paid, {amount}) to the relay, signed ({seen.size} bytes): "
        f"{seen.first.status_code} {seen.first.json().get('status')}",
        f"2. The same webhook again: {seen.again.status_code} {seen.again.json().get('status')}"
        + (" (recognised: nothing is sent twice)" if seen.again.json().get("status") == "duplicate" else ""),
        f"3. Meta received {len(seen.posts)} request(s) with {len(events)} event(s)"
        + (f": {events[0]['event_name']} {events[0]['event_id']}, {amount}, {len(keys)} match keys, the customer's "
           "details hashed (SHA-256)" if events else ""),
        f"4. The ledger: {number} {seen.row['state']} after {seen.row['attempts']} attempt(s); only the hashed event "
        "is kept, IP address and user agent dropped once sent",
        "",
        "Delivery log (the R2 stand-in), in time order:",
        *(log_line(line) for _, line in seen.log),
        "",
    ]
    if seen.ok:
        out.append(f"Meta received 1 Purchase for {number}, {amount}, once; the repeat was recognised.")
    else:
        out.append(f"Something is off: Meta received {len(events)} event(s) for {number} (expected 1); "
                   "run with --json to see every request and answer.")
    out.append("(relay demo --json shows the answers, Meta's request, the ledger row and the log lines in full)")
    return out


def log_line(line: dict[str, Any]) -> str:
    """A delivery log line in a few words: time, kind, order, state change, Meta's answer (``relay logs`` has all)."""
    cells = dict(zip(logs_cli.COLUMNS, logs_cli.row(line), strict=True))
    meta = f"Meta {cells['meta']}" + (f", {cells['recv']} received" if cells["recv"] else "") if cells["meta"] else ""
    return "  ".join(x for x in (f"  {cells['time']}", f"{cells['kind']:<8}", cells["order"] or cells["id"],
                                 cells["transition"], meta) if x)


def details(seen: Seen) -> None:
    """The developer's view (``--json``): each answer, Meta's requests, the ledger row and the raw log lines."""
    _section(f"Lightspeed → relay: POST /?shop=demo ({seen.size} bytes, signed) → {seen.first.status_code}",
             seen.first.json())
    _section(f"Same webhook again → {seen.again.status_code}", seen.again.json())
    _section(f"Meta received {len(seen.posts)} request(s)", "")
    for post in seen.posts:
        sent = post.json()
        sent["access_token"] = "<redacted>"
        print(f"POST {post.path}")
        print(json.dumps(sent, indent=2, ensure_ascii=False))
    _section("Ledger row (hashed payload only; IP and user agent dropped once sent)",
             {k: (json.loads(v) if k == "payload" else v) for k, v in seen.row.items()})
    _section("Delivery log (R2 stand-in), in time order", "\n".join(raw for raw, _ in seen.log))


def run(db: str | None = None, as_json: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="relay-demo-") as folder:     # removed when the demo ends
        seen = _run(Path(folder), db)
    if as_json:
        details(seen)
    else:
        print("relay demo: fake Meta and fake Lightspeed on 127.0.0.1, the relay as `relay serve` runs it "
              "(no account, no internet)\n")
        print("\n".join(summary(seen)))
    return 0 if seen.ok else 1


def _run(workdir: Path, db: str | None) -> Seen:
    with FakeMeta() as meta, FakeLightspeed(KEY, SECRET) as lightspeed:
        relay = LocalRelay(demo_env(meta.url, lightspeed.url), db or workdir / "relay.db", workdir / "logs",
                           sweep_interval=None)
        server = ServerThread(relay).start()
        try:
            body = sample_body(time.time())
            headers = {"Content-Type": "application/json", "X-Shop-Id": "318842", "X-Event": "orders/paid",
                       "X-Signature": sign(body, SECRET)}
            url = f"{server.url}/?shop=demo"
            first = httpx.post(url, content=body, headers=headers)
            server.drain()
            again = httpx.post(url, content=body, headers=headers)
            server.drain()
            row = server.call(relay.runtime().ledger.get("demo", 384271665))
        finally:
            server.stop()
        days = sorted({p.parent for p in (workdir / "logs").rglob("*.ndjson")})
        log = [entry for day in days for entry in logs_cli.read_lines(day)]
        return Seen(len(body), first, again, list(meta.event_posts), dict(row), log)
