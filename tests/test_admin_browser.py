"""Signing out in headless Chromium ends the session: the cookie the browser held, replayed, is refused;
and a page on another origin that posts the sign-out form to the relay changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import shop_env
from relay.web import auth

ADMIN = "admin-token-for-the-sign-out-test-5a1c"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


@pytest.fixture
def attacker(relay) -> Iterator[str]:
    """Another origin (localhost, not 127.0.0.1) serving a page that auto-posts sign-out to the relay."""
    target = f"{relay.url}/dashboard"

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            html = (f'<form id="f" method="post" action="{target}"><input name="action" value="logout"></form>'
                    '<script>document.getElementById("f").submit()</script>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def session_cookie(context) -> str:
    values = [c["value"] for c in context.cookies() if c["name"] == auth.COOKIE]
    assert values, "the browser keeps the session cookie (loopback counts as secure)"
    return f"{auth.COOKIE}={values[0]}"


def test_sign_out_in_the_browser_ends_the_session(relay, browser, attacker):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{relay.url}/dashboard")
    page.fill("#token", ADMIN)
    page.click("button[type=submit]")
    page.wait_for_selector("h1")
    cookie = session_cookie(context)
    assert httpx.get(f"{relay.url}/dashboard", headers={"Cookie": cookie}).status_code == 200

    other = context.new_page()                  # the operator opens another site, which posts sign-out
    with other.expect_response(lambda r: r.url.startswith(f"{relay.url}/dashboard")) as posted:
        other.goto(attacker)
    assert posted.value.status == 403           # Chromium says Sec-Fetch-Site: cross-site
    assert session_cookie(context) == cookie
    page.reload()
    assert page.locator("#token").count() == 0  # still signed in

    page.locator("form", has=page.locator("input[name=action][value=logout]")).locator("button").click()
    page.wait_for_selector("#token")            # back at the login form
    assert httpx.get(f"{relay.url}/dashboard", headers={"Cookie": cookie}).status_code == 401
    context.close()
