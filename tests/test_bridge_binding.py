"""A thank-you post counts only when it is bound to the browser that placed the order (issue 22): its user
agent is the order's, it came inside the time window, and its ``value`` (when given) is the total. Each
attack below is a stranger posting for someone else's order number; the real shopper's browser posts
after it, and what Meta receives (or that it receives nothing) is what each test checks. All through
``relay serve`` on loopback, a real SQLite file and the fake Meta."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PAID_HEADERS, PAID_RAW, Clock, order_body, shop_env, signed_headers
from relay.core import capi
from relay.core.binding import SHOP_HOUR, Placed
from relay.core.config import load_shop
from relay.core.order import parse_webhook
from relay_tools.server import LocalRelay, ServerThread

NUMBER, ORDER_ID, TOTAL = "ORD04217", 384271665, 140.4
REAL = json.loads(PAID_RAW)["order"]["userAgent"]          # the checkout browser's, as Lightspeed recorded it
STRANGER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
FBP, FBC = "fb.1.1763498500123.1116446470", "fb.1.1763498400456.IwAR2F4-AbCdEf_123"
THEIRS_FBP, THEIRS_FBC = "fb.1.1763400000000.666666666", "fb.1.1763400000000.IwAR_Stranger"
# Instagram's in-app browser: over 300 characters, of which Lightspeed may keep only the first 255
INSTAGRAM = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Mobile/22B83 Instagram 356.0.0.23.97 (iPhone15,3; iOS 18_1; nl_NL; nl; scale=3.00; 1290x2796; "
             "657304123; IABMV/1) [FBAN/FBIOS;FBAV/488.0.0.41.107;FBBV/665211234;FBDV/iPhone15,3;FBMD/iPhone;"
             "FBSN/iOS;FBSV/18.1;FBSS/3;FBID/phone;FBLC/nl_NL;FBOP/5;FBRV/667300456]")

Start = Callable[..., ServerThread]


@pytest.fixture
def start(meta, lightspeed, tmp_path: Path, log_root: Path, clock: Clock) -> Iterator[Start]:
    servers: list[ServerThread] = []

    def run(**extra: str) -> ServerThread:
        local = LocalRelay(shop_env(meta, lightspeed, **extra), tmp_path / f"b{len(servers)}.db",
                           log_root / f"{tmp_path.name}-b{len(servers)}", clock=clock, rand=lambda: 0.5,
                           sweep_interval=None)
        servers.append(ServerThread(local).start())
        return servers[-1]

    yield run
    for server in servers:
        server.stop()


def post(server: ServerThread, agent: str = REAL, **body: Any) -> httpx.Response:
    payload = {"order_number": NUMBER, "consent": "granted", "fbp": FBP, "fbc": FBC, "value": TOTAL, **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    answer = httpx.post(f"{server.url}/bridge?shop=vik", content=json.dumps(payload),
                        headers={"Content-Type": "text/plain", "User-Agent": agent})
    server.drain()
    assert answer.status_code == 204, answer.text          # the same answer, bound or not
    return answer


def stranger(server: ServerThread, **body: Any) -> httpx.Response:
    return post(server, STRANGER, **{"fbp": THEIRS_FBP, "fbc": THEIRS_FBC, **body})


def webhook(server: ServerThread, body: bytes = PAID_RAW) -> None:
    headers = PAID_HEADERS["headers"] if body is PAID_RAW else signed_headers(body)
    assert httpx.post(f"{server.url}/?shop=vik", content=body, headers=headers).status_code == 200
    server.drain()


def events(meta) -> list[dict[str, Any]]:
    return [event for p in meta.event_posts for event in p.json()["data"]]


def row(server: ServerThread) -> dict[str, Any]:
    return server.call(server.relay.runtime().ledger.get("vik", ORDER_ID))


def bridge_rows(server: ServerThread) -> list[dict[str, Any]]:
    return server.call(server.relay.db.run("SELECT * FROM bridge ORDER BY received_at")).rows


def assert_the_real_browser_is_attached(meta) -> None:
    [event] = events(meta)
    user = event["user_data"]
    assert (user.get("fbp"), user.get("fbc")) == (FBP, FBC)
    assert user["client_user_agent"] == REAL


# The stranger's post comes first either before the relay knows the order (the webhook after the posts,
# BRIDGE_WAIT=0) or after (the webhook first, the order held for its post with BRIDGE_WAIT=120).
ARRIVALS = [pytest.param(False, id="posts-then-webhook"), pytest.param(True, id="webhook-then-posts")]


def scene(start: Start, webhook_first: bool, **env: str) -> ServerThread:
    relay = start(**({"VIK_BRIDGE_WAIT": "120"} if webhook_first else {}), **env)
    if webhook_first:
        webhook(relay)
    return relay


def finish(relay: ServerThread, webhook_first: bool) -> None:
    if not webhook_first:
        webhook(relay)


@pytest.mark.parametrize("webhook_first", ARRIVALS)
def test_a_wrong_total_first_does_not_strip_the_real_browsers_ids(start, meta, webhook_first):
    relay = scene(start, webhook_first)
    post(relay, value=14.04, fbp=THEIRS_FBP, fbc=None)      # the right browser and number, another total
    post(relay)
    finish(relay, webhook_first)
    assert_the_real_browser_is_attached(meta)


@pytest.mark.parametrize("webhook_first", ARRIVALS)
def test_a_wrong_total_first_does_not_skip_a_consenting_shoppers_purchase(start, meta, webhook_first):
    relay = scene(start, webhook_first, VIK_CONSENT_MODE="required")
    stranger(relay, value=14.04)
    post(relay, consent="granted")
    finish(relay, webhook_first)
    assert_the_real_browser_is_attached(meta)
    assert (row(relay)["consent"], row(relay)["consent_source"]) == ("send", "granted")


def test_a_post_made_before_the_order_existed_does_not_take_its_slot(start, meta, clock):
    relay = start()
    clock.advance(-2 * 86400)                               # two days before the order: the next number, guessed
    post(relay, fbp=THEIRS_FBP, fbc=THEIRS_FBC)             # even with the browser's exact agent and the total
    clock.advance(2 * 86400)
    post(relay)
    webhook(relay)
    assert_the_real_browser_is_attached(meta)


@pytest.mark.parametrize("webhook_first", ARRIVALS)
def test_another_browser_first_with_the_right_total_attaches_nothing_of_its_own(start, meta, webhook_first):
    relay = scene(start, webhook_first)
    stranger(relay)                                         # the right number and total, another browser
    post(relay)
    finish(relay, webhook_first)
    assert_the_real_browser_is_attached(meta)


@pytest.mark.parametrize("webhook_first", ARRIVALS)
def test_a_strangers_denied_first_does_not_stop_a_consenting_shopper(start, meta, webhook_first):
    relay = scene(start, webhook_first, VIK_CONSENT_MODE="required")
    stranger(relay, consent="denied", fbp=None, fbc=None)
    post(relay, consent="granted")
    finish(relay, webhook_first)
    assert_the_real_browser_is_attached(meta)
    assert row(relay)["consent_source"] == "granted"


@pytest.mark.parametrize("webhook_first", ARRIVALS)
def test_a_strangers_granted_never_sends_the_purchase_of_a_shopper_who_declined(start, meta, clock, webhook_first):
    relay = scene(start, webhook_first, VIK_CONSENT_MODE="required")
    stranger(relay, consent="granted")
    post(relay, consent="denied", fbp=None, fbc=None)
    finish(relay, webhook_first)
    clock.advance(600)
    relay.call(relay.relay.sweep())
    assert events(meta) == []
    assert (row(relay)["state"], row(relay)["consent_source"]) == ("skipped", "denied")


@pytest.mark.parametrize("webhook_first", ARRIVALS)
def test_fifteen_stranger_posts_then_the_real_one(start, meta, webhook_first):
    relay = scene(start, webhook_first)
    for n in range(15):
        stranger(relay, fbp=f"fb.1.1763400000000.{n}66666666")
    post(relay)
    finish(relay, webhook_first)
    assert_the_real_browser_is_attached(meta)
    assert len(bridge_rows(relay)) <= 8                    # a bounded set per order


def test_a_stranger_alone_attaches_nothing_and_decides_no_consent(start, meta):
    relay = start(VIK_CONSENT_MODE="required", VIK_CONSENT_UNKNOWN="send")
    stranger(relay, consent="denied")
    webhook(relay)
    [event] = events(meta)                                  # sent: no choice recorded, CONSENT_UNKNOWN=send
    assert "fbp" not in event["user_data"] and event["user_data"]["client_user_agent"] == REAL
    assert row(relay)["consent_source"] == "none"


# --- which browser is the order's -----------------------------------------------------------------


def test_a_user_agent_lightspeed_cut_short_still_binds_the_full_one(start, meta):
    relay = start()
    assert len(INSTAGRAM) > 300
    post(relay, INSTAGRAM)
    webhook(relay, order_body(userAgent=INSTAGRAM[:255]))
    [event] = events(meta)
    assert (event["user_data"]["fbp"], event["user_data"]["fbc"]) == (FBP, FBC)
    assert event["user_data"]["client_user_agent"] == INSTAGRAM            # the whole one, from the browser


def test_a_short_agent_is_compared_whole_not_as_a_prefix(start, meta):
    relay = start()
    post(relay, REAL + " Extension/1.0", fbp=THEIRS_FBP)    # starts with the order's agent, but is not it
    webhook(relay)
    [event] = events(meta)
    assert "fbp" not in event["user_data"]


def test_an_order_without_a_browser_user_agent_takes_no_post(start, meta):
    relay = start()
    post(relay, "WebshopappApi")                            # an API or back-office order's "user agent"
    webhook(relay, order_body(userAgent="WebshopappApi"))
    [event] = events(meta)
    assert "fbp" not in event["user_data"] and event["action_source"] == "other"


def test_of_several_bound_posts_the_first_counts(start, meta, clock):
    relay = start()
    post(relay)
    clock.advance(30)
    post(relay, fbp="fb.1.1763498500999.999999999", fbc=None, consent="unknown")   # a reload
    webhook(relay)
    assert_the_real_browser_is_attached(meta)


# --- bounded, without locking the bound post out -----------------------------------------------------


def test_a_full_set_of_pending_posts_makes_room_for_the_bound_one(start, meta):
    relay = start(VIK_BRIDGE_WAIT="120")
    for n in range(8):                                      # before the order is known: kept for now
        stranger(relay, fbp=f"fb.1.1763400000000.{n}66666666")
    webhook(relay)                                          # held for its post
    assert events(meta) == []
    post(relay)                                             # bound: replaces a post that is not
    assert_the_real_browser_is_attached(meta)
    assert len(bridge_rows(relay)) <= 8


def test_once_the_order_is_known_unbound_posts_are_not_stored(start, meta):
    relay = start(VIK_BRIDGE_WAIT="120")
    webhook(relay)
    stranger(relay)
    post(relay, value=1.00)
    assert bridge_rows(relay) == []
    assert events(meta) == []                               # and they did not release the held order




def test_a_flood_for_unknown_orders_is_capped_per_shop_and_hour_and_the_real_post_still_counts(start, meta, clock):
    relay = start()
    clock.advance(3600 - clock.now % 3600)                  # the start of an hour (still inside the order's window)
    for n in range(SHOP_HOUR + 40):                         # the next order numbers, once each
        if n and n % 20 == 0:
            clock.advance(61)                               # within the per-address limit, inside one hour
        stranger(relay, order_number=f"ORD{90000 + n}")
    clock.advance(61)
    post(relay)                                             # the real browser, before its webhook
    webhook(relay)
    assert_the_real_browser_is_attached(meta)
    assert len(bridge_rows(relay)) <= SHOP_HOUR + 1


# --- every path decides the same way: backfill and replay --------------------------------------------


def test_an_order_found_by_the_backfill_takes_the_real_post_not_the_strangers(start, meta, lightspeed):
    from relay.jobs import cron

    relay = start()
    stranger(relay)
    post(relay)
    lightspeed.orders = [json.loads(PAID_RAW)["order"]]   # no webhook came: the cron pass lists the order
    relay.call(cron.run_pass(relay.relay.runtime()))
    assert_the_real_browser_is_attached(meta)


def test_a_replay_after_a_rejection_attaches_the_real_browsers_ids_again(start, meta):
    admin = "bridge-binding-admin-token-0123456789"
    relay = start(ADMIN_TOKEN=admin)
    stranger(relay)
    post(relay)
    meta.reject_event_ids.add("purchase_ORD04217")
    webhook(relay)
    assert row(relay)["state"] == "failed"
    assert all(r["ip"] is None and r["user_agent"] is None for r in bridge_rows(relay))   # cleared once decided
    meta.reject_event_ids.clear()
    answer = httpx.post(f"{relay.url}/orders/replay?shop=vik", json={"number": NUMBER},
                        headers={"Authorization": f"Bearer {admin}"})
    relay.drain()
    assert answer.json()["requeued"] == 1 and row(relay)["state"] == "sent"
    first, again = events(meta)
    for event in (first, again):                           # the rejected send, and the replay
        assert (event["user_data"].get("fbp"), event["user_data"].get("fbc")) == (FBP, FBC)


@pytest.mark.parametrize(("post_agent", "order_agent", "same"), [
    (INSTAGRAM, INSTAGRAM, True),
    (INSTAGRAM, INSTAGRAM[:255], True),                    # cut at a column's width
    (INSTAGRAM, INSTAGRAM[:200], True),                    # the shortest cut the rule accepts
    (INSTAGRAM, INSTAGRAM[:199], False),                   # shorter: must be equal
    (INSTAGRAM[:255], INSTAGRAM, False),                   # the post's may not be the shorter one
    (REAL + " ", REAL, True),                              # surrounding spaces are not the browser's
    (REAL, None, False), (None, REAL, False), ("", "", False),
])
def test_which_user_agents_are_the_same_browser(post_agent, order_agent, same):
    from relay.core.binding import same_browser

    assert same_browser(post_agent, order_agent) is same


@pytest.mark.parametrize("agent", [REAL, INSTAGRAM, "WebshopappApi/1.0", None],
                         ids=["browser", "in-app", "api", "none"])
def test_an_orders_facts_are_its_stored_events_whether_read_from_the_order_or_the_event(meta, lightspeed, agent):
    """``Placed``: the webhook's wait for a post reads them from the order, the send from the stored event, a post
    from the event's columns; the same facts every way (an order made through the API has no browser to bind)."""
    order = parse_webhook(order_body(userAgent=agent, priceIncl=140.404))
    event = capi.build_event(order, load_shop(shop_env(meta, lightspeed), "vik"))
    placed = Placed.of_order(order)
    assert placed == Placed.of_event(event["event_time"], event)
    assert placed.agent == (agent if agent in (REAL, INSTAGRAM) else None) and placed.total == 140.4
