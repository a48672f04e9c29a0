"""Under ``nl`` the dashboard and the sign-in page are Dutch from top to bottom.

Two checks. The tables: every word of the page (relay.web.wording) and every sentence the relay says about a
shop (relay.core.sentences: warnings, fixes, sign-in refusals) has a Dutch text, and that text holds no
English word. The pages: every state they can show (an empty ledger, a week of orders in every state, a
held shop, a shop missing a variable, unreadable orders, a backfill behind, search results, Replay
notices, the sign-in page with each refusal) is fetched in Dutch and its visible text (text nodes,
placeholders, labels for screen readers) is scanned for English words. The English words are those of the
English tables that the Dutch tables do not use, plus common English words; text that came from Meta,
Lightspeed or a stored error is shown as it came and marked ``lang="en"``, so the scan leaves it out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

import dashboard_scene
from conftest import shop_env
from relay.core.sentences import SENTENCES, STORED, Foreign, Said, recognise
from relay.web import wording

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "admin-token-for-the-dutch-pages-5c1e97"
NL = {"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"}

# Words both languages use: names, codes, loanwords that are Dutch too, and words spelled alike.
SHARED = set("""
meta lightspeed graph api purchase relay cron backfill pixel token tokens events event worker github secrets
manager deploy shop status details order orders ok browser postcode min id ip http https utc secret code
in is over of was score cursor script scripts website site server trigger open half test dataset mail fbc fbp
""".split())
COMMON_ENGLISH = set("""
the and to for with not yet by from at on this that none never any all no or be are it its your you has have
been was were will would should could than then there their which what when where who why how into only
also sent failed waiting queued paid cancelled refused last days day hours orders order confirmed sign
""".split())
COMMAND = re.compile(r"relay [a-z-]+(?: --[a-z-]+(?: [^\s)]+)?)*|`[^`]*`|<[A-Z]+>_\*|--[a-z-]+")


def words(text: str) -> set[str]:
    """Lower-case words of ``text``, leaving out commands, placeholders and tokens with digits, ``_`` or ``.``."""
    text = re.sub(r"\{[^}]*\}", " ", COMMAND.sub(" ", text))
    tokens = re.split(r"[\s,;:()\[\]'\"‘’“”/=<>·…!?+*&%€$£-]+", text)
    return {t.lower().strip(".") for t in tokens
            if t and not re.search(r"[0-9_]", t) and not re.search(r"\w\.\w", t) and len(t.strip(".")) > 1}


def english_words() -> set[str]:
    en = set().union(*(words(t) for t in wording.WORDS["en"].values()), *(words(e) for e, _ in SENTENCES.values()))
    return (en | COMMON_ENGLISH) - SHARED


ENGLISH = english_words()


def english_in(text: str) -> set[str]:
    return words(text) & ENGLISH


# --- the tables ---------------------------------------------------------------------------------------------

SAME_IN_DUTCH = {"ok", "order", "details", "orders", "min", "k_zp", "k_client_user_agent", "quality_state_ok",
                 "error_of", "token_ok"}


def test_every_word_of_the_page_has_a_dutch_text_without_english():
    en, nl = wording.WORDS["en"], wording.WORDS["nl"]
    assert set(en) == set(nl), f"only in one language: {set(en) ^ set(nl)}"
    for key, text in nl.items():
        assert not english_in(text), f"{key}: {text!r} holds English: {english_in(text)}"
        if en[key] == text:
            assert key in SAME_IN_DUTCH or not words(text), f"{key} is not translated: {text!r}"


def test_every_sentence_about_a_shop_has_a_dutch_text_without_english():
    for key, (english, dutch) in SENTENCES.items():
        assert dutch and dutch != english, f"{key} is not translated"
        assert not english_in(dutch), f"{key}: {dutch!r} holds English: {english_in(dutch)}"
        placeholders = set(re.findall(r"\{(\w+)", english))
        assert placeholders == set(re.findall(r"\{(\w+)", dutch)), f"{key}: the two texts fill other values"


def test_a_sentence_is_english_for_status_and_dutch_on_the_page():
    said = Said("failed_24h", n=2, shop="vik")
    assert said == "2 event(s) of the last 24 h failed for good: see last_error and the delivery log (relay logs " \
                   "--shop vik)"
    assert said.in_language("nl").startswith("2 event(s) van de laatste 24 uur definitief mislukt")
    nested = Said("token_expiring", var="VIK_META_ACCESS_TOKEN", day="2026-01-02", days=3,
                  how=Said("how_to_set", var="VIK_META_ACCESS_TOKEN"))
    assert "wijzig VIK_META_ACCESS_TOKEN waar je deploy hem leest" in nested.html("nl")
    assert "change VIK_META_ACCESS_TOKEN where your deploy reads it" in nested


def test_a_stored_english_sentence_is_said_again_in_dutch():
    stored = str(Said("hold_token_check", error="Error validating access token"))       # as the database holds it
    again = recognise(stored, "hold_token_check")
    assert again.html("nl") == 'controle van het token: Meta weigerde het token (<span lang="en">Error validating ' \
                               'access token</span>)'
    assert isinstance(recognise("Meta said no", "hold_token_check"), Foreign)


def test_the_sentences_the_ledger_stores_are_the_ones_the_page_recognises():
    sql = "".join(Path(ROOT / "src/relay/outbox" / name).read_text() for name in
                  ("ledger.py", "cron_ledger.py", "cancellations.py"))
    stored = set(re.findall(r"last_error = '((?:[^']|'')*)'", sql))
    assert stored, "the ledger writes no fixed last_error any more: update sentences.STORED"
    for text in stored:
        assert isinstance(recognise(text.replace("''", "'"), *STORED), Said), f"not recognised: {text}"


def test_the_scanner_finds_english_in_a_dutch_sentence():
    assert english_in("Laatste 14 dagen: 3 verzonden") == set()
    assert english_in("Last 14 days: 3 sent, 0 failed or expired") >= {"last", "days", "sent", "failed"}
    assert english_in("Thank-you script (of 4 paid orders, 7 days)") >= {"thank", "paid"}
    assert english_in("zie last_error en relay logs --shop vik") == set()


# --- the pages ----------------------------------------------------------------------------------------------


class Visible(HTMLParser):
    """The text a reader sees or hears, without ``<style>``, ``<code>`` (commands, variables and Meta's codes
    are the same in every language) and elements marked ``lang="en"``."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.parts: list[str] = []

    def quiet(self) -> bool:
        return any(q for _, q in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        quiet = tag in ("style", "code") or (tag != "html" and found.get("lang") == "en")
        if tag not in ("input", "meta", "br", "rect", "link"):
            self.stack.append((tag, quiet))
        if not self.quiet() and not quiet:
            self.parts += [found[a] or "" for a in ("placeholder", "aria-label", "title", "alt") if found.get(a)]

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.quiet():
            self.parts.append(data)


def visible(html: str) -> str:
    parser = Visible()
    parser.feed(html)
    return "\n".join(p.strip() for p in parser.parts if p.strip())


def assert_dutch(html: str, where: str) -> None:
    assert '<html lang="nl">' in html, where
    text = visible(html)
    left = {w: [line for line in text.splitlines() if w in words(line)][:2] for w in english_in(text)}
    assert not left, f"{where}: English left on the Dutch page: {left}"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return dashboard_scene.troubled_env(meta, lightspeed, shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN))


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}", **NL}


