"""Many independent reads, one D1 call: the statements asked for together go out as one ``batch``.

An admin page reads a dozen small things (counts, the oldest waiting order, token checks, revenue, the
thank-you script's coverage, ...), each from the module that owns it. Asked one by one, that is a dozen D1
subrequests, each paying the runtime's per-call conversion; on the Workers Free plan (10 ms of CPU per
invocation) that alone is over budget. The page runs its readers concurrently (``asyncio.gather``) over
one ``OneCall`` port: every ``run`` and ``batch`` they make before the event loop turns is queued, and the
queue is sent as one ``batch`` (D1 runs it in one round trip, in order, as one transaction), its results
handed back to each reader. A reader that reads again after its first answer (it should not) simply makes a second call.

``gather`` runs the readers without a task each: in a Python Worker every task, every ``call_soon`` and every
future's callback is a turn of Pyodide's event loop, a JavaScript timer and a callback across the bridge (a
dashboard's seven readers under ``asyncio.gather`` took ~23 of them). It steps each reader's coroutine until it
waits on this port, sends the one batch, hands out the answers and steps them again.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Coroutine, Sequence
from typing import Any

from relay.core.ports import Database, QueryResult

Statement = tuple[str, Sequence[Any]]


class OneCall:
    """A ``Database`` that sends what is asked for in the same event-loop turn as one ``batch``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.calls = 0                                  # batches sent: what the page cost in D1 calls
        self._queue: list[tuple[list[Statement], asyncio.Future[list[QueryResult]]]] = []
        self._stepping = False                          # ``gather`` sends the queue itself
        self._sending: asyncio.Future[None] | None = None

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        return (await self._ask([(sql, params)]))[0]

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        return await self._ask(list(statements))

    async def _ask(self, statements: list[Statement]) -> list[QueryResult]:
        if not statements:
            return []
        future: asyncio.Future[list[QueryResult]] = asyncio.get_running_loop().create_future()
        self._queue.append((statements, future))
        if len(self._queue) == 1 and not self._stepping:
            asyncio.get_running_loop().call_soon(self._send, 1)   # after the other readers have asked
        return await future

    def _send(self, seen: int) -> None:
        if len(self._queue) > seen:          # readers still asking (a reader gathering readers): one more turn
            asyncio.get_running_loop().call_soon(self._send, len(self._queue))
            return
        self._sending = asyncio.ensure_future(self._flush())   # held: the loop keeps only a weak reference

    async def gather(self, readers: Sequence[Coroutine[Any, Any, Any]]) -> list[Any]:
        """What ``asyncio.gather(*readers)`` answers (the first error raised, the others closed), with no task or
        event-loop turn per reader: each is stepped until it waits, the queue goes out as one batch, and the
        readers resume with their answers. Something else a reader waits for is awaited here, in turn."""
        results: list[Any] = [None] * len(readers)
        waiting = list(enumerate(readers))
        self._stepping = True
        try:
            while waiting:
                parked: list[tuple[int, Coroutine[Any, Any, Any], Any]] = []
                for n, (i, reader) in enumerate(waiting):
                    try:
                        awaited = reader.send(None)
                    except StopIteration as stop:
                        results[i] = stop.value
                        continue
                    except BaseException:
                        for _, other in waiting[n + 1:]:
                            other.close()
                        for _, other, _ in parked:
                            other.close()
                        raise
                    parked.append((i, reader, awaited))
                if self._queue:
                    await self._flush()
                for _, _, awaited in parked:             # a reader waiting on something else: wait for it here
                    if isinstance(awaited, asyncio.Future) and not awaited.done():
                        await asyncio.wait([awaited])
                waiting = [(i, reader) for i, reader, _ in parked]
        finally:
            self._stepping = False
        return results

    async def _flush(self) -> None:
        """Send the queue as one batch and settle every asker's future with its answer (or the error)."""
        queued, self._queue = self._queue, []
        self.calls += 1
        try:
            answers = await self.db.batch([s for statements, _ in queued for s in statements])
        except asyncio.CancelledError:
            for _, future in queued:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in queued:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()     # the first reader raises it; the others are closed, not left to log it
            return
        end = 0
        for statements, future in queued:
            start, end = end, end + len(statements)    # a reader that gave up still holds its place
            if not future.done():
                future.set_result(answers[start:end])


def json_tables(parts: Sequence[tuple[str, str, str]]) -> str:
    """Several selects as one statement returning one row: a column per ``(name, select, columns)``, each
    holding that select's rows as ``json_rows`` does. Its parameters are the selects' ``?``, in order."""
    return "SELECT " + ", ".join(f"({json_rows(select, columns)}) AS {name}" for name, select, columns in parts)


def tables_of(result: QueryResult) -> dict[str, list[dict[str, Any]]]:
    """The tables a ``json_tables`` statement returned, by name."""
    row = result.rows[0] if result.rows else {}
    return {name: json.loads(text or "[]") for name, text in row.items()}


@functools.lru_cache(maxsize=64)       # pure, and the same few statements every page: built once per isolate
def json_rows(select: str, columns: str) -> str:
    """``select`` as one row with one column, ``rows``: its rows as one JSON array of objects, in its order.

    ``columns`` is the select's column list (``"a, b, c"``, plain names). ``json_tables`` puts several such selects
    in one statement, so a page's dozen small reads cost D1 one statement (one answer's ``meta``, one statement's
    work in D1's client) instead of a dozen. Only for integer, text and null columns (JSON has no blobs, and a real
    would come back as a float anyway).
    """
    fields = ", ".join(f"'{c}', {c}" for c in (name.strip() for name in columns.split(",")))
    return f"SELECT json_group_array(json_object({fields})) AS rows FROM ({select})"
