"""``relay backfill``: the cron trigger's work, run from a terminal.

It runs cron passes (each with the Worker's subrequest budget, so it behaves as the deployed trigger;
without the plan's CPU model, which is the Worker's, not CPython's) until nothing is left to do now, with a
progress line on stderr and a summary on stdout.
(``relay replay`` lives in ``relay_tools.orders_cli``, next to ``relay orders``.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from relay.jobs import cron, pass_state, runtime
from relay_tools import envfile
from relay_tools.server import LocalRelay

BAR = 24
IDLE_PASSES = 3           # relay backfill gives up waiting after this many passes that got nothing done


def iso_time(value: str) -> int:
    """``--since``: an ISO date or time; without a time zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date or time, e.g. 2025-11-18 or "
                                         "2025-11-18T21:00:00+01:00") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


@dataclass
class Totals:
    """``relay backfill``'s sums over its passes."""

    passes: int = 0
    shops: dict[str, pass_state.ShopPass] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    waited: float = 0.0

    def add(self, report: pass_state.PassReport) -> None:
        self.passes += 1
        self.calls.update(report.calls)
        for name, r in report.shops.items():
            total = self.shops.setdefault(name, pass_state.ShopPass())
            for attr in ("listed", "pages", "unreadable", "sent", "retry", "failed", "expired", "requests"):
                setattr(total, attr, getattr(total, attr) + getattr(r, attr))
            total.recorded.update(r.recorded)
            total.calls.update(r.calls)
            total.seen |= r.seen
            total.held = total.held or r.held
            if r.error:
                total.error = r.error
            elif r.listing == "complete":
                total.error = None
            if r.listing != "idle":
                total.listing = r.listing


async def run_until_done(runtime: Callable[[], runtime.Runtime], *, only: str | None = None,
                         since: int | None = None, sleep: pass_state.Sleep = asyncio.sleep, max_wait: float = 15 * 60,
                         on_pass: Callable[[pass_state.PassReport, Totals], None] | None = None) -> Totals:
    """Passes, each with a fresh budget as the cron trigger would give it, until nothing is left to do now.

    Waits out Lightspeed's and Meta's rate limits when they ask for at most ``max_wait`` seconds;
    Meta retries that back off to later are left to the cron trigger, and so is a listing that keeps
    failing (``IDLE_PASSES`` waits in a row without a page stored or a request sent). ``runtime`` is CPython's
    (``cpu_limited`` False): each pass has the plan's calls but full pages and no CPU model (docs/PLANS.md).
    """
    totals = Totals()
    first = True
    idle = 0
    while True:
        rt = runtime()
        # the first pass lists now even if the cron listed a minute ago: whoever runs this wants today's orders
        report = await cron.run_pass(rt, only=only, since=since if first else None, sleep=sleep, spaced=not first)
        first = False
        totals.add(report)
        if on_pass is not None:
            on_pass(report, totals)
        if report.more:
            if not report.turns:            # the budget cannot fit even one page or batch
                return totals
            continue
        worked = any(r.pages or r.requests for r in report.shops.values())
        idle = 0 if worked else idle + 1
        if report.wait is not None and report.wait <= max_wait and idle < IDLE_PASSES:
            await sleep(max(report.wait, 0.0) + 1)
            totals.waited += report.wait + 1
            continue
        return totals


class ProgressLine:
    """One line on stderr, redrawn in place on a terminal and appended otherwise (logs, CI)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live = out.isatty()
        self.drawn = False

    def update(self, report: pass_state.PassReport, totals: Totals) -> None:
        shops = totals.shops.values()
        done = sum(s.sent + s.failed + s.expired for s in shops)
        left = sum(r.due_left for r in report.shops.values())
        listing = any(r.listing in ("in progress", "paused", "not started") for r in report.shops.values())
        share = done / (done + left) if done + left else (0.0 if listing else 1.0)
        filled = round(share * BAR)
        line = (f"[{'#' * filled}{'.' * (BAR - filled)}] {share:4.0%}  pass {totals.passes}: "
                f"{sum(len(s.seen) for s in shops)} orders listed{' (listing)' if listing else ''}, "
                f"{sum(s.sent for s in shops)} sent, {left} due; {sum(totals.calls.values())} API calls")
        if report.wait and not report.more:
            line += f"; waiting {report.wait:.0f} s for a rate limit"
        if self.live:
            self.out.write("\r" + line.ljust(100))
        else:
            self.out.write(line + "\n")
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        if self.live and self.drawn:
            self.out.write("\n")
            self.out.flush()


def summary(totals: Totals) -> list[str]:
    lines = []
    for name, s in sorted(totals.shops.items()):
        recorded = s.recorded
        lines.append(
            f"{name}: {len(s.seen)} orders seen ({s.pages} page(s)); sent {s.sent}, "
            f"waiting {recorded['waiting']} (not paid yet), expired {recorded['expired'] + s.expired}, "
            f"failed {s.failed}, skipped {recorded['skipped']} (cancelled), retry {s.retry} (left for the cron "
            f"trigger), already known {recorded['unchanged']}")
        calls = ", ".join(f"{kind} {n}" for kind, n in sorted(s.calls.items()))
        lines.append(f"  listing {s.listing}; API calls: {calls or 'none'}")
        if s.error:
            lines.append(f"  listing stopped: {s.error}")
        if s.unreadable:
            lines.append(f"  {s.unreadable} listed order(s) could not be read: see the delivery log (relay logs)")
        if s.held:
            lines.append(f"  HELD: Meta refused {name.upper()}_META_ACCESS_TOKEN; nothing is dropped, and sending "
                         "resumes once the token is replaced")
    calls = Counter(totals.calls)
    lines.append(f"{totals.passes} pass(es); API calls used: {sum(calls.values())} "
                 f"({', '.join(f'{kind} {n}' for kind, n in sorted(calls.items()))})"
                 + (f"; waited {totals.waited:.0f} s for rate limits" if totals.waited else ""))
    return lines


def run_backfill(args: argparse.Namespace) -> int:
    relay = LocalRelay(envfile.load(args), args.db, args.logs, sweep_interval=None)
    progress = ProgressLine(sys.stderr)

    async def main() -> Totals:
        try:
            return await run_until_done(relay.runtime, only=args.shop, since=args.since, on_pass=progress.update)
        finally:
            await relay.http.aclose()

    try:
        totals = asyncio.run(main())
    finally:
        progress.close()
        relay.close()
    if not totals.shops:
        print("no complete shop configured: set the five <SHOP>_* variables (see .env.example)")
        return 1
    print("\n".join(summary(totals)))
    return 0


def add_backfill_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=iso_time, metavar="ISO",
                        help="list orders updated since this date or time (UTC unless it has an offset) "
                             "instead of since the stored cursor")
