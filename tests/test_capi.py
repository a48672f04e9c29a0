"""What each Graph answer means for an event (fixtures/meta/graph-responses.json), and the retry clock."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES
from relay.core import capi
from relay.core.capi import Verdict
from relay.core.ports import HttpResponse

RESPONSES = json.loads((FIXTURES / "meta" / "graph-responses.json").read_text())

EXPECTED = {
    "success_single": (Verdict.SENT, 1),
    "success_batch_3": (Verdict.SENT, 3),
    "success_zero_received": (Verdict.RETRY, 1),
    "unknown_1": (Verdict.RETRY, 1),
    "service_2": (Verdict.RETRY, 1),
    "app_rate_limit_4": (Verdict.RETRY, 1),
    "user_rate_limit_17": (Verdict.RETRY, 1),
    "ad_account_limit_613": (Verdict.RETRY, 1),
    "buc_limit_80004": (Verdict.RETRY, 1),
    "invalid_param_100": (Verdict.FAILED, 1),
    "event_too_old_100": (Verdict.FAILED, 1),
    "token_expired_190": (Verdict.HOLD, 1),
    "token_invalid_190": (Verdict.HOLD, 1),
    "permission_10": (Verdict.HOLD, 1),
    "unsupported_post_100_33": (Verdict.HOLD, 1),
    "http_502_html": (Verdict.RETRY, 1),
}


def response(name: str) -> HttpResponse:
    case = RESPONSES[name]
    body = case["body_text"].encode() if "body_text" in case else json.dumps(case["body"]).encode()
    return HttpResponse(case["http_status"], case.get("headers", {}), body)


def test_every_fixture_is_covered():
    assert set(EXPECTED) == {k for k in RESPONSES if not k.startswith("_")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_graph_answers_are_classified_by_code(name):
    verdict, expected = EXPECTED[name]
    outcome = capi.classify(response(name), expected)
    assert outcome.verdict is verdict
    if verdict is not Verdict.SENT and "body" in RESPONSES[name] and "error" in RESPONSES[name]["body"]:
        assert outcome.code == RESPONSES[name]["body"]["error"]["code"]
        assert outcome.fbtrace_id == "AbCdEfGhIjKlMnOpQrStUv0"


def test_a_batch_is_sent_only_when_every_event_was_received():
    assert capi.classify(response("success_single"), 3).verdict is Verdict.RETRY
    assert capi.classify(response("success_batch_3"), 3).verdict is Verdict.SENT


def test_failed_reason_keeps_metas_words():
    outcome = capi.classify(response("invalid_param_100"), 1)
    assert outcome.subcode == 2804050
    assert outcome.message == ("Invalid parameter / Insufficient customer information / "
                               "The event does not include enough customer information parameters.")


def test_business_use_case_header_sets_the_earliest_retry():
    outcome = capi.classify(response("buc_limit_80004"), 1)
    assert outcome.retry_after == 300          # estimated_time_to_regain_access: 5 minutes
    assert capi.backoff(1, 0.0, outcome.retry_after) == 300


def test_backoff_grows_with_jitter_and_is_capped():
    assert capi.backoff(1, 0.0) == 30 and capi.backoff(1, 1.0) == 60
    assert capi.backoff(3, 0.0) == 120 and capi.backoff(3, 1.0) == 240
    assert capi.backoff(30, 1.0) == 3600


def test_expiry_gives_up_before_metas_seven_days():
    created = 1_700_000_000
    assert not capi.is_expired(created, created + 7 * 86400 - capi.EXPIRE_MARGIN - 1)
    assert capi.is_expired(created, created + 7 * 86400 - capi.EXPIRE_MARGIN)
