-- The outbox: one row per (shop, order_id, event_name), holding the hashed event only.
-- Applied by `wrangler d1 migrations apply` in the Worker and by relay_tools.sqlite locally and in tests.
CREATE TABLE IF NOT EXISTS outbox (
    shop              TEXT    NOT NULL,
    order_id          INTEGER NOT NULL,
    event_name        TEXT    NOT NULL,
    order_number      TEXT    NOT NULL,
    event_id          TEXT    NOT NULL,
    event_time        INTEGER NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN
                          ('waiting', 'due', 'sending', 'sent', 'retry', 'failed', 'expired', 'skipped')),
    payment_status    TEXT    NOT NULL,
    order_updated_at  INTEGER,
    payload           TEXT    NOT NULL,
    match_keys        TEXT    NOT NULL DEFAULT '',
    needs_lines       INTEGER NOT NULL DEFAULT 0,
    source            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_token       TEXT,
    lease_until       INTEGER,
    last_status       INTEGER,
    last_code         INTEGER,
    last_subcode      INTEGER,
    last_fbtrace_id   TEXT,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    sent_at           INTEGER,
    PRIMARY KEY (shop, order_id, event_name)
);

CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (shop, state, next_attempt_at);

-- Per-shop state: the cached currency and a hold when the shop's Meta token is refused.
CREATE TABLE IF NOT EXISTS shops (
    shop          TEXT PRIMARY KEY,
    currency      TEXT,
    currency_at   INTEGER,
    held_until    INTEGER,
    held_token    TEXT,
    held_reason   TEXT,
    updated_at    INTEGER NOT NULL
);
