-- The identity bridge (relay.outbox.bridge): what a shop's thank-you page posted about its order, kept
-- until the order's Purchase is decided and at most 8 days (a day past Meta's 7-day window), then deleted.
-- The first post for an order is the one kept; later ones only count in `posts`. The shopper's IP address
-- and user agent are cleared as soon as the order's event is sent, skipped or failed.
CREATE TABLE IF NOT EXISTS bridge (
    shop          TEXT    NOT NULL,
    order_number  TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    consent       TEXT    NOT NULL CHECK (consent IN ('granted', 'denied', 'unknown')),
    fbp           TEXT,
    fbc           TEXT,
    fbclid        TEXT,
    value         TEXT,                 -- the order total the page showed, as posted (a decimal string)
    url           TEXT,
    ip            TEXT,
    user_agent    TEXT,
    posts         INTEGER NOT NULL DEFAULT 1,
    verdict       TEXT,                 -- once decided: attached, or why not (early, late, value, denied,
                                        -- after: it came once the order's event was already sent)
    PRIMARY KEY (shop, order_number)
);
CREATE INDEX IF NOT EXISTS bridge_by_age ON bridge (received_at);

-- Posts per client and minute, for the 429 answer; rows older than a few minutes are deleted as posts come.
-- The client is a hash of the IP address, never the address itself.
CREATE TABLE IF NOT EXISTS bridge_clients (
    client  TEXT    NOT NULL,
    minute  INTEGER NOT NULL,
    posts   INTEGER NOT NULL,
    PRIMARY KEY (client, minute)
);

-- The consent decision at send time (send or skip) and what decided it (off, granted, denied, unknown, none).
ALTER TABLE outbox ADD COLUMN consent TEXT;
ALTER TABLE outbox ADD COLUMN consent_source TEXT;
