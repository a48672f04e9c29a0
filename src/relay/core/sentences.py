"""The sentences the relay says to a shop owner about a shop (warnings, fixes, sign-in refusals), in English
and Dutch, side by side so no sentence exists in one language only.

A ``Said`` is the English sentence itself (a ``str``: /status, the CLI and logs read it unchanged) that also
remembers its key and values, so the dashboard can say it in the reader's language (``in_language``) or as
HTML (``html``). Values are numbers, names, times, other ``Said`` (said in the same language) or ``Foreign``:
text that came from elsewhere (Meta's answer, Lightspeed's, a stored error) and is shown as it came, marked
as English in the HTML. Pure.
"""

from __future__ import annotations

import functools
import re
from html import escape
from typing import Any

LANGUAGES = ("en", "nl")

# key: (English, Dutch). The English is what /status and the CLI have always said.
SENTENCES: dict[str, tuple[str, str]] = {
    "how_to_set": (
        "change {var} where your deploy reads it (.env.local, and the RELAY_ENV GitHub secret for the workflow) "
        "and deploy again",
        "wijzig {var} waar je deploy hem leest (.env.local, en het GitHub-secret RELAY_ENV) en deploy opnieuw"),
    "shop_url_unset": (
        "{prefix}SHOP_URL is not set: website events go without event_source_url, which Meta asks for on website "
        "events; set it to the shop's https:// address",
        "{prefix}SHOP_URL is niet ingesteld: website-events gaan zonder event_source_url, waar Meta om vraagt; "
        "zet hem op het https://-adres van de shop"),
    "test_code_set": (
        "{prefix}META_TEST_EVENT_CODE is set: events are marked as test events; remove it once Events Manager "
        "shows them",
        "{prefix}META_TEST_EVENT_CODE is ingesteld: events gaan als test-events; haal hem weg zodra Events "
        "Manager ze toont"),
    "half_configured_one": (
        "shop '{shop}' is half-configured: {missing} is not set; add it to .env.local (and the RELAY_ENV GitHub "
        "secret), then deploy",
        "shop '{shop}' is maar half ingesteld: {missing} ontbreekt; voeg hem toe aan .env.local (en het "
        "GitHub-secret RELAY_ENV), en deploy dan"),
    "half_configured": (
        "shop '{shop}' is half-configured: {missing} are not set; add them to .env.local (and the RELAY_ENV "
        "GitHub secret), then deploy",
        "shop '{shop}' is maar half ingesteld: {missing} ontbreken; voeg ze toe aan .env.local (en het "
        "GitHub-secret RELAY_ENV), en deploy dan"),
    "config_problem": ("{problem}", "Instellingen: {problem}"),
    "held": (
        "sending is held until {until}: {reason}; events stay queued",
        "verzenden staat stil tot {until}: {reason}; de events blijven in de wachtrij"),
    "failed_24h": (
        "{n} event(s) of the last 24 h failed for good: see last_error and the delivery log (relay logs --shop "
        "{shop})",
        "{n} event(s) van de laatste 24 uur definitief mislukt: zie ‘Laatste fout’ onder Details en het "
        "bezorglogboek (relay logs --shop {shop})"),
    "unreadable": (
        "{n} order(s) Lightspeed listed in the last 7 days could not be read and were not sent (latest: order id "
        "{order}: {reason}); correct the order in Lightspeed and the next listing picks it up",
        "{n} order(s) uit Lightspeed van de laatste 7 dagen waren onleesbaar en zijn niet verzonden (laatste: "
        "order-id {order}: {reason}); verbeter de order in Lightspeed, dan neemt de volgende ronde hem mee"),
    "backfill_behind": (
        "the backfill is {hours} h behind (cursor {cursor})",
        "de backfill loopt {hours} uur achter (cursor {cursor})"),
    "backfill_behind_why": (
        "the backfill is {hours} h behind (cursor {cursor}): {error}",
        "de backfill loopt {hours} uur achter (cursor {cursor}): {error}"),
    "retrying_since": (
        "order {number} (id {order}) has been retrying since {placed_at}: see last_error",
        "order {number} (id {order}) wordt sinds {placed_at} opnieuw geprobeerd: zie ‘Laatste fout’ onder "
        "Details"),
    "token_unchecked": (
        "{var} has not been checked yet; the next cron run checks it",
        "{var} is nog niet gecontroleerd; de volgende cron-ronde doet dat"),
    "token_replaced": (
        "{var} was replaced after the last check; the next cron run checks the new token",
        "{var} is na de laatste controle vervangen; de volgende cron-ronde controleert het nieuwe token"),
    "token_invalid": (
        "Meta refused {var} ({error}); events are held and stay queued. Create a new system-user token with "
        "{scope} for pixel {pixel} and set it ({how}); sending resumes by itself",
        "Meta weigerde {var} ({error}); events staan stil en blijven in de wachtrij. Maak een nieuw "
        "systeemgebruiker-token met {scope} voor pixel {pixel} en zet het ({how}); daarna gaat verzenden "
        "vanzelf verder"),
    "token_expired": (
        "{var} expired on {day}; Meta will refuse events until it is replaced ({how}); they stay queued",
        "{var} is verlopen op {day}; Meta weigert events tot het vervangen is ({how}); ze blijven in de wachtrij"),
    "token_expiring": (
        "{var} expires on {day} (in {days} days); replace it before then ({how})",
        "{var} verloopt op {day} (over {days} dagen); vervang het vóór die tijd ({how})"),
    "token_rotate": (
        "{var} was issued on {day} ({days} days ago); tokens are rotated every {rotate} days: create a new one "
        "({how})",
        "{var} is uitgegeven op {day} ({days} dagen geleden); tokens worden elke {rotate} dagen vervangen: maak "
        "een nieuw ({how})"),
    "token_scope": (
        "{var} lacks the {scope} permission; if Meta refuses events (code 200 or 100/33), create the token again "
        "with {scope}",
        "{var} mist de permissie {scope}; weigert Meta events (code 200 of 100/33), maak het token dan opnieuw "
        "met {scope}"),
    "hold_token_check": (
        "token check: Meta refused the token ({error})",
        "controle van het token: Meta weigerde het token ({error})"),
    "token_check": ("token check: {error}", "controle van het token: {error}"),
    "lightspeed_check": ("Lightspeed check: {error}", "controle van Lightspeed: {error}"),
    "check_stale": (
        "last check was {day}: is the Worker's cron trigger running?",
        "laatste controle was op {day}: draait de cron-trigger van de Worker nog?"),
    "version_not_served": (
        "Meta answered with Graph API {served}, not META_API_VERSION {configured}: {configured} is no longer "
        "served; set META_API_VERSION to {served} or newer and deploy",
        "Meta antwoordde met Graph API {served}, niet met META_API_VERSION {configured}: {configured} wordt niet "
        "meer bediend; zet META_API_VERSION op {served} of nieuwer en deploy"),
    "version_ends": (
        "Graph API {configured} ends on {end}; set META_API_VERSION to a newer version and deploy",
        "Graph API {configured} stopt op {end}; zet META_API_VERSION op een nieuwere versie en deploy"),
    "version_ended": (
        "Graph API {configured} ended on {end}; set META_API_VERSION to a newer version and deploy",
        "Graph API {configured} is gestopt op {end}; zet META_API_VERSION op een nieuwere versie en deploy"),
    "quality_note": ("Meta's match quality is {note}", "De matchkwaliteit volgens Meta is {note}"),
    "quality_low": (
        "Meta rates Purchase match quality {score} of 10, below the target of {target}: send more match keys "
        "(email, phone, address) with each order",
        "Meta geeft de matchkwaliteit van Purchase een {score} van 10, onder het doel van {target}: stuur meer "
        "matchsleutels (e-mail, telefoon, adres) mee met elke order"),
    "quality_no_access": (
        "not available: grant the system user behind {var} access to pixel {pixel} (Business settings > System "
        "users > Assign assets > the dataset, with \"Use events dataset\" or \"Manage pixel\") and the ads_read "
        "permission, then create the token again",
        "niet beschikbaar: geef de systeemgebruiker achter {var} toegang tot pixel {pixel} "
        "(Bedrijfsinstellingen > Systeemgebruikers > Items toewijzen > de dataset, met ‘Evenementendataset "
        "gebruiken’ of ‘Pixel beheren’) en de permissie ads_read, en maak het token daarna opnieuw"),
    "quality_no_data": (
        "Meta has no Purchase figures for this pixel yet; they appear a day or two after events arrive",
        "Meta heeft nog geen Purchase-cijfers voor deze pixel; die verschijnen een à twee dagen nadat er events "
        "binnenkomen"),
    # what the ledger's SQL writes as last_error (relay.outbox), recognised back by STORED
    "stored_expired": (
        "older than Meta's 7-day event_time window; not sent",
        "ouder dan de 7 dagen die Meta aanneemt (event_time); niet verzonden"),
    "stored_cancelled": (
        "order cancelled while it was being sent; not sent again",
        "order geannuleerd terwijl hij werd verzonden; niet opnieuw verzonden"),
    # the sign-in page and the forms of the dashboard
    # the ADMIN_TOKEN strength rule (relay.core.admin_token), said by the Worker, relay doctor and the preflight
    "token_unset": ("ADMIN_TOKEN is not set; {fix}", "ADMIN_TOKEN is niet ingesteld; {fix}"),
    "token_weak": ("ADMIN_TOKEN is too easy to guess: {why}; {fix}",
                   "ADMIN_TOKEN is te makkelijk te raden: {why}; {fix}"),
    "token_short": ("it is {n} characters; it needs at least {min}",
                    "hij telt {n} tekens; er zijn er minstens {min} nodig"),
    "token_few": ("it uses only {n} different characters", "hij gebruikt maar {n} verschillende tekens"),
    "token_pattern": (
        "it is a repeated or sequential pattern (runs like `abcd` or `1234`, or a part repeated)",
        "hij is een herhaald of opeenvolgend patroon (reeksen als `abcd` of `1234`, of een stuk dat terugkomt)"),
    "token_fix": ("generate one with {cmd} (or {alt})", "maak er een met {cmd} (of {alt})"),
    "admin_closed": (
        "{problem}. Until then the status routes stay closed: {how} (for relay serve: ADMIN_TOKEN=... in .env.local)",
        "{problem}. Tot dan blijven de statuspagina's dicht: {how} (voor relay serve: ADMIN_TOKEN=... in "
        ".env.local)"),
    "wrong_token": (
        "That is not the ADMIN_TOKEN. Paste the value you set as the Worker secret.",
        "Dat is niet het ADMIN_TOKEN. Plak de waarde die je als Worker-secret hebt ingesteld."),
    "too_many": (
        "too many wrong ADMIN_TOKEN attempts came from your address; try again in {minutes} min with the token "
        "you set as the Worker secret",
        "te veel verkeerde pogingen met ADMIN_TOKEN vanaf jouw adres; probeer het over {minutes} min opnieuw met "
        "het token dat je als Worker-secret hebt ingesteld"),
    "cross_site": (
        "That form came from another site, so it was ignored. Use the page itself.",
        "Dat formulier kwam van een andere site en is genegeerd. Gebruik de pagina zelf."),
    "form_too_large": ("That form was too large.", "Dat formulier was te groot."),
    "form_unknown": ("That form is not one this page knows.", "Dat formulier kent deze pagina niet."),
    "form_stale": (
        "This page was open too long or came from elsewhere: sign in and press Replay again.",
        "Deze pagina stond te lang open of kwam van elders: meld je aan en druk opnieuw op Opnieuw."),
    "sign_out_stale": (
        "That sign-out form was out of date; reload the page and sign out again.",
        "Dat afmeldformulier was verouderd; laad de pagina opnieuw en meld je opnieuw af."),
}


