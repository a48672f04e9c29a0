"""``/dashboard``: the status figures as one HTML page a shop owner can read on a phone.

Server-rendered from the same dictionary as ``GET /status`` (relay.web.status.collect); no script, no build
step, every value escaped. Who may look, the login form's handling, the cookie and the CSRF field of
every form are relay.web.auth's; this module only renders.
"""

from __future__ import annotations

from html import escape
from typing import Any

from relay.jobs import runtime
from relay.web import auth, status
from relay.web.http import Request, Response

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HTML = "text/html; charset=utf-8"


# --- the route ----------------------------------------------------------------------------------------------


async def respond(rt: runtime.Runtime, request: Request) -> Response:
    if request.method == "POST":
        return await _post(rt, request)
    if request.method != "GET":
        return Response(405, {"status": "error", "error": "use GET /dashboard (or POST the login form)"},
                        {"Allow": "GET, POST"})
    who = await auth.access(rt, request)
    if who is None:
        return _page(401, login_page(auth.admin_problem(rt.settings.admin_token)))
    return _page(200, render(await status.collect(rt), who))


async def _post(rt: runtime.Runtime, request: Request) -> Response:
    form = await auth.read_form(request)
    if form is None:
        return _page(413, login_page("That form was too large."))
    outcome = await auth.sign_in_or_out(rt, request, form)
    if outcome is None:
        return _page(400, login_page("That form is not one this page knows."))
    page = "" if outcome.status == 303 else login_page(outcome.message)
    return _page(outcome.status, page, outcome.headers)


