"""/dashboard in headless Chromium: a realistic ledger at 1280 and 390 px, and the Replay button.

The screenshots go to .relay/screenshots/ (git-ignored), printed by the run, for people to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

import dashboard_scene
from conftest import shop_env

ADMIN = "admin-token-for-the-browser-tests-8d2f61c0"
SHOTS = Path(__file__).resolve().parents[1] / ".relay" / "screenshots"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return dashboard_scene.scene_env(meta, lightspeed, shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN))


@pytest.fixture
def scene(relay, meta, lightspeed, clock) -> dict[str, list[str]]:
    return dashboard_scene.fill(relay, meta, lightspeed, clock)


def signed_in(browser: Browser, url: str, width: int, lang: str = "en") -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": 900}, locale="nl-NL" if lang == "nl" else "en-US")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.goto(f"{url}/dashboard")
    page.fill("#token", ADMIN)
    page.click("button[type=submit]")
    page.wait_for_selector("h1")
    return page, problems


@pytest.mark.parametrize("width, lang", [(1280, "en"), (390, "en"), (390, "nl")])
def test_screenshots_of_a_realistic_ledger(relay, scene, browser, width, lang):
    page, problems = signed_in(browser, relay.url, width, lang)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"dashboard-{width}-{lang}.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")
    text = page.inner_text("body")
    assert "Refused to" not in " ".join(problems), problems     # the strict CSP blocked nothing on the page
    if lang == "en":
        assert "Paid orders in the last 7 days: 43, confirmed by Meta: 31 (72 %)" in text
        assert "Sending is held" in text and "put it in RETOERTJE_META_ACCESS_TOKEN" in text
        assert "Meta refused: " in text and "waiting for payment" in text and "too old for Meta" in text
        assert "Meta's score for Purchase: 6.8 of 10 (target 5.0)" in text
        assert "not available: grant the system user behind RETOERTJE_META_ACCESS_TOKEN" in text
        assert "Paid orders in the last 7 days: 20, confirmed by Meta: 12 (60 %)" in text
        assert "Times in the shop's time zone (UTC+01:00)" in text       # vik: learned from its orders
        assert "Times in the shop's time zone (UTC+02:00)" in text       # retoertje: RETOERTJE_UTC_OFFSET
    else:
        assert "Betaalde orders in de laatste 7 dagen: 43, bevestigd door Meta: 31 (72 %)" in text
        assert "Verzenden staat stil" in text and "wacht op betaling" in text
    replays = page.locator("button", has_text="Replay" if lang == "en" else "Opnieuw")
    assert replays.count() == len(scene["failed"]) + len(scene["retry"]), "a button where a replay is possible"
    wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"the page scrolls sideways by {wide} px at {width} px"
    page.close()


def test_replay_sends_a_failed_order_and_the_page_shows_it_sent(relay, scene, browser, meta):
    number = scene["failed"][0]
    meta.reject_event_ids.discard(f"purchase_{number}")           # the cause is fixed
    page, _ = signed_in(browser, relay.url, 390)
    before = len(meta.events())
    row = page.locator("ul.orders li", has=page.locator(".num", has_text=number))
    row.locator("button", has_text="Replay").click()
    page.wait_for_selector("p.notice")
    assert page.inner_text("p.notice") == f"Order {number}: sent to Meta again."
    found = page.locator("section", has_text=f"Search results for {number}")
    assert "sent to Meta" in found.inner_text()
    assert [e["event_id"] for e in meta.events()[before:]] == [f"purchase_{number}"]
    page.goto(f"{relay.url}/dashboard")
    assert page.locator("ul.orders li .num", has_text=number).count() == 0, "no longer needs attention"
    page.close()


def test_search_by_order_number(relay, scene, browser):
    number = scene["waiting"][0]
    page, _ = signed_in(browser, relay.url, 1280)
    page.fill("input[name=q]", number.lower())
    page.click("text=Find")
    found = page.locator("section", has_text=f"Search results for {number.lower()}")
    assert f"vik · {number}" in found.inner_text() and "waiting for payment" in found.inner_text()
    page.close()
