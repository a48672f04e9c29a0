"""Writes that need no answer, carried by the request's next D1 call instead of a call of their own.

An admin page's right ``ADMIN_TOKEN`` clears its client's count of wrong tokens (``relay.web.throttle``): a
``DELETE`` whose answer nobody reads. Made at once it is a D1 call of its own, ~1.5 ms of the Workers Free
plan's 10 ms of CPU for every page (docs/PERFORMANCE.md); deferred, it goes first in the batch that reads what
the page shows (D1 runs a batch in order, as one transaction), and ``flush`` sends it alone only when the
request made no other call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.core.ports import Database, QueryResult

Statement = tuple[str, Sequence[Any]]


class DeferredWrites:
    """A ``Database`` that puts ``defer``-red statements in front of the next call it makes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[Statement] = []

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._pending.append((sql, params))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        if not self._pending:
            return await self.db.run(sql, params)
        return (await self.batch([(sql, params)]))[0]

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        pending, self._pending = self._pending, []
        if not pending:
            return await self.db.batch(statements)
        return (await self.db.batch([*pending, *statements]))[len(pending):]

    async def flush(self) -> None:
        """Send what is still deferred (the request made no other D1 call)."""
        pending, self._pending = self._pending, []
        if pending:
            await self.db.batch(pending)
