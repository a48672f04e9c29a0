"""A free pass fills its modeled CPU once: the calls, the events and their lines each counted one time.

``Pass.room`` (subrequests, capped by the CPU left for calls alone) and ``Pass.cpu_room`` (the CPU left after
some calls) both read the one meter; the send round plans its calls against the first and its events against
the second, so a unit's CPU is planned with once. Were it counted in both, a pass would send fewer events than
its CPU holds: this checks it sends exactly as many as the model fits at its target share.
"""

from __future__ import annotations

import pytest

from relay.core.cpu_model import TARGET, CpuModel
from relay.jobs import limits
from relay_tools.fakes import FakeLightspeed
from test_backfill import LINES, Harness, sent_event_ids
from test_plans import free_env
from test_sweep import bodies, store

CHEAP_EVENTS = CpuModel(per_invocation=1.0, per_subrequest=0.3, per_listed_order=0.5, per_event=0.25)


@pytest.fixture
def harness(env, tmp_path, log_root, clock, meta, lightspeed):
    h = Harness(env, tmp_path, log_root, clock, [meta, lightspeed])
    yield h
    h.close()


@pytest.mark.parametrize("embedded", [True, False], ids=["lines-embedded", "lines-fetched"])
def test_a_free_pass_sends_as_many_events_as_its_cpu_holds_not_fewer(harness, env, meta, lightspeed, embedded):
    free_env(env)
    orders = bodies(40) if embedded else bodies(40, products=None)     # else a products.json call per event
    for i in range(40):
        lightspeed.products[800_000 + i] = LINES
    store(harness, *orders)
    plan = limits.for_plan(limits.FREE, model=CHEAP_EVENTS)
    harness.run(lambda: harness.one_pass(limits=plan, listing=False))
    calls, sent = harness.spent[-1], len(sent_event_ids(meta))
    assert len(list_lines(lightspeed)) == (0 if embedded else sent)
    target = plan.cpu_ms * TARGET
    assert 0 < sent < 40
    assert CHEAP_EVENTS.cost(subrequests=calls, events=sent) <= target
    # one more event (and its lines) would not fit beside the calls made and the round's spare calls
    more = calls + limits.SPARE + (0 if embedded else 1)
    assert CHEAP_EVENTS.cost(subrequests=more, events=sent + 1) > target, (calls, sent)


def list_lines(lightspeed: FakeLightspeed) -> list[object]:
    return [r for r in lightspeed.requests if r.path.endswith("/products.json")]
