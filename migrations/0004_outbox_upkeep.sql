-- Keep the cron pass's outbox queries on indexes as the ledger grows (they run every 10 minutes, and
-- D1 bills rows read). Derived from existing columns, so no write path has to maintain anything:
-- has_browser is true while an event still carries the shopper's IP address or user agent.
ALTER TABLE outbox ADD COLUMN has_browser INTEGER GENERATED ALWAYS AS (
    json_extract(payload, '$.user_data.client_ip_address') IS NOT NULL
    OR json_extract(payload, '$.user_data.client_user_agent') IS NOT NULL
) VIRTUAL;

-- Rows that still hold browser data, by age: what the pass makes forget it once Meta's window is over.
CREATE INDEX IF NOT EXISTS outbox_holding_browser ON outbox (event_time) WHERE has_browser;

-- What is due, across shops: the pass's first question.
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_leases ON outbox (state, lease_until);

-- Rows by age alone: the pass deletes what is past the ledger's retention (relay.outbox.ledger.RETENTION).
CREATE INDEX IF NOT EXISTS outbox_by_age ON outbox (event_time);
