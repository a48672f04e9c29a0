"""How the dashboard speaks: English or Dutch, and times in the shop's own time zone.

The language is ``?lang=en|nl`` when given, else the first of the two the browser's
``Accept-Language`` prefers, else English. A shop's time zone is a fixed UTC offset: the
``<SHOP>_UTC_OFFSET`` variable (``+01:00``) when set, else the offset its orders' timestamps carry
(Lightspeed writes them in the shop's time; the backfill keeps the last one seen), else UTC. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from html import escape

LANGUAGES = ("en", "nl")
_OFFSET = re.compile(r"(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "nl": ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
}

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Relay status", "all_good": "all good", "attention": "needs attention", "refresh": "refresh",
        "sign_out": "sign out", "search": "Order number", "find": "Find", "ok": "ok", "needs": "attention",
        "headline": "Paid orders in the last 7 days: {n}, confirmed by Meta: {m} ({pct})",
        "headline_none": "Paid orders in the last 7 days: 0",
        "needs_title": "Orders that need attention", "none_need": "No order needs attention.",
        "more": "{n} more: relay orders --shop {shop}",
        "order": "Order", "state": "State", "last_attempt": "Last attempt", "never": "not tried yet",
        "replay": "Replay", "attempts": "{n} attempt(s)",
        "sent": "sent to Meta", "due": "queued", "sending": "being sent", "waiting": "waiting for payment",
        "skipped": "cancelled: not sent", "expired": "too old for Meta (7-day window): not sent",
        "failed": "Meta refused: {reason}", "retry": "Meta did not take it yet: {reason}; trying again {when}",
        "retry_soon": "queued again", "held_row": "held: Meta refused the shop's token",
        "held_title": "Sending is held", "held_since": "Meta refused the token; {n} order(s) wait in the queue.",
        "fix": "Fix", "held_fix": "replace {var}: create a new system-user token with ads_management for pixel "
                                  "{pixel}, put it in {var} (the GitHub secret or .env.local) and deploy. "
                                  "Sending resumes by itself.",
        "found": "Search results for {q}", "not_found": "No order {q} in the ledger of any shop.",
        "quality": "Match quality", "meta_score": "Meta's score for Purchase: {score} of 10 (target {target})",
        "meta_none": "Meta's score: not checked yet (daily, by the cron)",
        "key": "Match key", "relay_sends": "relay sends", "meta_sees": "Meta sees",
        "dedup": "Deduplication keys (server / browser)",
        "revenue": "Revenue confirmed by Meta", "confirmed": "confirmed", "net": "net",
        "cancelled_after": "cancelled after sending",
        "not_tracked": "cancellations after sending are not tracked yet", "days7": "7 days", "days30": "30 days",
        "no_revenue": "nothing confirmed yet", "profit": "profit (net_revenue)",
        "details": "Details", "times_in": "Times in the shop's time zone ({zone})",
        "replayed": "Order {q}: sent to Meta again.", "requeued": "Order {q}: queued again; the cron sends it.",
        "refused": "Order {q} was not replayed: {reason}",
        "why_unknown": "it is not in the ledger (the backfill lists it from Lightspeed)",
        "why_cancelled": "it was cancelled, and cancelled orders are never sent",
        "why_outside_window": "it is older than Meta's 7-day window", "why_waiting": "it is not paid yet",
        "why_sending": "it is being sent right now", "why_held": "sending is held until the token is replaced",
        "no_shop": "No shop is configured: set the five <SHOP>_* variables.",
        "reason": "Reason", "st_retry": "retrying", "st_failed": "failed", "st_expired": "expired",
        # the sign-in page
        "sign_in_title": "Relay status: sign in", "token_label": "Admin token (the {code} secret)",
        "sign_in": "Sign in", "scripts": "Scripts can send {header} to {dashboard} or {status} instead.",
        # the details
        "last_sent": "Last sent to Meta", "oldest_retrying": "Oldest retrying",
        "oldest_waiting": "Oldest waiting (unpaid)", "none": "none", "never_sent": "never",
        "placed": "order {number} (id {id}), placed {at} ({age} ago)",
        "last_error": "Last error", "none_standing": "none standing",
        "error_of": "order {number} (id {id}), {state}, {at}",
        "sending_held": "Sending held", "until": "until {at}", "meta_token": "Meta token",
        "lightspeed_key": "Lightspeed key", "not_checked": "not checked yet", "never_expires": "never expires",
        "expires": "expires {at}", "issued": "issued {day}", "checked": "checked {at}",
        "graph_version": "Graph API version", "meta_answers": "Meta answers {v}", "backfill": "Backfill cursor",
        "not_started": "not started", "behind": "{cursor} ({age} behind)", "configuration": "Configuration",
        "min": "{n} min", "hours": "{n} h", "days": "{n} days",
        "token_ok": "ok", "token_expiring": "expiring", "token_invalid": "invalid", "token_unknown": "unknown",
        "ls_ok": "ok", "ls_failed": "failed", "ls_unknown": "unknown",
        "quality_state_no_data": "no data yet", "quality_state_unknown": "unknown",
        "quality_state_no_access": "no access",
        "quality_state_ok": "ok",
        # the thank-you script table
        "bridge_none": "Thank-you script: no paid orders in the last 7 days.",
        "bridge_head": "Thank-you script (of {n} paid orders, 7 days)", "orders": "orders", "share": "share",
        "bridged": "with a thank-you post", "with_fbc": "with {fbc} (click id)", "with_fbp": "with {fbp} (browser id)",
        "granted": "consent granted", "denied": "consent denied", "unknown": "consent unknown",
        "kept_out": "posts kept out (repeats / not bound to the order's browser / after the send)",
        # the chart
        "chart": "last {n} days: {sent} sent, {failed} failed or expired",
        "chart_caption": "Last {n} days: {sent} sent, {failed} failed or expired",
        "sent_bar": "sent", "failed_bar": "failed",
        # match keys in words, the code beside them
        "k_em": "email", "k_ph": "phone", "k_fn": "first name", "k_ln": "last name", "k_db": "date of birth",
        "k_ge": "gender", "k_ct": "city", "k_st": "state or province", "k_zp": "postcode", "k_country": "country",
        "k_external_id": "customer id", "k_client_ip_address": "IP address", "k_client_user_agent": "browser",
        "k_fbc": "click id", "k_fbp": "browser id",
    },
    "nl": {
        "title": "Relay-status", "all_good": "alles goed", "attention": "aandacht nodig", "refresh": "vernieuwen",
        "sign_out": "afmelden", "search": "Ordernummer", "find": "Zoeken", "ok": "ok", "needs": "aandacht",
        "headline": "Betaalde orders in de laatste 7 dagen: {n}, bevestigd door Meta: {m} ({pct})",
        "headline_none": "Betaalde orders in de laatste 7 dagen: 0",
        "needs_title": "Orders die aandacht nodig hebben", "none_need": "Geen order heeft aandacht nodig.",
        "more": "nog {n}: relay orders --shop {shop}",
        "order": "Order", "state": "Status", "last_attempt": "Laatste poging", "never": "nog niet geprobeerd",
        "replay": "Opnieuw", "attempts": "{n} poging(en)",
        "sent": "naar Meta verzonden", "due": "in de wachtrij", "sending": "wordt verzonden",
        "waiting": "wacht op betaling", "skipped": "geannuleerd: niet verzonden",
        "expired": "te oud voor Meta (7 dagen): niet verzonden",
        "failed": "Meta weigerde: {reason}", "retry": "Meta nam hem nog niet aan: {reason}; nieuwe poging {when}",
        "retry_soon": "opnieuw in de wachtrij", "held_row": "vastgehouden: Meta weigerde het token van de shop",
        "held_title": "Verzenden staat stil", "held_since": "Meta weigerde het token; {n} order(s) wachten.",
        "fix": "Oplossing", "held_fix": "vervang {var}: maak een nieuw systeemgebruiker-token met ads_management "
                                        "voor pixel {pixel}, zet het in {var} (het GitHub-secret of .env.local) "
                                        "en deploy. Daarna gaat verzenden vanzelf verder.",
        "found": "Zoekresultaten voor {q}", "not_found": "Order {q} staat bij geen enkele shop in het grootboek.",
        "quality": "Matchkwaliteit", "meta_score": "Score van Meta voor Purchase: {score} van 10 (doel {target})",
        "meta_none": "Score van Meta: nog niet opgehaald (dagelijks, door de cron)",
        "key": "Matchsleutel", "relay_sends": "relay stuurt", "meta_sees": "Meta ziet",
        "dedup": "Deduplicatiesleutels (server / browser)",
        "revenue": "Omzet bevestigd door Meta", "confirmed": "bevestigd", "net": "netto",
        "cancelled_after": "geannuleerd na verzenden",
        "not_tracked": "annuleringen na verzenden worden nog niet bijgehouden", "days7": "7 dagen",
        "days30": "30 dagen", "no_revenue": "nog niets bevestigd", "profit": "winst (net_revenue)",
        "details": "Details", "times_in": "Tijden in de tijdzone van de shop ({zone})",
        "replayed": "Order {q}: opnieuw naar Meta verzonden.",
        "requeued": "Order {q}: opnieuw in de wachtrij; de cron verstuurt hem.",
        "refused": "Order {q} is niet opnieuw verzonden: {reason}",
        "why_unknown": "hij staat niet in het grootboek (de backfill haalt hem bij Lightspeed op)",
        "why_cancelled": "hij is geannuleerd, en geannuleerde orders gaan nooit naar Meta",
        "why_outside_window": "hij is ouder dan de 7 dagen die Meta aanneemt", "why_waiting": "hij is nog niet betaald",
        "why_sending": "hij wordt nu verzonden", "why_held": "verzenden staat stil tot het token is vervangen",
        "no_shop": "Er is geen shop ingesteld: zet de vijf <SHOP>_*-variabelen.",
        "reason": "Reden", "st_retry": "nieuwe poging", "st_failed": "mislukt", "st_expired": "verlopen",
        "sign_in_title": "Relay-status: aanmelden", "token_label": "Beheertoken (het secret {code})",
        "sign_in": "Aanmelden",
        "scripts": "Scripts kunnen in plaats daarvan {header} meesturen naar {dashboard} of {status}.",
        "last_sent": "Laatst naar Meta verzonden", "oldest_retrying": "Oudste nieuwe poging",
        "oldest_waiting": "Oudste wachtende (onbetaald)", "none": "geen", "never_sent": "nog nooit",
        "placed": "order {number} (id {id}), geplaatst {at} ({age} geleden)",
        "last_error": "Laatste fout", "none_standing": "geen openstaande",
        "error_of": "order {number} (id {id}), {state}, {at}",
        "sending_held": "Verzenden stil", "until": "tot {at}", "meta_token": "Meta-token",
        "lightspeed_key": "Lightspeed-sleutel", "not_checked": "nog niet gecontroleerd",
        "never_expires": "verloopt nooit",
        "expires": "verloopt {at}", "issued": "uitgegeven {day}", "checked": "gecontroleerd {at}",
        "graph_version": "Graph API-versie", "meta_answers": "Meta antwoordt met {v}", "backfill": "Backfill-cursor",
        "not_started": "nog niet begonnen", "behind": "{cursor} ({age} achter)", "configuration": "Instellingen",
        "min": "{n} min", "hours": "{n} uur", "days": "{n} dagen",
        "token_ok": "geldig", "token_expiring": "verloopt binnenkort", "token_invalid": "geweigerd",
        "token_unknown": "onbekend", "ls_ok": "werkt", "ls_failed": "geweigerd", "ls_unknown": "onbekend",
        "quality_state_no_data": "nog geen gegevens", "quality_state_unknown": "onbekend",
        "quality_state_no_access": "geen toegang", "quality_state_ok": "ok",
        "bridge_none": "Bedankpagina-script: geen betaalde orders in de laatste 7 dagen.",
        "bridge_head": "Bedankpagina-script (van {n} betaalde orders, 7 dagen)", "orders": "orders", "share": "aandeel",
        "bridged": "met een melding van de bedankpagina", "with_fbc": "met {fbc} (klik-id)",
        "with_fbp": "met {fbp} (browser-id)", "granted": "toestemming gegeven", "denied": "toestemming geweigerd",
        "unknown": "toestemming onbekend",
        "kept_out": "meldingen buiten de events gehouden (herhaald / niet van de browser van de order / "
                    "na het verzenden)",
        "chart": "laatste {n} dagen: {sent} verzonden, {failed} mislukt of verlopen",
        "chart_caption": "Laatste {n} dagen: {sent} verzonden, {failed} mislukt of verlopen",
        "sent_bar": "verzonden", "failed_bar": "mislukt",
        "k_em": "e-mail", "k_ph": "telefoon", "k_fn": "voornaam", "k_ln": "achternaam", "k_db": "geboortedatum",
        "k_ge": "geslacht", "k_ct": "stad", "k_st": "provincie", "k_zp": "postcode", "k_country": "land",
        "k_external_id": "klantnummer", "k_client_ip_address": "IP-adres", "k_client_user_agent": "browser",
        "k_fbc": "klik-id", "k_fbp": "browser-id",
    },
}


# Each word escaped for HTML, once at import (the Worker's snapshot), not once per cell of every page. Escaping is
# character by character, so ``HTML_WORDS[lang][k].format(n=3)`` is ``escape(WORDS[lang][k].format(n=3))`` for
# values that need no escaping (numbers, our own timestamps).
HTML_WORDS: dict[str, dict[str, str]] = {lang: {k: escape(v) for k, v in words.items()}
                                         for lang, words in WORDS.items()}


def language(query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    asked = (query.get("lang") or "").strip().lower()
    if asked in LANGUAGES:
        return asked
    ranked = []
    for i, part in enumerate((headers.get("accept-language") or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()[:2]))
    return next((tag for _, _, tag in sorted(ranked) if tag in LANGUAGES), "en")


def parse_offset(text: str | None) -> int | None:
    """``+01:00``, ``-0530``, ``UTC+2`` → seconds east of UTC; ``None`` when not an offset."""
    found = _OFFSET.fullmatch((text or "").strip())
    if not found:
        return None
    hours, minutes = int(found.group(2)), int(found.group(3) or 0)
    if hours > 14 or minutes >= 60:
        return None
    return (1 if found.group(1) == "+" else -1) * (hours * 3600 + minutes * 60)


def zone_name(offset: int) -> str:
    sign = "+" if offset >= 0 else "-"
    return f"UTC{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"


def when(ts: int | None, offset: int, lang: str, now: int) -> str:
    """``09:41`` today, ``30 Nov 21:47`` this year, ``18 Nov 2025 21:47`` before, in the shop's time."""
    return Times(offset, lang, now)(ts)


class Times:
    """``when`` for many times of one shop: its zone and today worked out once, not once per order row.

    What it writes is digits, ``:``, spaces and the fixed month names above: plain text that HTML escaping
    leaves as it is.
    """

    def __init__(self, offset: int, lang: str, now: int) -> None:
        self.zone = timezone(timedelta(seconds=offset))
        today = datetime.fromtimestamp(now, UTC).astimezone(self.zone)
        self.today, self.year, self.months = today.date(), today.year, _MONTHS[lang]

    def __call__(self, ts: int | None) -> str:
        if ts is None:
            return ""
        at = datetime.fromtimestamp(int(ts), UTC).astimezone(self.zone)
        clock = f"{at.hour:02d}:{at.minute:02d}"        # strftime("%H:%M"), at a fraction of its CPU
        if at.date() == self.today:
            return clock
        day = f"{at.day} {self.months[at.month - 1]}"
        return f"{day} {clock}" if at.year == self.year else f"{day} {at.year} {clock}"


def percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)} %" if whole else "-"
