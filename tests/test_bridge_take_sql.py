"""``POST /bridge`` in one D1 call (``relay.outbox.bridge_take``) decides and writes exactly what
``relay.core.binding.place`` and the old two-call write path (tests/bridge_oracle.py) did.

Each scenario (tests/bridge_cases.py, seeded) starts two copies of one real SQLite database: orders known, unknown
or decided, posts already kept (full sets, settled or pending, some past retention), a shop's hour near its
allowance, clients at the rate limit. Its posts and ledger changes go to both, one through each path; after every
step the answers (stored, limited, bound, held) and every table (bridge and its ids, the hour's tallies, the
clients' counts, the ledger's due times) must be the same. Each batch of scenarios must also have reached every
outcome of ``place`` and every binding, so a generator that stopped covering one fails here too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import bridge_oracle
from bridge_cases import SHOP, Scenario
from relay.core.binding import BOUND
from relay.outbox.bridge import BridgeStore
from relay_tools.sqlite import SqliteDatabase

TABLES = ("bridge", "bridge_shops", "bridge_clients", "outbox", "sqlite_sequence")
BATCHES, SCENARIOS, STEPS = 3, 60, 30
OUTCOMES = {"limited", "stored pending", "stored bound", "stored replacing one not bound", "stored replacing the "
            "shop's oldest pending", "unbound", "full", "after", "held made due", "settled"}
BINDINGS = {f"{which} {b}" for which in ("post", "settled") for b in ("bound", "agent", "early", "late", "value")}


def dump(db: SqliteDatabase) -> dict[str, list[tuple[Any, ...]]]:
    return {table: [tuple(r) for r in db.conn.execute(f"SELECT * FROM {table} ORDER BY rowid")] for table in TABLES}


def outcomes(slot: Any, taken: Any) -> set[str]:
    if slot is None:
        return {"limited"}
    seen = {slot.outcome}
    if slot.stored:
        seen = {"stored bound" if slot.binding == BOUND else "stored pending"}
        if slot.evict is not None:
            seen.add("stored replacing one not bound")
        if slot.evict_shop_oldest:
            seen.add("stored replacing the shop's oldest pending")
    if slot.settle:
        seen.add("settled")
    if taken.held:
        seen.add("held made due")
    return seen


async def run_scenario(seed: int, seen: set[str], bindings: set[str]) -> None:
    scenario = Scenario(seed)
    old, new = SqliteDatabase(), SqliteDatabase()
    try:
        old.migrate()
        for sql, params in scenario.setup:
            old.conn.execute(sql, params)
        old.conn.backup(new.conn)
        for step, (kind, what) in enumerate(scenario.steps(STEPS)):
            if kind == "ledger":
                for db in (old, new):
                    db.conn.execute(*what)
                continue
            post, ip, agent, now = what
            expected, slot, bound = await bridge_oracle.take(old, SHOP, post, ip, agent, now)
            got = await BridgeStore(new).take(SHOP, post, ip, agent, now)
            where = f"seed {seed}, step {step}: {post} from {ip!r} as {agent!r} at {now}"
            assert got == expected, where
            assert dump(new) == dump(old), where
            seen |= outcomes(slot, expected)
            bindings |= {f"post {bound}"} | {f"settled {b}" for b in (slot.settle.values() if slot else ())}
    finally:
        old.close()
        new.close()


@pytest.mark.parametrize("batch", range(BATCHES))
def test_one_call_decides_and_writes_what_place_and_the_two_call_path_did(batch: int) -> None:
    seen: set[str] = set()
    bindings: set[str] = set()

    async def scenarios() -> None:
        for seed in range(batch * SCENARIOS, (batch + 1) * SCENARIOS):
            await run_scenario(seed, seen, bindings)

    asyncio.run(scenarios())
    assert OUTCOMES <= seen, f"the generated cases never reached {sorted(OUTCOMES - seen)}"
    assert BINDINGS <= bindings, f"no post was {sorted(BINDINGS - bindings)}"
