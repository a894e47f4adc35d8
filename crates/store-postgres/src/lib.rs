//! # store-postgres
//!
//! recur's production store on PostgreSQL (15+). The queries are
//! `store-sql`'s; this crate connects and migrates. Outbox claims use
//! `FOR UPDATE SKIP LOCKED`, so several instances can run the workers.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use ports::StoreError;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use store_sql::crypto::TokenKeys;
use store_sql::{Dialect, SqlStore};

/// The schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How to start the server on a development machine, for error messages.
pub const START_HINT: &str = "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or point DATABASE_URL at a running server";

/// `url` with its database name replaced (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    query.map_or_else(
        || format!("{server}/{name}"),
        |q| format!("{server}/{name}?{q}"),
    )
}

/// The server tests create their databases on: `DATABASE_URL` when it is a
/// PostgreSQL URL, else the local trust-auth server.
pub fn test_server_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Connects to `url` and migrates.
pub async fn open(url: &str, keys: Arc<TokenKeys>) -> Result<SqlStore, StoreError> {
    let options = AnyPoolOptions::new()
        .max_connections(16)
        // No ping before each use: it is a round trip on every statement
        // batch, and a connection that died is dropped by the pool at its
        // first failed use anyway (that use fails and is retried or answered 503).
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10));
    store_sql::connect(
        options,
        url,
        &MIGRATOR,
        Dialect::Postgres,
        keys,
        &format!("; {START_HINT}"),
    )
    .await
}