def page(relay, query: str = "", headers: dict[str, str] | None = None) -> str:
    answer = httpx.get(f"{relay.url}/dashboard{query}", headers=headers or bearer())
    return answer.text


def test_an_empty_ledger_reads_in_dutch(relay):
    html = page(relay)
    assert "Betaalde orders in de laatste 7 dagen: 0" in html
    assert "nog niet gecontroleerd" in html
    assert_dutch(html, "empty ledger")


def test_a_week_of_orders_in_every_state_reads_in_dutch(relay, meta, lightspeed, clock):
    numbers = dashboard_scene.fill(relay, meta, lightspeed, clock, troubles=True)
    html = page(relay)
    for dutch in ("Bedankpagina-script", "Laatste 14 dagen", "Laatst naar Meta verzonden", "Verzenden staat stil",
                  "wacht op betaling", "Meta weigerde", "e-mail (<code>em</code>)", "stad (<code>ct</code>)",
                  "onleesbaar", "de backfill loopt 9 uur achter", "PROEF_SHOP_URL is niet ingesteld",
                  "PROEF_META_TEST_EVENT_CODE is ingesteld", "Instellingen: shop 'kapot' is maar half ingesteld",
                  "niet beschikbaar: geef de systeemgebruiker", "Oudste wachtende (onbetaald)</th><td>order ORD"):
        assert dutch in html, dutch
    assert_dutch(html, "a week of orders")
    assert_dutch(page(relay, "?lang=nl", {"Authorization": f"Bearer {ADMIN}"}), "?lang=nl")
    failed = numbers["failed"][0]
    assert_dutch(page(relay, f"?q={failed}"), "search found")
    assert_dutch(page(relay, "?q=ORD99999"), "search not found")
    for done, why in (("replayed", ""), ("requeued", "held"), ("refused", "cancelled"), ("refused", "unknown"),
                      ("refused", "outside_window"), ("refused", "waiting"), ("refused", "sending")):
        html = page(relay, f"?q={failed}&done={done}&why={why}")
        assert 'class="notice' in html
        assert_dutch(html, f"notice {done} {why}")


