"""The per-shop delivery log: one NDJSON object per invocation and shop, in R2 (a folder locally). On the free
plan the webhook's, the thank-you post's and a sending or listing cron pass's lines are staged in D1 in their own D1
call and written by a later pass (``relay.outbox.log_spool``): the same lines, built and encoded here.

Lines carry decisions and attempts only. Three rules keep customer data and secrets out:
- a field whitelist: anything not in ``FIELDS`` is dropped, so a new caller cannot leak by accident;
- plain values only: strings, numbers, booleans and lists of short strings; a dict or an object
  (an order, a request, an exception) is dropped whole instead of being stringified;
- every string is capped, and free text (``error``, ``reason``, ``warning``) is scrubbed of anything
  shaped like an email address or a Meta token, in case an upstream error message ever echoes one.

Each attempt line carries its state transition (``from_state`` → ``state``), so a reader can follow
an order without the ledger. The key is ``logs/<shop>/YYYY/MM/DD/HHMMSS-<id>.ndjson`` (UTC), so an R2
lifecycle rule on ``logs/`` expires whole days (docs/OPERATIONS.md); the id starts with the milliseconds, so
the keys of one second sort in the order they were written, and a reader shows the lines in time order.
Lines about an order carry its number beside its id: the number is what the shop owner knows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from relay.core.ports import Blobs
from relay.core.redact import redact

FIELDS = frozenset({
    "kind", "source", "order_id", "order_number", "event_id", "from_state", "state", "verdict", "status", "code",
    "subcode", "fbtrace_id", "events_received", "error", "match_keys", "attempts", "events", "reason", "ms",
    "next_attempt_at",
    # token and configuration health (relay.jobs.health)
    "check", "expires_at", "scopes", "warning", "version",
    # the identity bridge and consent (relay.jobs.consent): decisions and verdicts, never values
    "consent", "consent_source", "bridge",
})
TEXT_LIMIT = 300
FREE_TEXT = frozenset({"error", "reason", "warning"})   # words from upstream answers: scrubbed, not just capped

# What a ledger row becomes after an attempt with this verdict (relay.jobs.delivery._post).
STATE_AFTER = {"sent": "sent", "failed": "failed", "retry": "retry", "hold": "retry"}
_LEDGER_STATES = frozenset({"waiting", "due", "sent", "retry", "failed", "expired", "skipped"})


logger = logging.getLogger("relay")


def log_key(shop: str, now: float, ident: str) -> str:
    t = time.gmtime(now)   # the time of day formatted here: strftime is ~4x dearer in Pyodide and says the same
    return (f"logs/{shop}/{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}/"
            f"{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}-{ident}.ndjson")


def new_key(shop: str, now: float) -> str:
    """A fresh object's key at ``now``: the milliseconds, then 9 random hex digits."""
    return log_key(shop, now, f"{int(now * 1000) % 1000:03d}{os.urandom(5).hex()[:9]}")


def encode(entries: list[dict[str, Any]]) -> str:
    """Lines as an object holds them: one JSON object a line, keys sorted."""
    return "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries)


def scrub(text: str) -> str:
    """Cap free text and blank out email- or token-shaped pieces."""
    return _cap(redact(text))


def _cap(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1] + "…"


def _plain(key: str, value: Any) -> Any:
    """The value if it may go into a line, else ``None`` (dropped). (Type tuples, not ``X | Y``: that builds a
    union object on every call, a dozen times a line.)"""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return scrub(value) if key in FREE_TEXT else _cap(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and len(v) <= 64 for v in value):
        return list(value)
    return None


class DeliveryLog:
    def __init__(self) -> None:
        self.lines: dict[str, list[dict[str, Any]]] = {}
        self._states: dict[tuple[str, Any], str] = {}

    @staticmethod
    def line(shop: str, at: float, **fields: Any) -> dict[str, Any]:
        """The line ``add`` would collect, whitelisted and capped (``relay.outbox.log_spool`` stages it in D1)."""
        line: dict[str, Any] = {"t": int(at), "shop": shop}
        for key, value in fields.items():
            if key in FIELDS and (value := _plain(key, value)) is not None:
                line[key] = value
        return line

    def add(self, shop: str, at: float, **fields: Any) -> None:
        line = self.line(shop, at, **fields)
        if line.get("kind") == "attempt":
            self._transition(line)
        order = line.get("order_id")
        if order is not None and line.get("state") in _LEDGER_STATES:
            self._states[(shop, order)] = line["state"]
        self.lines.setdefault(shop, []).append(line)
        if logger.isEnabledFor(logging.INFO):   # the Worker logs no INFO: serialize the line once, at flush
            logger.info("%s", json.dumps(line, sort_keys=True, ensure_ascii=False))

    def _transition(self, line: dict[str, Any]) -> None:
        """Fill ``from_state`` and ``state`` on an attempt line from what this invocation already knows.

        The state before the claim is exact when this invocation logged the order's decision (the
        webhook path); otherwise a first attempt was ``due`` and a later one a ``retry`` (a row whose
        sender died mid-send also counts as a retry).
        """
        if "state" not in line and line.get("verdict") in STATE_AFTER:
            line["state"] = STATE_AFTER[line["verdict"]]
        if "from_state" not in line:
            known = self._states.get((line["shop"], line.get("order_id")))
            attempts = line.get("attempts")
            if known in ("due", "retry"):
                line["from_state"] = known
            elif isinstance(attempts, int):
                line["from_state"] = "due" if attempts <= 1 else "retry"

    def drop(self, counts: dict[str, int]) -> None:
        """Forget the first ``counts[shop]`` lines of each shop: they were committed elsewhere (a free cron pass
        stages them in its finish, ``relay.outbox.log_spool.pass_lines``). What the log knows of the orders'
        states stays, so a later attempt line of this invocation still says where it came from."""
        for shop, n in counts.items():
            rest = self.lines.get(shop, [])[n:]
            if rest:
                self.lines[shop] = rest
            else:
                self.lines.pop(shop, None)

    async def flush(self, blobs: Blobs | None, now: float) -> list[str]:
        """Write and forget what was collected; the keys written.

        A failed write loses no delivery (the ledger holds the truth, and each line already went to
        the console log), so it is reported and never raised into the send path.
        """
        lines, self.lines = self.lines, {}
        self._states = {}
        if blobs is None:
            return []
        keys = []
        for shop, entries in lines.items():
            key = new_key(shop, now)
            data = encode(entries)
            try:
                await blobs.put(key, data.encode("utf-8"))
            except Exception as exc:  # R2 or the disk refused: keep sending, say where the lines still are
                logger.warning("delivery log %s not written (%s); its %d line(s) are in the console log above",
                               key, type(exc).__name__, len(entries))
                continue
            keys.append(key)
        return keys
