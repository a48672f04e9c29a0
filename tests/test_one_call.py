"""relay.outbox.one_call: the readers of a page asked in one event-loop turn share one D1 batch, each getting
its own statements' answers, even when a reader in the middle gave up (a cancelled task) before the batch came
back. Real SQLite."""

from __future__ import annotations

import asyncio

from relay.outbox.one_call import OneCall
from relay_tools.sqlite import SqliteDatabase


def test_each_reader_gets_its_own_rows_even_after_one_before_it_was_cancelled(tmp_path):
    sqlite = SqliteDatabase(tmp_path / "relay.db")

    async def scenario() -> tuple[list[object], list[object], int]:
        db = OneCall(sqlite)
        first = asyncio.ensure_future(db.batch([("SELECT 1 AS n", ()), ("SELECT 2 AS n", ())]))
        gone = asyncio.ensure_future(db.batch([("SELECT 3 AS n", ()), ("SELECT 4 AS n", ())]))
        last = asyncio.ensure_future(db.run("SELECT 5 AS n"))
        await asyncio.sleep(0)                 # all three have asked; the batch is not back yet
        gone.cancel()
        got = await first
        tail = await last
        return [r.rows[0]["n"] for r in got], [r["n"] for r in tail.rows], db.calls

    try:
        first, last, calls = asyncio.run(scenario())
    finally:
        sqlite.close()
    assert calls == 1, "one D1 call for the three readers"
    assert first == [1, 2]
    assert last == [5], "the reader after the cancelled one gets its own answer, not the cancelled one's"
