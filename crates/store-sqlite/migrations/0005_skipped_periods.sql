-- A period that ended while the service was down is recorded as a skipped
-- charge, which has no payment. SQLite cannot drop NOT NULL in place, so the
-- table is rebuilt (inside the migration's transaction).
CREATE TABLE subscription_charges_new (
    subscription_id TEXT NOT NULL,
    period_index    INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    period_start    INTEGER NOT NULL,
    payment_id      TEXT UNIQUE,
    status          TEXT NOT NULL,
    PRIMARY KEY (subscription_id, period_index, attempt)
);
INSERT INTO subscription_charges_new
    SELECT subscription_id, period_index, attempt, period_start, payment_id, status
    FROM subscription_charges;
DROP TABLE subscription_charges;
ALTER TABLE subscription_charges_new RENAME TO subscription_charges;
-- A period is paid at most once, whatever runs concurrently.
CREATE UNIQUE INDEX one_success_per_period ON subscription_charges (subscription_id, period_index)
    WHERE status = 'succeeded';
