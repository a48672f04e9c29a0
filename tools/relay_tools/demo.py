"""``relay demo``: one signed Lightspeed webhook through the real relay, against loopback fakes.

No account, no internet: fake Meta and fake Lightspeed run on 127.0.0.1, the relay runs as
``relay serve`` does (uvicorn, SQLite, a log folder), and the sample order is the shared paid
fixture with its times moved to now so that it is inside Meta's 7-day window.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from relay.core.signature import sign
from relay_tools.fakes import FakeLightspeed, FakeMeta
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


def _section(title: str, value: Any) -> None:
    print(f"\n== {title}")
    print(value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False))


def run(db: str | None = None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="relay-demo-"))
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
            _section(f"Lightspeed → relay: POST /?shop=demo ({len(body)} bytes, signed) → {first.status_code}",
                     first.json())
            _section(f"Same webhook again → {again.status_code}", again.json())
            posts = meta.event_posts
            _section(f"Meta received {len(posts)} request(s)", "")
            for post in posts:
                sent = post.json()
                sent["access_token"] = "<redacted>"
                print(f"POST {post.path}")
                print(json.dumps(sent, indent=2, ensure_ascii=False))
            row = server.call(relay.runtime().ledger.get("demo", 384271665))
            _section("Ledger row (hashed payload only; IP and user agent dropped once sent)",
                     {k: (json.loads(v) if k == "payload" else v) for k, v in row.items()})
            logs = sorted((workdir / "logs").rglob("*.ndjson"))
            _section("Delivery log (R2 stand-in)", "\n".join(p.read_text().rstrip() for p in logs))
            print(f"\nDatabase and logs are in {workdir}")
            return 0 if len(posts) == 1 and first.status_code == 200 else 1
        finally:
            server.stop()
