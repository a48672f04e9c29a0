"""bench/glue_probe's upstreams, in a second Pyodide: the project's fakes' ``answer`` called synchronously from JS,
so their CPU can be timed and subtracted from the Worker's. No sockets: ``FakeServer`` only records."""

import copy
import json
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path[:0] = ["/repo/tools"]
import relay_tools.fakes as fakes  # noqa: E402


def _init(self: fakes.FakeServer) -> None:
    self.requests = []
    self.lock = threading.Lock()


fakes.FakeServer.__init__ = _init   # type: ignore[method-assign]
FIX = Path("/repo/tests/fixtures/lightspeed")
PAID, PAID_BE = json.loads((FIX / "orders-list-page.json").read_text())["orders"][:2]
LINES = json.loads((FIX / "order-products.json").read_text())["orderProducts"][:2]
SECRET = "bench-lightspeed-secret"


class AllProducts(dict):
    """Every order has the same two lines."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: object) -> list:
        return LINES


meta = fakes.FakeMeta()
ls = fakes.FakeLightspeed("unused-key", SECRET)
ls.products = AllProducts()


def env(shops: int, budget: int = 50) -> str:
    e = {"META_GRAPH_URL": "https://meta.fake", "LIGHTSPEED_API_URL": "https://ls.fake",
         "RELAY_SUBREQUEST_BUDGET": str(budget), "RELAY_PLAN": "paid"}   # the mechanics it measured before the plans
    for i in range(shops):
        p = f"SHOP{i:02d}"
        e.update({f"{p}_LIGHTSPEED_API_KEY": f"key{i}", f"{p}_LIGHTSPEED_API_SECRET": SECRET,
                  f"{p}_LIGHTSPEED_SHOP_ID": "318842", f"{p}_META_ACCESS_TOKEN": f"EAAbench{i}tok",
                  f"{p}_META_PIXEL_ID": str(900000000000000 + i), f"{p}_SHOP_URL": f"https://shop{i}.example"})
    return json.dumps(e)


def missed(shops: int, orders: int, spread_hours: float = 144.0) -> None:
    """``orders`` paid orders per shop that no webhook delivered, as bench/bench_backfill.py makes them."""
    now = time.time()
    for i in range(shops):
        listed = ls.add_account(f"key{i}", SECRET)
        for n in range(orders):
            o = copy.deepcopy((PAID, PAID_BE)[n % 2])
            created = now - spread_hours * 3600 + (n + 0.5) * spread_hours * 3600 / orders
            stamp = datetime.fromtimestamp(created, timezone(timedelta(hours=1))).isoformat()
            oid = 10_000_000 * (i + 1) + n
            o.update(id=oid, number=f"ORD{oid}", createdAt=stamp, updatedAt=stamp)
            listed.append(o)


def http(method: str, url: str, headers: str, body: str) -> str:
    parts = urlsplit(url)
    server = meta if parts.netloc == "meta.fake" else ls
    rec = fakes.Recorded(method, parts.path, parse_qs(parts.query),
                         {k.lower(): v for k, v in json.loads(headers).items()}, body.encode())
    server.requests.append(rec)
    reply = server.answer(rec)
    data = reply.body.decode() if isinstance(reply.body, bytes) else json.dumps(reply.body)
    return json.dumps([reply.status, {"content-type": "application/json", **reply.headers}, data])


def sent() -> str:
    c = Counter(e["event_id"] for e in meta.events())
    return json.dumps({"events": sum(c.values()), "distinct": len(c), "twice": sum(1 for v in c.values() if v > 1)})


def meta_events() -> int:
    return len(meta.events())
