"""The identity bridge's costs: the size of ``bridge.js``, and the CPU of one ``POST /bridge`` and of the
send-time merge, in CPython and in Pyodide.

    uv run python bench/bench_bridge.py [--runs 2000]

Rows:

- ``bridge.js``: bytes as served (``relay.web.bridge_script.SOURCE``), minified by esbuild from
  node_modules (``--minify``, what a merchant would get from any minifier), and each gzipped (level 9),
  which is what a browser downloads from Cloudflare with ``Accept-Encoding: gzip``.
- ``POST /bridge``: the whole route, ``relay.web.routes.handle`` with a thank-you post like the
  script sends (fbp, fbc with appendix, value, url; ~250 bytes): ``load_shop``, the size check,
  ``parse_post`` and its format checks, the client hash, CORS, where the post goes
  (``relay.core.binding.place``) and the statement parameters. The two D1 batches are answered by
  ``ConstantD1`` (the answers D1 gives for a first post whose order is not known yet), so the figure is
  the Worker's CPU for the post, without the database's own time, which is not CPU of the isolate.
- ``send-time merge``: ``relay.jobs.consent.prepare`` for one claimed row with its post (parse the
  claim's JSON column, the binding rule, the merge, the consent decision), per event.

CPU time per call as in bench/bench_webhook.py (``cpu_clock``, ``measure``): Node's
``process.cpuUsage()`` inside Pyodide, ``process_time_ns`` in CPython. Figures only: nothing asserts.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from bench_webhook import ENV, NOW, measure, runtime_name

from relay.core.ports import QueryResult
from relay.jobs import consent
from relay.jobs.runtime import Runtime
from relay.outbox.rows import Claimed
from relay.web import routes
from relay.web.bridge_script import SOURCE
from relay.web.http import Request

ROOT = Path(__file__).resolve().parent.parent
POST = json.dumps({"order_number": "ORD04217", "consent": "granted", "value": 140.4,
                   "url": "https://www.vikginchoice.example/checkout/thankyou/",
                   "fbp": "fb.1.1763498500123.1116446470",
                   "fbc": "fb.1.1763498400456.IwAR2F4-AbCdEf_123.AQICAQMC"}).encode()
HEADERS = {"content-type": "text/plain;charset=UTF-8", "content-length": str(len(POST)),
           "origin": "https://www.vikginchoice.example", "cf-connecting-ip": "2001:db8:3c4d:15::1a2f",
           "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
                         "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"}


class ConstantD1:
    """D1's answers to a first post's two batches: counted 1, no order, no post yet, an empty hour; then the
    post stored (its id) and nothing else returned."""

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        return QueryResult([])

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        return [QueryResult([{"posts": 1}] if "bridge_clients (client" in sql else
                            [{"id": 1}] if "INSERT INTO bridge (" in sql else []) for sql, _ in statements]


class NoHttp:
    async def send(self, request: Any) -> Any:
        raise OSError("the bench makes no outbound call")


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (its D1 answers at once) to its end, without an event loop:
    Pyodide's loop cannot block on Node without JavaScript promise integration."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the coroutine waited for something; the bench's D1 must answer at once")


def one_post() -> Callable[[], Any]:
    rt = Runtime(env={**ENV, "VIK_LIGHTSPEED_SHOP_ID": "318842"}, db=ConstantD1(), http=NoHttp(), clock=lambda: NOW)

    async def body() -> bytes:
        return POST

    def post() -> Any:
        request = Request("POST", "/bridge", {"shop": "vik"}, HEADERS, body, client=HEADERS["cf-connecting-ip"])
        response = run_now(routes.handle(rt, request))
        for work in response.after:   # the waitUntil step would look for a held order: not CPU of the answer
            work.close()
        rt.log.lines.clear()
        assert response.status == 204, response.body
        return response

    return post


def one_merge() -> Callable[[], Any]:
    from relay.core.config import load_shop

    shop = load_shop({**ENV, "VIK_CONSENT_MODE": "required"}, "vik")
    event = json.dumps({"event_name": "Purchase", "event_time": NOW - 300, "event_id": "purchase_ORD04217",
                        "action_source": "website", "user_data": {"em": "0" * 64, "ln": ["1" * 64, "2" * 64],
                                                                   "client_user_agent": HEADERS["user-agent"]},
                        "custom_data": {"value": 140.4, "order_id": "ORD04217"}})
    column = json.dumps([{"id": 1, "received_at": NOW - 290, "consent": "granted",
                          "fbp": "fb.1.1763498500123.1116446470",
                          "fbc": "fb.1.1763498400456.IwAR2F4-AbCdEf_123.AQICAQMC", "fbclid": None, "value": "140.4",
                          "ip": HEADERS["cf-connecting-ip"], "user_agent": HEADERS["user-agent"], "binding": None}])
    row = Claimed(384271665, "Purchase", "ORD04217", "purchase_ORD04217", NOW - 300, event, False, 1, "em,ln",
                  bridge=column)

    def merge() -> Any:
        prepared = consent.prepare(shop, row, json.loads(row.payload))
        assert prepared.consent.send and prepared.verdict == "attached"
        return prepared

    return merge


def rows(runs: int) -> list[dict[str, Any]]:
    return [
        {"runtime": runtime_name(), "what": "POST /bridge (route, D1 answered)", **measure(one_post(), runs)},
        {"runtime": runtime_name(), "what": "send-time merge (consent.prepare)", **measure(one_merge(), runs)},
    ]


def sizes() -> list[tuple[str, int, int]]:
    source = SOURCE.encode()
    found = [("as served", len(source), len(gzip.compress(source, 9)))]
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    if esbuild.exists():
        minified = subprocess.run([str(esbuild), "--minify", "--loader=js"], input=source, capture_output=True,
                                  check=True).stdout
        found.append(("minified (esbuild)", len(minified), len(gzip.compress(minified, 9))))
    return found


def pyodide_rows(runs: int) -> list[dict[str, Any]] | str:
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH (Node 20+ and `npm ci` are needed for the Pyodide rows)"
    proc = subprocess.run([node, str(ROOT / "bench" / "run_in_pyodide.mjs"), str(Path(__file__).resolve()),
                           "--inner", "--runs", str(runs)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return f"the Pyodide run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="timed calls per row (default 2000)")
    parser.add_argument("--inner", action="store_true", help="print this runtime's rows as JSON (used for Pyodide)")
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(rows(args.runs)))
        return
    print("bridge.js")
    print(f"{'form':<22} {'bytes':>7} {'gzip -9':>8}")
    for form, raw, packed in sizes():
        print(f"{form:<22} {raw:>7,} {packed:>8,}")
    table = rows(args.runs)
    remote = pyodide_rows(args.runs)
    table += [] if isinstance(remote, str) else remote
    print(f"\nCPU per call, {args.runs:,} timed runs per row (post body {len(POST)} bytes)")
    print(f"{'runtime':<30} {'path':<36} {'median':>9} {'p95':>9} {'peak mem':>10}")
    for r in table:
        print(f"{r['runtime']:<30} {r['what']:<36} {r['median_ms']:>7.3f}ms {r['p95_ms']:>7.3f}ms "
              f"{r['peak_kib']:>7.1f}KiB")
    if isinstance(remote, str):
        print(f"Pyodide: {remote}", file=sys.stderr)


if __name__ == "__main__":
    main()