def test_the_sign_in_page_and_its_refusals_read_in_dutch(relay):
    url = f"{relay.url}/dashboard"
    html = httpx.get(url, headers=NL).text
    assert "Aanmelden" in html and "Beheertoken" in html
    assert_dutch(html, "sign-in page")
    assert 'name="lang" value="nl"' in httpx.get(f"{url}?lang=nl").text
    assert_dutch(httpx.get(f"{url}?lang=nl").text, "sign-in page ?lang=nl")
    wrong = httpx.post(url, data={"token": "not-the-admin-token-at-all", "lang": "nl"})
    assert wrong.status_code == 401 and "Dat is niet het ADMIN_TOKEN" in wrong.text
    assert_dutch(wrong.text, "wrong token")
    refusals = [
        httpx.post(url, data={"token": "x"}, headers={**NL, "Origin": "https://elsewhere.example"}),
        httpx.post(url, data={"action": "what"}, headers=NL),
        httpx.post(url, data={"action": "replay", "shop": "vik", "number": "ORD1"}, headers=NL),
        httpx.post(url, data={"action": "logout"}, headers=NL),
        httpx.post(url, content=b"token=" + b"x" * 5000, headers={**NL, "Content-Type":
                                                                   "application/x-www-form-urlencoded"}),
    ]
    assert [r.status_code for r in refusals] == [403, 400, 403, 303, 413]
    for answer in refusals:
        if answer.text:
            assert_dutch(answer.text, f"refusal {answer.status_code}")
    answers = [httpx.post(url, data={"token": "still-not-the-token", "lang": "nl"}) for _ in range(8)]
    assert answers[-1].status_code == 429
    assert "te veel verkeerde pogingen" in answers[-1].text
    assert_dutch(answers[-1].text, "too many attempts")


@pytest.mark.parametrize("admin, says", [
    (None, "ADMIN_TOKEN is niet ingesteld"),
    ("short", "ADMIN_TOKEN is te makkelijk te raden: hij telt 5 tekens; er zijn er minstens 32 nodig"),
    ("ab" * 20, "ADMIN_TOKEN is te makkelijk te raden: hij gebruikt maar 2 verschillende tekens"),
    ("abcdefghijklmnopqrstuvwxyz0123456789", "ADMIN_TOKEN is te makkelijk te raden: hij is een herhaald of "
                                             "opeenvolgend patroon"),
])
def test_a_closed_sign_in_page_says_why_in_dutch(relay, admin, says):
    relay.relay.env.pop("ADMIN_TOKEN")
    if admin:
        relay.relay.env["ADMIN_TOKEN"] = admin
    html = httpx.get(f"{relay.url}/dashboard?lang=nl").text
    assert says in html
    assert_dutch(html, f"ADMIN_TOKEN {admin}")


def test_a_signed_in_browser_keeps_the_language_it_chose(relay):
    answer = httpx.post(f"{relay.url}/dashboard", data={"token": ADMIN, "lang": "nl"})
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard?lang=nl"
