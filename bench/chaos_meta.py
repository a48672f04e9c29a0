"""Chaos run: webhooks through `relay serve` while the fake Meta misbehaves; prints what was lost or doubled.

    uv run python bench/chaos_meta.py [--orders 40] [--seed 13] [--slow 2.5] [--timeout SECONDS]

``--timeout 1`` sets META_TIMEOUT below the slow answer, as the old 1.5 s timeout was: then slow-but-delivered
events time out and are sent again, and "sent twice" shows it.

Meta's faults, drawn per request from a seeded generator: answers 200 only after ``--slow`` seconds (slow
but successful: the event IS delivered), 500 without a Graph body, a transient Graph error (code 2), a rate
limit (code 17), or a prompt 200. The relay runs exactly as `relay serve` does (uvicorn on loopback, SQLite,
the send in a task after the answer); a settable clock stands in for time between retry sweeps, so the run
takes seconds, not hours. Paid, unpaid and cancelled orders are mixed in.

Figures: "lost" is a paid order Meta never took; "sent twice" an event_id Meta took (2xx) more than once;
"sent wrongly" an event Meta took for an unpaid or cancelled order, or with another value or pixel.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from relay.core.signature import sign
from relay_tools.fakes import FakeLightspeed, FakeMeta, Recorded, Reply, graph_error
from relay_tools.server import LocalRelay, ServerThread

ROOT = Path(__file__).resolve().parent.parent
PAID_RAW = (ROOT / "tests" / "fixtures" / "lightspeed" / "webhook-order-paid.raw.json").read_bytes()
SECRET = "chaos-secret-not-real"
KEY, TOKEN, PIXEL, SHOP_ID = "chaos-key", "EAAchaos-token-not-real", "111222333444555", "318842"


class ChaosMeta(FakeMeta):
    """The project's fake Meta with faults drawn per events request; ``taken`` holds what it answered 2xx to."""

    def __init__(self, rng: random.Random, slow: float) -> None:
        super().__init__()
        self.rng = rng
        self.slow = slow
        self.taken: list[dict[str, Any]] = []
        self.faults: Counter[str] = Counter()

    def answer(self, request: Recorded) -> Reply:
        if not request.path.endswith("/events"):
            return super().answer(request)
        with self.lock:
            draw = self.rng.random()
        if draw < 0.40:
            fault, reply = f"200 after {self.slow:g} s", None
        elif draw < 0.55:
            fault, reply = "500, no body", Reply(500, b"")
        elif draw < 0.65:
            fault, reply = "transient code 2", graph_error(500, 2, "An unexpected error has occurred.", transient=True)
        elif draw < 0.72:
            fault, reply = "rate limit code 17", graph_error(400, 17, "User request limit reached")
        else:
            fault, reply = "200 at once", None
        self.faults[fault] += 1
        if reply is not None:
            return reply
        answer = super().answer(request)
        if 200 <= answer.status < 300:
            with self.lock:
                self.taken += request.json()["data"]
        if fault.startswith("200 after"):
            answer.delay = self.slow
        return answer


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def orders(rng: random.Random, count: int, now: float) -> list[dict[str, Any]]:
    base = json.loads(PAID_RAW)["order"]
    made = []
    for i in range(count):
        order = dict(base)
        kind = "paid" if i % 8 not in (3, 6) else ("unpaid" if i % 8 == 3 else "cancelled")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 3600 + i))
        order.update(id=800_000 + i, number=f"CH{i:04d}", createdAt=stamp, updatedAt=stamp,
                     priceIncl=round(rng.uniform(5, 500), 2),
                     paymentStatus="paid" if kind != "unpaid" else "not_paid",
                     status="cancelled" if kind == "cancelled" else "processing_awaiting_shipment")
        made.append(order)
    return made


def run(count: int, seed: int, slow: float, timeout: int | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    clock = Clock(time.time())
    started = time.perf_counter()
    with ChaosMeta(random.Random(seed + 1), slow) as meta, FakeLightspeed(KEY, SECRET) as lightspeed, \
            tempfile.TemporaryDirectory() as tmp:
        env = {"CHAOS_LIGHTSPEED_API_KEY": KEY, "CHAOS_LIGHTSPEED_API_SECRET": SECRET,
               "CHAOS_LIGHTSPEED_SHOP_ID": SHOP_ID, "CHAOS_META_ACCESS_TOKEN": TOKEN, "CHAOS_META_PIXEL_ID": PIXEL,
               "META_GRAPH_URL": meta.url, "LIGHTSPEED_API_URL": lightspeed.url}
        if timeout is not None:
            env["META_TIMEOUT"] = str(timeout)
        server = ServerThread(LocalRelay(env, Path(tmp) / "relay.db", Path(tmp) / "logs", clock=clock,
                                         rand=random.Random(seed + 2).random, sweep_interval=None)).start()
        try:
            made = orders(rng, count, clock.now)

            def post(order: dict[str, Any]) -> int:
                body = json.dumps({"order": order}, separators=(",", ":")).encode()
                headers = {"X-Signature": sign(body, SECRET), "X-Shop-Id": SHOP_ID, "Content-Type": "application/json"}
                return httpx.post(f"{server.url}/?shop=chaos", content=body, headers=headers, timeout=60).status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses = Counter(pool.map(post, made))
            server.drain()
            sweeps = 0
            while sweeps < 40:
                rows = server.call(server.relay.runtime().ledger.rows("chaos"))
                if not any(r["state"] in ("due", "retry", "sending") for r in rows):
                    break
                clock.now += 15 * 60            # the next cron runs, without waiting for them
                server.call(server.relay.sweep())
                sweeps += 1
            rows = server.call(server.relay.runtime().ledger.rows("chaos"))
        finally:
            server.stop()
        taken = Counter(e["event_id"] for e in meta.taken)
        paid = {f"purchase_{o['number']}": o for o in made
                if o["paymentStatus"] == "paid" and o["status"] != "cancelled"}
        others = {f"purchase_{o['number']}" for o in made} - set(paid)
        wrong = [e for e in meta.taken
                 if e["event_id"] in others
                 or e["custom_data"]["value"] != paid[e["event_id"]]["priceIncl"]]
        wrong_pixel = [r for r in meta.event_posts if f"/{PIXEL}/events" not in r.path]
        return {
            "webhooks": dict(statuses), "paid orders": len(paid), "unpaid or cancelled": len(others),
            "Meta requests": len(meta.event_posts), "faults": dict(meta.faults), "sweeps": sweeps,
            "lost": sum(1 for ident in paid if taken[ident] == 0),
            "sent twice": sum(1 for n in taken.values() if n > 1),
            "sent wrongly": len(wrong) + len(wrong_pixel),
            "ledger": dict(Counter(r["state"] for r in rows)),
            "seconds": round(time.perf_counter() - started, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--slow", type=float, default=2.5, help="seconds the slow-but-successful Meta takes")
    parser.add_argument("--timeout", type=int, help="META_TIMEOUT for the relay (default: the relay's own)")
    args = parser.parse_args(argv)
    figures = run(args.orders, args.seed, args.slow, args.timeout)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    return 0 if figures["lost"] == figures["sent twice"] == figures["sent wrongly"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
