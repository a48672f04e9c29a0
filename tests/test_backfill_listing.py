"""The listing under odd conditions: run by hand right after the cron listed, and pages that hold an order
that cannot be read."""

from __future__ import annotations

from collections import Counter

import pytest

from relay_tools import backfill_cli
from test_backfill import PAID, Harness, event_id, list_requests, listed, sent_event_ids


@pytest.fixture
def harness(env, tmp_path, log_root, clock, meta, lightspeed):
    h = Harness(env, tmp_path, log_root, clock, [meta, lightspeed])
    yield h
    h.close()


def test_relay_backfill_by_hand_lists_now_even_right_after_a_complete_listing(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    first = listed(PAID, 700_001, now - 3600)
    lightspeed.orders.append(first)

    async def scenario() -> backfill_cli.Totals:
        await h.until_done()
        assert sent_event_ids(meta) == Counter([event_id(first)])
        clock.advance(60)                               # a minute later, well inside the cron's 5-minute spacing
        lightspeed.orders.append(listed(PAID, 700_002, clock.now - 30))
        return await h.until_done()

    again = h.run(scenario)
    assert again.shops["vik"].listing == "complete"
    assert len(list_requests(lightspeed)) == 2
    assert sent_event_ids(meta) == Counter([event_id(first), "purchase_ORD700002"])


def test_the_cron_keeps_its_spacing_between_listings(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    lightspeed.orders.append(listed(PAID, 700_003, now - 3600))

    async def scenario() -> None:
        await h.one_pass()
        clock.advance(60)
        report = await h.one_pass()
        assert report.shops["vik"].listing == "idle"

    h.run(scenario)
    assert len(list_requests(lightspeed)) == 1
