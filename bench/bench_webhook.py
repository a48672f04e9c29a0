"""CPU time and memory of one webhook through the core, in CPython and in Pyodide, against Meta's SDK.

    uv run --group bench python bench/bench_webhook.py [--runs 2000]

Input: the shared paid fixture (tests/fixtures/lightspeed/webhook-order-paid.raw.json, its X-Signature
and secret). Rows:

- relay core: ``signature.verify`` + ``order.parse_webhook`` + ``capi.build_event`` (normalization and
  SHA-256 of every match key), the shop loaded once, as the issue defines the hot path;
- relay webhook: all the CPU ``intake.receive_webhook`` spends before its D1 write: ``load_shop`` on
  the env, the same three steps, and the ledger row (``intake.row_for``: the event again, JSON);
- facebook-business: the same event from the same bytes with Meta's SDK (json.loads, ``UserData``,
  ``CustomData``, ``Content``, ``Event``, ``Event.normalize()`` which normalizes and hashes), after the
  same signature check. CPython only: the SDK needs ``requests``, which does not run in the Worker.

Each row is timed per webhook in CPU time (``time.process_time_ns``; inside Pyodide Node's
``process.cpuUsage()``, see ``cpu_clock``) over ``--runs`` webhooks after one first call, shown
apart ("first": that row's first call in its process, in wall time, because right after Pyodide loads
V8 compiles its WebAssembly on helper threads, whose CPU Node's counter would add to the call). The
first webhook of a fresh interpreter pays for lazy tables and, in Pyodide, for V8 compiling the
WebAssembly functions it touches, as the first request of a fresh isolate would: it is measured again
in ``FRESH`` new Pyodide processes, each left idle for 2 s after loading, with and without V8's lazy
WebAssembly compilation, to show how much of it is the engine's. Peak
memory is ``tracemalloc``'s peak over one warm webhook. The Pyodide rows come from this same file
run by ``bench/run_in_pyodide.mjs`` (Node, Pyodide 0.28.2 from node_modules); workerd runs the same
WebAssembly on the same V8 engine, so they are the closest offline stand-in for the Worker's CPU time.
Figures only: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.core import capi
from relay.core.config import load_shop
from relay.core.order import parse_webhook
from relay.core.signature import verify
from relay.core.warm import warm_up
from relay.jobs import intake

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "lightspeed"
RAW = (FIXTURES / "webhook-order-paid.raw.json").read_bytes()
DELIVERY = json.loads((FIXTURES / "webhook-order-paid.headers.json").read_text())
SIGNATURE = DELIVERY["headers"]["X-Signature"]
SECRET = DELIVERY["secret_used_for_signature"]
ENV = {
    "VIK_LIGHTSPEED_API_KEY": "bench-api-key",
    "VIK_LIGHTSPEED_API_SECRET": SECRET,
    "VIK_LIGHTSPEED_SHOP_ID": DELIVERY["headers"]["X-Shop-Id"],
    "VIK_META_ACCESS_TOKEN": "EAAbench-token-not-real",
    "VIK_META_PIXEL_ID": "987654321012345",
    "VIK_SHOP_URL": "https://www.vikginchoice.example",
}
NOW = 1763498829 + 300          # the fixture's createdAt plus five minutes: inside Meta's window
FRESH = 3                       # fresh Pyodide processes for the first-webhook figure
FREE_PLAN_CPU_MS = 10.0         # Workers Free plan, CPU per invocation (https://developers.cloudflare.com/workers/platform/limits/)


def relay_core() -> Callable[[], Any]:
    shop = load_shop(ENV, "vik")

    def webhook() -> Any:
        verify(RAW, SIGNATURE, shop.lightspeed_secret)
        return capi.build_event(parse_webhook(RAW), shop)

    return webhook


def relay_webhook() -> Callable[[], Any]:
    def webhook() -> Any:
        shop = load_shop(ENV, "vik")
        verify(RAW, SIGNATURE, shop.lightspeed_secret)
        return intake.row_for(parse_webhook(RAW), shop, NOW, "webhook")

    return webhook


def facebook_sdk() -> Callable[[], Any]:
    """Meta's SDK given what our core reads from the order, in the SDK's own types."""
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.content import Content
    from facebook_business.adobjects.serverside.custom_data import CustomData
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.gender import Gender
    from facebook_business.adobjects.serverside.user_data import UserData

    genders = {"female": Gender.FEMALE, "male": Gender.MALE}

    def webhook() -> Any:
        expected = hashlib.md5(RAW + SECRET.encode()).hexdigest()
        if not hmac.compare_digest(expected, SIGNATURE):
            raise ValueError("signature")
        order = json.loads(RAW)["order"]
        billing = order.get("addressBillingCountry") or {}
        customer = (order.get("customer") or {}).get("resource") or {}
        user = UserData(
            emails=[order["email"]],
            phones=[p for p in (order.get("phone"), order.get("mobile")) if p],
            first_names=[order["firstname"]],
            last_names=[" ".join(p for p in (order.get("middlename"), order.get("lastname")) if p)],
            genders=[genders[order["gender"]]] if order.get("gender") in genders else None,
            dates_of_birth=[order["birthDate"]] if order.get("birthDate") else None,
            cities=[order["addressBillingCity"]],
            zip_codes=[order["addressBillingZipcode"]],
            country_codes=[billing["code"]] if billing.get("code") else None,
            external_ids=[str(customer["id"])] if customer.get("id") else None,
            client_ip_address=order.get("remoteIp"),
            client_user_agent=order.get("userAgent"),
        )
        lines = (order.get("products") or {}).get("resource", {}).get("embedded") or []
        contents = [
            Content(product_id=str(line["variant"]["resource"]["id"]), quantity=line["quantityOrdered"],
                    item_price=round(line["priceIncl"] / line["quantityOrdered"], 2))
            for line in lines
        ]
        custom = CustomData(value=order["priceIncl"], order_id=order["number"], contents=contents,
                            content_type="product")
        created = int(time.mktime(time.strptime(order["createdAt"][:19], "%Y-%m-%dT%H:%M:%S")))
        event = Event(event_name="Purchase", event_time=created, event_id=f"purchase_{order['number']}",
                      action_source=ActionSource.WEBSITE, event_source_url=ENV["VIK_SHOP_URL"] + "/checkout/thankyou/",
                      user_data=user, custom_data=custom)
        return event.normalize()

    return webhook


def cpu_clock() -> Callable[[], int]:
    """Nanoseconds of CPU time. Pyodide's ``process_time`` is wall time (``performance.now``), which counts
    every moment another process holds the core; Node's ``process.cpuUsage()`` does not (it does count
    Node's own helper threads, so it errs high)."""
    if sys.platform != "emscripten":
        return time.process_time_ns
    from js import process  # only inside Pyodide

    def node_cpu_ns() -> int:
        usage = process.cpuUsage()
        return int(usage.user + usage.system) * 1000

    return node_cpu_ns


