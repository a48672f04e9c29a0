"""``GET /status``: per shop, what happened to its orders, from the ledger, behind ``ADMIN_TOKEN``.

The figures answer "did Meta get last night's orders?" without reading code: counts by ledger state
for orders placed in the last 24 h and 7 d, the oldest order still waiting (unpaid) or retrying, the
last success, the last standing error, match-key coverage, the backfill cursor and its lag, the Graph
API version, the latest token check (relay.jobs.health), Meta's own match score for Purchase
(relay.jobs.quality), net revenue (relay.outbox.revenue), and sentences for whatever needs acting on.

Every query covers all shops at once, and all of them go out as one D1 batch (relay.outbox.one_call), so
the page costs one D1 call for one shop or twenty (a free-plan invocation may make 50, and has 10 ms of
CPU: each call's conversion counts). /dashboard renders the same dictionary as HTML.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from relay.core.config import Shop, canonical_name, load_shop, scan_shops
from relay.core.ports import Database, QueryResult
from relay.core.sentences import Foreign, Said
from relay.core.utc import iso, iso_date
from relay.jobs import health, quality, runtime
from relay.outbox import revenue, unreadable
from relay.outbox.bridge_figures import coverage as bridge_figures_of
from relay.outbox.one_call import OneCall, json_tables, tables_of
from relay.outbox.rows import STATES
from relay.web import auth
from relay.web.http import Request, Response

DAY = 86400
CHART_DAYS = 14
RETRY_WARN_AGE = 6 * 3600
BACKFILL_WARN_LAG = 3 * 3600
NO_BACKFILL = "no such table: backfill"    # a database the backfill's migration has not reached: cursor null


async def respond(rt: runtime.Runtime, request: Request) -> Response:
    if request.method != "GET":
        return Response(405, {"status": "error", "error": "use GET /status[?shop=<name>]"}, {"Allow": "GET"})
    if not await auth.bearer(rt, request):
        return auth.unauthorized(rt.settings.admin_token)
    report = await collect(rt, request.query.get("shop") or None)
    return Response(200, report, {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


# --- the figures --------------------------------------------------------------------------------------------


async def collect(rt: runtime.Runtime, only: str | None = None) -> dict[str, Any]:
    """The status of every configured shop (or ``only`` that one; unknown → ``UnknownShopError``, 404)."""
    report, _ = await collect_with(rt, only)
    return report


async def collect_with[T](rt: runtime.Runtime, only: str | None = None,
                          also: Callable[[Database, list[str], int], Coroutine[Any, Any, T]] | None = None,
                          scanned: tuple[list[Shop], dict[str, str]] | None = None
                          ) -> tuple[dict[str, Any], T | None]:
    """``collect``, plus ``also(db, names, now)``: a page's own reads, sent in the same single D1 call.

    Every reader below asks in the same event-loop turn, so ``OneCall`` sends them as one ``batch``: the
    page costs one D1 subrequest (and one conversion of results) whatever the number of figures.
    ``scanned``: ``scan_shops``'s answer when the caller has it already (reading every shop's variables
    twice is CPU the Worker does not have).
    """
    now = rt.now()
    shops, problems = scanned or scan_shops(rt.env, rt.env_names)
    if only is not None:
        name = canonical_name(only)
        shops = [s for s in shops if s.name == name]
        problems = {k: v for k, v in problems.items() if k == name}
        if not shops and not problems:
            load_shop(rt.env, name)          # raises the 404 that names the variables to set
    names = [s.name for s in shops] + sorted(problems)
    try:
        read = await _read(rt, names, now, also, backfill=True)
    except Exception as exc:  # D1 raises the runtime's JS error, the local runner a LedgerError
        if NO_BACKFILL not in str(exc):
            raise
        read = await _read(rt, names, now, also, backfill=False)   # the backfill not deployed yet: cursor null
    figures = _figures(names, now, *read[:4])
    meta_quality = read[4]
    version = rt.settings.meta_api_version
    entries = [_shop_entry(shop, figures, now, version, meta_quality.get(shop.pixel_id)) for shop in shops]
    entries += [_problem_entry(name, problems[name], figures, now, version) for name in sorted(problems)]
    entries.sort(key=lambda e: e["shop"])
    bridged = bridge_figures(names, read[5])
    for entry in entries:
        entry["bridge"] = bridged[entry["shop"]]
    report = {
        "status": "ok" if all(e["ok"] for e in entries) else "attention",
        "generated_at": iso(now),
        "graph_api_version": version,
        "shops": entries,
    }
    return report, (read[6] if also is not None else None)


async def _read(rt: runtime.Runtime, names: list[str], now: int,
                also: Callable[[Database, list[str], int], Coroutine[Any, Any, Any]] | None,
                backfill: bool) -> list[Any]:
    db = OneCall(rt.db)
    readers: list[Coroutine[Any, Any, Any]] = [
        db.run(*_figure_statement(now, backfill)), unreadable.summary(db, now), revenue.net_revenue(db, now),
        health.stored(db), quality.stored(db), bridge_figures_of(db, now - 7 * DAY)]
    if also is not None:
        readers.append(also(db, names, now))
    return await db.gather(readers)


def bridge_figures(names: Sequence[str], found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per shop, the identity bridge over paid orders placed in the last 7 days (``bridge_figures_of``, one
    read for all shops): how many had a post that counted (``bridged``: the first post bound to the order's
    browser), with ``fbc``, with ``fbp``, each consent choice, as counts and shares of ``paid``; and the posts
    kept out (``repeats``: bound, after the first; ``rejected``: not bound to the order's browser, time or
    total; ``after``: came once the order's event was decided)."""
    keys = ("bridged", "with_fbc", "with_fbp", "granted", "denied", "unknown")
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        r = found.get(name, {})
        paid = int(r.get("paid") or 0)
        counts = {k: int(r.get(k) or 0) for k in keys}
        out[name] = {"paid": paid, **counts, "repeats": int(r.get("repeats") or 0),
                     "rejected": int(r.get("rejected") or 0), "after": int(r.get("after") or 0),
                     "share": {k: round(v / paid, 3) if paid else 0.0 for k, v in counts.items()}}
    return out


