-- recur schema, SQLite dialect (the PostgreSQL twin is crates/store-postgres/migrations).
-- Times are microseconds since the Unix epoch (INTEGER) in both dialects.
-- No table has a column for a card number or a CVV: card data is never stored.

CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    version         INTEGER NOT NULL,
    customer        TEXT NOT NULL,
    session_id      TEXT UNIQUE,
    status          TEXT NOT NULL,
    outcome_unknown INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    data            TEXT NOT NULL
);
CREATE INDEX payments_by_customer ON payments (customer, created_at);
CREATE INDEX payments_open ON payments (status, updated_at);

CREATE TABLE tokens (
    id                TEXT PRIMARY KEY,
    version           INTEGER NOT NULL,
    customer          TEXT NOT NULL,
    status            TEXT NOT NULL,
    secret_ciphertext BLOB NOT NULL,
    secret_nonce      BLOB NOT NULL,
    key_id            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    data              TEXT NOT NULL
);
CREATE INDEX tokens_by_customer ON tokens (customer, created_at);

CREATE TABLE subscriptions (
    id             TEXT PRIMARY KEY,
    version        INTEGER NOT NULL,
    customer       TEXT NOT NULL,
    status         TEXT NOT NULL,
    next_charge_at INTEGER,
    created_at     INTEGER NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX subscriptions_due ON subscriptions (next_charge_at);

CREATE TABLE subscription_charges (
    subscription_id TEXT NOT NULL,
    period_index    INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    period_start    INTEGER NOT NULL,
    payment_id      TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL,
    PRIMARY KEY (subscription_id, period_index, attempt)
);
-- A period is paid at most once, whatever runs concurrently.
CREATE UNIQUE INDEX one_success_per_period ON subscription_charges (subscription_id, period_index)
    WHERE status = 'succeeded';

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    object_id       TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);

CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key      TEXT NOT NULL UNIQUE,
    body            BLOB NOT NULL,
    received_at     INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    note            TEXT
);
CREATE INDEX inbox_pending ON inbox (status, next_attempt_at);

CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    status          TEXT NOT NULL,
    response_status INTEGER,
    response_body   BLOB,
    created_at      INTEGER NOT NULL
);
