-- The orders.json page size a listing run asks for (relay.jobs.listing). It depends on the plan (RELAY_PLAN: the
-- free plan's pages are as small as its 10 ms of CPU can parse), and a run's `page` counts in pages of this size,
-- so it is kept with the run: a plan changed mid-run converts the page number instead of skipping orders.
-- NULL: 250, the only page size before this migration.
ALTER TABLE backfill ADD COLUMN run_limit INTEGER;
