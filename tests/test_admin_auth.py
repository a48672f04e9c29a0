"""The admin routes under hostile input: odd cookies, far-future token expiries, sign-out that must end
the session everywhere, forms posted from another site, and guessing ADMIN_TOKEN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Clock, shop_env
from relay.jobs import health
from relay.web import auth, throttle
from relay_tools.server import LocalRelay, ServerThread

ADMIN = "admin-token-for-auth-tests-7c1f02"
COOKIE = auth.COOKIE


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


@pytest.fixture
def second(env, tmp_path: Path, clock: Clock) -> Iterator[ServerThread]:
    """Another relay over the same database: what a second Worker isolate over the same D1 is."""
    server = ServerThread(LocalRelay(env, tmp_path / "relay.db", None, clock=clock, sweep_interval=None)).start()
    yield server
    server.stop()


def sign_in(relay: ServerThread, token: str = ADMIN, client: httpx.Client | None = None) -> httpx.Response:
    return (client or httpx).post(f"{relay.url}/dashboard", data={"token": token})


def cookie(answer: httpx.Response) -> str:
    """The ``name=value`` part of Set-Cookie (httpx keeps Secure cookies away from http://)."""
    return answer.headers["set-cookie"].split(";")[0]


def page(relay: ServerThread, session: str) -> httpx.Response:
    return httpx.get(f"{relay.url}/dashboard", headers={"Cookie": session})


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', text)
    assert found, "the signed-in page's sign-out form carries a CSRF field"
    return found.group(1)


def sign_out(relay: ServerThread, session: str, csrf: str | None, **headers: str) -> httpx.Response:
    data = {"action": "logout"} | ({"csrf": csrf} if csrf is not None else {})
    return httpx.post(f"{relay.url}/dashboard", data=data, headers={"Cookie": session, **headers})


@pytest.mark.parametrize("value", ["²", "².x", "²" * 3 + "." + "0" * 64, "9" * 5000, "9" * 5000 + "." + "a" * 64,
                                   "٣٤.abc", "-1.x", "", "a" * 32 + "." + "9" * 5000 + "." + "0" * 64])
def test_odd_cookies_get_the_login_form_not_a_500(relay, value):
    for encoding in ("latin-1", "utf-8"):          # "²" as one byte is what reaches the route as "²"
        try:
            raw = f"{COOKIE}={value}".encode(encoding)
        except UnicodeEncodeError:
            continue
        answer = httpx.get(f"{relay.url}/dashboard", headers={"Cookie": raw})
        assert answer.status_code == 401, encoding
        assert 'name="token"' in answer.text


def test_a_far_future_token_expiry_does_not_break_status_or_dashboard(relay, meta):
    meta.token_info[relay.relay.env["VIK_META_ACCESS_TOKEN"]] = {"expires_at": 10**12, "issued_at": -5}
    relay.call(health.run_daily(relay.relay.runtime()))
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    for stored in (None, (10**12, 10**13)):                   # as checked now, and a row stored before the fix
        if stored:
            relay.call(relay.relay.db.run("UPDATE shop_health SET token_expires_at = ?, token_issued_at = ?", stored))
        status = httpx.get(f"{relay.url}/status", headers=bearer)
        assert status.status_code == 200
        assert status.json()["shops"][0]["health"]["meta_token"]["expires_at"] == "9999-12-31T23:59:59Z"
        dashboard = httpx.get(f"{relay.url}/dashboard", headers=bearer)
        assert dashboard.status_code == 200 and "expires 9999-12-31" in dashboard.text


def test_sign_out_ends_the_session_in_every_isolate(relay, second):
    session = cookie(sign_in(relay))
    assert page(second, session).status_code == 200          # the session lives in the database
    csrf = csrf_of(page(relay, session).text)
    answer = sign_out(relay, session, csrf)
    assert answer.status_code == 303 and "Max-Age=0" in answer.headers["set-cookie"]
    assert page(relay, session).status_code == 401           # the old cookie, replayed, is dead
    assert page(second, session).status_code == 401          # in the other isolate as well


def test_a_cross_site_post_does_not_sign_the_operator_out(relay):
    session = cookie(sign_in(relay))
    csrf = csrf_of(page(relay, session).text)
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"}, {"Sec-Fetch-Site": "same-site", "Origin": relay.url}):
        answer = sign_out(relay, session, csrf, **headers)
        assert answer.status_code == 403, headers
        assert "set-cookie" not in answer.headers
    for wrong in (None, "", "0" * 64):                        # no Origin sent, but no valid CSRF field either
        answer = sign_out(relay, session, wrong)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
    # a post that carries no session at all clears nothing (a cross-site one would not carry the cookie)
    answer = httpx.post(f"{relay.url}/dashboard", data={"action": "logout"})
    assert answer.status_code == 303 and "set-cookie" not in answer.headers
    assert page(relay, session).status_code == 200
    same_site = sign_out(relay, session, csrf, Origin=relay.url, **{"Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 303 and page(relay, session).status_code == 401


def test_a_login_form_posted_from_another_site_is_refused(relay):
    answer = httpx.post(f"{relay.url}/dashboard", data={"token": ADMIN}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_wrong_tokens_are_throttled_per_client_across_isolates_but_the_right_one_always_gets_in(relay, second, clock):
    for server in (relay, second, relay, second, relay):
        assert sign_in(server, "not-the-admin-token-0000").status_code == 401
    for server in (second, relay):
        refused = sign_in(server, "not-the-admin-token-0001")          # a sixth wrong one: 429 for the window
        assert refused.status_code == 429 and "set-cookie" not in refused.headers
        assert 0 < int(refused.headers["retry-after"]) <= throttle.FAILURE_WINDOW
        assert "too many wrong ADMIN_TOKEN attempts" in refused.text
    wrong = httpx.get(f"{relay.url}/status", headers={"Authorization": "Bearer not-the-admin-token-0002"})
    assert wrong.status_code == 429 and wrong.headers["retry-after"]
    # A stranger's five wrong tokens from the admin's own address never lock the admin out.
    assert httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    for server in (second, relay):
        assert sign_in(server, "not-the-admin-token-0003").status_code == 401   # the right token cleared the count
    assert sign_in(second).status_code == 303
    clock.advance(throttle.FAILURE_WINDOW)
    assert sign_in(relay).status_code == 303


def test_wrong_bearer_tokens_are_throttled_too(relay):
    for _ in range(throttle.MAX_FAILURES):
        answer = httpx.get(f"{relay.url}/status", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"})
        assert answer.status_code == 401
    answer = httpx.get(f"{relay.url}/status", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"})
    assert answer.status_code == 429
    assert answer.json()["error"].startswith("too many wrong ADMIN_TOKEN attempts")
    assert httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_a_right_token_clears_the_count(relay):
    for _ in range(3):
        assert sign_in(relay, "not-the-admin-token-0000").status_code == 401
    assert sign_in(relay).status_code == 303
    for _ in range(throttle.MAX_FAILURES):
        assert sign_in(relay, "not-the-admin-token-0000").status_code == 401


def test_status_json_is_never_sniffed(relay):
    for headers in ({"Authorization": f"Bearer {ADMIN}"}, {}):
        answer = httpx.get(f"{relay.url}/status", headers=headers)
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-content-type-options"] == "nosniff"
