-- The identity bridge keeps a small set of posts per order, not only the first (issue 22, relay.core.binding):
-- a post counts only when it is bound to the browser that placed the order (its user agent, inside the time
-- window, the total when given), and one that is not bound must never take the slot of one that is. So the
-- table's key becomes a row id, with at most 8 rows per order (relay.core.binding.PER_ORDER), and each row
-- says whether it is bound once its order is known. Rows move over as they are (binding still to be settled).
CREATE TABLE bridge_posts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    shop          TEXT    NOT NULL,
    order_number  TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    consent       TEXT    NOT NULL CHECK (consent IN ('granted', 'denied', 'unknown')),
    fbp           TEXT,
    fbc           TEXT,
    fbclid        TEXT,
    value         TEXT,                 -- the order total the page showed, as posted (a decimal string)
    url           TEXT,
    ip            TEXT,                 -- cleared once the order's event is decided
    user_agent    TEXT,                 -- cleared once the order's event is decided
    binding       TEXT,                 -- NULL while the order is not known, then: bound, or why not
                                        -- (agent: another browser, early, late, value: another total)
    verdict       TEXT                  -- once the order's event is decided: attached or denied (the post
                                        -- that counted), unused (bound, not the first), or the binding's reason
);
INSERT INTO bridge_posts (shop, order_number, received_at, consent, fbp, fbc, fbclid, value, url, ip, user_agent,
                          verdict)
SELECT shop, order_number, received_at, consent, fbp, fbc, fbclid, value, url, ip, user_agent, verdict FROM bridge;
DROP TABLE bridge;
ALTER TABLE bridge_posts RENAME TO bridge;
CREATE INDEX IF NOT EXISTS bridge_by_order ON bridge (shop, order_number, received_at);
CREATE INDEX IF NOT EXISTS bridge_pending ON bridge (shop, binding, received_at);
CREATE INDEX IF NOT EXISTS bridge_by_age ON bridge (received_at);

-- Posts per shop and hour: how many were kept (pending posts past the hour's allowance replace the shop's
-- oldest pending one instead of adding a row), how many were not kept because they were not bound (or the
-- order already had its 8), and how many came after the order's event was decided. Deleted after 8 days.
CREATE TABLE IF NOT EXISTS bridge_shops (
    shop        TEXT    NOT NULL,
    hour        INTEGER NOT NULL,       -- unix time // 3600
    stored      INTEGER NOT NULL DEFAULT 0,
    dropped     INTEGER NOT NULL DEFAULT 0,
    after_send  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (shop, hour)
);
