-- Token and configuration health (relay.jobs.health): the latest daily check per shop, shown by /status and
-- /dashboard. History lives in the delivery log (kind "health" lines in R2). No token is stored, only its
-- fingerprint (relay.core.config.Secret.fingerprint), so a replaced token is noticed and checked at the next cron run.
CREATE TABLE IF NOT EXISTS shop_health (
    shop               TEXT    PRIMARY KEY,
    checked_at         INTEGER NOT NULL,
    token_fingerprint  TEXT    NOT NULL,
    token_state        TEXT    NOT NULL CHECK (token_state IN ('ok', 'expiring', 'invalid', 'unknown')),
    token_expires_at   INTEGER,                 -- NULL: not known; 0: never expires
    token_issued_at    INTEGER,                 -- when Meta issued it (for the 90-day rotation), if Meta says
    token_scopes       TEXT    NOT NULL DEFAULT '',
    token_code         INTEGER,
    token_error        TEXT,
    graph_version      TEXT    NOT NULL,        -- META_API_VERSION when checked
    served_version     TEXT,                    -- the version Meta answered with (facebook-api-version)
    lightspeed_state   TEXT    NOT NULL CHECK (lightspeed_state IN ('ok', 'failed', 'unknown')),
    lightspeed_status  INTEGER,
    lightspeed_error   TEXT
);

-- The status page counts orders by event_time per shop (last 24 h / 7 d); without this it scans the outbox.
CREATE INDEX IF NOT EXISTS outbox_by_event_time ON outbox (shop, event_time);
