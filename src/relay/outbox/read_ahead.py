"""Reads made ahead, in a D1 call that goes out anyway, answered later from what came back.

A cron invocation's jobs (``relay.jobs.schedule``: the daily checks, the alerts) each start by reading their
table, one D1 call each, and on the Workers Free plan a call costs about 1.5 ms of a 10 ms invocation: more
than the rest of an idle run. Their statements are known before the pass starts, so they ride at the end of
the pass's first batch (``CronLedger.start_pass``), and the jobs then run over a ``ReadAhead``: it answers
each of those statements, with the same parameters, once, from what was read, and sends anything else to the
real database. ``relay.outbox.one_call`` does the same for reads made at the same moment; this is for reads
known early and made later.

An answer read ahead is only as fresh as the call that read it. So the caller hands over only results read
since its own last write, and the first call that goes to the database (a write, or any read not made ahead)
ends the read-ahead: from then on everything goes to the database, and a job sees what an earlier job wrote
(the alerts see a hold the health check set in the same invocation). Answers are not calls: a ``Meter``
wrapped inside this one counts only what reaches the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from relay.core.ports import Database, QueryResult

Statement = tuple[str, Sequence[Any]]


class ReadAhead:
    """A ``Database`` that answers statements read ahead (``read``: each statement with its result) once each."""

    def __init__(self, db: Database, read: Iterable[tuple[Statement, QueryResult]] = ()) -> None:
        self.db = db
        self._ahead = [(sql, list(params), result) for (sql, params), result in read]

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        found = self._take([(sql, params)])
        return found[0] if found is not None else await self.db.run(sql, params)

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        found = self._take(statements)
        return found if found is not None else await self.db.batch(statements)

    def _take(self, statements: Sequence[Statement]) -> list[QueryResult] | None:
        """The answers to all of ``statements``, each taken from what was read ahead; ``None`` when one of
        them was not read ahead (the call goes to the database, and what was read ahead may be stale after it)."""
        left = list(self._ahead)
        found: list[QueryResult] = []
        for sql, params in statements:
            wanted = list(params)
            i = next((i for i, (s, p, _) in enumerate(left) if s == sql and p == wanted), None)
            if i is None:
                self._ahead = []
                return None
            found.append(left.pop(i)[2])
        self._ahead = left
        return found
