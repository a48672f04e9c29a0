"""The per-shop delivery log: one NDJSON object per invocation and shop, in R2 (a folder locally).

Lines carry decisions and attempts only. The field whitelist is the guarantee that no email,
phone, name, address, IP, user agent, token or secret is ever written: anything else is dropped.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from relay.ports import Blobs

FIELDS = frozenset({
    "kind", "source", "order_id", "event_id", "from_state", "state", "verdict", "status", "code", "subcode",
    "fbtrace_id", "events_received", "error", "match_keys", "attempts", "events", "reason", "ms", "next_attempt_at",
})

logger = logging.getLogger("relay")


def log_key(shop: str, now: float, ident: str) -> str:
    t = time.gmtime(now)
    return f"logs/{shop}/{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}/{time.strftime('%H%M%S', t)}-{ident}.ndjson"


class DeliveryLog:
    def __init__(self) -> None:
        self.lines: dict[str, list[dict[str, Any]]] = {}

    def add(self, shop: str, at: float, **fields: Any) -> None:
        line = {"t": int(at), "shop": shop}
        line.update({k: v for k, v in fields.items() if k in FIELDS and v is not None})
        self.lines.setdefault(shop, []).append(line)
        logger.info("%s", json.dumps(line, sort_keys=True))

    async def flush(self, blobs: Blobs | None, now: float) -> list[str]:
        """Write and forget what was collected; the keys written."""
        lines, self.lines = self.lines, {}
        if blobs is None:
            return []
        keys = []
        for shop, entries in lines.items():
            key = log_key(shop, now, uuid.uuid4().hex[:12])
            data = "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries)
            await blobs.put(key, data.encode("utf-8"))
            keys.append(key)
        return keys
