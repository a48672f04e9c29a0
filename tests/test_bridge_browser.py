"""The thank-you script itself, in Debian's headless Chromium, against a local page built like a
Lightspeed thank-you page, posting to ``relay serve`` on another origin: one correct body per order,
and no cookie at all when the shopper declined."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from conftest import PAID_HEADERS, PAID_RAW, order_body, shop_env, signed_headers
from relay_tools.bridge_cli import snippet
from relay_tools.server import LocalRelay, ServerThread

FBP = "fb.1.1763498500123.1116446470"
FBC = "fb.1.1763498400456.IwAR2F4-AbCdEf_123"

# Consent managers as the shop's page would carry them: Cookiebot's global, and an IAB TCF v2 CMP.
COOKIEBOT = "<script>window.Cookiebot = {hasResponse: true, consent: {marketing: %s}};</script>"
TCF = """<script>window.__tcfapi = function (command, version, callback) {
  if (command === "addEventListener") callback({eventStatus: "tcloaded", gdprApplies: true, listenerId: 7,
    purpose: {consents: {1: %s}}}, true);
};</script>"""


def page(head: str, tag: str) -> str:
    """A Lightspeed-like order confirmation page: the shop's layout, the order summary, the tracking box."""
    return (f"<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\"><title>Bedankt voor je bestelling"
            f"</title>{head}</head><body><div class=\"wrapper\"><h1>Bedankt!</h1><p>Je bestelling ORD04217 is "
            f"ontvangen.</p><table class=\"order\"><tr><td>Totaal</td><td>€ 140,40</td></tr></table></div>"
            f"{tag}</body></html>")


class Shop:
    """The shop's storefront on loopback: ``/checkout/thankyou/`` (HTML) and its ``?format=json``, and any
    other path as a product page carrying the every-page tag."""

    def __init__(self) -> None:
        self.html = ""
        self.landing = ""
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("?format=json"):
                    body = json.dumps({"order": {"information": {"number": "ORD04217", "price_incl": "140.40"}}})
                    kind = "application/json"
                else:
                    thank_you = self.path.startswith("/checkout/thankyou/")
                    body, kind = shop.html if thank_you else shop.landing, "text/html; charset=utf-8"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.origin = f"http://localhost:{self.server.server_address[1]}"   # another site than the relay's


@pytest.fixture
def shop() -> Iterator[Shop]:
    s = Shop()
    yield s
    s.server.shutdown()
    s.server.server_close()


@pytest.fixture
def relay(meta, lightspeed, shop: Shop, tmp_path, log_root, clock) -> Iterator[ServerThread]:
    env = shop_env(meta, lightspeed, VIK_SHOP_URL=shop.origin)
    server = ServerThread(LocalRelay(env, tmp_path / "relay.db", log_root / f"{tmp_path.name}-browser",
                                     clock=clock, rand=lambda: 0.5, sweep_interval=None)).start()
    yield server
    server.stop()


def visit(browser: Any, shop: Shop, relay: ServerThread, head: str, *, attributes: bool = True, query: str = "",
          landing: str | None = None, cookies: bool = True, reloads: int = 0,
          extra: str = "", value: str = "140.40") -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """Open a product page first when ``landing`` is a query string (an ad click), then the thank-you page
    (and reload it): the bodies the pages posted to /bridge, the cookies after, and the last page's
    ``window.calls`` (what a stub ``fbq`` recorded)."""
    data = f' data-order="ORD04217" data-value="{value}"' if attributes else ""
    shop.html = page(head, f'<script async src="{relay.url}/bridge.js?shop=vik"{data}{extra}></script>')
    # the every-page loader exactly as `relay bridge snippet` prints it (Settings > Web extras > Custom JS)
    [loader] = [line for line in snippet("vik", relay.url).splitlines() if line.startswith("(function")]
    shop.landing = page(head, f"<script>{loader}</script>")
    context = browser.new_context()
    if cookies:
        context.add_cookies([{"name": "_fbp", "value": FBP, "url": shop.origin},
                             {"name": "_fbc", "value": FBC, "url": shop.origin}])
    tab = context.new_page()
    posted: list[dict[str, Any]] = []
    tab.on("request", lambda r: posted.append(json.loads(r.post_data or "{}"))
           if r.url.startswith(f"{relay.url}/bridge?") else None)
    if landing is not None:
        tab.goto(f"{shop.origin}/product/linnen-blouse.html{landing}", wait_until="load")
    for _ in range(reloads + 1):
        waiting = tab.expect_event("requestfinished", lambda r: r.url.startswith(f"{relay.url}/bridge?")) \
            if not posted else contextlib.nullcontext()
        with waiting:
            tab.goto(f"{shop.origin}/checkout/thankyou/{query}", wait_until="load")
    # one more round trip through the page: anything it posted on the way has reached the relay by now
    tab.evaluate(f"() => fetch('{relay.url}/health', {{mode: 'no-cors'}}).then(r => r.type)")
    calls = tab.evaluate("() => window.calls || null")
    jar = context.cookies()
    context.close()
    relay.drain()
    return posted, jar, calls


def user_agent(browser: Any) -> str:
    """The user agent this Chromium sends, as the page itself reads it."""
    context = browser.new_context()
    try:
        return str(context.new_page().evaluate("() => navigator.userAgent"))
    finally:
        context.close()


def stored(relay: ServerThread) -> list[dict[str, Any]]:
    return relay.call(relay.relay.db.run("SELECT * FROM bridge")).rows


