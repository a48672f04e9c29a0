"""Unix times as the admin answers show them (``/status``, the dashboard): UTC ISO text, one rule.

In the Worker's Python formatting dates is dear: ``datetime.isoformat`` costs a fifth of ``strftime``, and this half
of ``isoformat`` (the date made once per day, cached, since a page's rows share a few days; the time from whole
numbers). A stored time beyond what a date can show reads as year 9999 (or 1970), not a 500. ``GET /orders`` shows
150 times a page, so its query has D1 format them by the same rule (``relay.outbox.orders.iso_sql``; the tests hold
the two to the same text).
"""

from __future__ import annotations

import functools
from datetime import date

MAX_TIMESTAMP = 253402300799       # 9999-12-31T23:59:59Z, the last second a datetime can show
DAY = 86400
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def iso(ts: int) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ``, ``ts`` held to 1970 .. 9999."""
    day, second = divmod(min(max(int(ts), 0), MAX_TIMESTAMP), DAY)
    return f"{iso_date(day)}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


def iso_date(day: int) -> str:
    """UTC ``YYYY-MM-DD`` of the ``day``-th day since 1970-01-01, held to 1970 .. 9999."""
    return _date(min(max(day, 0), MAX_TIMESTAMP // DAY))


@functools.lru_cache(maxsize=256)
def _date(day: int) -> str:
    return date.fromordinal(_EPOCH_DAY + day).isoformat()