_FIGURES = (
    ("counts", "SELECT shop, state, SUM(event_time >= ?) AS d1, COUNT(*) AS d7 FROM outbox WHERE event_time >= ? "
               "AND event_name = 'Purchase' GROUP BY shop, state", "shop, state, d1, d7"),
    ("oldest", "SELECT shop, state, order_id, order_number, MIN(event_time) AS t FROM outbox "
               "WHERE state IN ('waiting', 'retry') GROUP BY shop, state", "shop, state, order_id, order_number, t"),
    ("last_sent", "SELECT shop, MAX(sent_at) AS t FROM outbox WHERE state = 'sent' GROUP BY shop", "shop, t"),
    ("errors", "SELECT shop, order_id, order_number, state, last_status, last_code, last_subcode, last_fbtrace_id, "
               "last_error, MAX(updated_at) AS t FROM outbox WHERE state IN ('retry', 'failed', 'expired') "
               "AND last_error IS NOT NULL GROUP BY shop",
     "shop, order_id, order_number, state, last_status, last_code, last_subcode, last_fbtrace_id, last_error, t"),
    ("keyed", "SELECT shop, match_keys, COUNT(*) AS n FROM outbox WHERE event_time >= ? AND state <> 'skipped' "
              "GROUP BY shop, match_keys", "shop, match_keys, n"),
    ("daily", "SELECT shop, state, (CASE WHEN state = 'sent' THEN sent_at ELSE updated_at END) / 86400 AS day, "
              "COUNT(*) AS n FROM outbox WHERE state IN ('sent', 'failed', 'expired') "
              "AND (CASE WHEN state = 'sent' THEN sent_at ELSE updated_at END) >= ? GROUP BY shop, state, day",
     "shop, state, day, n"),
    ("held", "SELECT shop, held_until, held_reason FROM shops WHERE held_until IS NOT NULL",
     "shop, held_until, held_reason"),
    # migrations/0002_backfill.sql: the time (unix s) before which every updated order is in the outbox.
    ("backfill", "SELECT shop, cursor, run_page, last_error FROM backfill", "shop, cursor, run_page, last_error"),
)


# The statement text, with and without the backfill's table, built once at import rather than per page.
_FIGURE_SQL = {backfill: json_tables([p for p in _FIGURES if backfill or p[0] != "backfill"])
               for backfill in (True, False)}


def _figure_statement(now: int, backfill: bool = True) -> tuple[str, Sequence[Any]]:
    """The ledger's figures for all shops as one statement returning one row (relay.outbox.one_call):
    one value crosses into Python per figure, not one per column per row."""
    first_day = now // DAY - (CHART_DAYS - 1)
    return _FIGURE_SQL[backfill], (now - DAY, now - 7 * DAY, now - 7 * DAY, first_day * DAY)