def test_cookiebot_granted_posts_one_body_with_the_cookies_verbatim(browser, shop, relay, meta):
    posted, jar, _ = visit(browser, shop, relay, COOKIEBOT % "true", landing="?fbclid=IwAR_Landing-Click", reloads=1)
    assert posted == [{"order_number": "ORD04217", "consent": "granted", "value": 140.4,
                       "url": f"{shop.origin}/checkout/thankyou/", "fbp": FBP, "fbc": FBC}]
    [row] = stored(relay)                                               # the reload did not post again
    assert (row["fbp"], row["fbc"], row["consent"]) == (FBP, FBC, "granted")
    # with consent, the landing page remembered the click first-party, as Meta builds fbc, case kept
    kept = {c["name"]: c["value"] for c in jar}["_rl_cid"]
    assert re.fullmatch(r"fb\.1\.\d{13}\.IwAR_Landing-Click", kept)

    # and the webhook then sends one event with this browser's ids, address and user agent: the order was
    # placed in this browser, so Lightspeed recorded its user agent, which binds the post to the order
    agent = user_agent(browser)
    order = order_body(userAgent=agent)
    httpx.post(f"{relay.url}/?shop=vik", content=order, headers=signed_headers(order))
    relay.drain()
    [event] = [e for p in meta.event_posts for e in p.json()["data"]]
    assert (event["user_data"]["fbp"], event["user_data"]["fbc"]) == (FBP, FBC)
    assert "Chrome/" in agent and event["user_data"]["client_user_agent"] == agent
    assert event["user_data"]["client_ip_address"] == "127.0.0.1"       # the browser's, not the order's remoteIp


def test_a_post_from_this_browser_attaches_nothing_to_an_order_another_browser_placed(browser, shop, relay, meta):
    visit(browser, shop, relay, COOKIEBOT % "true")
    httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])   # placed on an iPhone
    relay.drain()
    [event] = [e for p in meta.event_posts for e in p.json()["data"]]
    assert "fbp" not in event["user_data"] and "fbc" not in event["user_data"]
    assert "iPhone" in event["user_data"]["client_user_agent"]


def test_a_click_remembered_on_the_landing_page_reaches_the_thank_you_post(browser, shop, relay):
    posted, _, _ = visit(browser, shop, relay, COOKIEBOT % "true", landing="?fbclid=IwAR_Landing-Click",
                         cookies=False)
    [body] = posted
    assert re.fullmatch(r"fb\.1\.\d{13}\.IwAR_Landing-Click", body["fbc"]) and "fbp" not in body
    assert stored(relay)[0]["fbc"] == body["fbc"]


def test_tcf_denied_posts_only_the_choice_and_sets_no_cookie(browser, shop, relay):
    posted, jar, _ = visit(browser, shop, relay, TCF % "false", landing="?fbclid=IwAR_Landing-Click",
                           query="?fbclid=IwAR_Landing-Click")
    assert posted == [{"order_number": "ORD04217", "consent": "denied", "value": 140.4,
                       "url": f"{shop.origin}/checkout/thankyou/"}]
    assert sorted(c["name"] for c in jar) == ["_fbc", "_fbp"]          # only the two the test put there
    [row] = stored(relay)
    assert (row["consent"], row["fbp"], row["fbc"], row["fbclid"]) == ("denied", None, None, None)


def test_tcf_granted_reads_the_purpose_one_consent(browser, shop, relay):
    posted, _, _ = visit(browser, shop, relay, TCF % "true")
    assert [p["consent"] for p in posted] == ["granted"]


def test_no_consent_manager_is_unknown_and_sets_no_cookie(browser, shop, relay):
    posted, jar, _ = visit(browser, shop, relay, "", landing="?fbclid=IwAR_Landing-Click")
    assert posted == [{"order_number": "ORD04217", "consent": "unknown", "value": 140.4,
                       "url": f"{shop.origin}/checkout/thankyou/", "fbp": FBP, "fbc": FBC}]
    assert sorted(c["name"] for c in jar) == ["_fbc", "_fbp"]


def test_without_data_attributes_it_reads_the_pages_json_and_sends_a_bare_fbclid(browser, shop, relay):
    posted, jar, _ = visit(browser, shop, relay, "", attributes=False, cookies=False, query="?fbclid=IwAR_Only-Click")
    assert posted == [{"order_number": "ORD04217", "consent": "unknown", "value": 140.4,
                       "url": f"{shop.origin}/checkout/thankyou/", "fbclid": "IwAR_Only-Click"}]
    assert stored(relay)[0]["fbclid"] == "IwAR_Only-Click" and jar == []


def test_browser_purchase_fires_the_pixel_with_the_relays_event_id(browser, shop, relay):
    fbq = ("<script>window.calls = []; window.fbq = function () { window.calls.push([].slice.call(arguments)); };"
           "</script>")
    _, _, calls = visit(browser, shop, relay, COOKIEBOT % "true" + fbq, cookies=False,
                        extra=' data-browser-purchase="1" data-event-id="purchase_ORD04217" data-currency="EUR"')
    assert calls == [["track", "Purchase", {"order_id": "ORD04217", "value": 140.4, "currency": "EUR"},
                      {"eventID": "purchase_ORD04217"}]]


@pytest.mark.parametrize(("shown", "sent"), [("€ 140,40", 140.4), ("1.234,56", 1234.56), ("1,234.56", 1234.56)])
def test_the_total_is_read_as_the_page_writes_it(browser, shop, relay, shown, sent):
    posted, _, _ = visit(browser, shop, relay, "", cookies=False, value=shown)
    assert [p["value"] for p in posted] == [sent]
