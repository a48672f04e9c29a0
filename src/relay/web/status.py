"""``GET /status``: per shop, what happened to its orders, from the ledger, behind ``ADMIN_TOKEN``.

The figures answer "did Meta get last night's orders?" without reading code: counts by ledger state
for orders placed in the last 24 h and 7 d, the oldest order still waiting (unpaid) or retrying, the
last success, the last standing error, match-key coverage, the backfill cursor and its lag, the Graph
API version, the latest token check (relay.jobs.health), Meta's own match score for Purchase
(relay.jobs.quality), net revenue (relay.outbox.revenue), and sentences for whatever needs acting on.

Every query covers all shops at once, so the page costs the same handful of D1 queries for one shop
or twenty (a free-plan invocation may make 50). /dashboard renders the same dictionary as HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from relay.core.config import Shop, canonical_name, load_shop, scan_shops
from relay.core.sentences import Foreign, Said
from relay.jobs import health, quality, runtime
from relay.outbox import revenue, unreadable
from relay.outbox.bridge_figures import coverage as bridge_figures_of
from relay.outbox.rows import STATES
from relay.web import auth
from relay.web.http import Request, Response

DAY = 86400
CHART_DAYS = 14
RETRY_WARN_AGE = 6 * 3600
BACKFILL_WARN_LAG = 3 * 3600


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
    now = rt.now()
    shops, problems = scan_shops(rt.env, rt.env_names)
    if only is not None:
        name = canonical_name(only)
        shops = [s for s in shops if s.name == name]
        problems = {k: v for k, v in problems.items() if k == name}
        if not shops and not problems:
            load_shop(rt.env, name)          # raises the 404 that names the variables to set
    names = [s.name for s in shops] + sorted(problems)
    figures = await _figures(rt, names, now)
    meta_quality = await quality.stored(rt.db)
    version = rt.settings.meta_api_version
    entries = [_shop_entry(shop, figures, now, version, meta_quality.get(shop.pixel_id)) for shop in shops]
    entries += [_problem_entry(name, problems[name], figures, now, version) for name in sorted(problems)]
    entries.sort(key=lambda e: e["shop"])
    bridged = await bridge_figures(rt, names, now)
    for entry in entries:
        entry["bridge"] = bridged[entry["shop"]]
    return {
        "status": "ok" if all(e["ok"] for e in entries) else "attention",
        "generated_at": iso(now),
        "graph_api_version": version,
        "shops": entries,
    }


async def bridge_figures(rt: runtime.Runtime, names: Sequence[str], now: int) -> dict[str, dict[str, Any]]:
    """Per shop, the identity bridge over paid orders placed in the last 7 days (one D1 batch for all shops):
    how many had a post that counted (``bridged``: the first post bound to the order's browser), with
    ``fbc``, with ``fbp``, each consent choice, as counts and shares of ``paid``; and the posts kept out
    (``repeats``: bound, after the first; ``rejected``: not bound to the order's browser, time or total;
    ``after``: came once the order's event was decided)."""
    keys = ("bridged", "with_fbc", "with_fbp", "granted", "denied", "unknown")
    out: dict[str, dict[str, Any]] = {}
    found = await bridge_figures_of(rt.db, now - 7 * DAY)
    for name in names:
        r = found.get(name, {})
        paid = int(r.get("paid") or 0)
        counts = {k: int(r.get(k) or 0) for k in keys}
        out[name] = {"paid": paid, **counts, "repeats": int(r.get("repeats") or 0),
                     "rejected": int(r.get("rejected") or 0), "after": int(r.get("after") or 0),
                     "share": {k: round(v / paid, 3) if paid else 0.0 for k, v in counts.items()}}
    return out


async def _figures(rt: runtime.Runtime, names: Sequence[str], now: int) -> dict[str, dict[str, Any]]:
    """One dict per shop name, filled by a fixed number of queries over all shops."""
    fig: dict[str, dict[str, Any]] = {n: _empty(now) for n in names}
    db = rt.db
    rows = (await db.run(
        "SELECT shop, state, SUM(event_time >= ?) AS d1, COUNT(*) AS d7 FROM outbox WHERE event_time >= ? "
        "AND event_name = 'Purchase' GROUP BY shop, state", (now - DAY, now - 7 * DAY))).rows
    for r in rows:
        if r["shop"] in fig:
            fig[r["shop"]]["counts"]["24h"][r["state"]] = int(r["d1"] or 0)
            fig[r["shop"]]["counts"]["7d"][r["state"]] = int(r["d7"] or 0)
    rows = (await db.run(
        "SELECT shop, state, order_id, order_number, MIN(event_time) AS t FROM outbox "
        "WHERE state IN ('waiting', 'retry') GROUP BY shop, state")).rows
    for r in rows:
        if r["shop"] in fig:
            key = "oldest_waiting" if r["state"] == "waiting" else "oldest_retrying"
            fig[r["shop"]][key] = {"order_id": int(r["order_id"]), "order_number": r["order_number"],
                                   "placed_at": iso(int(r["t"])),
                                   "age_seconds": max(0, now - int(r["t"]))}
    for r in (await db.run("SELECT shop, MAX(sent_at) AS t FROM outbox WHERE state = 'sent' GROUP BY shop")).rows:
        if r["shop"] in fig and r["t"] is not None:
            fig[r["shop"]]["last_success_at"] = iso(int(r["t"]))
    rows = (await db.run(
        "SELECT shop, order_id, order_number, state, last_status, last_code, last_subcode, last_fbtrace_id, "
        "last_error, MAX(updated_at) AS t FROM outbox WHERE state IN ('retry', 'failed', 'expired') "
        "AND last_error IS NOT NULL GROUP BY shop")).rows
    for r in rows:
        if r["shop"] in fig:
            fig[r["shop"]]["last_error"] = {
                "at": iso(int(r["t"])), "order_id": int(r["order_id"]), "order_number": r["order_number"],
                "state": r["state"],
                "status": r["last_status"], "code": r["last_code"], "subcode": r["last_subcode"],
                "fbtrace_id": r["last_fbtrace_id"], "message": Foreign(r["last_error"])}
    rows = (await db.run(
        "SELECT shop, match_keys, COUNT(*) AS n FROM outbox WHERE event_time >= ? AND state <> 'skipped' "
        "GROUP BY shop, match_keys", (now - 7 * DAY,))).rows
    for r in rows:
        if r["shop"] in fig:
            keys = fig[r["shop"]]["match_keys"]
            keys["events"] += int(r["n"])
            for key in filter(None, (r["match_keys"] or "").split(",")):
                keys["coverage"][key] = keys["coverage"].get(key, 0) + int(r["n"])
    first_day = now // DAY - (CHART_DAYS - 1)
    rows = (await db.run(
        "SELECT shop, state, (CASE WHEN state = 'sent' THEN sent_at ELSE updated_at END) / 86400 AS day, "
        "COUNT(*) AS n FROM outbox WHERE state IN ('sent', 'failed', 'expired') "
        "AND (CASE WHEN state = 'sent' THEN sent_at ELSE updated_at END) >= ? GROUP BY shop, state, day",
        (first_day * DAY,))).rows
    for r in rows:
        if r["shop"] in fig and r["day"] is not None:
            day = fig[r["shop"]]["daily"][int(r["day"]) - first_day]
            day["sent" if r["state"] == "sent" else "failed"] += int(r["n"])
    for r in (await db.run("SELECT * FROM shops")).rows:
        if r["shop"] in fig and r["held_until"] is not None and int(r["held_until"]) > now:
            fig[r["shop"]]["held"] = {"until": iso(int(r["held_until"])), "reason": r["held_reason"]}
    for name, bad in (await unreadable.summary(db, now)).items():
        if name in fig:
            fig[name]["unreadable"] = dict(bad, latest_at=iso(bad["latest_at"]))
    for name, money in (await revenue.net_revenue(db, now)).items():
        if name in fig:
            fig[name]["revenue"] = money
    for name, row in (await health.stored(db)).items():
        if name in fig:
            fig[name]["health_row"] = row
    for name, r in (await backfill_progress(rt)).items():
        if name in fig:
            cursor = r.get("cursor")
            fig[name]["backfill"] = {
                "cursor": iso(int(cursor)) if cursor is not None else None,
                "lag_seconds": max(0, now - int(cursor)) if cursor is not None else None,
                "listing": r.get("run_page") is not None, "last_error": r.get("last_error")}
    return fig


def _empty(now: int) -> dict[str, Any]:
    first_day = now // DAY - (CHART_DAYS - 1)
    return {
        "counts": {"24h": dict.fromkeys(STATES, 0), "7d": dict.fromkeys(STATES, 0)},
        "oldest_waiting": None, "oldest_retrying": None, "last_success_at": None, "last_error": None,
        "held": None, "match_keys": {"events": 0, "coverage": {}},
        "backfill": {"cursor": None, "lag_seconds": None, "listing": False, "last_error": None},
        "daily": [{"date": iso((first_day + i) * DAY)[:10], "sent": 0, "failed": 0} for i in range(CHART_DAYS)],
        "health_row": None, "revenue": revenue.empty(),
        "unreadable": {"orders": 0, "latest_order_id": None, "latest_reason": None, "latest_at": None},
    }


def _shop_entry(shop: Shop, fig: dict[str, dict[str, Any]], now: int, version: str,
                quality_row: dict[str, Any] | None = None) -> dict[str, Any]:
    f = fig[shop.name]
    meta_quality = quality.view(quality_row, shop, iso)
    row = f.pop("health_row")
    found = config_warnings(shop) + health.warnings(shop, row, now)
    served = row["served_version"] if row and row["graph_version"] == version else None
    version_note = health.version_warning(version, served, datetime.fromtimestamp(now, UTC).date())
    if version_note:
        found.append(version_note)
    found += _delivery_warnings(shop.name, f, now) + quality.warnings(meta_quality)
    f["revenue"]["profit_tracked"] = shop.net_revenue     # <SHOP>_NET_REVENUE=1: the dashboard shows the profit
    return {"shop": shop.name, "ok": not found, "warnings": found, "config_error": None, **_finish(f),
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
    return {"shop": name, "ok": False, "warnings": found,
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


async def backfill_progress(rt: runtime.Runtime) -> dict[str, dict[str, Any]]:
    """Each shop's row of the backfill's ``backfill`` table (migrations/0002_backfill.sql), when it exists.

    ``cursor`` is the time (unix s) before which every updated order is in the outbox; the lag is how
    far that trails now. A database without the table (the backfill not deployed yet) shows ``null``.
    """
    exists = (await rt.db.run("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'backfill'")).rows
    if not exists:
        return {}
    rows = (await rt.db.run("SELECT * FROM backfill")).rows
    return {str(r["shop"]): r for r in rows}


def iso(ts: int) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ``; a stored time beyond what a date can show reads as year 9999, not a 500."""
    return datetime.fromtimestamp(min(max(ts, 0), health.MAX_TIMESTAMP), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
