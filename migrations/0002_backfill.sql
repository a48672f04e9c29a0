-- The cron pass's memory per shop (relay.jobs.backfill): how far the Lightspeed order listing has got, and
-- the small counters that keep it inside Lightspeed's and Meta's limits. One row per shop.
CREATE TABLE IF NOT EXISTS backfill (
    shop           TEXT    PRIMARY KEY,
    cursor         INTEGER,            -- every order updated before this time (unix s) is in the outbox
    completed_at   INTEGER,            -- when the last complete listing ended
    run_since      INTEGER,            -- a listing in progress: orders updated since this time,
    run_filter     TEXT,               --   asked for with this updated_at_min text (fixed for the whole run),
    run_started    INTEGER,            --   begun at this time (the cursor once it completes),
    run_page       INTEGER,            --   continuing at this page (stored with the page before it, atomically)
    utc_offset     INTEGER,            -- the shop's UTC offset in seconds, as its order timestamps show it
    paused_until   INTEGER,            -- the listing failed (outage, refused key): try it again after this
    rate_limited_until INTEGER,        -- Lightspeed's rate limit (429, or a window nearly spent): no call before
    served_at      INTEGER,            -- the last pass that gave this shop a turn: the least recent goes first
    meta_window    INTEGER,            -- the minute (unix s) that meta_requests counts
    meta_requests  INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,               -- why the listing stopped last time, for `relay backfill` and the logs
    updated_at     INTEGER NOT NULL
);