def _page(code: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(code, {}, {**SECURITY_HEADERS, **(headers or {})}, text=text, content_type=HTML)


# --- HTML ---------------------------------------------------------------------------------------------------

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;
color:#1b1f24;background:#fafafa}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.1rem;margin:0 0 .5rem}
section{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.8rem;margin:1rem 0}
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{text-align:left;padding:.25rem .4rem;
border-bottom:1px solid #eee;vertical-align:top}th{font-weight:600;width:40%}
td.n,th.n{text-align:right;width:auto}.scroll{overflow-x:auto}
.ok{color:#176f2c}.bad{color:#a4161a}.warn{color:#8a5a00}.muted{color:#666;font-size:.9em}
ul.w{margin:.3rem 0;padding-left:1.2rem;color:#8a5a00}
.badge{display:inline-block;border-radius:1rem;padding:0 .6rem;font-size:.85em;border:1px solid currentColor}
form{display:inline}input[type=password]{width:100%;max-width:24rem;padding:.5rem;font-size:1rem}
button{padding:.45rem 1rem;font-size:1rem}code{word-break:break-all}
"""


def _doc(title: str, body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"robots\" content=\"noindex\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")


def login_page(message: str | None = None) -> str:
    note = f"<p class=\"bad\">{escape(message)}</p>" if message else ""
    return _doc("Relay status: sign in", (
        "<h1>Relay status</h1>" + note +
        "<section><form method=\"post\" action=\"/dashboard\">"
        "<p><label for=\"token\">Admin token (the <code>ADMIN_TOKEN</code> secret)</label></p>"
        "<p><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required></p>"
        "<p><button type=\"submit\">Sign in</button></p></form>"
        "<p class=\"muted\">Scripts can send <code>Authorization: Bearer &lt;ADMIN_TOKEN&gt;</code> to "
        "<code>/dashboard</code> or <code>/status</code> instead.</p></section>"))


def render(report: dict[str, Any], who: auth.Access) -> str:
    """The whole page for a ``status.collect`` report, as ``who`` sees it (its forms carry their CSRF field)."""
    overall = report["status"] == "ok"
    head = (f"<h1>Relay status <span class=\"badge {'ok' if overall else 'warn'}\">"
            f"{'all good' if overall else 'needs attention'}</span></h1>"
            f"<p class=\"muted\">{escape(report['generated_at'])} (UTC) · Graph API "
            f"{escape(report['graph_api_version'])} · <a href=\"/dashboard\">refresh</a> · "
            "<form method=\"post\" action=\"/dashboard\"><input type=\"hidden\" name=\"action\" value=\"logout\">"
            f"{auth.csrf_input(who)}<button type=\"submit\">sign out</button></form></p>")
    shops = "".join(_shop(s) for s in report["shops"]) or \
        "<section><p>No shop is configured: set the five &lt;SHOP&gt;_* variables.</p></section>"
    return _doc("Relay status", head + shops)


def _shop(s: dict[str, Any]) -> str:
    badge = "<span class=\"badge ok\">ok</span>" if s["ok"] else "<span class=\"badge warn\">attention</span>"
    warnings = "".join(f"<li>{escape(w)}</li>" for w in s["warnings"])
    parts = [f"<section><h2>{escape(s['shop'])} {badge}</h2>"]
    if warnings:
        parts.append(f"<ul class=\"w\">{warnings}</ul>")
    parts.append(_counts(s["counts"]))
    parts.append(_chart(s["daily"]))
    parts.append("<div class=\"scroll\"><table>" + "".join(
        f"<tr><th>{escape(label)}</th><td>{value}</td></tr>" for label, value in _facts(s)) + "</table></div>")
    parts.append(_coverage(s["match_keys"]))
    parts.append(bridge_table(s.get("bridge")))
    parts.append("</section>")
    return "".join(parts)


def _counts(counts: dict[str, dict[str, int]]) -> str:
    states = [k for k in counts["7d"] if counts["7d"][k] or k in ("sent", "retry", "failed")]
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td class=\"n\">{counts['24h'][k]}</td><td class=\"n\">{counts['7d'][k]}</td></tr>"
        for k in states)
    return ("<div class=\"scroll\"><table><tr><th>Orders placed, by state now</th><th class=\"n\">24 h</th>"
            f"<th class=\"n\">7 days</th></tr>{rows}</table></div>")


def _age(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _when(value: str | None) -> str:
    return escape(value) if value else "<span class=\"muted\">never</span>"


def _facts(s: dict[str, Any]) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = [("Last sent to Meta", _when(s["last_success_at"]))]
    for key, label in (("oldest_retrying", "Oldest retrying"), ("oldest_waiting", "Oldest waiting (unpaid)")):
        o = s[key]
        facts.append((label, "<span class=\"muted\">none</span>" if o is None else
                      f"order {o['order_id']}, placed {escape(o['placed_at'])} ({_age(int(o['age_seconds']))} ago)"))
    e = s["last_error"]
    if e is None:
        facts.append(("Last error", "<span class=\"muted\">none standing</span>"))
    else:
        code = "/".join(str(c) for c in (e["code"], e["subcode"]) if c is not None) or str(e["status"] or "-")
        facts.append(("Last error", f"<span class=\"bad\">{escape(code)}</span> {escape(e['message'] or '')} "
                                    f"<span class=\"muted\">(order {e['order_id']}, {escape(e['state'])}, "
                                    f"{escape(e['at'])})</span>"))
    if s["held"]:
        facts.append(("Sending held", f"<span class=\"bad\">until {escape(s['held']['until'])}</span> "
                                      f"{escape(s['held']['reason'] or '')}"))
    h = s["health"]
    if h is None:
        facts.append(("Meta token", "<span class=\"muted\">not checked yet</span>"))
        facts.append(("Lightspeed key", "<span class=\"muted\">not checked yet</span>"))
    else:
        t = h["meta_token"]
        cls = {"ok": "ok", "expiring": "warn"}.get(t["state"], "bad")
        expiry = "never expires" if t["never_expires"] else f"expires {t['expires_at']}" if t["expires_at"] else ""
        if t["issued_at"]:
            expiry += f", issued {t['issued_at'][:10]}"
        scopes = ", ".join(t["scopes"])
        facts.append(("Meta token", f"<span class=\"{cls}\">{escape(t['state'])}</span> {escape(expiry)}"
                                    + (f" <span class=\"muted\">({escape(scopes)})</span>" if scopes else "")
                                    + (f"<br>{escape(t['error'])}" if t["error"] else "")
                                    + f" <span class=\"muted\">checked {escape(h['checked_at'])}</span>"))
        ls = h["lightspeed"]
        facts.append(("Lightspeed key", f"<span class=\"{'ok' if ls['state'] == 'ok' else 'bad'}\">"
                                        f"{escape(ls['state'])}</span>"
                                        + (f" {escape(ls['error'])}" if ls["error"] else "")))
    served = h["served_version"] if h else None
    facts.append(("Graph API version", escape(s["graph_api_version"])
                  + (f" <span class=\"warn\">(Meta answers {escape(served)})</span>"
                     if served and served != s["graph_api_version"] else "")))
    b = s["backfill"]
    if b["cursor"] is None:
        facts.append(("Backfill cursor", "<span class=\"muted\">not started</span>"))
    else:
        facts.append(("Backfill cursor", f"{escape(b['cursor'])} ({_age(int(b['lag_seconds']))} behind)"
                      + (f" <span class=\"bad\">{escape(b['last_error'])}</span>" if b.get("last_error") else "")))
    if s["config_error"]:
        facts.append(("Configuration", f"<span class=\"bad\">{escape(s['config_error'])}</span>"))
    return facts


def bridge_table(b: dict[str, Any] | None) -> str:
    """The thank-you script's coverage (relay.web.status.bridge_figures)."""
    if not b or not b["paid"]:
        return "<p class=\"muted\">Thank-you script: no paid orders in the last 7 days.</p>"
    labels = (("bridged", "with a thank-you post"), ("with_fbc", "with fbc (click id)"),
              ("with_fbp", "with fbp (browser id)"), ("granted", "consent granted"),
              ("denied", "consent denied"), ("unknown", "consent unknown"))
    cells = "".join(f"<tr><td>{escape(label)}</td><td class=\"n\">{b[key]}</td>"
                    f"<td class=\"n\">{round(b['share'][key] * 100)}%</td></tr>" for key, label in labels)
    kept_out = ("<tr><td>posts kept out (repeats / rejected)</td>"
                f"<td class=\"n\">{b['repeats']} / {b['rejected']}</td><td></td></tr>")
    return (f"<div class=\"scroll\"><table><tr><th>Thank-you script (of {b['paid']} paid orders, 7 days)</th>"
            f"<th class=\"n\">orders</th><th class=\"n\">share</th></tr>{cells}{kept_out}</table></div>")


def _coverage(keys: dict[str, Any]) -> str:
    if not keys["events"]:
        return "<p class=\"muted\">Match keys: no events in the last 7 days.</p>"
    cells = "".join(f"<tr><td>{escape(k)}</td><td class=\"n\">{round(v * 100)}%</td></tr>"
                    for k, v in keys["coverage"].items())
    return (f"<div class=\"scroll\"><table><tr><th>Match key (share of {keys['events']} events, 7 days)</th>"
            f"<th class=\"n\">events</th></tr>{cells}</table></div>")


def _chart(daily: list[dict[str, Any]]) -> str:
    """Sent (green) and failed or expired (red) per day, as inline SVG bars with a text summary."""
    width, height, pad = 336, 90, 14
    slot = width / len(daily)
    top = max([1] + [max(d["sent"], d["failed"]) for d in daily])
    bars = []
    for i, d in enumerate(daily):
        for j, (key, colour) in enumerate((("sent", "#2b8a3e"), ("failed", "#c92a2a"))):
            h = (height - pad) * d[key] / top
            x = i * slot + 2 + j * (slot - 4) / 2
            bars.append(f"<rect x=\"{x:.1f}\" y=\"{height - pad - h:.1f}\" width=\"{(slot - 4) / 2:.1f}\" "
                        f"height=\"{h:.1f}\" fill=\"{colour}\"><title>{escape(d['date'])}: {d[key]} {key}</title>"
                        "</rect>")
    labels = (f"<text x=\"0\" y=\"{height - 2}\" font-size=\"10\">{escape(daily[0]['date'][5:])}</text>"
              f"<text x=\"{width}\" y=\"{height - 2}\" font-size=\"10\" text-anchor=\"end\">"
              f"{escape(daily[-1]['date'][5:])}</text>")
    sent = sum(d["sent"] for d in daily)
    failed = sum(d["failed"] for d in daily)
    summary = f"last {len(daily)} days: {sent} sent, {failed} failed or expired"
    return (f"<figure style=\"margin:.4rem 0\"><svg viewBox=\"0 0 {width} {height}\" width=\"100%\" "
            f"style=\"max-width:{width * 1.5:.0f}px\" role=\"img\" aria-label=\"{escape(summary)}\">"
            f"{''.join(bars)}{labels}</svg><figcaption class=\"muted\">{escape(summary.capitalize())} "
            "(<span class=\"ok\">■</span> sent, <span class=\"bad\">■</span> failed)</figcaption></figure>")
