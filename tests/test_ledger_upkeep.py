"""The outbox stays small and indexed: old rows go, and going cannot make anything be sent twice."""

from __future__ import annotations

import httpx

from conftest import PAID_HEADERS, PAID_RAW
from relay.outbox import cron_ledger, ledger
from relay_tools.sqlite import SqliteDatabase


def deliver(relay) -> dict:
    answer = httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()
    return answer.json()


def test_the_pass_deletes_rows_past_retention_and_a_late_redelivery_is_not_resent(relay, meta, clock):
    assert deliver(relay)["status"] == "accepted"
    clock.advance(ledger.RETENTION - 3600)
    relay.call(relay.relay.sweep())
    assert len(relay.call(relay.relay.runtime().ledger.rows())) == 1, "kept until the retention is over"

    clock.advance(2 * 3600)
    relay.call(relay.relay.sweep())
    assert relay.call(relay.relay.runtime().ledger.rows()) == []

    again = deliver(relay)                   # Lightspeed delivers the old order once more (orders/updated)
    assert again["status"] == "ignored" and "7-day" in again["reason"]
    assert len(meta.event_posts) == 1


def test_rows_that_may_still_be_sent_are_never_deleted(relay, meta, clock):
    meta.valid_tokens = {"EAAsome-other-token"}          # the shop is held: its event stays queued
    deliver(relay)
    clock.advance(ledger.RETENTION + 3600)
    relay.call(relay.relay.sweep())
    [row] = relay.call(relay.relay.runtime().ledger.rows())
    assert row["state"] == "expired"                    # too old for Meta now, but kept, and said why
    relay.call(relay.relay.sweep())
    assert relay.call(relay.relay.runtime().ledger.rows()) == []


def test_the_cron_statements_use_indexes_not_table_scans():
    db = SqliteDatabase(":memory:")
    db.migrate()
    for sql in (ledger._FORGET_BROWSER, ledger._DELETE_OLD, cron_ledger._DUE_BY_SHOP, cron_ledger._EXPIRE_ALL,
                ledger._CLAIM_DUE,
                ledger._CLAIM_ORDER, ledger._CLAIM_ORDER_UNHELD, ledger._EXPIRE, ledger._FINISH_MANY,
                ledger._RECORD_MANY):
        plan = [row[3] for row in db.conn.execute("EXPLAIN QUERY PLAN " + sql, [None] * sql.count("?"))]
        scans = [step for step in plan if step.startswith("SCAN outbox")]
        assert not scans, f"{' '.join(sql.split())[:60]}… scans the outbox: {plan}"
    db.close()
