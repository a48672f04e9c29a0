-- Admin sign-in (relay.web.auth). A browser's cookie names one row of admin_sessions: signing out deletes
-- the row, so the cookie stops working at once in every Worker isolate, not when its 12 hours run out.
-- Expired rows are deleted at the next sign-in.
CREATE TABLE IF NOT EXISTS admin_sessions (
    id          TEXT    PRIMARY KEY,     -- random, in the cookie beside an HMAC keyed with ADMIN_TOKEN
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- Wrong ADMIN_TOKEN attempts per client (an HMAC of its address, never the address), counted in a window
-- so that guessing is throttled across isolates; rows older than the window are deleted as new ones come.
CREATE TABLE IF NOT EXISTS admin_failures (
    client        TEXT    PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  INTEGER NOT NULL
);
