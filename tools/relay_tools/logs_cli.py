"""``relay logs``: read one shop's delivery log for one day, from the local runner's folder or a bucket copy.

The Worker writes ``logs/<shop>/YYYY/MM/DD/HHMMSS-<id>.ndjson`` objects to R2; ``relay serve`` and
``relay backfill`` write the same keys under ``--logs`` (default .relay/logs). A bucket downloaded with
rclone or ``aws s3 sync`` has the same layout, so one reader serves both (docs/OPERATIONS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from relay.core.config import prefix_of
from relay.core.errors import ConfigError
from relay_tools import serve_log
from relay_tools.options import DEFAULT_LOGS

# Every kind of line the relay writes (a test keeps this list in step with the code that writes them).
KINDS = ("decision", "attempt", "hold", "health", "warning", "config", "listing", "bridge")
COLUMNS = ("time", "kind", "order", "id", "event_id", "transition", "meta", "recv", "fbtrace_id", "keys", "ms",
           "detail")
DETAIL_WIDTH = 90


def parse_day(text: str, today: date) -> date:
    if text in ("today", "yesterday"):
        return today if text == "today" else today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--date {text!r} is not a day; use YYYY-MM-DD, today or yesterday (UTC)") from None


def day_folder(root: Path, shop: str, day: date) -> Path:
    """The day's folder whether ``root`` is the log root, the ``logs`` folder itself, or a bucket copy."""
    tail = Path(shop) / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}"
    for base in (root / "logs", root):
        if (base / shop).is_dir():
            return base / tail
    return root / "logs" / tail


