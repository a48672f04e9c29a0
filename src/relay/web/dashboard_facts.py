"""The dashboard's details: the status facts (token, key, backfill, last error), the thank-you script's
coverage and the 14-day chart.

Moved unchanged from the first dashboard, so /status's figures still read the same on the page.
"""

from __future__ import annotations

from html import escape
from typing import Any


def _age(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _when(value: str | None) -> str:
    return escape(value) if value else "<span class=\"muted\">never</span>"


def facts(s: dict[str, Any]) -> list[tuple[str, str]]:
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


def chart(daily: list[dict[str, Any]]) -> str:
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
    return (f"<figure class=\"chart\"><svg viewBox=\"0 0 {width} {height}\" "
            f"role=\"img\" aria-label=\"{escape(summary)}\">"
            f"{''.join(bars)}{labels}</svg><figcaption class=\"muted\">{escape(summary.capitalize())} "
            "(<span class=\"ok\">■</span> sent, <span class=\"bad\">■</span> failed)</figcaption></figure>")
