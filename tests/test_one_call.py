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


def test_gather_answers_as_asyncio_gather_does_in_one_call_and_raises_the_first_error(tmp_path):
    """``OneCall.gather``, which the admin pages use, steps the readers without a task each: the same answers in
    the readers' order, one D1 call for every first read, a second only for a reader that reads again, and a
    reader's error raised with the others closed (never left pending)."""
    sqlite = SqliteDatabase(tmp_path / "relay.db")
    closed: list[str] = []

    async def reader(db: OneCall, n: int, again: bool = False) -> int:
        first = (await db.run("SELECT ? AS n", (n,))).rows[0]["n"]
        if again:
            await asyncio.sleep(0)                                  # a bare yield: not a future
            await asyncio.sleep(0.01)                               # a future that is not the port's
            return first + (await db.run("SELECT 100 AS n")).rows[0]["n"]
        return int(first)

    async def broken(db: OneCall) -> int:
        await db.run("SELECT nope FROM nowhere")
        return 0

    async def watched(db: OneCall, name: str) -> int:
        try:
            return await reader(db, 7)
        finally:
            closed.append(name)

    async def scenario() -> tuple[list[object], list[object], int, str]:
        db = OneCall(sqlite)
        plain = await asyncio.gather(reader(db, 1), reader(db, 2), reader(db, 3, again=True))
        db = OneCall(sqlite)
        stepped = await db.gather([reader(db, 1), reader(db, 2), reader(db, 3, again=True)])
        calls = db.calls
        db = OneCall(sqlite)
        try:
            await db.gather([watched(db, "before"), broken(db), watched(db, "after")])
            error = ""
        except Exception as exc:   # SQLite's error for the missing table, as asyncio.gather raises it
            error = str(exc)
        return plain, stepped, calls, error

    try:
        plain, stepped, calls, error = asyncio.run(scenario())
    finally:
        sqlite.close()
    assert stepped == plain == [1, 2, 103]
    assert calls == 2, "one batch for the three first reads, one for the reader that read again"
    assert "nowhere" in error
    assert sorted(closed) == ["after", "before"], "no reader is left pending"