def read_lines(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each line as it was stored and as a dict, in time order: files by name (they start with HHMMSS-mmm), then
    every line by its ``t``, stably. On the free plan a cron pass writes the lines webhooks and thank-you posts
    staged in D1 (relay.outbox.log_spool) in one object under the first one's time, so a later one can sit in an
    object that sorts before another's."""
    lines = list(_stored_lines(folder))
    lines.sort(key=lambda pair: pair[1].get("t", 0) if isinstance(pair[1].get("t"), int) else 0)
    yield from lines


def _stored_lines(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for file in sorted(folder.glob("*.ndjson")):
        for number, raw in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                print(f"{file}:{number} is not a JSON line (a partial download?); skipped", file=sys.stderr)
                continue
            if isinstance(line, dict):
                yield raw, line


def row(line: dict[str, Any]) -> tuple[str, ...]:
    t = datetime.fromtimestamp(int(line.get("t", 0)), UTC).strftime("%H:%M:%S")
    state = line.get("state", "")
    transition = f"{line['from_state']} → {state}" if line.get("from_state") else str(state or line.get("verdict", ""))
    code = "/".join(str(line[k]) for k in ("code", "subcode") if line.get(k) is not None)
    meta = " ".join(x for x in (str(line.get("status", "") or ""), code) if x)
    detail = " ".join(str(line[k]) for k in ("reason", "error", "warning", "check") if line.get(k))
    if len(detail) > DETAIL_WIDTH:
        detail = detail[:DETAIL_WIDTH - 1] + "…"
    return (t, str(line.get("kind", "")), str(line.get("order_number") or ""), str(line.get("order_id", "")),
            str(line.get("event_id", "")), transition,
            meta, str(line.get("events_received", "")), str(line.get("fbtrace_id", "")),
            _short_keys(str(line.get("match_keys", ""))), str(line.get("ms", "")), detail)


def _short_keys(keys: str) -> str:
    """``client_ip_address`` and ``client_user_agent`` as ``ip`` and ``ua``, so the table fits a terminal."""
    return keys.replace("client_ip_address", "ip").replace("client_user_agent", "ua")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def for_order(lines: list[tuple[str, dict[str, Any]]], order: str) -> list[tuple[str, dict[str, Any]]]:
    """The lines about one order, given by its number (``ORD10001``, any case) or its Lightspeed id.

    A line written before lines carried numbers still counts when its id is that of a numbered line.
    """
    wanted = order.strip().casefold()
    ids = {str(line.get("order_id")) for _, line in lines if str(line.get("order_number") or "").casefold() == wanted}
    ids.add(wanted)
    return [(raw, line) for raw, line in lines if str(line.get("order_id")) in ids
            or str(line.get("order_number") or "").casefold() == wanted]


def orders_in(lines: list[tuple[str, dict[str, Any]]]) -> list[str]:
    seen: dict[str, str] = {}
    for _, line in lines:
        if line.get("order_id") is not None:
            key = str(line["order_id"])
            seen[key] = serve_log.order_label(line) if line.get("order_number") else seen.get(key, key)
    return list(seen.values())


def show(root: Path, shop: str, day: date, fmt: str = "table", order: str | None = None,
         kind: str | None = None, out: TextIO | None = None) -> int:
    """Print the day's lines; 0 when there were some, 1 when there were none (and say what it read)."""
    shop = shop.lower()
    prefix_of(shop)
    folder = day_folder(root, shop, day)
    out = out or sys.stdout
    day_lines = list(read_lines(folder))
    selected = [(raw, line) for raw, line in (for_order(day_lines, order) if order is not None else day_lines)
                if kind is None or line.get("kind") == kind]
    if not selected:
        print(nothing_found(root, shop, day, day_lines, order, kind), file=sys.stderr)
        return 1
    if fmt == "ndjson":
        for raw, _ in selected:
            print(raw, file=out)
    else:
        print(table([row(line) for _, line in selected]), file=out)
    return 0


def nothing_found(root: Path, shop: str, day: date, day_lines: list[tuple[str, dict[str, Any]]],
                  order: str | None, kind: str | None) -> str:
    """Why nothing printed, naming the folder the user gave (--root), never a path made up from it."""
    when = f"on {day.isoformat()} (UTC)"
    if not day_lines:
        return (f"no delivery log lines for shop '{shop}' {when} under {root}: relay serve and relay backfill write "
                f"there (their --logs) once they handle an order of that shop; for the Worker's log, download the "
                f"bucket and pass its folder as --root (docs/OPERATIONS.md); another day: --date YYYY-MM-DD")
    which = " and ".join(x for x in (f"order {order}" if order else "", f"kind {kind}" if kind else "") if x)
    known = orders_in(day_lines)
    listed = f"; orders in it: {', '.join(known[:8])}{', …' if len(known) > 8 else ''}" if known else ""
    return (f"the delivery log of shop '{shop}' {when} under {root} has {len(day_lines)} line(s), none for {which}"
            f"{listed}; another day: --date YYYY-MM-DD")


def _logs(args: argparse.Namespace) -> int:
    if args.kind is not None and args.kind not in KINDS:
        raise ConfigError(f"--kind {args.kind!r} is not a kind of log line; use one of {', '.join(KINDS)}")
    day = parse_day(args.date, datetime.now(UTC).date())
    return show(Path(args.root), args.shop, day, args.format, args.order, args.kind)


def register_commands(sub: argparse._SubParsersAction) -> None:
    logs = sub.add_parser("logs", help="one shop's delivery log for one day (local folder or bucket copy)")
    logs.add_argument("--shop", required=True, help="the shop name, as in ?shop=")
    logs.add_argument("--date", default="today", help="YYYY-MM-DD, today or yesterday (UTC; default today)")
    logs.add_argument("--root", default=DEFAULT_LOGS,
                      help=f"relay serve/backfill's --logs folder, or a downloaded bucket (default {DEFAULT_LOGS})")
    logs.add_argument("--format", choices=("table", "ndjson"), default="table",
                      help="a table, or the stored NDJSON lines unchanged (for jq)")
    logs.add_argument("--order", help="only this order: its number (ORD10001) or its Lightspeed id")
    logs.add_argument("--kind", help=f"only this kind of line: {', '.join(KINDS)}")
    logs.set_defaults(func=_logs)
