"""The listing under odd conditions: run by hand right after the cron listed, and pages that hold an order
that cannot be read."""

from __future__ import annotations

from collections import Counter

import pytest

from relay.web import status
from relay_tools import backfill_cli
from test_backfill import PAID, Harness, event_id, list_requests, listed, sent_event_ids, stamp


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


def test_one_unreadable_order_on_a_page_does_not_stop_the_listing(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    good = [listed(PAID, 710_001, now - 7200), listed(PAID, 710_003, now - 3600)]
    poisoned = listed(PAID, 710_002, now - 5400, priceIncl=1e26)
    lightspeed.orders.extend([good[0], poisoned, good[1]])

    async def scenario() -> dict:
        totals = await h.until_done()
        assert totals.shops["vik"].unreadable == 1 and totals.shops["vik"].listing == "complete"
        return await status.collect(h.runtime())

    report = h.run(scenario)
    assert sent_event_ids(meta) == Counter(event_id(o) for o in good)
    assert set(h.rows()) == {710_001, 710_003}
    assert h.progress()["cursor"] is not None and h.progress()["run_page"] is None     # the cursor moved on
    shop = report["shops"][0]
    assert shop["unreadable"]["orders"] == 1 and shop["unreadable"]["latest_order_id"] == 710_002
    assert "priceIncl" in shop["unreadable"]["latest_reason"]
    assert any("could not be read" in w and "710002" in w for w in shop["warnings"])


def test_an_unreadable_order_corrected_in_lightspeed_is_sent_and_leaves_the_status(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    order = listed(PAID, 720_001, now - 3600, number="N" * 80)          # no event_id can be made of it
    lightspeed.orders.append(order)

    async def scenario() -> dict:
        await h.until_done()
        assert meta.event_posts == []
        order.update(number="ORD720001", updatedAt=stamp(clock.now))
        clock.advance(600)
        await h.until_done()
        return await status.collect(h.runtime())

    report = h.run(scenario)
    assert sent_event_ids(meta) == Counter(["purchase_ORD720001"])
    assert report["shops"][0]["unreadable"]["orders"] == 0
