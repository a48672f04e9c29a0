"""The dashboard's details: the status facts (token, key, backfill, last error), the thank-you script's
coverage and the 14-day chart, in the page's language (relay.web.wording).

The figures are /status's, so the page and the JSON read the same; an order is named by its number, the
id beside it. Text that came from Meta, Lightspeed or a stored error is shown as it came, marked English.
"""

from __future__ import annotations

from html import escape
from typing import Any

from relay.core.sentences import STORED, Foreign, Said, as_html, recognise
from relay.web import wording


def _age(seconds: int, w: dict[str, str]) -> str:
    if seconds < 3600:
        return w["min"].format(n=seconds // 60)
    if seconds < 2 * 86400:
        return w["hours"].format(n=seconds // 3600)
    return w["days"].format(n=seconds // 86400)


def _muted(text: str) -> str:
    return f"<span class=\"muted\">{escape(text)}</span>"


def _foreign(text: str | None, lang: str) -> str:
    return as_html(Foreign(text or ""), lang) if text else ""


def _order(o: dict[str, Any]) -> str:
    return str(o.get("order_number") or "?")


def facts(s: dict[str, Any], lang: str = "en") -> list[tuple[str, str]]:
    """(label, HTML) rows of the Details table."""
    w = wording.WORDS[lang]
    last_sent = escape(s["last_success_at"]) if s["last_success_at"] else _muted(w["never_sent"])
    facts: list[tuple[str, str]] = [(w["last_sent"], last_sent)]
    for key in ("oldest_retrying", "oldest_waiting"):
        o = s[key]
        facts.append((w[key], _muted(w["none"]) if o is None else escape(w["placed"].format(
            number=_order(o), id=o["order_id"], at=o["placed_at"], age=_age(int(o["age_seconds"]), w)))))
    e = s["last_error"]
    if e is None:
        facts.append((w["last_error"], _muted(w["none_standing"])))
    else:
        code = "/".join(str(c) for c in (e["code"], e["subcode"]) if c is not None) or str(e["status"] or "-")
        state = w.get("st_" + e["state"], e["state"])
        message = as_html(recognise(e["message"] or "", *STORED), lang)
        facts.append((w["last_error"], f"<span class=\"bad\">{escape(code)}</span> {message} "
                                       + _muted("(" + w["error_of"].format(number=_order(e), id=e["order_id"],
                                                                           state=state, at=e["at"]) + ")")))
    if s["held"]:
        reason = as_html(recognise(s["held"]["reason"] or "", *STORED), lang)
        facts.append((w["sending_held"], f"<span class=\"bad\">{escape(w['until'].format(at=s['held']['until']))}"
                                         f"</span> {reason}"))
    h = s["health"]
    if h is None:
        facts.append((w["meta_token"], _muted(w["not_checked"])))
        facts.append((w["lightspeed_key"], _muted(w["not_checked"])))
    else:
        facts += _health(h, w, lang)
    served = h["served_version"] if h else None
    facts.append((w["graph_version"], escape(s["graph_api_version"])
                  + (f" <span class=\"warn\">({escape(w['meta_answers'].format(v=served))})</span>"
                     if served and served != s["graph_api_version"] else "")))
    b = s["backfill"]
    if b["cursor"] is None:
        facts.append((w["backfill"], _muted(w["not_started"])))
    else:
        behind = w["behind"].format(cursor=b["cursor"], age=_age(int(b["lag_seconds"]), w))
        error = f" <span class=\"bad\">{_foreign(b['last_error'], lang)}</span>" if b.get("last_error") else ""
        facts.append((w["backfill"], escape(behind) + error))
    if s["config_error"]:
        problem = s["config_error"]
        said = as_html(problem if isinstance(problem, Said) else Foreign(problem), lang)
        facts.append((w["configuration"], f"<span class=\"bad\">{said}</span>"))
    return facts


def _health(h: dict[str, Any], w: dict[str, str], lang: str) -> list[tuple[str, str]]:
    t = h["meta_token"]
    cls = {"ok": "ok", "expiring": "warn"}.get(t["state"], "bad")
    parts = [w["never_expires"]] if t["never_expires"] else [w["expires"].format(at=t["expires_at"])] \
        if t["expires_at"] else []
    if t["issued_at"]:
        parts.append(w["issued"].format(day=t["issued_at"][:10]))
    scopes = ", ".join(t["scopes"])
    token = (f"<span class=\"{cls}\">{escape(w.get('token_' + t['state'], t['state']))}</span> "
             f"{escape(', '.join(parts))}"
             + (f" <span class=\"muted\">({escape(scopes)})</span>" if scopes else "")
             + (f"<br>{_foreign(t['error'], lang)}" if t["error"] else "")
             + f" {_muted(w['checked'].format(at=h['checked_at']))}")
    ls = h["lightspeed"]
    key = (f"<span class=\"{'ok' if ls['state'] == 'ok' else 'bad'}\">"
           f"{escape(w.get('ls_' + ls['state'], ls['state']))}</span>"
           + (f" {_foreign(ls['error'], lang)}" if ls["error"] else ""))
    return [(w["meta_token"], token), (w["lightspeed_key"], key)]


def bridge_table(b: dict[str, Any] | None, lang: str = "en") -> str:
    """The thank-you script's coverage (relay.web.status.bridge_figures)."""
    w = wording.WORDS[lang]
    if not b or not b["paid"]:
        return f"<p class=\"muted\">{escape(w['bridge_none'])}</p>"
    labels = {"bridged": w["bridged"], "with_fbc": w["with_fbc"].format(fbc="fbc"),
              "with_fbp": w["with_fbp"].format(fbp="fbp"), "granted": w["granted"], "denied": w["denied"],
              "unknown": w["unknown"]}
    cells = "".join(f"<tr><td>{escape(label)}</td><td class=\"n\">{b[key]}</td>"
                    f"<td class=\"n\">{round(b['share'][key] * 100)}%</td></tr>" for key, label in labels.items())
    kept_out = (f"<tr><td>{escape(w['kept_out'])}</td>"
                f"<td class=\"n\">{b['repeats']} / {b['rejected']} / {b.get('after', 0)}</td><td></td></tr>")
    return (f"<div class=\"scroll\"><table><tr><th>{escape(w['bridge_head'].format(n=b['paid']))}</th>"
            f"<th class=\"n\">{w['orders']}</th><th class=\"n\">{w['share']}</th></tr>{cells}{kept_out}</table></div>")


def chart(daily: list[dict[str, Any]], lang: str = "en") -> str:
    """Sent (green) and failed or expired (red) per day, as inline SVG bars with a text summary."""
    w = wording.WORDS[lang]
    width, height, pad = 336, 90, 14
    slot = width / len(daily)
    top = max([1] + [max(d["sent"], d["failed"]) for d in daily])
    bars = []
    for i, d in enumerate(daily):
        for j, (key, colour) in enumerate((("sent", "#2b8a3e"), ("failed", "#c92a2a"))):
            h = (height - pad) * d[key] / top
            x = i * slot + 2 + j * (slot - 4) / 2
            bars.append(f"<rect x=\"{x:.1f}\" y=\"{height - pad - h:.1f}\" width=\"{(slot - 4) / 2:.1f}\" "
                        f"height=\"{h:.1f}\" fill=\"{colour}\"><title>{escape(d['date'])}: {d[key]} "
                        f"{w[key + '_bar']}</title></rect>")
    labels = (f"<text x=\"0\" y=\"{height - 2}\" font-size=\"10\">{escape(daily[0]['date'][5:])}</text>"
              f"<text x=\"{width}\" y=\"{height - 2}\" font-size=\"10\" text-anchor=\"end\">"
              f"{escape(daily[-1]['date'][5:])}</text>")
    figures = {"n": len(daily), "sent": sum(d["sent"] for d in daily), "failed": sum(d["failed"] for d in daily)}
    return (f"<figure class=\"chart\"><svg viewBox=\"0 0 {width} {height}\" "
            f"role=\"img\" aria-label=\"{escape(w['chart'].format(**figures))}\">"
            f"{''.join(bars)}{labels}</svg><figcaption class=\"muted\">{escape(w['chart_caption'].format(**figures))} "
            f"(<span class=\"ok\">■</span> {w['sent_bar']}, <span class=\"bad\">■</span> {w['failed_bar']})"
            "</figcaption></figure>")
