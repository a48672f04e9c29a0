"""The dashboard's details: the status facts (token, key, backfill, last error), the thank-you script's
coverage and the 14-day chart, in the page's language (relay.web.wording).

The figures are /status's, so the page and the JSON read the same; an order is named by its number, the
id beside it. Text that came from Meta, Lightspeed or a stored error is shown as it came, marked English.
"""

from __future__ import annotations

import functools
import re
from html import escape
from typing import Any

from relay.core.sentences import STORED, Foreign, Said, as_html, recognise
from relay.web import wording
from relay.web.status import CHART_DAYS


def _age(seconds: int, w: dict[str, str]) -> str:
    if seconds < 3600:
        return w["min"].format(n=seconds // 60)
    if seconds < 2 * 86400:
        return w["hours"].format(n=seconds // 3600)
    return w["days"].format(n=seconds // 86400)


def _muted(text: str) -> str:
    return f"<span class=\"muted\">{escape(text)}</span>"


def _muted_word(h: dict[str, str], key: str) -> str:
    return f"<span class=\"muted\">{h[key]}</span>"


def _foreign(text: str | None, lang: str) -> str:
    return as_html(Foreign(text or ""), lang) if text else ""


def _order(o: dict[str, Any]) -> str:
    return str(o.get("order_number") or "?")


def facts(s: dict[str, Any], lang: str = "en") -> list[tuple[str, str]]:
    """(label, value) rows of the Details table, both HTML."""
    w, h = wording.WORDS[lang], wording.HTML_WORDS[lang]
    last_sent = escape(s["last_success_at"]) if s["last_success_at"] else _muted_word(h, "never_sent")
    facts: list[tuple[str, str]] = [(h["last_sent"], last_sent)]
    for key in ("oldest_retrying", "oldest_waiting"):
        o = s[key]
        facts.append((h[key], _muted_word(h, "none") if o is None else escape(w["placed"].format(
            number=_order(o), id=o["order_id"], at=o["placed_at"], age=_age(int(o["age_seconds"]), w)))))
    e = s["last_error"]
    if e is None:
        facts.append((h["last_error"], _muted_word(h, "none_standing")))
    else:
        code = "/".join(str(c) for c in (e["code"], e["subcode"]) if c is not None) or str(e["status"] or "-")
        state = w.get("st_" + e["state"], e["state"])
        message = as_html(recognise(e["message"] or "", *STORED), lang)
        facts.append((h["last_error"], f"<span class=\"bad\">{escape(code)}</span> {message} "
                                       + _muted("(" + w["error_of"].format(number=_order(e), id=e["order_id"],
                                                                           state=state, at=e["at"]) + ")")))
    if s["held"]:
        reason = as_html(recognise(s["held"]["reason"] or "", *STORED), lang)
        facts.append((h["sending_held"], f"<span class=\"bad\">{escape(w['until'].format(at=s['held']['until']))}"
                                         f"</span> {reason}"))
    health = s["health"]
    if health is None:
        facts.append((h["meta_token"], _muted_word(h, "not_checked")))
        facts.append((h["lightspeed_key"], _muted_word(h, "not_checked")))
    else:
        facts += _health(health, w, h, lang)
    served = health["served_version"] if health else None
    facts.append((h["graph_version"], escape(s["graph_api_version"])
                  + (f" <span class=\"warn\">({escape(w['meta_answers'].format(v=served))})</span>"
                     if served and served != s["graph_api_version"] else "")))
    b = s["backfill"]
    if b["cursor"] is None:
        facts.append((h["backfill"], _muted_word(h, "not_started")))
    else:
        behind = w["behind"].format(cursor=b["cursor"], age=_age(int(b["lag_seconds"]), w))
        error = f" <span class=\"bad\">{_foreign(b['last_error'], lang)}</span>" if b.get("last_error") else ""
        facts.append((h["backfill"], escape(behind) + error))
    if s["config_error"]:
        problem = s["config_error"]
        said = as_html(problem if isinstance(problem, Said) else Foreign(problem), lang)
        facts.append((h["configuration"], f"<span class=\"bad\">{said}</span>"))
    return facts


def _health(h: dict[str, Any], w: dict[str, str], words: dict[str, str], lang: str) -> list[tuple[str, str]]:
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
    return [(words["meta_token"], token), (words["lightspeed_key"], key)]


def _bridge_rows(w: dict[str, str]) -> tuple[tuple[str, str], ...]:
    labels = {"bridged": w["bridged"], "with_fbc": w["with_fbc"].format(fbc="fbc"),
              "with_fbp": w["with_fbp"].format(fbp="fbp"), "granted": w["granted"], "denied": w["denied"],
              "unknown": w["unknown"]}
    return tuple((key, f"<tr><td>{escape(label)}</td><td class=\"n\">") for key, label in labels.items())


_BRIDGE_ROWS = {lang: _bridge_rows(w) for lang, w in wording.WORDS.items()}     # the row heads, once at import


def bridge_table(b: dict[str, Any] | None, lang: str = "en") -> str:
    """The thank-you script's coverage (relay.web.status.bridge_figures: counts are whole numbers)."""
    w, h = wording.WORDS[lang], wording.HTML_WORDS[lang]
    if not b or not b["paid"]:
        return f"<p class=\"muted\">{h['bridge_none']}</p>"
    share = b["share"]
    cells = "".join(f"{head}{b[key]}</td><td class=\"n\">{round(share[key] * 100)}%</td></tr>"
                    for key, head in _BRIDGE_ROWS[lang])
    kept_out = (f"<tr><td>{h['kept_out']}</td>"
                f"<td class=\"n\">{b['repeats']} / {b['rejected']} / {b.get('after', 0)}</td><td></td></tr>")
    return (f"<div class=\"scroll\"><table><tr><th>{h['bridge_head'].format(n=int(b['paid']))}</th>"
            f"<th class=\"n\">{w['orders']}</th><th class=\"n\">{w['share']}</th></tr>{cells}{kept_out}</table></div>")


CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 336, 90, 14
_BASE = CHART_HEIGHT - CHART_PAD          # the bars' baseline, and the height of the tallest
_UNSAFE = re.compile("[&<>\"']")           # what html.escape changes


@functools.cache
def _columns(days: int) -> tuple[tuple[tuple[str, str], ...], str, str]:
    """Each day's two bars up to their height (x, width; the same for every chart of ``days`` days), and an
    empty bar's height: formatting floats is dear in the Worker's Python, so each chart formats only its
    non-empty bars' heights."""
    slot = CHART_WIDTH / days
    width = f"{(slot - 4) / 2:.1f}"
    def x(i: int, j: int) -> str:
        return f"<rect x=\"{i * slot + 2 + j * (slot - 4) / 2:.1f}\" y=\""
    xs = tuple((x(i, 0), x(i, 1)) for i in range(days))
    return xs, width, f"{_BASE - 0.0:.1f}\" width=\"{width}\" height=\"{0.0:.1f}"


_columns(CHART_DAYS)     # made at import: a Python Worker's snapshot keeps it


def chart(daily: list[dict[str, Any]], lang: str = "en") -> str:
    """Sent (green) and failed or expired (red) per day, as inline SVG bars with a text summary."""
    w, h = wording.WORDS[lang], wording.HTML_WORDS[lang]
    xs, width, empty = _columns(len(daily))
    top = max([1] + [max(d["sent"], d["failed"]) for d in daily])
    dates = [d["date"] for d in daily]
    if _UNSAFE.search("".join(dates)):            # our own YYYY-MM-DD: never, but escaped if it were
        dates = [escape(date) for date in dates]
    sent_tail, failed_tail = f" {w['sent_bar']}</title></rect>", f" {w['failed_bar']}</title></rect>"
    bars = []
    sent = failed = 0
    for (x_sent, x_failed), date, d in zip(xs, dates, daily, strict=True):
        for x, n, colour, tail in ((x_sent, d["sent"], "#2b8a3e", sent_tail), (x_failed, d["failed"], "#c92a2a",
                                                                                failed_tail)):
            if n:
                tall = _BASE * n / top
                size = f"{_BASE - tall:.1f}\" width=\"{width}\" height=\"{tall:.1f}"
            else:
                size = empty
            bars.append(f"{x}{size}\" fill=\"{colour}\"><title>{date}: {n}{tail}")
        sent += d["sent"]
        failed += d["failed"]
    labels = (f"<text x=\"0\" y=\"{CHART_HEIGHT - 2}\" font-size=\"10\">{escape(daily[0]['date'][5:])}</text>"
              f"<text x=\"{CHART_WIDTH}\" y=\"{CHART_HEIGHT - 2}\" font-size=\"10\" text-anchor=\"end\">"
              f"{escape(daily[-1]['date'][5:])}</text>")
    n = len(daily)
    return (f"<figure class=\"chart\"><svg viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" "
            f"role=\"img\" aria-label=\"{h['chart'].format(n=n, sent=sent, failed=failed)}\">"
            f"{''.join(bars)}{labels}</svg><figcaption class=\"muted\">"
            f"{h['chart_caption'].format(n=n, sent=sent, failed=failed)} "
            f"(<span class=\"ok\">■</span> {w['sent_bar']}, <span class=\"bad\">■</span> {w['failed_bar']})"
            "</figcaption></figure>")
