-- Meta's own score per pixel (relay.jobs.quality): the latest daily Dataset Quality answer for the Purchase event,
-- shown by /status and /dashboard beside the relay's own match-key coverage. Lists are JSON text; no token is
-- stored, only its fingerprint, so a replaced token is asked about again at the next cron run.
CREATE TABLE IF NOT EXISTS dataset_quality (
    pixel_id           TEXT    PRIMARY KEY,
    shop               TEXT    NOT NULL,            -- the shop whose token asked
    checked_at         INTEGER NOT NULL,
    token_fingerprint  TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('ok', 'no_data', 'no_access', 'unknown')),
    score              REAL,                        -- EMQ composite score, 0-10
    match_keys         TEXT    NOT NULL DEFAULT '[]',   -- [[key, percentage], ...]
    dedup              TEXT    NOT NULL DEFAULT '[]',   -- [[dedupe_key, server %, browser %], ...]
    coverage           REAL,                        -- event coverage, %
    diagnostics        TEXT    NOT NULL DEFAULT '[]',   -- ["name: solution", ...]
    code               INTEGER,
    error              TEXT
);

-- Alert conditions that are on now (relay.jobs.alerts), one row per shop and condition: a "started" message
-- went out when the row was written, a "cleared" one goes out when the condition ends and the row is deleted.
CREATE TABLE IF NOT EXISTS alerts (
    shop        TEXT    NOT NULL,
    condition   TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    count       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (shop, condition)
);
