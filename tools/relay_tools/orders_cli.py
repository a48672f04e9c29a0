"""``relay orders``, ``relay replay`` and ``relay status``: one set of commands for a local database and a Worker.

Without ``--url`` they read and change the local SQLite file (``--db``) through the same functions the
Worker's admin routes run (``relay.web.orders``, ``relay.jobs.replay``, ``relay.web.status``); with
``--url https://<worker>`` they call those routes (``relay_tools.admin_client``). Either way the
answer is the same dictionary, printed the same way, or as it is with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

from relay.core.config import load_shop
from relay.core.errors import ConfigError, RelayError
from relay.jobs import cron, replay, runtime
from relay.web import orders, status
from relay_tools import envfile
from relay_tools.admin_client import AdminClient
from relay_tools.options import DEFAULT_LOGS, add_common
from relay_tools.server import LocalRelay

POLL_SECONDS = 20.0          # how long ``relay replay --url --number`` watches the order leave the queue
CRON_POLL_SECONDS = 150.0    # ... when the Worker only re-queued it (Free plan): a cron run every 2 minutes sends it
POLL_EVERY = 0.5
SINGLE = ("unknown", "cancelled", "consent", "waiting", "sending")   # refusals of one order that are an error (exit 2)


def _local(args: argparse.Namespace, work: Callable[[runtime.Runtime], Coroutine[Any, Any, Any]]) -> Any:
    relay = LocalRelay(envfile.load(args), args.db, getattr(args, "logs", None), sweep_interval=None)

    async def main() -> Any:
        rt = relay.runtime()
        try:
            return await work(rt)
        finally:
            await rt.log.flush(rt.blobs, rt.clock())
            await relay.http.aclose()

    try:
        return asyncio.run(main())
    finally:
        relay.close()


def _remote(args: argparse.Namespace) -> AdminClient:
    return AdminClient(args.url, envfile.load(args))


# --- relay orders ------------------------------------------------------------------------------------------


ORDER_COLUMNS = ("order", "id", "state", "attempts", "when", "Meta's answer")


def meta_answer(o: dict[str, Any]) -> str:
    """``200``, ``400 code 100/2804050: Invalid parameter``, or ``-`` before any attempt; never ``None``."""
    code = "/".join(str(o[k]) for k in ("last_code", "last_subcode") if o.get(k) is not None)
    answer = " ".join(x for x in (str(o["last_status"] or ""), f"code {code}" if code else "") if x)
    if o.get("last_error") and o["state"] != "sent":
        answer = f"{answer}: {o['last_error']}" if answer else str(o["last_error"])
    return answer or "-"


def order_cells(o: dict[str, Any]) -> tuple[str, ...]:
    when = f"sent {o['sent_at']}" if o["sent_at"] else f"placed {o['event_time']}"
    state = o["state"] + (" (cancelled)" if o["cancelled"] else "")
    return (str(o["order_number"]), str(o["order_id"]), state, str(o["attempts"]), when, meta_answer(o))


def order_table(rows: list[dict[str, Any]]) -> list[str]:
    """A header row, then one row per order event; the last column (Meta's answer) is not padded."""
    cells = [ORDER_COLUMNS, *(order_cells(o) for o in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(ORDER_COLUMNS) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in cells]


def run_orders(args: argparse.Namespace) -> int:
    pages: list[dict[str, Any]] = []
    cursor = args.cursor
    while True:
        if args.url:
            client = _remote(args)
            try:
                page = client.get("/orders", shop=args.shop, state=args.state, number=args.number,
                                  limit=args.limit, cursor=cursor)
            finally:
                client.close()
        else:
            def work(rt: runtime.Runtime, cursor: str | None = cursor) -> Coroutine[Any, Any, dict[str, Any]]:
                return orders.listing(rt, orders.shop_name(rt, args.shop), state=args.state, number=args.number,
                                      limit=args.limit, cursor=cursor)
            page = _local(args, work)
        pages.append(page)
        cursor = page.get("next")
        if not (args.all and cursor):
            break
    if args.json:
        print(json.dumps(pages[0] if len(pages) == 1 else {"shop": args.shop, "pages": pages}, indent=1))
        return 0
    rows = [o for p in pages for o in p["orders"]]
    if rows:
        print("\n".join(order_table(rows)))
    else:
        print(f"no orders in the ledger of shop '{args.shop}'" + (f" in state {args.state}" if args.state else "")
              + (f" with number {args.number}" if args.number else ""))
    if cursor:
        print(f"more: add --cursor {cursor} (or --all)")
    return 0


# --- relay replay ------------------------------------------------------------------------------------------


def _which(args: argparse.Namespace) -> dict[str, Any]:
    if args.number is not None:
        return {"number": args.number}
    if args.order is not None:
        return {"order_id": args.order}
    return {"state": args.state}


def _print_refusals(body: dict[str, Any], single: bool) -> None:
    refused = body.get("refused") or []
    if single and refused and not body.get("requeued") and refused[0]["code"] in SINGLE:
        raise RelayError(refused[0]["reason"])
    for r in refused:
        print(r["reason"])
    more = int(body.get("refused_total") or 0) - len(refused)
    if more > 0:
        print(f"… and {more} more left as they are for the same reason")


def run_replay(args: argparse.Namespace) -> int:
    return _replay_remote(args) if args.url else _replay_local(args)


def _replay_local(args: argparse.Namespace) -> int:
    async def work(rt: runtime.Runtime) -> int:
        shop = load_shop(rt.env, args.shop)
        result = await replay.requeue(rt, shop.name, **_which(args))
        _print_refusals(result.body(), args.state is None)
        if not result.requeued:
            print(f"nothing to replay for shop '{shop.name}'")
            return 1 if args.state is None else 0
        if args.state is None:
            r = await replay.send(rt, shop, result)
        else:
            r = (await cron.sweep(rt, only=shop.name))[shop.name]
        print(f"{shop.name}: re-queued {len(result.requeued)} event(s); sent {r.sent}, failed {r.failed}, "
              f"retry {r.retry}{', HELD (Meta token refused)' if r.held else ''}")
        return 0 if r.failed == 0 and not r.held and r.retry == 0 else 1

    result: int = _local(args, work)
    return result


def _replay_remote(args: argparse.Namespace) -> int:
    client = _remote(args)
    try:
        body = client.post("/orders/replay", _which(args), shop=args.shop)
        _print_refusals(body, args.state is None)
        if not body["requeued"]:
            print(f"nothing to replay for shop '{args.shop}'")
            return 1 if args.state is None else 0
        print(f"{args.shop}: re-queued {body['requeued']} event(s) ({', '.join(body['orders'][:10])}"
              f"{', …' if len(body['orders']) > 10 else ''}); sending {body['sending']}")
        if args.state is not None or body.get("held"):
            return 1 if body.get("held") else 0
        return _watch(client, args.shop, body["orders"][0], watch_seconds(body))
    finally:
        client.close()


def watch_seconds(answer: dict[str, Any]) -> float:
    """How long to follow a replayed order: the Worker sends it after answering, or on the Free plan the next cron
    run does (its answer's ``sending`` starts with ``relay.web.orders.CRON_SENDS``)."""
    return CRON_POLL_SECONDS if str(answer.get("sending", "")).startswith(orders.CRON_SENDS) else POLL_SECONDS


def _watch(client: AdminClient, shop: str, number: str, seconds: float = POLL_SECONDS) -> int:
    """Follow one replayed order until it leaves the queue, for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        rows = client.get("/orders", shop=shop, number=number)["orders"]
        if all(o["state"] not in ("due", "sending") for o in rows) or time.monotonic() > deadline:
            break
        time.sleep(POLL_EVERY)
    if rows:
        print("\n".join(order_table(rows)))
    if any(o["state"] in ("due", "sending") for o in rows):
        print("still queued: the next cron run sends it (relay orders --number shows its state)")
    return 0 if rows and all(o["state"] == "sent" for o in rows) else 1


# --- relay status ------------------------------------------------------------------------------------------


def status_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"relay {report['status']} at {report['generated_at']} (Graph API {report['graph_api_version']})"]
    for s in report["shops"]:
        day = {k: v for k, v in s["counts"]["24h"].items() if v}
        counts = ", ".join(f"{k} {v}" for k, v in sorted(day.items())) or "no orders"
        lines.append(f"{s['shop']}: {'ok' if s['ok'] else 'ATTENTION'}; last 24 h: {counts}; last sent "
                     f"{s['last_success_at'] or 'never'}")
        lines += [f"  {note}" for note in s.get("notes") or []]
        lines += order_facts(s)
        lines += [f"  ! {w}" for w in s["warnings"]]
    return lines


def numbered(fact: dict[str, Any]) -> str:
    """``ORD10003 (id 500000003)``: the number the owner knows first, the id beside it."""
    number = fact.get("order_number")
    return f"{number} (id {fact['order_id']})" if number else f"id {fact['order_id']}"


def order_facts(s: dict[str, Any]) -> list[str]:
    """The orders a shop owner may be asked about, by number: the oldest unpaid, the oldest retrying, the last error."""
    out = []
    if s.get("oldest_waiting"):
        out.append(f"  oldest waiting for payment: {numbered(s['oldest_waiting'])}, placed "
                   f"{s['oldest_waiting']['placed_at']}")
    if s.get("oldest_retrying"):
        out.append(f"  oldest retrying: {numbered(s['oldest_retrying'])}, placed {s['oldest_retrying']['placed_at']}")
    error = s.get("last_error")
    if error:
        meta = meta_answer({"last_status": error.get("status"), "last_code": error.get("code"),
                            "last_subcode": error.get("subcode"), "last_error": error.get("message"),
                            "state": error.get("state")})
        out.append(f"  last error: {numbered(error)}, {error['state']} at {error['at']}: Meta {meta}")
    return out


_NO_SHOP = ("no shop is configured on {where}, so there is nothing to report: set the five <SHOP>_* variables "
            "(<SHOP>_LIGHTSPEED_API_KEY, _LIGHTSPEED_API_SECRET, _LIGHTSPEED_SHOP_ID, _META_ACCESS_TOKEN, "
            "_META_PIXEL_ID; see .env.example) ({source})")


def run_status(args: argparse.Namespace) -> int:
    if args.url:
        client = _remote(args)
        try:
            report = client.get("/status", shop=args.shop)
        finally:
            client.close()
    else:
        report = _local(args, lambda rt: status.collect(rt, args.shop))
    if not report.get("shops") and not args.shop:
        raise ConfigError(_NO_SHOP.format(where=f"the relay at {args.url}" if args.url else "this machine",
                                          source=getattr(args, "env_source", "")))
    print(json.dumps(report, indent=1) if args.json else "\n".join(status_lines(report)))
    return 0 if report["status"] == "ok" else 1


# --- the parsers -------------------------------------------------------------------------------------------


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a deployed Worker (https://<worker>) or a running relay serve; the token is "
                                      "ADMIN_TOKEN from the environment or --env-file. Without it: the local --db")
    add_common(parser)


def register_commands(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("orders", help="a shop's orders in the ledger, newest first: state, attempts, "
                                            "Meta's answer")
    listing.add_argument("--shop", required=True, help="the shop's name (the prefix of its variables)")
    listing.add_argument("--state", choices=orders.STATES, help="only orders in this state")
    listing.add_argument("--number", help="one order, by its number (e.g. ORD00042)")
    listing.add_argument("--limit", type=int, default=orders.DEFAULT_LIMIT, help="orders per page (1-200)")
    listing.add_argument("--cursor", help="continue after the page that printed this cursor")
    listing.add_argument("--all", action="store_true", help="follow every page")
    listing.add_argument("--json", action="store_true", help="print the API's JSON answer")
    _target(listing)
    listing.set_defaults(func=run_orders)

    again = sub.add_parser("replay", help="send again the events Meta refused, or one order, while Meta takes them")
    again.add_argument("--shop", required=True, help="the shop's name (the prefix of its variables)")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--number", help="one order, by its number (e.g. ORD00042)")
    which.add_argument("--order", type=int, metavar="ID", help="one order, by its Lightspeed order id")
    which.add_argument("--state", choices=replay.STATES,
                       help="every event in this state: failed (refused by Meta) or retry (waiting for a retry)")
    again.add_argument("--logs", default=DEFAULT_LOGS, help="folder standing in for the R2 log bucket (local only)")
    _target(again)
    again.set_defaults(func=run_replay)

    report = sub.add_parser("status", help="per shop: what happened to its orders, and what needs acting on")
    report.add_argument("--shop", help="only this shop")
    report.add_argument("--json", action="store_true", help="print the /status JSON")
    _target(report)
    report.set_defaults(func=run_status)
