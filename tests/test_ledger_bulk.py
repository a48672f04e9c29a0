"""A listed page's rows go in as one statement (``json_each`` over one JSON parameter); what it stores and
answers must be exactly what the row-by-row UPSERT stores and answers, on real SQLite."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from relay.outbox.cron_ledger import CronLedger
from relay.outbox.ledger import Ledger, json_chunks
from relay.outbox.rows import NewRow, Progress
from relay_tools.sqlite import SqliteDatabase

NOW = 1_796_040_000


def row(order_id: int, **changes: object) -> NewRow:
    payload = json.dumps({"event_id": f"purchase_ORD{order_id}", "user_data": {"fn": "ä" * 3},
                          "custom_data": {"value": 12.5, "note": "Ünïcödé \"quoted\" \\ 😀"}}, ensure_ascii=False)
    base = NewRow(shop="vik", order_id=order_id, event_name="Purchase", order_number=f"ORD{order_id}",
                  event_id=f"purchase_ORD{order_id}", event_time=NOW - 3600, state="due", payment_status="paid",
                  order_updated_at=NOW - 600, payload=payload, match_keys="em,fn", needs_lines=True,
                  source="backfill", last_error=None)
    return dataclasses.replace(base, **changes)   # type: ignore[arg-type]


def cancelled(order_id: int) -> NewRow:
    event = row(order_id, event_name="OrderCancelled", event_id=f"cancel_ORD{order_id}", needs_lines=False)
    return row(order_id, state="skipped", payment_status="cancelled", order_updated_at=NOW - 60,
               last_error="order cancelled before it was sent", cancelled_at=NOW, cancel_event=event)


def ledger_rows(db: SqliteDatabase) -> list[dict[str, object]]:
    return [dict(r) for r in db.conn.execute("SELECT * FROM outbox ORDER BY order_id, event_name")]


def test_a_page_in_one_statement_stores_and_answers_what_row_by_row_does(tmp_path):
    first = [row(1), row(2, state="waiting", payment_status="pending"), row(3), row(4, state="retry")]
    # The second page: a repeat (unchanged), a newer update, a stale one, a cancellation of an order Meta has,
    # one of an order still due, and a new order.
    second = [row(1), row(2, order_updated_at=NOW - 300), row(3, order_updated_at=NOW - 9000, payload="{}"),
              cancelled(4), cancelled(1), row(5, needs_lines=False)]
    answers = {}
    tables = {}
    for how in ("bulk", "row by row"):
        db = SqliteDatabase(tmp_path / f"{how}.db")
        db.migrate()

        async def page(rows: list[NewRow], how: str = how, db: SqliteDatabase = db) -> list[str | None]:
            if how == "bulk":
                return await CronLedger(db).record_page(rows, NOW, Progress("vik", cursor=NOW))
            return [await Ledger(db).record(r, NOW) for r in rows]

        got = [asyncio.run(page(first))]
        db.conn.execute("UPDATE outbox SET state = 'sent' WHERE order_id = 4")   # Meta has order 4 now
        got.append(asyncio.run(page(second)))
        answers[how], tables[how] = got, ledger_rows(db)
        db.close()
    assert answers["bulk"] == answers["row by row"]
    assert answers["bulk"][1] == [None, "due", None, "cancellation due", "skipped", "due"]
    assert tables["bulk"] == tables["row by row"]
    assert json.loads(str(tables["bulk"][0]["payload"]))["custom_data"]["note"] == "Ünïcödé \"quoted\" \\ 😀"


def test_a_large_page_is_split_into_parameters_under_the_limit_and_keeps_every_row():
    rows = [[i, "x" * 100, None, True, 1.5] for i in range(50)]
    chunks = json_chunks(rows, limit=1000)
    assert len(chunks) > 1 and all(len(c) <= 1000 for c in chunks)
    assert [r for c in chunks for r in json.loads(c)] == [list(r) for r in rows]
    assert json_chunks([]) == []
