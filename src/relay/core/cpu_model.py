"""The CPU one Worker invocation spends in its own Python, as a cost model the cron pass plans with.

Inside a Worker, ``Date.now()`` and ``performance.now()`` advance only across I/O (a Spectre
mitigation), so a pass cannot time its own CPU: it adds up what it is about to do with the costs below
and stops before its plan's limit (``relay.jobs.limits``: 10 ms on the Free plan, 30 s on Paid, error 1102
past it, https://developers.cloudflare.com/workers/platform/limits/#cpu-time).

Every constant is one place. They are the Worker's own Python, measured per cron pass in Pyodide 0.28.2
with the real ``workers-runtime-sdk`` by ``bench/bench_worker_cpu.mjs --env RELAY_PLAN=free --per-pass``
(CPU of each ``entry.Default.scheduled`` invocation with its ``waitUntil`` work, the D1/R2 client in
another process, the bench's own forwarding cost per call subtracted), and fitted by least squares over
the passes of nine shapes (2- and 15-order pages; 1, 4, 11 events sent; a currency fetch; idle runs):
docs/PLANS.md says how. A model that errs low gets the invocation killed, so the constants put the units
a free pass does at about their measured p95, and a pass plans to ``TARGET`` of its limit, taking one
unit past it only when it has done nothing yet (``relay.jobs.cron_pass``).
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


# bench_worker_cpu per pass (2026-12-06, 3,160 passes, docs/PLANS.md): least squares gives 1.62 / 0.85 / 0.70 / 0.40 on
# the main thread's CPU and 1.32 / 0.92 / 0.95 / 0.91 on the process's (GC threads too). An event always comes with its
# products.json call, so the two are hard to tell apart: the model puts the cost on the call. The smallest units then
# model at about their measured main-thread p95: one event 1.6 + 6 x 1.3 + 0.1 = 9.5 ms (the start, claim, lines,
# Meta, finish, log object; p95 9.5) and a 2-order page 1.6 + 4 x 1.3 + 2 x 0.6 = 8.0 ms (p95 8.3). Before this fit:
# 2.6 / 0.8 / 3.2 / 1.6 (docs/PERFORMANCE.md), with which no unit fitted 10 ms. Since the pass's start claims the
# event (relay.jobs.send_ahead) it is 5 calls, 8.2 ms; the constants price a call, so they stand.
MODEL = CpuModel(per_invocation=1.6, per_subrequest=1.3, per_listed_order=0.6, per_event=0.1)
