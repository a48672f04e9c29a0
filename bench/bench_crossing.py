"""What text costs crossing between JavaScript and Python in the Worker's Pyodide: as a string, and as UTF-8 bytes.

    node bench/run_in_pyodide.mjs --settle-ms 1000 bench/bench_crossing.py

Prints, best of 60 each (ms): a JS string of N characters read into Python, the same text as bytes (TextEncoder, one
copy); a Python string handed to JS against the same as bytes; and a D1-shaped answer (N ledger rows as JS objects)
turned into Python the two ways ``src/entry.py`` knows: ``json.loads(JSON.stringify(v))``, which crosses a string,
and ``entry._AsJson.load``'s construction (``TextEncoder.encode`` of a holder whose ``toString`` is ``JSON.stringify``
bound to a box), which crosses bytes. Figures only: nothing is asserted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]  # Pyodide only
from pyodide.ffi import to_js  # type: ignore[import-not-found]

ROW = {"order_id": 123456789, "event_name": "Purchase", "order_number": "ORD00042", "event_id": "ls-123456789-p",
       "event_time": 1765000000, "state": "sent", "payment_status": "paid", "attempts": 1, "next_attempt_at": None,
       "last_status": 200, "last_code": None, "last_error": None, "sent_at": 1765000100, "source": "backfill",
       "match_keys": "em,ph,fn,ln,ct,st,zp,country,external_id", "consent": "granted", "reason": "besteld é"}


def best(fn: Callable[[], Any], runs: int = 60) -> float:
    fastest = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest * 1000


def main() -> None:
    stringify, fields = js.JSON.stringify, js.Object.fromEntries
    encode = js.TextEncoder.new().encode
    box, holder = js.Array.new(), js.Object.new()
    holder.toString = js.Function.prototype.bind.call(stringify, js.JSON, box)

    def as_bytes(value: Any) -> Any:
        box[0] = value
        return json.loads(encode(holder).to_bytes().decode("utf-8"))[0]

    print("| characters | JS string → Python str | JS string → Python bytes | Python str → JS | Python bytes → JS |")
    print("|---|---|---|---|---|")
    for n in (1_000, 10_000, 40_000):
        text, data = "x" * n, b"x" * n
        kept = js.Array.new()
        kept[0] = text                 # a JS string of n characters, held in JS; a one-item array reads as it
        print(f"| {n:,} | {best(lambda k=kept: k[0]):.3f} | {best(lambda k=kept: encode(k).to_bytes()):.3f}"
              f" | {best(lambda t=text: to_js({'b': t}, dict_converter=fields)):.3f}"
              f" | {best(lambda d=data: to_js({'b': d}, dict_converter=fields)):.3f} |")
    print()
    print("| D1 answer | JSON bytes | as a string: loads(stringify) | as bytes: entry._AsJson |")
    print("|---|---|---|---|")
    for rows in (0, 1, 5, 50):
        answer = js.JSON.parse(json.dumps([{"results": [dict(ROW, order_id=i) for i in range(rows)],
                                            "success": True, "meta": {"changes": 0, "duration": 0.2}}]))
        assert json.loads(stringify(answer)) == as_bytes(answer)
        size = len(encode(holder).to_bytes())
        print(f"| {rows} rows | {size:,} | {best(lambda a=answer: json.loads(stringify(a))):.3f}"
              f" | {best(lambda a=answer: as_bytes(a)):.3f} |")


main()
