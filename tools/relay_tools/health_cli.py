"""``relay health``: the daily token and key check (relay.jobs.health), now, from this machine.

What the Worker's cron does once a day per shop, run at once for every shop (or one): useful right
after pasting a new token, and the only way ``relay serve``'s dashboard gets health figures locally.
Results go to the same database and log folder as ``relay serve``.
"""

from __future__ import annotations

import argparse
import asyncio

from relay.jobs import health
from relay_tools import envfile
from relay_tools.options import DEFAULT_DB, DEFAULT_LOGS, ENV_FILE_HELP
from relay_tools.server import LocalRelay


def _describe(report: health.HealthReport) -> str:
    token = report.token
    if token.expires_at == 0:
        expiry = "never expires"
    elif token.expires_at:
        expiry = "expires " + health.iso_day(token.expires_at)
    else:
        expiry = token.error or "no answer"
    scopes = f"; {', '.join(token.scopes)}" if token.scopes else ""
    ls = report.lightspeed
    key = f"ok ({ls.currency})" if ls.state == "ok" else f"{ls.state}: {ls.error}"
    held = "; HELD: nothing is sent to Meta, events stay queued (see below)" if report.held else ""
    return f"{report.shop}: Meta token {token.state} ({expiry}{scopes}); Lightspeed key {key}{held}"


def _health(args: argparse.Namespace) -> int:
    relay = LocalRelay(envfile.load(args), args.db, args.logs, sweep_interval=None)

    async def main() -> int:
        rt = relay.runtime()
        try:
            reports = await health.run_daily(rt, only=args.shop, force=True, limit=10_000)
        finally:
            await rt.log.flush(relay.blobs, relay.clock())
            await relay.http.aclose()
        if not reports:
            print("no complete shop configured" + (f" named '{args.shop}'" if args.shop else "")
                  + ": set the five <SHOP>_* variables (see .env.example)")
            return 1
        for report in reports.values():
            print(_describe(report))
            for sentence in report.warnings:
                print(f"  ! {sentence}")
        return 0 if all(not r.warnings for r in reports.values()) else 1

    try:
        return asyncio.run(main())
    finally:
        relay.close()


def register_commands(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("health", help="check each shop's Meta token and Lightspeed key now (the daily cron check)")
    check.add_argument("--shop", help="only this shop")
    check.add_argument("--env-file", help=ENV_FILE_HELP)
    check.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file standing in for D1 (default {DEFAULT_DB})")
    check.add_argument("--logs", default=DEFAULT_LOGS, help="folder standing in for the R2 log bucket")
    check.set_defaults(func=_health)
