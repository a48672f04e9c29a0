"""Once a day per pixel, Meta's Dataset Quality figures for the Purchase event, stored for /status and /dashboard.

Runs from the cron (``relay.jobs.cron.scheduled``: before the pass, on the free plan after an idle one), a few
pixels per invocation, so it costs one query when nothing is due (none of its own in the Worker, whose cron
reads it ahead: relay.jobs.schedule) and two subrequests per pixel asked (the call and the write). Shops
sharing a pixel share one row. A check that got no answer is tried again after an hour; a token without
access to the dataset is asked again the next day, or at once when the token is replaced.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from relay.core import dataset_quality
from relay.core.config import Shop, scan_shops
from relay.core.ports import Database
from relay.core.sentences import Foreign, Said
from relay.jobs import runtime

CHECK_EVERY = 24 * 3600 - 15 * 60  # "daily", a little early so a 10-minute cron does not slip a slot a day
RECHECK_UNKNOWN = 3600
PIXELS_PER_RUN = 2

logger = logging.getLogger("relay")

_SAVE = """
INSERT INTO dataset_quality (pixel_id, shop, checked_at, token_fingerprint, state, score, match_keys, dedup,
                             coverage, diagnostics, code, error)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pixel_id) DO UPDATE SET
    shop = excluded.shop, checked_at = excluded.checked_at, token_fingerprint = excluded.token_fingerprint,
    state = excluded.state, score = excluded.score, match_keys = excluded.match_keys, dedup = excluded.dedup,
    coverage = excluded.coverage, diagnostics = excluded.diagnostics, code = excluded.code, error = excluded.error
"""


STORED: tuple[str, tuple[()]] = ("SELECT * FROM dataset_quality", ())    # ``stored``'s read (relay.jobs.schedule)


async def stored(db: Database, decode: bool = True) -> dict[str, dict[str, Any]]:
    """The latest answer per pixel id, its JSON lists decoded (``decode``; whether a check is due needs none of
    them, and every idle cron run asks that)."""
    out = {}
    for r in (await db.run(*STORED)).rows:
        if decode:
            r = {**r, **{k: json.loads(r[k] or "[]") for k in ("match_keys", "dedup", "diagnostics")}}
        out[str(r["pixel_id"])] = r
    return out


def is_due(row: dict[str, Any] | None, shop: Shop, now: int) -> bool:
    if row is None or row["token_fingerprint"] != shop.meta_token.fingerprint():
        return True
    age = now - int(row["checked_at"])
    return age >= (RECHECK_UNKNOWN if row["state"] == "unknown" else CHECK_EVERY)


async def check_pixel(rt: runtime.Runtime, shop: Shop) -> dataset_quality.QualityCheck:
    """Ask Meta about the shop's pixel now, and store and log the answer."""
    now = rt.now()
    try:
        response = await rt.http.send(dataset_quality.request(shop, rt.settings))
        check = dataset_quality.parse(response, shop)
    except (TimeoutError, OSError) as exc:
        check = dataset_quality.QualityCheck("unknown", error=f"Meta dataset_quality did not answer "
                                                              f"({type(exc).__name__}); will ask again in an hour")
    await rt.db.run(_SAVE, (
        shop.pixel_id, shop.name, now, shop.meta_token.fingerprint(), check.state, check.score,
        json.dumps(check.match_keys), json.dumps(check.dedup), check.coverage, json.dumps(check.diagnostics),
        check.code, check.error))
    rt.log.add(shop.name, now, kind="health", check="dataset_quality", state=check.state, score=check.score,
               code=check.code, error=check.error)
    if check.score is not None and check.score < dataset_quality.TARGET:
        logger.warning("shop %s: Meta's match quality for Purchase is %.1f, below the target of %.1f",
                       shop.name, check.score, dataset_quality.TARGET)
    return check


async def run_daily(rt: runtime.Runtime, only: str | None = None, force: bool = False,
                    limit: int = PIXELS_PER_RUN) -> dict[str, dataset_quality.QualityCheck]:
    """Check the pixels whose last answer is a day old (or whose token changed), ``limit`` per cron run."""
    shops, _ = scan_shops(rt.env, rt.env_names)
    if only is not None:
        shops = [s for s in shops if s.name == only.lower()]
    latest = await stored(rt.db, decode=False)
    now = rt.now()
    by_pixel: dict[str, Shop] = {}
    for shop in shops:
        by_pixel.setdefault(shop.pixel_id, shop)
    due = [s for p, s in by_pixel.items() if force or is_due(latest.get(p), s, now)]
    due.sort(key=lambda s: int(latest[s.pixel_id]["checked_at"]) if s.pixel_id in latest else -1)
    return {shop.name: await check_pixel(rt, shop) for shop in due[:limit]}


def view(row: dict[str, Any] | None, shop: Shop, iso: Any) -> dict[str, Any] | None:
    """The stored answer as /status shows it (``None`` before the first check)."""
    if row is None:
        return None
    score = row["score"]
    note: str | None = Foreign(row["error"]) if row["error"] is not None else None
    if row["state"] == "no_access":
        note = dataset_quality.no_access_fix(shop)
    elif row["state"] == "no_data":
        note = Said("quality_no_data")
    return {
        "checked_at": iso(int(row["checked_at"])), "state": row["state"], "event": dataset_quality.EVENT,
        "score": score, "target": dataset_quality.TARGET,
        "meets_target": None if score is None else score >= dataset_quality.TARGET,
        "match_keys": {k: v for k, v in row["match_keys"]},
        "dedup": [{"key": k, "server": s, "browser": b} for k, s, b in row["dedup"]],
        "event_coverage": row["coverage"], "diagnostics": row["diagnostics"], "note": note,
    }


def warnings(view: dict[str, Any] | None) -> list[str]:
    """What the shop owner should act on from Meta's own figures."""
    if view is None:
        return []
    if view["state"] == "no_access":
        return [Said("quality_note", note=view["note"])]
    if view["meets_target"] is False:
        return [Said("quality_low", score=f"{view['score']:.1f}", target=f"{view['target']:.1f}")]
    return []