STORED = ("stored_expired", "stored_cancelled", "hold_token_check")   # sentences of ours that D1 keeps as text


class Foreign(str):
    """Text from elsewhere (Meta's or Lightspeed's words, a stored error): shown as it came, marked English."""

    __slots__ = ()


class Said(str):
    """The English sentence ``key`` with ``values`` filled in, that can also be said in Dutch."""

    key: str
    values: dict[str, Any]

    def __new__(cls, key: str, **values: Any) -> Said:
        made = super().__new__(cls, SENTENCES[key][0].format(**values))
        made.key, made.values = key, values
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.key, self.values)

    def in_language(self, lang: str) -> str:
        """The sentence as plain text in ``lang`` (``en`` or ``nl``)."""
        return _template(self.key, lang).format(**{k: _plain(v, lang) for k, v in self.values.items()})

    def html(self, lang: str) -> str:
        """The sentence as escaped HTML in ``lang``; ``Foreign`` values inside ``<span lang="en">``."""
        return _html_template(self.key, lang).format(**{k: as_html(v, lang) for k, v in self.values.items()})


def recognise(text: str, *keys: str) -> str:
    """A stored English sentence of one of ``keys`` as the ``Said`` it was (its values ``Foreign``), else
    ``Foreign(text)``: what the relay wrote to the database can still be said in Dutch."""
    for key in keys:
        pattern, names = _pattern(key)
        found = pattern.fullmatch(text)
        if found:
            return Said(key, **{name: Foreign(value) for name, value in zip(names, found.groups(), strict=True)})
    return Foreign(text)


