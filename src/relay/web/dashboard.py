"""``/dashboard``: "did Meta get my orders, and if not, which ones and why?", per shop, on a phone.

GET renders the page from the same figures as ``GET /status`` (relay.web.status.collect) plus reads
of its own (relay.outbox.attention: the orders that need attention, a search by number, each shop's
time zone), all in the one D1 call that status.collect_with sends. POST takes the login and sign-out
forms (relay.web.auth) and the Replay button, which re-queues through relay.jobs.replay, the same
decision as ``POST /orders/replay``, sends at once within the request's subrequest budget, and
redirects to the order so the page shows what happened. Who may look and the CSRF field every form
carries are relay.web.auth's; the HTML is relay.web.dashboard_html's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from relay.core.config import Shop, load_shop, scan_shops
from relay.core.sentences import Said
from relay.jobs import limits, replay, runtime
from relay.outbox import attention
from relay.outbox.budget import Meter
from relay.web import auth, status, wording
from relay.web.dashboard_html import STYLE_HASH, Page, login_page, query_string
from relay.web.http import Request, Response

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": f"default-src 'none'; style-src '{STYLE_HASH}'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",     # no-referrer would make the browser post Origin: null, which
                                          # relay.web.auth must refuse as a cross-site form
}
HTML = "text/html; charset=utf-8"
DONE = ("replayed", "requeued", "refused")


async def respond(rt: runtime.Runtime, request: Request) -> Response:
    if request.method == "POST":
        return await _post(rt, request)
    if request.method != "GET":
        return Response(405, {"status": "error", "error": "use GET /dashboard (or POST the login form)"},
                        {"Allow": "GET, POST"})
    lang = wording.language(request.query, request.headers)
    who = await auth.access(rt, request)
    if who is None:
        return _page(401, login_page(auth.admin_problem(rt.settings.admin_token), lang, "lang" in request.query))
    number = (request.query.get("q") or "").strip()[:64]
    scanned = scan_shops(rt.env, rt.env_names)
    report, found = await status.collect_with(
        rt, also=lambda db, names, now: attention.read(db, names, now, number or None), scanned=scanned)
    reads = found or attention.Reads()
    names = [s["shop"] for s in report["shops"]]
    now = rt.now()
    page = Page(report, reads, who, lang, _offsets(rt, names, reads.utc_offsets), _pixels(scanned[0]), now, number,
                _notice(request.query, lang, number))
    return _page(200, page.render())


def _offsets(rt: runtime.Runtime, names: list[str], learned: dict[str, int]) -> dict[str, int]:
    """Each shop's UTC offset: ``<SHOP>_UTC_OFFSET`` when set and valid, else what its orders showed, else 0."""
    out = {}
    for name in names:
        override = wording.parse_offset(rt.env.get(name.upper() + "_UTC_OFFSET"))
        out[name] = override if override is not None else learned.get(name, 0)
    return out


def _pixels(shops: list[Shop]) -> dict[str, str]:
    return {s.name: s.pixel_id for s in shops}


def _notice(query: dict[str, str] | Any, lang: str, number: str) -> tuple[str, str] | None:
    """The line a Replay redirect asks for; only fixed texts, the number escaped by the page."""
    done = query.get("done")
    if done not in DONE or not number:
        return None
    w = wording.WORDS[lang]
    if done == "refused":
        why = w.get(f"why_{query.get('why')}", "")
        return "bad", w["refused"].format(q=number, reason=why)
    return "", w[done].format(q=number)


async def _post(rt: runtime.Runtime, request: Request) -> Response:
    form = await auth.read_form(request)
    lang = wording.language(form or {}, request.headers)
    chosen = (form or {}).get("lang") in wording.LANGUAGES
    if form is None:
        return _page(413, login_page(Said("form_too_large"), lang))
    outcome = await auth.sign_in_or_out(rt, request, form)
    if outcome is not None:
        page = "" if outcome.status == 303 else login_page(outcome.message, lang, chosen)
        headers = outcome.headers
        if chosen and outcome.status == 303:
            headers = {**headers, "Location": f"/dashboard?lang={lang}"}
        return _page(outcome.status, page, headers)
    if form.get("action") != "replay":
        return _page(400, login_page(Said("form_unknown"), lang, chosen))
    if await auth.form_access(rt, request, form) is None:
        return _page(403, login_page(Said("form_stale"), lang, chosen))
    return await _replay(rt, form)


async def _replay(rt: runtime.Runtime, form: dict[str, str]) -> Response:
    """Re-queue one order by number, send it now within this request's budget (on the Free plan the cron sends it:
    ``replay.send``), and show the order."""
    shop = load_shop(rt.env, form.get("shop", ""))
    number = form.get("number", "").strip()[:64]
    lang = form.get("lang", "") if form.get("lang") in wording.LANGUAGES else "en"
    meter = Meter(limits.load_limits(rt.env, rt.cpu_limited).budget)
    metered = dataclasses.replace(rt, db=meter.database(rt.db), http=meter.http(rt.http),
                                  blobs=meter.blobs(rt.blobs) if rt.blobs is not None else None)
    try:
        result = await replay.requeue(metered, shop.name, number=number)
        done, why = "refused", result.refused[0].code if result.refused else "unknown"
        if result.requeued:
            left = meter.left()
            sent = await replay.send(metered, shop, result, None if left is None else left - 1)
            done, why = ("replayed", "") if sent.sent else ("requeued", "held" if sent.held else "")
    finally:
        await metered.log.flush(metered.blobs, metered.clock())
    where = query_string(q=number, done=done, why=why, lang=lang)
    return _page(303, "", {"Location": f"/dashboard?{where}"})


def _page(code: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(code, {}, {**SECURITY_HEADERS, **(headers or {})}, text=text, content_type=HTML)