def measure(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    clock = cpu_clock()
    started = time.perf_counter_ns()   # the first call in wall time: see the module docstring
    fn()
    first = time.perf_counter_ns() - started
    samples = []
    for _ in range(runs):
        started = clock()
        fn()
        samples.append(clock() - started)
    samples.sort()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {
        "runs": runs,
        "first_ms": first / 1e6,
        "median_ms": statistics.median(samples) / 1e6,
        "p95_ms": samples[min(len(samples) - 1, int(len(samples) * 0.95))] / 1e6,
        "peak_kib": peak / 1024,
    }


def interleaved(relay: Callable[[], Any], sdk: Callable[[], Any], runs: int) -> dict[str, float]:
    """Relay and SDK alternated call by call (the order flipping each pair), CPU time each: the median of
    the per-pair ratios SDK / relay, so load on the machine hits both sides of a pair alike."""
    clock = cpu_clock()
    relay()
    sdk()
    ratios, ours, theirs = [], [], []
    for i in range(runs):
        pair = []
        for fn in ((relay, sdk) if i % 2 == 0 else (sdk, relay)):
            started = clock()
            fn()
            pair.append((fn, clock() - started))
        r = next(t for fn, t in pair if fn is relay)
        t = next(t for fn, t in pair if fn is sdk)
        ours.append(r)
        theirs.append(t)
        if r > 0:
            ratios.append(t / r)
    return {"ratio": statistics.median(ratios), "relay_ms": statistics.median(ours) / 1e6,
            "sdk_ms": statistics.median(theirs) / 1e6, "pairs": len(ratios)}


def runtime_name() -> str:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.platform == "emscripten":
        import pyodide  # only inside Pyodide

        return f"Pyodide {pyodide.__version__} (Python {version})"
    return f"CPython {version} ({platform.machine()})"


def rows(runs: int, with_sdk: bool) -> list[dict[str, Any]]:
    found = [
        {"runtime": runtime_name(), "what": "relay core (verify+parse+build)", **measure(relay_core(), runs)},
        {"runtime": runtime_name(), "what": "relay webhook (+load_shop, ledger row)", **measure(relay_webhook(), runs)},
    ]
    if with_sdk:
        try:
            sdk = facebook_sdk()
        except ImportError:
            found.append({"runtime": runtime_name(), "what": "facebook-business SDK",
                          "missing": "not installed: uv run --group bench python bench/bench_webhook.py"})
        else:
            found.append({"runtime": runtime_name(), "what": "facebook-business SDK (same event)",
                          **measure(sdk, runs)})
    return found


def pyodide_rows(runs: int, eager_wasm: bool = False, settle_ms: int = 0,
                 warm: bool = False) -> list[dict[str, Any]] | str:
    """This file's rows from inside Pyodide; ``eager_wasm`` has V8 compile all WebAssembly at load,
    ``settle_ms`` waits that long after loading, before the first call."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH (Node 20+ and `npm ci` are needed for the Pyodide rows)"
    flags = ["--no-wasm-lazy-compilation"] if eager_wasm else []
    settle = ["--settle-ms", str(settle_ms)] if settle_ms else []
    proc = subprocess.run([node, *flags, str(ROOT / "bench" / "run_in_pyodide.mjs"), *settle,
                           str(Path(__file__).resolve()), "--inner", "--runs", str(runs),
                           *(["--warm"] if warm else [])],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return f"the Pyodide run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="timed webhooks per row (default 2000)")
    parser.add_argument("--inner", action="store_true", help="print this runtime's rows as JSON (used for Pyodide)")
    parser.add_argument("--warm", action="store_true",
                        help="with --inner: run relay.core.warm.warm_up() first, as src/entry.py does at import")
    args = parser.parse_args()
    if args.inner and args.warm:
        warm_up()
    if args.inner:
        print(json.dumps(rows(args.runs, with_sdk=False)))
        return

    table = rows(args.runs, with_sdk=True)
    remote = pyodide_rows(args.runs)
    # The first webhook of a fresh interpreter happens once per process: a few more processes give a spread.
    fresh_runs = [pyodide_rows(20, eager_wasm=eager, settle_ms=2000) for eager in (False,) * FRESH + (True,) * FRESH]
    warm_runs = [pyodide_rows(20, settle_ms=2000, warm=True) for _ in range(FRESH)]
    problems = [r for r in (remote, *fresh_runs, *warm_runs) if isinstance(r, str)]
    table += [] if isinstance(remote, str) else remote
    print(f"One webhook, shared paid fixture ({len(RAW):,} bytes, 3 lines), {args.runs:,} timed runs per row, "
          "CPU time per webhook")
    print(f"{'runtime':<30} {'path':<40} {'median':>9} {'p95':>9} {'first*':>9} {'peak mem':>10}")
    for row in table:
        if "missing" in row:
            print(f"{row['runtime']:<30} {row['what']:<40} {row['missing']}")
            continue
        print(f"{row['runtime']:<30} {row['what']:<40} {row['median_ms']:>6.3f} ms {row['p95_ms']:>6.3f} ms "
              f"{row['first_ms']:>6.2f} ms {row['peak_kib']:>6.0f} KiB")
    print("* first: that row's first call in its process, wall time")
    by = {(r["runtime"].split()[0], r["what"].split(" (")[0]): r for r in table if "missing" not in r}
    sdk, core = by.get(("CPython", "facebook-business SDK")), by.get(("CPython", "relay core"))
    if sdk and core:
        print(f"facebook-business / relay core, CPython median: {sdk['median_ms'] / core['median_ms']:.2f}x "
              f"(p95 {sdk['p95_ms'] / core['p95_ms']:.2f}x)")
    try:
        sdk_fn = facebook_sdk()
    except ImportError:
        sdk_fn = None
    if sdk_fn is not None:
        pair = interleaved(relay_core(), sdk_fn, args.runs)
        print(f"Interleaved, CPython, {pair['pairs']:,} pairs: SDK / relay core CPU, median of per-pair ratios "
              f"{pair['ratio']:.2f}x (medians: relay {pair['relay_ms']:.3f} ms, SDK {pair['sdk_ms']:.3f} ms)")
    worker = by.get(("Pyodide", "relay webhook"))
    if worker and not problems:
        lazy = sorted(r[0]["first_ms"] for r in fresh_runs[:FRESH] if not isinstance(r, str))
        eager = sorted(r[0]["first_ms"] for r in fresh_runs[FRESH:] if not isinstance(r, str))
        print(f"Workers Free plan, {FREE_PLAN_CPU_MS:.0f} ms CPU per invocation: a webhook's core work in Pyodide "
              f"takes {worker['median_ms'] / FREE_PLAN_CPU_MS:.1%} of it at the median, "
              f"{worker['p95_ms'] / FREE_PLAN_CPU_MS:.1%} at p95")
        print(f"First webhook after import, {FRESH} fresh Pyodide processes each (wall): "
              f"{statistics.median(lazy):.1f} ms median ({lazy[0]:.1f}-{lazy[-1]:.1f}); "
              f"with V8 compiling all WebAssembly at load (node --no-wasm-lazy-compilation) "
              f"{statistics.median(eager):.1f} ms ({eager[0]:.1f}-{eager[-1]:.1f})")
        warmed = sorted(r[0]["first_ms"] for r in warm_runs if not isinstance(r, str))
        cold = sorted(r[0]["first_ms"] for r in fresh_runs[:FRESH] if not isinstance(r, str))
        core = by[("Pyodide", "relay core")]["median_ms"]
        print(f"First webhook (verify+parse+build) in a fresh Pyodide process, wall, median of {FRESH}: "
              f"{statistics.median(cold):.1f} ms without the import-time warm-up, "
              f"{statistics.median(warmed):.1f} ms with relay.core.warm.warm_up() run at import "
              f"= {statistics.median(warmed) / core:.1f}x a warm call ({core:.2f} ms median)")
        cpython = by.get(("CPython", "relay webhook"))
        if cpython:
            print(f"Pyodide / CPython, relay webhook median: {worker['median_ms'] / cpython['median_ms']:.2f}x")
    for problem in problems:
        print(f"Pyodide rows missing: {problem}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