def _figures(names: Sequence[str], now: int, ledger: QueryResult, bad: dict[str, dict[str, Any]],
             money: dict[str, dict[str, Any]], checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One dict per shop name, from the row of ``_figure_statement`` and the other readers' answers."""
    dates = _chart_dates(now)
    fig: dict[str, dict[str, Any]] = {n: _empty(dates) for n in names}
    tables = tables_of(ledger)
    counts, oldest, last_sent, errors, keyed, daily, held = (tables[p[0]] for p in _FIGURES[:-1])
    backfill = tables.get("backfill", [])
    for r in counts:
        if r["shop"] in fig:
            fig[r["shop"]]["counts"]["24h"][r["state"]] = int(r["d1"] or 0)
            fig[r["shop"]]["counts"]["7d"][r["state"]] = int(r["d7"] or 0)
    for r in oldest:
        if r["shop"] in fig:
            key = "oldest_waiting" if r["state"] == "waiting" else "oldest_retrying"
            fig[r["shop"]][key] = {"order_id": int(r["order_id"]), "order_number": r["order_number"],
                                   "placed_at": iso(int(r["t"])),
                                   "age_seconds": max(0, now - int(r["t"]))}
    for r in last_sent:
        if r["shop"] in fig and r["t"] is not None:
            fig[r["shop"]]["last_success_at"] = iso(int(r["t"]))
    for r in errors:
        if r["shop"] in fig:
            fig[r["shop"]]["last_error"] = {
                "at": iso(int(r["t"])), "order_id": int(r["order_id"]), "order_number": r["order_number"],
                "state": r["state"],
                "status": r["last_status"], "code": r["last_code"], "subcode": r["last_subcode"],
                "fbtrace_id": r["last_fbtrace_id"], "message": Foreign(r["last_error"])}
    for r in keyed:
        if r["shop"] in fig:
            keys = fig[r["shop"]]["match_keys"]
            keys["events"] += int(r["n"])
            for key in filter(None, (r["match_keys"] or "").split(",")):
                keys["coverage"][key] = keys["coverage"].get(key, 0) + int(r["n"])
    first_day = now // DAY - (CHART_DAYS - 1)
    for r in daily:
        if r["shop"] in fig and r["day"] is not None:
            day = fig[r["shop"]]["daily"][int(r["day"]) - first_day]
            day["sent" if r["state"] == "sent" else "failed"] += int(r["n"])
    for r in held:
        if r["shop"] in fig and int(r["held_until"]) > now:
            fig[r["shop"]]["held"] = {"until": iso(int(r["held_until"])), "reason": r["held_reason"]}
    for name, found in bad.items():
        if name in fig:
            fig[name]["unreadable"] = dict(found, latest_at=iso(found["latest_at"]))
    for name, earned in money.items():
        if name in fig:
            fig[name]["revenue"] = earned
    for name, row in checks.items():
        if name in fig:
            fig[name]["health_row"] = row
    for r in backfill:
        name = str(r["shop"])
        if name in fig:
            cursor = r["cursor"]
            fig[name]["backfill"] = {
                "cursor": iso(int(cursor)) if cursor is not None else None,
                "lag_seconds": max(0, now - int(cursor)) if cursor is not None else None,
                "listing": r["run_page"] is not None, "last_error": r["last_error"]}
    return fig


def _chart_dates(now: int) -> list[str]:
    """The chart's days, once per page (not once per shop: formatting dates is dear in the Worker's Python)."""
    first_day = now // DAY - (CHART_DAYS - 1)
    return [iso_date(first_day + i) for i in range(CHART_DAYS)]


def _empty(dates: list[str]) -> dict[str, Any]:
    return {
        "counts": {"24h": dict.fromkeys(STATES, 0), "7d": dict.fromkeys(STATES, 0)},
        "oldest_waiting": None, "oldest_retrying": None, "last_success_at": None, "last_error": None,
        "held": None, "match_keys": {"events": 0, "coverage": {}},
        "backfill": {"cursor": None, "lag_seconds": None, "listing": False, "last_error": None},
        "daily": [{"date": date, "sent": 0, "failed": 0} for date in dates],
        "health_row": None, "revenue": revenue.empty(),
        "unreadable": {"orders": 0, "latest_order_id": None, "latest_reason": None, "latest_at": None},
    }


def _shop_entry(shop: Shop, fig: dict[str, dict[str, Any]], now: int, version: str,
                quality_row: dict[str, Any] | None = None) -> dict[str, Any]:
    f = fig[shop.name]
    meta_quality = quality.view(quality_row, shop, iso)
    row = f.pop("health_row")
    # Never checked yet (a fresh deployment, or relay serve just started) is said as a note, not a warning:
    # nothing is wrong, and the next cron run checks. Any other finding of the check is a warning.
    checked = health.warnings(shop, row, now)
    notes = checked if row is None else []
    found = config_warnings(shop) + (checked if row is not None else [])
    served = row["served_version"] if row and row["graph_version"] == version else None
    version_note = health.version_warning(version, served, datetime.fromtimestamp(now, UTC).date())
    if version_note:
        found.append(version_note)
    found += _delivery_warnings(shop.name, f, now) + quality.warnings(meta_quality)
    f["revenue"]["profit_tracked"] = shop.net_revenue     # <SHOP>_NET_REVENUE=1: the dashboard shows the profit
    return {"shop": shop.name, "ok": not found, "warnings": found, "notes": notes, "config_error": None,
            **_finish(f),
            "graph_api_version": version, "health": _health_view(row, now), "meta_quality": meta_quality}


def config_warnings(shop: Shop) -> list[str]:
    """Settings that are valid but cost match quality or send events to the wrong place."""
    out: list[str] = []
    if not shop.shop_url:
        out.append(Said("shop_url_unset", prefix=shop.prefix))
    if shop.test_event_code:
        out.append(Said("test_code_set", prefix=shop.prefix))
    return out


def _problem_entry(name: str, problem: str, fig: dict[str, dict[str, Any]], now: int,
                   version: str) -> dict[str, Any]:
    f = fig[name]
    row = f.pop("health_row")
    said = problem if isinstance(problem, Said) else Foreign(problem)
    found = [Said("config_problem", problem=said), *_delivery_warnings(name, f, now)]
    return {"shop": name, "ok": False, "warnings": found, "notes": [],
            "config_error": problem, **_finish(f), "graph_api_version": version, "health": _health_view(row, now),
            "meta_quality": None}


def _finish(f: dict[str, Any]) -> dict[str, Any]:
    keys = f["match_keys"]
    events = keys["events"]
    keys["coverage"] = {k: round(n / events, 3) for k, n in sorted(keys["coverage"].items())} if events else {}
    return f


def _delivery_warnings(name: str, f: dict[str, Any], now: int) -> list[str]:
    out: list[str] = []
    if f["held"]:
        out.append(Said("held", until=f["held"]["until"], reason=Foreign(f["held"]["reason"])))
    failed = f["counts"]["24h"]["failed"]
    if failed:
        out.append(Said("failed_24h", n=failed, shop=name))
    bad = f["unreadable"]
    if bad["orders"]:
        out.append(Said("unreadable", n=bad["orders"], order=bad["latest_order_id"],
                        reason=Foreign(bad["latest_reason"])))
    lag = f["backfill"]["lag_seconds"]
    if lag is not None and lag > BACKFILL_WARN_LAG:
        error = f["backfill"]["last_error"]
        out.append(Said("backfill_behind_why", hours=lag // 3600, cursor=f["backfill"]["cursor"], error=Foreign(error))
                   if error else Said("backfill_behind", hours=lag // 3600, cursor=f["backfill"]["cursor"]))
    retrying = f["oldest_retrying"]
    if retrying and retrying["age_seconds"] > RETRY_WARN_AGE and not f["held"]:
        out.append(Said("retrying_since", number=retrying["order_number"], order=retrying["order_id"],
                        placed_at=retrying["placed_at"]))
    return out


def _health_view(row: dict[str, Any] | None, now: int) -> dict[str, Any] | None:
    if row is None:
        return None
    expires = row["token_expires_at"]
    state = row["token_state"]
    if state in ("ok", "expiring") and expires:
        state = "invalid" if expires <= now else "expiring" if expires - now <= health.WARN_DAYS * DAY else "ok"
    return {
        "checked_at": iso(int(row["checked_at"])),
        "meta_token": {"state": state, "expires_at": None if not expires else iso(int(expires)),
                       "never_expires": expires == 0,
                       "issued_at": iso(int(row["token_issued_at"])) if row["token_issued_at"] else None,
                       "scopes": [s for s in row["token_scopes"].split(",") if s],
                       "code": row["token_code"], "error": row["token_error"]},
        "lightspeed": {"state": row["lightspeed_state"], "status": row["lightspeed_status"],
                       "error": row["lightspeed_error"]},
        "served_version": row["served_version"],
    }