@functools.cache
def _pattern(key: str) -> tuple[re.Pattern[str], list[str]]:
    """The English sentence ``key`` as a pattern capturing its values, and their names: made once per key."""
    parts = re.split(r"\{(\w+)\}", SENTENCES[key][0])        # text, name, text, name, ..., text
    pattern = "".join(re.escape(part) if i % 2 == 0 else "(.*)" for i, part in enumerate(parts))
    return re.compile(pattern, re.DOTALL), parts[1::2]


def as_html(value: Any, lang: str) -> str:
    """Any text for a page in ``lang``: a ``Said`` in that language, ``Foreign`` marked, the rest escaped."""
    if isinstance(value, Said):
        return value.html(lang)
    if isinstance(value, Foreign):
        return f"<span lang=\"en\">{escape(value)}</span>" if lang != "en" else escape(value)
    return escape(str(value))


for _key in STORED:     # the patterns the dashboard needs, made at import (a Python Worker's snapshot keeps them)
    _pattern(_key)


def _rebuild(key: str, values: dict[str, Any]) -> Said:
    return Said(key, **values)


@functools.cache
def _html_template(key: str, lang: str) -> str:
    """The sentence ``key`` in ``lang``, escaped for HTML (its ``{value}`` fields untouched), once per key."""
    return escape(_template(key, lang), quote=False)


def _template(key: str, lang: str) -> str:
    return SENTENCES[key][LANGUAGES.index(lang) if lang in LANGUAGES else 0]


def _plain(value: Any, lang: str) -> Any:
    return value.in_language(lang) if isinstance(value, Said) else value
