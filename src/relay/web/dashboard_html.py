"""The dashboard's HTML: per shop, did Meta get the orders, which did it not, why, and what to do.

One server-rendered page, no script, no external asset, every value escaped; the one stylesheet is
inline and allowed by its hash in the page's Content-Security-Policy (``STYLE_HASH``), so no inline
``style=`` attribute appears anywhere. Laid out as wrapping lists rather than wide tables, so it reads
at 390 px without sideways scrolling. Words come from relay.web.wording, in English or Dutch.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any
from urllib.parse import urlencode

from relay.core.sentences import STORED, Foreign, as_html, recognise
from relay.jobs import replay
from relay.web import auth, wording
from relay.web.dashboard_facts import bridge_table, chart, facts

STYLE = """
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:62rem;padding:.8rem;color:#1b1f24;background:#f6f7f9;overflow-wrap:break-word}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.15rem;margin:0 0 .4rem}h3{font-size:1rem;margin:.9rem 0 .3rem}
section{background:#fff;border:1px solid #dcdfe4;border-radius:8px;padding:.8rem;margin:.9rem 0}
.ok{color:#176f2c}.bad{color:#a4161a}.warn{color:#8a5a00}.muted{color:#5f6670;font-size:.9em}
.badge{display:inline-block;border-radius:1rem;padding:0 .6rem;font-size:.8em;border:1px solid currentColor;
vertical-align:middle}.head{font-size:1.05rem;font-weight:600;margin:.2rem 0 .5rem}
ul.w{margin:.3rem 0;padding-left:1.2rem;color:#8a5a00}
.hold{border:2px solid #a4161a;border-radius:6px;padding:.5rem .7rem;margin:.5rem 0;background:#fff5f5}
.hold p{margin:.2rem 0}.hold{overflow-wrap:anywhere}p.money{margin:.2rem 0}
.notice{border-left:4px solid #176f2c;background:#f0faf2;padding:.5rem .7rem}
.notice.bad{border-color:#a4161a;background:#fff5f5}
ul.orders{list-style:none;margin:0;padding:0;overflow-wrap:anywhere}
ul.orders li{border-top:1px solid #eceef1;padding:.45rem 0;
display:flex;flex-wrap:wrap;gap:.2rem .8rem;align-items:center}ul.orders .num{font-weight:600;min-width:6.5rem}
ul.orders .what{flex:1 1 16rem}ul.orders .at{color:#5f6670;font-size:.9em}
table{border-collapse:collapse;width:100%;margin:.3rem 0}td,th{text-align:left;padding:.2rem .4rem;
border-bottom:1px solid #eceef1;vertical-align:top}td.n,th.n{text-align:right}
form{display:inline;margin:0}input[type=search],input[type=password]{padding:.45rem;font-size:1rem;
width:12rem;max-width:100%}button{padding:.35rem .9rem;font-size:.95rem;cursor:pointer}
.bar{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}.chart{margin:.4rem 0;max-width:504px}
svg{width:100%;height:auto}details summary{cursor:pointer;margin:.6rem 0 .2rem}code{font-size:.9em}
details td{overflow-wrap:anywhere}@media (max-width:32rem){details th,details td{display:block;border:0;padding:.1rem 0}
details th{padding-top:.5rem;border-top:1px solid #eceef1}}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()


def doc(title: str, body: str, lang: str = "en") -> str:
    return (f"<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"robots\" content=\"noindex\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")


def login_page(message: str | None = None, lang: str = "en", chosen: bool = False) -> str:
    """The sign-in form; ``message`` (a ``Said`` says itself in ``lang``) above it. ``chosen``: the reader
    picked the language with ``?lang=``, so the form carries it on."""
    w = wording.WORDS[lang]
    note = f"<p class=\"bad\" role=\"alert\">{as_html(message, lang)}</p>" if message else ""
    keep = f"<input type=\"hidden\" name=\"lang\" value=\"{lang}\">" if chosen else ""
    scripts = escape(w["scripts"]).format(header="<code>Authorization: Bearer &lt;ADMIN_TOKEN&gt;</code>",
                                          dashboard="<code>/dashboard</code>", status="<code>/status</code>")
    return doc(w["sign_in_title"], (
        f"<h1>{w['title']}</h1>" + note +
        f"<section><form method=\"post\" action=\"/dashboard\">{keep}"
        f"<p><label for=\"token\">{escape(w['token_label']).format(code='<code>ADMIN_TOKEN</code>')}</label></p>"
        "<p><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required></p>"
        f"<p><button type=\"submit\">{w['sign_in']}</button></p></form>"
        f"<p class=\"muted\">{scripts}</p></section>"), lang)


class Page:
    """Everything one render needs; ``offsets`` are each shop's UTC offset in seconds."""

    def __init__(self, report: dict[str, Any], reads: Any, who: auth.Access, lang: str, offsets: dict[str, int],
                 pixels: dict[str, str], now: int, query: str = "", notice: tuple[str, str] | None = None) -> None:
        self.report, self.reads, self.who, self.lang, self.pixels = report, reads, who, lang, pixels
        self.w, self.h = wording.WORDS[lang], wording.HTML_WORDS[lang]
        self.offsets, self.now, self.query, self.notice = offsets, now, query, notice
        self.csrf = auth.csrf_input(who)
        # what every Replay button ends with: the same for every order row of the page
        self.replay_tail = (f"<input type=\"hidden\" name=\"lang\" value=\"{lang}\">{self.csrf}"
                            f"<button type=\"submit\">{self.w['replay']}</button></form>")
        self.times: dict[str, wording.Times] = {}

    def at(self, shop: str, ts: Any) -> str:
        """``ts`` in the shop's time (wording.when): plain text that needs no escaping."""
        times = self.times.get(shop)
        if times is None:
            times = self.times[shop] = wording.Times(self.offsets.get(shop, 0), self.lang, self.now)
        return times(None if ts is None else int(ts))

    def render(self) -> str:
        w, r = self.w, self.report
        overall = r["status"] == "ok"
        lang_link = "nl" if self.lang == "en" else "en"
        head = (f"<h1>{w['title']} <span class=\"badge {'ok' if overall else 'warn'}\">"
                f"{w['all_good'] if overall else w['attention']}</span></h1>"
                "<div class=\"bar\"><form method=\"get\" action=\"/dashboard\">"
                f"<input type=\"hidden\" name=\"lang\" value=\"{self.lang}\">"
                f"<input type=\"search\" name=\"q\" value=\"{escape(self.query)}\" placeholder=\"{w['search']}\" "
                f"aria-label=\"{w['search']}\"> <button type=\"submit\">{w['find']}</button></form>"
                f"<a href=\"/dashboard?lang={self.lang}\">{w['refresh']}</a>"
                f"<a href=\"/dashboard?lang={lang_link}\" hreflang=\"{lang_link}\">{lang_link.upper()}</a>"
                "<form method=\"post\" action=\"/dashboard\"><input type=\"hidden\" name=\"action\" value=\"logout\">"
                f"{self.csrf}<button type=\"submit\">{w['sign_out']}</button></form></div>")
        parts = [head]
        if self.notice:
            kind, text = self.notice
            parts.append(f"<p class=\"notice {kind}\" role=\"status\">{escape(text)}</p>")
        if self.query:
            parts.append(self.search())
        parts += [self.shop(s) for s in r["shops"]] or \
            [f"<section><p>{self.h['no_shop']}</p></section>"]
        parts.append(f"<p class=\"muted\">{escape(r['generated_at'])} UTC · Graph API "
                     f"{escape(r['graph_api_version'])}</p>")
        return doc(w["title"], "".join(parts), self.lang)

    def search(self) -> str:
        rows = self.reads.found
        if not rows:
            return f"<section><p>{escape(self.w['not_found'].format(q=self.query))}</p></section>"
        held = {s["shop"] for s in self.report["shops"] if s["held"]}
        items = "".join(self.order(str(row["shop"]), row, str(row["shop"]) in held, with_shop=True) for row in rows)
        return (f"<section><h2>{escape(self.w['found'].format(q=self.query))}</h2>"
                f"<ul class=\"orders\">{items}</ul></section>")

    def shop(self, s: dict[str, Any]) -> str:
        w, name = self.w, s["shop"]
        badge = f"<span class=\"badge {'ok' if s['ok'] else 'warn'}\">{w['ok'] if s['ok'] else w['needs']}</span>"
        shown = escape(name)
        parts = [f"<section id=\"shop-{shown}\"><h2>{shown} {badge}</h2>", self.headline(s)]
        if s["held"]:
            parts.append(self.hold(s))
        warnings = [x for x in s["warnings"] if not _shown_elsewhere(x, s)]
        if warnings:
            parts.append("<ul class=\"w\">" + "".join(f"<li>{as_html(x, self.lang)}</li>" for x in warnings)
                         + "</ul>")
        parts.append(self.attention(s))
        parts.append(self.quality(s))
        parts.append(bridge_table(s.get("bridge"), self.lang))
        parts.append(self.revenue(s.get("revenue")))
        parts.append(chart(s["daily"], self.lang))
        zone = wording.zone_name(self.offsets.get(name, 0))
        parts.append(f"<details><summary>{w['details']}</summary><table>"
                     + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts(s, self.lang))
                     + f"</table></details><p class=\"muted\">{self.h['times_in'].format(zone=zone)}</p>")
        parts.append("</section>")
        return "".join(parts)

    def headline(self, s: dict[str, Any]) -> str:
        week = s["counts"]["7d"]
        paid = sum(n for state, n in week.items() if state not in ("waiting", "skipped"))
        sent = week.get("sent", 0)
        text = self.h["headline"].format(n=paid, m=sent, pct=wording.percent(sent, paid)) if paid \
            else self.h["headline_none"]               # numbers and "12 %": nothing to escape in them
        cls = "ok" if paid and sent == paid else "warn" if paid else "muted"
        return f"<p class=\"head {cls}\">{text}</p>"

    def hold(self, s: dict[str, Any]) -> str:
        w, name = self.w, s["shop"]
        prefix = name.upper() + "_"
        queued = sum(s["counts"]["7d"].get(k, 0) for k in ("due", "retry", "sending"))
        fix = w["held_fix"].format(var=f"{prefix}META_ACCESS_TOKEN", pixel=self.pixels.get(name, "?"))
        reason = s["held"].get("reason") or ""
        return (f"<div class=\"hold\" role=\"alert\"><p><b>{w['held_title']}</b> · "
                f"{escape(w['held_since'].format(n=queued))}</p>"
                + (f"<p class=\"muted\">{w['reason']}: {as_html(recognise(reason, *STORED), self.lang)}</p>"
                   if reason else "")
                + f"<p><b>{w['fix']}:</b> {escape(fix)}</p></div>")

    def attention(self, s: dict[str, Any]) -> str:
        w, name = self.w, s["shop"]
        rows = self.reads.attention.get(name, [])
        title = f"<h3>{w['needs_title']}</h3>"
        if not rows:
            return title + f"<p class=\"muted\">{w['none_need']}</p>"
        items = "".join(self.order(name, row, bool(s["held"])) for row in rows)   # ranked and capped in SQL
        total = self.reads.counts.get(name, len(rows))
        more = f"<p class=\"muted\">{escape(w['more'].format(n=total - len(rows), shop=name))}</p>" \
            if total > len(rows) else ""
        return f"{title}<ul class=\"orders\">{items}</ul>{more}"

    def order(self, shop: str, row: dict[str, Any], held: bool, with_shop: bool = False) -> str:
        h = self.h
        cls, text = self.state(shop, row, held)
        attempts = int(row["attempts"] or 0)
        last = f"{self.at(shop, row['updated_at'])} · {h['attempts'].format(n=attempts)}" if attempts else h["never"]
        label = f"{escape(shop)} · " if with_shop else ""
        number = escape(str(row["order_number"]))
        button = ""
        if not held and row["state"] in ("failed", "retry") and replay.refusal(row, self.now) is None:
            button = ("<form method=\"post\" action=\"/dashboard\"><input type=\"hidden\" name=\"action\" "
                      f"value=\"replay\"><input type=\"hidden\" name=\"shop\" value=\"{escape(shop)}\">"
                      f"<input type=\"hidden\" name=\"number\" value=\"{number}\">{self.replay_tail}")
        return (f"<li><span class=\"num\">{label}{number}</span>"
                f"<span class=\"what {cls}\">{text}</span><span class=\"at\">{last}</span>"
                f"{button}</li>")

    def state(self, shop: str, row: dict[str, Any], held: bool) -> tuple[str, str]:
        """The row's class and its state as HTML: our words, Meta's reason marked as Meta's."""
        h, state = self.h, str(row["state"])
        if held and state in ("due", "retry", "sending"):
            return "bad", h["held_row"]
        if state in ("failed", "retry"):
            code = "/".join(str(c) for c in (row["last_code"], row["last_subcode"]) if c is not None)
            said = (row["last_error"] or "").strip()[:200]
            reason = as_html(recognise(said, *STORED), self.lang) if said else \
                f"HTTP {row['last_status']}" if row["last_status"] else "?"
            reason = f"{reason} ({escape(code)})" if code else reason
            if state == "failed":
                return "bad", h["failed"].format(reason=reason)
            return "warn", h["retry"].format(reason=reason, when=self.at(shop, row["next_attempt_at"]))
        return _STATE_CLASS.get(state, "warn"), h[state] if state in h else escape(state)

    def quality(self, s: dict[str, Any]) -> str:
        w = self.w
        mq = s.get("meta_quality")
        mine = s["match_keys"]["coverage"]
        if mq is None:
            line = f"<p class=\"muted\">{w['meta_none']}</p>"
        elif mq["score"] is None:
            note = mq["note"] or w.get("quality_state_" + mq["state"], mq["state"])
            line = f"<p class=\"warn\">{as_html(note, self.lang)}</p>"
        else:
            cls = "ok" if mq["meets_target"] else "bad"
            score = w["meta_score"].format(score=f"{mq['score']:.1f}", target=f"{mq['target']:.1f}")
            line = (f"<p class=\"{cls}\">{escape(score)}"
                    f" <span class=\"muted\">({escape(mq['checked_at'][:10])})</span></p>")
        theirs = (mq or {}).get("match_keys") or {}
        keys = sorted(set(mine) | set(theirs), key=lambda k: (-(mine.get(k) or 0), k))
        names = _KEY_NAMES[self.lang]
        rows = "".join(f"<tr><td>{names.get(k) or _key_name(k, w)}</td><td class=\"n\">"
                       f"{'-' if (m := mine.get(k)) is None else f'{round(m * 100)} %'}</td><td class=\"n\">"
                       f"{'-' if (t := theirs.get(k)) is None else f'{round(t)} %'}</td></tr>" for k in keys)
        table = (f"<table><tr><th>{w['key']}</th><th class=\"n\">{w['relay_sends']}</th>"
                 f"<th class=\"n\">{w['meta_sees']}</th></tr>{rows}</table>") if keys else ""
        dedup = ""
        if mq and mq.get("dedup"):
            dedup = f"<p class=\"muted\">{w['dedup']}: " + ", ".join(
                f"{escape(d['key'])} {_pct(d['server'], 1)} / {_pct(d['browser'], 1)}" for d in mq["dedup"]) + "</p>"
        diagnostics = "".join(f"<li>{as_html(Foreign(d), self.lang)}</li>" for d in (mq or {}).get("diagnostics") or [])
        return (f"<h3>{w['quality']}</h3>{line}{table}{dedup}"
                + (f"<ul class=\"w\">{diagnostics}</ul>" if diagnostics else ""))

    def key_name(self, key: str) -> str:
        """A match key in words with Meta's code beside it, as HTML: ``stad (<code>ct</code>)``."""
        return _KEY_NAMES[self.lang].get(key) or _key_name(key, self.w)

    def revenue(self, money: dict[str, Any] | None) -> str:
        w = self.w
        if not money:
            return ""
        lines = []
        for window, label in (("7d", w["days7"]), ("30d", w["days30"])):
            for e in money.get(window) or []:
                cur = e["currency"] or ""
                lines.append(f"<p class=\"money\">{label}: <b>{_money(e['net'], cur, self.lang)}</b> {w['net']} = "
                             f"{_money(e['confirmed'], cur, self.lang)} {w['confirmed']} "
                             f"<span class=\"muted\">({e['confirmed_orders']})</span> − "
                             f"{_money(e['cancelled'], cur, self.lang)} {w['cancelled_after']} "
                             f"<span class=\"muted\">({e['cancelled_orders']})</span>{self.profit(money, e)}</p>")
        if not lines:
            return f"<h3>{w['revenue']}</h3><p class=\"muted\">{w['no_revenue']}</p>"
        note = "" if money.get("cancellations_tracked") else f"<p class=\"muted\">{w['not_tracked']}</p>"
        return f"<h3>{w['revenue']}</h3>" + "".join(lines) + note

    def profit(self, money: dict[str, Any], e: dict[str, Any]) -> str:
        """The profit sent as net_revenue, beside the value, for a shop with <SHOP>_NET_REVENUE=1."""
        if not money.get("profit_tracked") or not e.get("profit_orders"):
            return ""
        return (f" · {_money(e['profit'], e['currency'] or '', self.lang)} {self.w['profit']} "
                f"<span class=\"muted\">({e['profit_orders']})</span>")


_STATE_CLASS = {"sent": "ok", "waiting": "muted", "skipped": "muted", "expired": "bad"}


def _key_name(key: str, w: dict[str, str]) -> str:
    word = w.get("k_" + key)
    return f"{escape(word)} (<code>{escape(key)}</code>)" if word else f"<code>{escape(key)}</code>"


# Meta's match keys in words, as HTML, per language: made once at import, not once per row of every page.
_KEY_NAMES = {lang: {k[2:]: _key_name(k[2:], w) for k in w if k.startswith("k_")} for lang, w in wording.WORDS.items()}


def _shown_elsewhere(warning: str, s: dict[str, Any]) -> bool:
    """The hold box and the match-quality section already say these, with their fix."""
    key = getattr(warning, "key", "")
    if s["held"] and key in ("held", "token_invalid"):
        return True
    return key == "quality_note"


def _pct(value: float | None, scale: int) -> str:
    return "-" if value is None else f"{round(value * scale)} %"


def _money(amount: float, currency: str, lang: str) -> str:
    symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency + " " if currency else "")
    text = f"{amount:,.2f}"
    if lang == "nl":
        text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{symbol}{text}"


def query_string(**values: str) -> str:
    return urlencode({k: v for k, v in values.items() if v})
