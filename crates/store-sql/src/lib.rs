//! # store-sql
//!
//! Every store port of recur over SQL, written once with sqlx's `Any` driver
//! and run on PostgreSQL and SQLite (the `store-postgres` and `store-sqlite`
//! crates connect, tune and migrate; this crate holds the queries). The SQL is
//! the portable subset both speak (`$N` parameters, `ON CONFLICT`,
//! `RETURNING`); the few differences are in [`Dialect`].
//!
//! Guarantees come from the database, not from application checks:
//! optimistic concurrency (`version` columns), one success per subscription
//! period (a partial unique index), one row per (subscription, period,
//! attempt) (the primary key), webhook deduplication (a unique key), outbox
//! claims that never hand one row to two workers, and a gap-free event feed
//! (event appends are serialized, so id order is commit order).
#![deny(missing_docs)]

mod clock;
pub mod codec;
mod commit;
pub mod crypto;
mod db;
mod events;
mod idempotency;
mod inbox;
mod outbox;
mod payments;
mod subscriptions;
mod tokens;

use std::sync::Arc;

use sqlx::AnyPool;

use crate::crypto::TokenKeys;

pub use db::{connect, store_error};
pub use events::event_id;

/// Which SQL the database speaks where the portable subset ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `FOR UPDATE SKIP LOCKED`, advisory locks.
    Postgres,
    /// SQLite: one writer at a time already.
    Sqlite,
}

impl Dialect {
    /// What a claiming `SELECT` ends with so that concurrent claimers skip
    /// each other's rows (SQLite has one writer at a time already).
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Self::Postgres => "FOR UPDATE SKIP LOCKED",
            Self::Sqlite => "",
        }
    }

    /// `id` among the ids a claiming `SELECT` returns. PostgreSQL is given
    /// them as an array, so that it fetches those rows by primary key: as
    /// `IN (SELECT ..)` it plans a hash semi-join over a sequential scan of
    /// the whole table, once per claim.
    pub(crate) fn id_among(self, select: &str) -> String {
        match self {
            Self::Postgres => format!("id = ANY(ARRAY({select}))"),
            Self::Sqlite => format!("id IN ({select})"),
        }
    }
}

/// The store: one pool, all ports.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    keys: Arc<TokenKeys>,
    deliver_events: bool,
    /// SQLite's queue of change sets for its one writer.
    group: Arc<commit::CommitGroup>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.dialect)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// A store over a migrated pool.
    pub fn new(pool: AnyPool, dialect: Dialect, keys: Arc<TokenKeys>) -> Self {
        Self {
            pool,
            dialect,
            keys,
            deliver_events: false,
            group: Arc::default(),
        }
    }

    /// Enqueues a `DeliverEvent` command with every event appended (when
    /// `RECUR_EVENTS_URL` is set).
    #[must_use]
    pub fn delivering_events(mut self, on: bool) -> Self {
        self.deliver_events = on;
        self
    }

    /// The pool (for health checks and tests).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}
