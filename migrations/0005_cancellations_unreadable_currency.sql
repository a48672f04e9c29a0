-- A cancellation is recorded whatever the Purchase row's state (relay.outbox.cancellations): a row Meta
-- already has keeps `sent` and gains the time Lightspeed reported the order cancelled. Replays refuse such
-- rows, and with <SHOP>_SEND_CANCELLATIONS=1 an `OrderCancelled` row (same order id) is queued once.
ALTER TABLE outbox ADD COLUMN cancelled_at INTEGER;

-- One shop.json fetch at a time per shop (relay.jobs.currency): whoever holds this lease fetches the currency,
-- everyone else waits for it or uses the stale value.
ALTER TABLE shops ADD COLUMN currency_lease_until INTEGER;

-- Orders Lightspeed listed that could not be read (relay.outbox.unreadable): the listing goes on without
-- them, and /status shows each with its reason until it reads well again or is a week old.
CREATE TABLE IF NOT EXISTS unreadable (
    shop      TEXT    NOT NULL,
    order_id  INTEGER NOT NULL,       -- 0 when the listed item had no readable id either
    reason    TEXT    NOT NULL,       -- which field, and why; never its value
    source    TEXT    NOT NULL,
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (shop, order_id)
);
