"""Screenshots of the Dutch dashboard and sign-in page in headless Chromium, for people to look at.

    uv run python bench/screenshots.py [OUT_DIR]        # default: .relay/screenshots

Builds the realistic ledger of tests/dashboard_scene.py (a week of orders in every state, a held shop)
plus a shop missing variables, one without SHOP_URL, an unreadable order and a backfill behind, serves
it on loopback as ``relay serve`` does, and photographs at 1280 and 390 px wide: the sign-in page, the
sign-in page after a wrong token, and the dashboard (full page, Details opened). Prints each file and
whether the page scrolls sideways. Needs Debian's ``chromium`` (``apt-get install -y chromium``).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

import dashboard_scene  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, KEY, SECRET, Clock, shop_env  # noqa: E402
from relay_tools.fakes import FakeLightspeed, FakeMeta  # noqa: E402
from relay_tools.server import LocalRelay, ServerThread  # noqa: E402

ADMIN = "admin-token-for-the-screenshots-0b7e"


def shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    print(f"{path}  ({'scrolls sideways by ' + str(wide) + ' px' if wide > 0 else 'no sideways scroll'})")
    if wide > 0:                        # name the elements that stick out, innermost first
        print(page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 0.5))
            .slice(0, 8).map(e => e.tagName + ' ' + Math.round(e.getBoundingClientRect().right) + ' '
                             + (e.textContent || '').slice(0, 60))"""))


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".relay" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    if not shutil.which(CHROMIUM):
        sys.exit("no Chromium: apt-get install -y chromium")
    work = Path(tempfile.mkdtemp(prefix="relay-screens-"))
    clock = Clock()
    try:
        with FakeMeta() as meta, FakeLightspeed(KEY, SECRET) as lightspeed:
            env = dashboard_scene.troubled_env(meta, lightspeed, shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN))
            local = LocalRelay(env, work / "relay.db", work / "logs", clock=clock, rand=lambda: 0.5,
                               sweep_interval=None)
            server = ServerThread(local).start()
            try:
                dashboard_scene.fill(server, meta, lightspeed, clock, troubles=True)
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    for width in (1280, 390):
                        page = browser.new_page(viewport={"width": width, "height": 900}, locale="nl-NL")
                        page.goto(f"{server.url}/dashboard")
                        shoot(page, out / f"signin-nl-{width}.png")
                        page.fill("#token", "not-the-admin-token")
                        page.click("button[type=submit]")
                        page.wait_for_selector("h1")
                        shoot(page, out / f"signin-error-nl-{width}.png")
                        page.fill("#token", ADMIN)
                        page.click("button[type=submit]")
                        page.wait_for_selector("h2")
                        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
                        shoot(page, out / f"dashboard-nl-{width}.png")
                        page.close()
                    browser.close()
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
