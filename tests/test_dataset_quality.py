"""Meta's own score: the Dataset Quality API once a day per pixel, stored and shown on /status."""

from __future__ import annotations

import httpx
import pytest

from conftest import PAID_HEADERS, PAID_RAW, PIXEL, TOKEN, shop_env
from relay.core import dataset_quality
from relay.jobs import quality
from relay_tools.fakes import Reply, graph_error, quality_web

ADMIN = "admin-token-for-quality-tests-5f1c2e9a"
NEW_TOKEN = "EAAreplacement-token-vik-not-real"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


def run(relay, **kwargs) -> dict[str, dataset_quality.QualityCheck]:
    rt = relay.relay.runtime()
    try:
        return relay.call(quality.run_daily(rt, **kwargs))
    finally:
        relay.call(rt.log.flush(rt.blobs, rt.clock()))


def status(relay) -> dict:
    answer = httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200
    (shop,) = answer.json()["shops"]
    return shop


def test_the_purchase_score_match_keys_and_dedup_are_asked_for_and_stored(relay, meta):
    check = run(relay)["vik"]
    (asked,) = meta.quality_requests
    assert asked.method == "GET" and asked.path == "/v26.0/dataset_quality"
    assert asked.query["dataset_id"] == [PIXEL]
    fields = asked.query["fields"][0]
    assert fields.startswith("web{") and "event_match_quality{composite_score" in fields
    assert "match_key_feedback" in fields and "dedupe_key_feedback" in fields
    assert asked.headers["authorization"] == f"Bearer {TOKEN}" and "access_token" not in asked.query
    assert check.state == "ok" and check.score == 6.8
    assert dict(check.match_keys)["em"] == 100 and dict(check.match_keys)["client_ip_address"] == 71.2
    assert check.dedup[0] == ("event_id", 100, 97.0) and check.coverage == 88.0
    assert check.diagnostics[0].startswith("Server sending mismatched IP addresses: In your server payload")


def test_status_shows_metas_score_next_to_the_relays_own_coverage(relay, meta):
    httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()
    run(relay)
    shop = status(relay)
    mq = shop["meta_quality"]
    assert (mq["state"], mq["event"], mq["score"], mq["target"], mq["meets_target"]) == \
        ("ok", "Purchase", 6.8, 5.0, True)
    assert mq["match_keys"]["ph"] == 86.4 and mq["dedup"][0] == {"key": "event_id", "server": 100, "browser": 97.0}
    assert shop["match_keys"]["coverage"]["em"] == 1.0, "the relay's own figure stays beside Meta's"
    assert not any("match quality" in w for w in shop["warnings"])


def test_a_score_below_the_target_is_a_warning(relay, meta):
    meta.quality[PIXEL] = quality_web(score=3.4)
    run(relay)
    shop = status(relay)
    assert shop["meta_quality"]["meets_target"] is False
    assert any("3.4 of 10, below the target of 5.0" in w for w in shop["warnings"])


@pytest.mark.parametrize("denial", [
    None,                                                              # Meta's (#10) permission error
    graph_error(400, 100, "Unsupported get request. Object with ID '987654321012345' does not exist, cannot be "
                          "loaded due to missing permissions, or does not support this operation", subcode=33),
    graph_error(403, 200, "(#200) Requires ads_read permission"),
])
def test_a_token_without_access_shows_what_to_grant_not_an_error(relay, meta, denial):
    meta.quality_denied = {TOKEN}
    meta.quality_denial = denial
    check = run(relay)["vik"]
    assert check.state == "no_access" and check.score is None
    mq = status(relay)["meta_quality"]
    assert mq["state"] == "no_access" and mq["score"] is None
    assert mq["note"].startswith("not available: grant the system user behind VIK_META_ACCESS_TOKEN access to "
                                 f"pixel {PIXEL}")
    assert TOKEN not in mq["note"]


def test_no_purchase_figures_yet_and_no_answer_are_not_errors(relay, meta, clock):
    meta.quality[PIXEL] = [e for e in quality_web() if e["event_name"] != "Purchase"]
    assert run(relay)["vik"].state == "no_data"
    meta.quality_denial = Reply(500, b"<html>oops</html>")
    meta.quality_denied = {TOKEN}
    clock.advance(86400)
    check = run(relay)["vik"]
    assert check.state == "unknown" and "without JSON" in (check.error or "")
    clock.advance(1800)
    assert run(relay) == {}, "an unanswered check waits an hour"
    clock.advance(1800)
    assert run(relay)["vik"].state == "unknown"


def test_once_a_day_per_pixel_and_at_once_for_a_new_token(relay, meta, clock):
    relay.relay.env.update({k.replace("VIK_", "TWO_"): v for k, v in relay.relay.env.items() if k.startswith("VIK_")})
    run(relay)
    assert len(meta.quality_requests) == 1, "two shops on one pixel: one call"
    clock.advance(12 * 3600)
    assert run(relay) == {}
    clock.advance(12 * 3600)
    run(relay)
    assert len(meta.quality_requests) == 2
    relay.relay.env.update(VIK_META_ACCESS_TOKEN=NEW_TOKEN, TWO_META_ACCESS_TOKEN=NEW_TOKEN)
    run(relay)
    assert len(meta.quality_requests) == 3
    assert meta.quality_requests[-1].headers["authorization"] == f"Bearer {NEW_TOKEN}"

