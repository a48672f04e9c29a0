"""Normalize + SHA-256 the customer data of the fixture orders: relay.core.normalize against Meta's SDK.

    uv run --group bench python bench/bench_normalize.py [--rounds N]

Both sides get the same (field, value) pairs taken from every order in
tests/fixtures/lightspeed/, the way relay.core.match takes them (billing address, phone and mobile,
middle name + last name), and return a SHA-256 hex digest per value. Ours is
`relay.core.normalize.hash_field(field, value, country)`; the SDK's is
`facebook_business...Normalize.normalize_field(field, value)`, the call its `UserData` makes for
each value. The SDK raises on some inputs; those calls count, and the count is printed. Each
side is timed `--repeat` times, interleaved, and the best run is reported (as timeit does), so
other load on the machine shows less. Figures only: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from relay.core.normalize import hash_field

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lightspeed"


def fixture_orders() -> list[dict]:
    """Every distinct order in the fixtures (the raw webhook repeats the pretty one)."""
    orders: dict[object, dict] = {}
    for path in sorted(FIXTURES.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(body, dict) and isinstance(body.get("order"), dict):
            found = [body["order"]]
        elif isinstance(body, dict) and isinstance(body.get("orders"), list):
            found = body["orders"]
        else:
            continue
        for order in found:
            orders.setdefault(order.get("id"), order)
    return list(orders.values())


def user_fields(order: dict) -> list[tuple[str, str, str | None]]:
    """(field, raw value, order country) for every non-empty customer value of one order."""
    country = (order.get("addressBillingCountry") or {}).get("code")
    surname = " ".join(p for p in (order.get("middlename"), order.get("lastname")) if p)
    raw = [
        ("em", order.get("email")),
        ("ph", order.get("phone")),
        ("ph", order.get("mobile")),
        ("fn", order.get("firstname")),
        ("ln", surname),
        ("ct", order.get("addressBillingCity")),
        ("st", order.get("addressBillingRegion")),
        ("zp", order.get("addressBillingZipcode")),
        ("country", country),
        ("ge", order.get("gender")),
        ("db", order.get("birthDate")),
    ]
    return [(field, value, country) for field, value in raw if isinstance(value, str) and value.strip()]


def ours(field: str, value: str, country: str | None) -> str | None:
    return hash_field(field, value, country)


def sdk_function() -> Callable[[str, str, str | None], str | None]:
    from facebook_business.adobjects.serverside.normalize import Normalize

    def sdk(field: str, value: str, country: str | None) -> str | None:
        return Normalize.normalize_field(field, value)

    return sdk


def run(function: Callable[[str, str, str | None], str | None], inputs: list, rounds: int) -> tuple[float, int]:
    """Seconds for `rounds` passes over `inputs`, and the calls per pass that raised."""
    errors = 0
    for field, value, country in inputs:  # warm-up: lazy tables, caches
        try:
            function(field, value, country)
        except (TypeError, ValueError):
            errors += 1
    start = time.perf_counter()
    for _ in range(rounds):
        for field, value, country in inputs:
            try:
                function(field, value, country)
            except (TypeError, ValueError):
                pass
    return time.perf_counter() - start, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000, help="passes over all fixture values (default 5000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side; the best counts (default 5)")
    args = parser.parse_args()

    orders = fixture_orders()
    inputs = [item for order in orders for item in user_fields(order)]
    calls = len(inputs) * args.rounds
    print(f"{len(orders)} fixture orders, {len(inputs)} field values, {args.rounds} rounds = {calls} calls per run")

    try:
        sdk = sdk_function()
    except ImportError:
        print("facebook-business is not installed: uv run --group bench python bench/bench_normalize.py")
        return
    ours_times, sdk_times = [], []
    for _ in range(args.repeat):
        ours_times.append(run(ours, inputs, args.rounds))
        sdk_times.append(run(sdk, inputs, args.rounds))
    ours_seconds, ours_errors = min(ours_times)
    sdk_seconds, sdk_errors = min(sdk_times)
    print(f"relay.core.normalize.hash_field  {calls / ours_seconds:>12,.0f} ops/s   raised: {ours_errors}")
    print(f"facebook-business SDK       {calls / sdk_seconds:>12,.0f} ops/s   raised: {sdk_errors}")
    print(f"ratio ours / SDK            {sdk_seconds / ours_seconds:>12.2f}x")

    same = 0
    for field, value, country in inputs:
        try:
            same += ours(field, value, country) == sdk(field, value, country)
        except (TypeError, ValueError):
            pass
    print(f"identical digests           {same:>12} of {len(inputs)} (the rest are the meta-capi.md §8 cases)")


if __name__ == "__main__":
    main()
