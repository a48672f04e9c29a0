-- Delivery-log lines staged in D1 (relay.outbox.log_spool). On the Workers Free plan a webhook's and a thank-you
-- post's log lines go into this table in the invocation's one D1 call, instead of an R2 object of their own (an R2
-- put is ~1.5 ms of the plan's 10 ms of CPU); the next cron pass with room writes them to R2 as the delivery log
-- and deletes the rows it wrote; a row staged COPY_AGE ago is copied before any other work. Rows hold only delivery-log lines (relay.outbox.delivery_log's field whitelist).
CREATE TABLE IF NOT EXISTS log_spool (
    id    INTEGER PRIMARY KEY,
    shop  TEXT    NOT NULL,
    key   TEXT    NOT NULL,        -- the R2 key the lines would have had at the invocation's time (log_key)
    at    INTEGER NOT NULL,        -- when it was staged (epoch seconds): old rows get a pass of their own
    body  TEXT    NOT NULL         -- the NDJSON lines, exactly as the object holds them
);
