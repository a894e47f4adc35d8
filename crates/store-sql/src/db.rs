//! The connection and its dialect: opening, errors, and reading columns.

use std::sync::Arc;

use domain::State;

use ports::{Backlog, StoreError, Versioned};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::codec::Corrupt;
use crate::crypto::TokenKeys;
use crate::{Dialect, SqlStore};

/// Maps a driver error to the port's kinds.
#[allow(clippy::needless_pass_by_value)] // shaped for `.map_err(store_error)`
pub fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if is_busy(db.message()) => {
            StoreError::Transient(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Transient(e.to_string()),
        sqlx::Error::RowNotFound => StoreError::NotFound,
        _ => StoreError::Permanent(e.to_string()),
    }
}

fn is_busy(message: &str) -> bool {
    message.contains("database is locked")
        || message.contains("could not serialize")
        || message.contains("deadlock")
}

pub(crate) fn corrupt(e: Corrupt) -> StoreError {
    StoreError::Permanent(e.0)
}

pub(crate) fn get<'r, T: sqlx::Decode<'r, Any> + sqlx::Type<Any>>(
    row: &'r AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column).map_err(store_error)
}

/// A count or index as SQL's integer.
pub(crate) fn sql_int(v: u32) -> i64 {
    i64::from(v)
}

/// A stored count or index, checked.
pub(crate) fn to_u32(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Permanent(format!("stored count {v} out of range")))
}

/// Opens a pool with `options`, applies `migrator`, and builds the store.
/// `what` names the database in errors; `hint` says how to fix a refused connection.
pub async fn connect(
    options: sqlx::any::AnyPoolOptions,
    url: &str,
    migrator: &sqlx::migrate::Migrator,
    dialect: Dialect,
    keys: Arc<TokenKeys>,
    hint: &str,
) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let pool = options.connect(url).await.map_err(|e| {
        StoreError::Transient(format!(
            "cannot connect to the {dialect:?} database: {e}{hint}"
        ))
    })?;
    migrator.run(&pool).await.map_err(|e| {
        StoreError::Permanent(format!("migrating the {dialect:?} database failed: {e}"))
    })?;
    let store = SqlStore::new(pool, dialect, keys);
    store.backfill_fingerprints().await?;
    store.seal_inbox_bodies().await?;
    Ok(store)
}

impl SqlStore {
    /// A table's columns in order, each with its type as the database
    /// declares it (schema checks).
    pub async fn columns(&self, table: &str) -> Result<Vec<(String, String)>, StoreError> {
        let query = match self.dialect {
            Dialect::Postgres => sqlx::query(
                "SELECT column_name::TEXT AS name, data_type::TEXT AS kind FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            ),
            Dialect::Sqlite => {
                sqlx::query("SELECT name, type AS kind FROM pragma_table_info($1) ORDER BY cid")
            }
        };
        let rows = self.all(query.bind(table)).await?;
        rows.iter()
            .map(|r| Ok((get(r, "name")?, get(r, "kind")?)))
            .collect()
    }

    /// Fetches at most one row.
    pub(crate) async fn optional<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<AnyRow>, StoreError> {
        query.fetch_optional(&self.pool).await.map_err(store_error)
    }

    /// Runs a statement, ignoring how many rows it touched.
    pub(crate) async fn run<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<(), StoreError> {
        query
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    /// Fetches every row.
    pub(crate) async fn all<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        query.fetch_all(&self.pool).await.map_err(store_error)
    }

    /// A queue's backlog from `sql`, which selects `n` (a count) and
    /// `oldest` (a time in microseconds, `NULL` when empty).
    pub(crate) async fn backlog_of(&self, sql: &'static str) -> Result<Backlog, StoreError> {
        let row = sqlx::query(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        let oldest = get::<Option<i64>>(&row, "oldest")?
            .map(crate::codec::from_micros)
            .transpose()
            .map_err(corrupt)?;
        Ok(Backlog {
            depth: u64::try_from(get::<i64>(&row, "n")?).unwrap_or(0),
            oldest,
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}

/// An insert or a version-checked update touches exactly one row; none means
/// another writer got there first (or the insert's id exists).
pub(crate) fn versioned_write(
    result: &sqlx::any::AnyQueryResult,
    what: &str,
    id: impl std::fmt::Display,
) -> Result<(), StoreError> {
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "{what} {id} changed concurrently"
        )))
    }
}

pub(crate) fn versioned<T>(row: &AnyRow, value: T) -> Result<Versioned<T>, StoreError> {
    Ok(Versioned {
        value,
        version: get(row, "version")?,
    })
}

/// The quoted names of the states of `S` that `keep` keeps, as a SQL list
/// (`'active', 'past_due'`): status literals in queries come from the domain.
pub(crate) fn state_names<S: State>(keep: impl Fn(S) -> bool) -> String {
    S::ALL
        .iter()
        .filter(|s| keep(**s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
