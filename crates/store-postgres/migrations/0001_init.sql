-- recur schema, PostgreSQL dialect (the SQLite twin is crates/store-sqlite/migrations).
-- Times are microseconds since the Unix epoch (BIGINT) in both dialects.
-- No table has a column for a card number or a CVV: card data is never stored.

CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    version         BIGINT NOT NULL,
    customer        TEXT NOT NULL,
    session_id      TEXT UNIQUE,
    status          TEXT NOT NULL,
    outcome_unknown BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    data            TEXT NOT NULL
);
CREATE INDEX payments_by_customer ON payments (customer, created_at);
CREATE INDEX payments_open ON payments (status, updated_at);

CREATE TABLE tokens (
    id                TEXT PRIMARY KEY,
    version           BIGINT NOT NULL,
    customer          TEXT NOT NULL,
    status            TEXT NOT NULL,
    secret_ciphertext BYTEA NOT NULL,
    secret_nonce      BYTEA NOT NULL,
    key_id            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    data              TEXT NOT NULL
);
CREATE INDEX tokens_by_customer ON tokens (customer, created_at);

CREATE TABLE subscriptions (
    id             TEXT PRIMARY KEY,
    version        BIGINT NOT NULL,
    customer       TEXT NOT NULL,
    status         TEXT NOT NULL,
    next_charge_at BIGINT,
    created_at     BIGINT NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX subscriptions_due ON subscriptions (next_charge_at);

CREATE TABLE subscription_charges (
    subscription_id TEXT NOT NULL,
    period_index    BIGINT NOT NULL,
    attempt         BIGINT NOT NULL,
    period_start    BIGINT NOT NULL,
    payment_id      TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL,
    PRIMARY KEY (subscription_id, period_index, attempt)
);
-- A period is paid at most once, whatever runs concurrently.
CREATE UNIQUE INDEX one_success_per_period ON subscription_charges (subscription_id, period_index)
    WHERE status = 'succeeded';

CREATE TABLE events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    object_id       TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);

CREATE TABLE inbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key      TEXT NOT NULL UNIQUE,
    body            BYTEA NOT NULL,
    received_at     BIGINT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    note            TEXT
);
CREATE INDEX inbox_pending ON inbox (status, next_attempt_at);

CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    status          TEXT NOT NULL,
    response_status BIGINT,
    response_body   BYTEA,
    created_at      BIGINT NOT NULL
);
