//! History for the cost-growth runs: `n` payments (with their subscription
//! charge, an event and a handled webhook each) copied from ones the run
//! made, straight into the database.

use sqlx::{Connection, Executor};

/// Adds `n` payments, charges, events and inbox rows to the database at
/// `url`, copies of a finished payment, event and webhook already there. One
/// statement per table; the same SQL runs on PostgreSQL and SQLite.
pub async fn history(url: &str, n: u64) {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let series =
        format!("WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n})");
    for insert in [
        "INSERT INTO payments (id, version, customer, session_id, status, outcome_unknown, created_at, updated_at, data, checks) \
         SELECT 'pay_seed' || x, p.version, 'seed-' || (x % 5000), 'ps_seed' || x, p.status, p.outcome_unknown, p.created_at - x, p.updated_at - x, p.data, p.checks \
         FROM g, (SELECT * FROM payments WHERE status = 'succeeded' LIMIT 1) p",
        // A subscription business's stored payments came from its charges:
        // without their rows, statistics taken now would describe an empty
        // charges table and plan the billing day's charge lookups as scans.
        "INSERT INTO subscription_charges (subscription_id, period_index, attempt, period_start, payment_id, status) \
         SELECT 'sub_seed' || (x % 5000), x, 1, x, 'pay_seed' || x, 'succeeded' FROM g",
        "INSERT INTO events (kind, subject_id, data, created_at) \
         SELECT e.kind, 'pay_seed' || x, e.data, e.created_at - x FROM g, (SELECT * FROM events LIMIT 1) e",
        "INSERT INTO inbox (dedupe_key, body, received_at, status, attempts, next_attempt_at, body_nonce, key_id) \
         SELECT 'seed' || x, i.body, i.received_at - x, i.status, i.attempts, i.next_attempt_at, i.body_nonce, i.key_id \
         FROM g, (SELECT * FROM inbox WHERE status = 'applied' LIMIT 1) i",
    ] {
        db.execute(format!("{series} {insert}").as_str())
            .await
            .unwrap_or_else(|e| panic!("seeding {n} rows: {e}"));
    }
    // The bulk insert's aftermath (hint bits, autovacuum, a checkpoint, a
    // long WAL) is settled now, not during the measurement that follows.
    let settle: &[&str] = if url.starts_with("postgres") {
        &["VACUUM ANALYZE", "CHECKPOINT"]
    } else {
        &["ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"]
    };
    for statement in settle {
        db.execute(*statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}
