"""The CPU one Worker invocation spends in its own Python, as a cost model the cron pass plans with.

Inside a Worker, ``Date.now()`` and ``performance.now()`` advance only across I/O (a Spectre
mitigation), so a pass cannot time its own CPU: it adds up what it is about to do with the costs below
and stops before its plan's limit (``relay.jobs.limits``: 10 ms on the Free plan, 30 s on Paid, error 1102
past it, https://developers.cloudflare.com/workers/platform/limits/#cpu-time).

Every constant is one place. They are the Worker's own Python, measured in Pyodide 0.28.2 with the
real ``workers-runtime-sdk`` (CPU of ``entry.Default.scheduled`` per invocation, warm, the D1/R2 client
in another process, its CPU subtracted): docs/PERFORMANCE.md's figures after the glue was cut (issue 19
part 2, ``bench/glue_probe``), the higher of its two runs, p95 where it gives one. Provisional until
``bench/bench_worker_cpu.mjs`` measures the same code: refit the four numbers from it (docs/PLANS.md). A
model that errs low gets the invocation killed, so it is fitted high, and a pass plans to ``TARGET`` of its
limit only.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGET = 0.8        # a pass plans to this share of its plan's CPU limit: the rest absorbs the model's error


@dataclass(frozen=True)
class CpuModel:
    """Milliseconds of Worker CPU per unit of a cron invocation's work."""

    per_invocation: float      # entry, the runtime, scanning the shops, the pass's own bookkeeping
    per_subrequest: float      # around one fetch, D1 or R2 call: arguments, result, headers, the await
    per_listed_order: float    # one order of an orders.json page: json.loads, parse_order, its ledger row
    per_event: float           # one claimed row sent: its payload, consent, its part of Meta's body and the finish

    def cost(self, *, subrequests: int = 0, orders: int = 0, events: int = 0, invocations: int = 1) -> float:
        """Modeled CPU (ms) of that much work."""
        return (invocations * self.per_invocation + subrequests * self.per_subrequest
                + orders * self.per_listed_order + events * self.per_event)

    def orders_within(self, ms: float) -> int:
        """Listed orders whose parsing fits in ``ms``."""
        return max(0, int(ms / self.per_listed_order + 1e-9)) if self.per_listed_order > 0 else 10**9

    def events_within(self, ms: float, lines: bool) -> int:
        """Events (with a ``products.json`` call each when ``lines``) that fit in ``ms``."""
        each = self.per_event + (self.per_subrequest if lines else 0.0)
        return max(0, int(ms / each + 1e-9)) if each > 0 else 10**9


# docs/PERFORMANCE.md, "after": an idle cron run 4.9 ms (median; 3 D1 calls); a busy pass 110.7 ms p95 (48
# subrequests, 40 events with their products.json); the first pass 844 ms (45 subrequests, 11 events, a 250-order
# page). Before the cut (bench_worker_cpu, p95) the same fit gave 7.2, 3.0, 7.5 and 1.1.
MODEL = CpuModel(per_invocation=1.6, per_subrequest=1.3, per_listed_order=0.6, per_event=0.1)


def within(model: CpuModel, limit_ms: float, *, subrequests: int = 0, orders: int = 0, events: int = 0) -> bool:
    """Whether that much work, in one invocation, stays inside ``TARGET`` of ``limit_ms``."""
    return model.cost(subrequests=subrequests, orders=orders, events=events) <= limit_ms * TARGET
