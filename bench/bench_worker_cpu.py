"""The loopback Meta and Lightspeed of ``bench/bench_worker_cpu.mjs``, and a short way to run that benchmark.

    uv run python bench/bench_worker_cpu.py [--quick] [--repo PATH] [--profile KIND] ...

runs ``node bench/bench_worker_cpu.mjs`` with the same arguments (this interpreter as its ``--python``).
The benchmark starts this file itself with ``--serve SPEC``: the project's fakes (``relay_tools.fakes``) in
this CPython process, so their CPU never counts against the Worker's. It prints one JSON line (the base
URLs), then answers each ``count`` line on stdin with one JSON line (Meta's events so far, by id) and stops
at end of input.

``SPEC`` (JSON) says what Lightspeed lists: ``{"accounts": [{"key", "secret", "orders": N}], "embedded":
bool}``. Each account's ``N`` paid orders were placed over the last 6 days (a week of missed webhooks, inside
Meta's window), listed without their lines unless ``embedded`` (as Lightspeed lists them); their lines come
from ``products.json``. Order ids are ``10_000_000 * (account + 1) + n``, numbers ``ORD<id>``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relay_tools.fakes import FakeLightspeed, FakeMeta

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "lightspeed"
SPREAD = 6 * 86400
SHOP_ID = 318842            # the webhook fixture's X-Shop-Id: shop.json answers it for every account


def listed_order(template: dict[str, Any], order_id: int, created: float, lines: list[Any] | None) -> dict[str, Any]:
    order = copy.deepcopy(template)
    stamp = datetime.fromtimestamp(created, UTC).isoformat()
    order.update(id=order_id, number=f"ORD{order_id}", createdAt=stamp, updatedAt=stamp)
    if lines is not None:
        order["products"] = {"resource": {"id": False, "url": f"orders/{order_id}/products", "embedded": lines}}
    return order


def serve(spec: dict[str, Any]) -> None:
    templates = json.loads((FIXTURES / "orders-list-page.json").read_text())["orders"][:2]
    lines = json.loads((FIXTURES / "order-products.json").read_text())["orderProducts"][:2]
    meta = FakeMeta()
    lightspeed = FakeLightspeed("bench-unused-key", "bench-unused-secret")
    now = time.time()
    for i, account in enumerate(spec.get("accounts", [])):
        listed = lightspeed.add_account(account["key"], account["secret"], shop_id=SHOP_ID)
        count = int(account.get("orders", 0))
        for n in range(count):
            order_id = 10_000_000 * (i + 1) + n
            created = now - SPREAD + (n + 0.5) * SPREAD / count
            listed.append(listed_order(templates[n % 2], order_id, created, lines if spec.get("embedded") else None))
            lightspeed.products[order_id] = lines
    for server in (meta, lightspeed):
        server.start()
    try:
        print(json.dumps({"meta": meta.url, "lightspeed": lightspeed.url}), flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                sent = Counter(e["event_id"] for e in meta.events())
                print(json.dumps({"events": sum(sent.values()), "distinct": len(sent),
                                  "twice": sum(1 for n in sent.values() if n > 1)}), flush=True)
    finally:
        for server in (meta, lightspeed):
            server.stop()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(json.loads(sys.argv[2]))
        return
    script = str(ROOT / "bench" / "bench_worker_cpu.mjs")
    os.execvp("node", ["node", script, "--python", sys.executable, *sys.argv[1:]])


if __name__ == "__main__":
    main()
