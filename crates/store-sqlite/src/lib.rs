//! # store-sqlite
//!
//! recur's embedded store: one SQLite file (default `sqlite://recur.db`) in WAL
//! mode with `synchronous=FULL`, so a committed change survives a power cut,
//! and a busy timeout so that concurrent writers wait instead of failing.
//! The queries are `store-sql`'s; this crate connects, tunes and migrates.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use ports::StoreError;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use store_sql::crypto::TokenKeys;
use store_sql::{Dialect, SqlStore};

/// The schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Adds `mode=rwc` (create the file if missing) unless a mode is given.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Opens (creating if needed) and migrates the SQLite database at `url`.
pub async fn open(url: &str, keys: Arc<TokenKeys>) -> Result<SqlStore, StoreError> {
    let options = AnyPoolOptions::new()
        // SQLite has one writer at a time. One connection queues writers in
        // the process instead of letting them retry on the file lock (a
        // design choice; no benchmark has varied the pool size yet). Other
        // processes on the same file still wait through busy_timeout.
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
                )
                .await?;
                Ok(())
            })
        });
    store_sql::connect(
        options,
        &with_create_mode(url),
        &MIGRATOR,
        Dialect::Sqlite,
        keys,
        "",
    )
    .await
}
