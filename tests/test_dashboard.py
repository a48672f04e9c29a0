"""/dashboard: the login form and its cookie, and a page that shows the status figures, escaped."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
import pytest

from conftest import PAID_RAW, order_body, shop_env, signed_headers
from relay.core.config import Secret, load_shop
from relay.core.order import parse_order
from relay.jobs import delivery, health, intake
from relay.web import auth, dashboard_html, wording
from relay_tools.fakes import graph_error

ADMIN = "admin-token-for-dashboard-51d8e0"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


def get(relay, headers: dict[str, str] | None = None, query: str = "") -> httpx.Response:
    return httpx.get(f"{relay.url}/dashboard{query}", headers=headers)


def login(relay, token: str = ADMIN) -> httpx.Response:
    return httpx.post(f"{relay.url}/dashboard", data={"token": token})


def cookie_of(answer: httpx.Response) -> str:
    """The ``name=value`` part of the Set-Cookie header (httpx keeps Secure cookies away from http://)."""
    return answer.headers["set-cookie"].split(";")[0]


def send(relay, body: bytes) -> None:
    httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    relay.drain()


def test_without_a_token_the_page_is_a_login_form(relay):
    answer = get(relay)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert '<form method="post" action="/dashboard">' in answer.text
    assert 'type="password"' in answer.text and 'name="token"' in answer.text
    assert ADMIN not in answer.text
    assert "set-cookie" not in answer.headers


def test_the_login_form_sets_a_strict_cookie_holding_an_hmac_not_the_token(relay, clock):
    answer = login(relay)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
    set_cookie = answer.headers["set-cookie"]
    attributes = {a.strip().split("=")[0].lower() for a in set_cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Strict" in set_cookie and "Path=/dashboard" in set_cookie
    value = cookie_of(answer).split("=", 1)[1]
    assert ADMIN not in set_cookie
    session, expires = re.fullmatch(r"([0-9a-f]{32})\.(\d+)\.[0-9a-f]{64}", value).groups()
    assert int(expires) == int(clock.now) + auth.SESSION_SECONDS
    assert value == auth.session_value(Secret(ADMIN), session, int(expires))
    page = get(relay, {"Cookie": cookie_of(answer)})
    assert page.status_code == 200 and "<h2>vik" in page.text


def test_a_wrong_token_sets_no_cookie(relay):
    answer = login(relay, "not-the-admin-token-at-all")
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "That is not the ADMIN_TOKEN" in answer.text


def test_forged_expired_or_foreign_cookies_are_refused(relay, clock):
    good = cookie_of(login(relay))
    name, value = good.split("=", 1)
    session, expires, mac = value.split(".")
    later = str(int(expires) + 3600)
    for cookie in (f"{name}={session}.{later}.{mac}",                                  # stretched expiry
                   f"{name}={session}.{expires}.{'0' * 64}",                          # made-up MAC
                   f"{name}={auth.session_value(Secret('some-other-admin-token'), session, int(expires))}",
                   f"{name}={auth.session_value(Secret(ADMIN), 'f' * 32, int(expires))}",  # no such session
                   f"{name}={ADMIN}"):                                                 # the token itself
        assert get(relay, {"Cookie": cookie}).status_code == 401, cookie
    clock.advance(auth.SESSION_SECONDS + 1)
    assert get(relay, {"Cookie": good}).status_code == 401


def test_replacing_admin_token_logs_every_browser_out(relay):
    good = cookie_of(login(relay))
    relay.relay.env["ADMIN_TOKEN"] = "a-brand-new-admin-token-0001"
    assert get(relay, {"Cookie": good}).status_code == 401


def test_a_bearer_header_works_and_a_token_in_the_url_does_not(relay):
    assert get(relay, {"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert get(relay, query=f"?token={ADMIN}").status_code == 401


def test_without_admin_token_set_the_form_says_how_to_set_it(relay):
    relay.relay.env.pop("ADMIN_TOKEN")
    for answer in (get(relay), login(relay)):
        assert answer.status_code == 401
        assert "change ADMIN_TOKEN where your deploy reads it" in answer.text
        assert "set-cookie" not in answer.headers




def test_the_page_shows_the_same_figures_as_the_status_api(relay, meta, lightspeed):
    relay.relay.env.update(shop_env(meta, lightspeed, "SHOP2"))
    send(relay, order_body())
    relay.call(health.run_daily(relay.relay.runtime()))
    report = httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    page = get(relay, {"Authorization": f"Bearer {ADMIN}"})
    text = page.text
    assert page.status_code == 200
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in text
    for shop in report["shops"]:
        assert f"<h2>{shop['shop']} " in text
    vik = report["shops"][1]
    assert vik["shop"] == "vik"
    assert "Paid orders in the last 7 days: 1, confirmed by Meta: 1 (100 %)" in text
    assert f"<tr><th>Last sent to Meta</th><td>{vik['last_success_at']}</td></tr>" in text
    assert "Graph API v26.0" in text
    assert ">ok</span> never expires" in text
    assert f"<title>{vik['daily'][-1]['date']}: 1 sent</title>" in text            # the chart's bar for today
    assert "Last 14 days: 1 sent, 0 failed or expired" in text
    assert '<tr><td>email (<code>em</code>)</td><td class="n">100 %</td><td class="n">-</td></tr>' in text  # Meta: -


def test_the_details_name_orders_by_number_with_the_id_beside_it(relay, meta, clock):
    send(relay, order_body(paymentStatus="not_paid"))
    text = get(relay, {"Authorization": f"Bearer {ADMIN}"}).text
    assert "<tr><th>Oldest waiting (unpaid)</th><td>order ORD04217 (id 384271665), placed " in text
    meta.reject_event_ids.add("purchase_ORD04217")
    send(relay, order_body())
    text = get(relay, {"Authorization": f"Bearer {ADMIN}"}).text
    assert "(order ORD04217 (id 384271665), failed, " in text                    # Last error
    assert "<tr><th>Oldest waiting (unpaid)</th><td><span class=\"muted\">none</span>" in text


def test_everything_on_the_page_is_escaped(relay, meta):
    meta.script.append(graph_error(400, 100, '<script>alert("x")</script> & <b>bold</b>', subcode=2804050))
    send(relay, order_body())
    text = get(relay, {"Authorization": f"Bearer {ADMIN}"}).text
    assert "<script>" not in text and "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text


def test_other_methods_are_405(relay):
    answer = httpx.put(f"{relay.url}/dashboard", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"


def test_an_oversized_form_is_refused(relay):
    answer = httpx.post(f"{relay.url}/dashboard", data={"token": "x" * 10_000})
    assert answer.status_code == 413 and "set-cookie" not in answer.headers


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def test_the_language_follows_the_browser_or_lang(relay):
    assert "Betaalde orders" in get(relay, {**bearer(), "Accept-Language": "nl-NL,nl;q=0.9,en;q=0.8"}).text
    assert "Paid orders" in get(relay, {**bearer(), "Accept-Language": "de-DE,en;q=0.5,nl;q=0.4"}).text
    assert "Paid orders" in get(relay, {**bearer(), "Accept-Language": "nl"}, "?lang=en").text
    assert '<html lang="nl">' in get(relay, bearer(), "?lang=nl").text


def test_the_style_is_allowed_by_its_hash_and_nothing_inline_else(relay):
    page = get(relay, bearer())
    policy = page.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and f"style-src '{dashboard_html.STYLE_HASH}'" in policy
    assert " style=" not in page.text and "<script" not in page.text and "http" not in page.text.split("<body>")[1]


def test_times_use_the_shops_offset_setting(relay, clock):
    send(relay, order_body())
    relay.relay.env["VIK_UTC_OFFSET"] = "-05:00"
    assert "time zone (UTC-05:00)" in get(relay, bearer()).text
    relay.relay.env["VIK_UTC_OFFSET"] = "Europe/Amsterdam"          # not an offset: falls back to what was learned
    assert "time zone (UTC+00:00)" in get(relay, bearer()).text


def test_search_finds_an_order_in_any_shop_case_insensitively(relay, meta):
    send(relay, order_body())
    page = get(relay, bearer(), "?q=ord04217").text
    assert "Search results for ord04217" in page and "vik · ORD04217" in page and "sent to Meta" in page
    assert "No order NOPE in the ledger of any shop." in get(relay, bearer(), "?q=NOPE").text


def test_replay_needs_the_pages_csrf_field_and_refuses_with_the_reason(relay, meta):
    meta.script.append(graph_error(400, 100, "Invalid parameter", subcode=2804050))
    send(relay, order_body())
    cookie = {"Cookie": cookie_of(login(relay))}
    form = {"action": "replay", "shop": "vik", "number": "ORD04217"}
    forged = httpx.post(f"{relay.url}/dashboard", data={**form, "csrf": "0" * 64}, headers=cookie)
    assert forged.status_code == 403 and len(meta.events()) == 1
    page = get(relay, cookie).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    answer = httpx.post(f"{relay.url}/dashboard", data={**form, "csrf": csrf}, headers=cookie)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard?q=ORD04217&done=replayed&lang=en"
    assert len(meta.events()) == 2
    again = httpx.post(f"{relay.url}/dashboard", data={**form, "number": "ORD99999"}, headers=bearer())
    assert again.status_code == 303
    notice = get(relay, bearer(), "?" + again.headers["location"].split("?", 1)[1]).text
    assert "Order ORD99999 was not replayed: it is not in the ledger" in notice


@pytest.mark.parametrize("ago, offset, lang, shown", [
    (3600, 3600, "en", "20:27"),                       # today in the shop's zone: the clock alone
    (3 * 86400, 3600, "en", "27 Nov 21:27"),           # this year: day, month, clock
    (3 * 86400, 3600, "nl", "27 nov 21:27"),
    (400 * 86400, 0, "en", "26 Oct 2024 20:27"),       # an earlier year: the year too
    (-(3 * 3600 + 1800), 3600, "en", "1 Dec 00:57"),   # past midnight in the shop's zone: tomorrow there
    (21 * 3600, -5 * 3600, "nl", "29 nov 18:27"),
])
def test_times_read_as_the_shop_reads_its_clock(ago, offset, lang, shown):
    now = 1764534420                                    # 2025-11-30 20:27 UTC (21:27 in the shop at +01:00)
    assert wording.when(now - ago, offset, lang, now) == shown
    assert wording.when(None, offset, lang, now) == ""


def test_a_long_backlog_shows_the_thirty_to_act_on_first_and_counts_the_rest(relay, meta, clock):
    """A day of missed webhooks leaves hundreds of orders due: the list shows failed ones first, then the newest
    due, thirty in all, and says how many more there are (all of them, not a count capped by what was read)."""
    rt = relay.relay.runtime()
    vik = load_shop(rt.env, "vik")
    now = int(clock.now)

    async def fill() -> None:
        for n in range(1, 451):
            raw = json.loads(PAID_RAW)["order"]
            raw.update(id=70_000 + n, number=f"BK{n:05d}", createdAt=_iso(now - 7200 + n),
                       updatedAt=_iso(now - 7100 + n))
            await intake.record_order(rt, vik, parse_order(raw), "backfill")
        meta.reject_event_ids.add("purchase_BK00001")            # the oldest: refused by Meta
        await delivery.send_due(rt, vik, order_id=70_001)

    relay.call(fill())
    text = get(relay, {"Authorization": f"Bearer {ADMIN}"}).text
    shown = re.findall(r'<span class="num">(BK\d{5})</span>', text)
    assert shown[0] == "BK00001"                                  # failed, though the oldest: first
    assert shown[1:] == [f"BK{n:05d}" for n in range(450, 421, -1)]   # then the newest due, 30 in all
    assert "420 more: relay orders --shop vik" in text


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
