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

pub mod codec;
pub mod crypto;

use std::sync::Arc;

use async_trait::async_trait;
use domain::{
    BankSessionId, ChargeStatus, CustomerReference, EventId, Payment, PaymentId, RecurrentToken,
    State, Subscription, SubscriptionId, TokenId,
};
use ports::{
    ChangeSet, ChargeAttempt, Event, EventLog, IDEMPOTENCY_TTL, IdempotencyBegin, IdempotencyStore,
    InboundWebhook, InboxItem, Outbox, OutboxCommand, OutboxItem, PaymentRepository, StoreError,
    StoredResponse, SubscriptionRepository, TokenRepository, UnitOfWork, Versioned, WebhookInbox,
    Write,
};
use sqlx::AnyPool;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row, Transaction};
use time::{Duration, OffsetDateTime};

use crate::codec::{Corrupt, TokenColumns, from_micros, micros};
use crate::crypto::{Sealed, TokenKeys};

/// Which SQL the database speaks where the portable subset ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `FOR UPDATE SKIP LOCKED`, advisory locks.
    Postgres,
    /// SQLite: one writer at a time already.
    Sqlite,
}

/// The store: one pool, all ports.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    keys: Arc<TokenKeys>,
    deliver_events: bool,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.dialect)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

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

fn corrupt(e: Corrupt) -> StoreError {
    StoreError::Permanent(e.0)
}

fn get<'r, T: sqlx::Decode<'r, Any> + sqlx::Type<Any>>(
    row: &'r AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column).map_err(store_error)
}

fn count(v: u32) -> i64 {
    i64::from(v)
}

fn small(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Permanent(format!("stored count {v} out of range")))
}

/// The `evt_…` id of an event sequence number.
pub fn event_id(seq: i64) -> EventId {
    EventId::parse(&format!("evt_{seq:012}")).expect("well-formed event id")
}

fn event_seq(id: &EventId) -> Option<i64> {
    id.as_str().strip_prefix("evt_")?.parse().ok()
}

fn command_parts(c: &OutboxCommand) -> (&'static str, &str) {
    match c {
        OutboxCommand::ConfirmSession(id) => ("confirm_session", id.as_str()),
        OutboxCommand::CancelSession(id) => ("cancel_session", id.as_str()),
        OutboxCommand::CaptureSession(id) => ("capture_session", id.as_str()),
        OutboxCommand::DisableToken(id) => ("disable_token", id.as_str()),
        OutboxCommand::DeliverEvent(id) => ("deliver_event", id.as_str()),
    }
}

fn command(kind: &str, subject: &str) -> Result<OutboxCommand, StoreError> {
    let bad = |e: domain::InvalidId| StoreError::Permanent(format!("outbox row: {e}"));
    Ok(match kind {
        "confirm_session" => OutboxCommand::ConfirmSession(PaymentId::parse(subject).map_err(bad)?),
        "cancel_session" => OutboxCommand::CancelSession(PaymentId::parse(subject).map_err(bad)?),
        "capture_session" => OutboxCommand::CaptureSession(PaymentId::parse(subject).map_err(bad)?),
        "disable_token" => OutboxCommand::DisableToken(TokenId::parse(subject).map_err(bad)?),
        "deliver_event" => OutboxCommand::DeliverEvent(EventId::parse(subject).map_err(bad)?),
        other => {
            return Err(StoreError::Permanent(format!(
                "unknown outbox command {other}"
            )));
        }
    })
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
    Ok(SqlStore::new(pool, dialect, keys))
}

impl SqlStore {
    /// A store over a migrated pool.
    pub fn new(pool: AnyPool, dialect: Dialect, keys: Arc<TokenKeys>) -> Self {
        Self {
            pool,
            dialect,
            keys,
            deliver_events: false,
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

    async fn optional<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<AnyRow>, StoreError> {
        query.fetch_optional(&self.pool).await.map_err(store_error)
    }

    async fn all<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        query.fetch_all(&self.pool).await.map_err(store_error)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    /// Re-encrypts every token sealed with an old key with the current one.
    /// Returns how many were re-encrypted.
    pub async fn rotate_token_key(&self) -> Result<u64, StoreError> {
        let rows = self.all(sqlx::query(
            "SELECT id, secret_ciphertext, secret_nonce, key_id FROM tokens WHERE key_id <> $1",
        )
        .bind(self.keys.current_id())).await?;
        let mut done = 0;
        for row in rows {
            let id: String = get(&row, "id")?;
            let sealed = Sealed {
                ciphertext: get(&row, "secret_ciphertext")?,
                nonce: get(&row, "secret_nonce")?,
                key_id: get(&row, "key_id")?,
            };
            let secret = self
                .keys
                .open(&id, &sealed)
                .map_err(|e| StoreError::Permanent(e.0))?;
            let resealed = self.keys.seal(&id, &secret);
            sqlx::query("UPDATE tokens SET secret_ciphertext = $1, secret_nonce = $2, key_id = $3 WHERE id = $4 AND key_id = $5")
                .bind(resealed.ciphertext)
                .bind(resealed.nonce)
                .bind(resealed.key_id)
                .bind(&id)
                .bind(sealed.key_id)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            done += 1;
        }
        Ok(done)
    }

    fn token_row(&self, row: &AnyRow) -> Result<RecurrentToken, StoreError> {
        let id: String = get(row, "id")?;
        let sealed = Sealed {
            ciphertext: get(row, "secret_ciphertext")?,
            nonce: get(row, "secret_nonce")?,
            key_id: get(row, "key_id")?,
        };
        let secret = self
            .keys
            .open(&id, &sealed)
            .map_err(|e| StoreError::Permanent(e.0))?;
        let customer: String = get(row, "customer")?;
        let status: String = get(row, "status")?;
        let data: String = get(row, "data")?;
        codec::token_from(&TokenColumns {
            id: &id,
            customer: &customer,
            status: &status,
            secret: &secret,
            created_at: get(row, "created_at")?,
            data: &data,
        })
        .map_err(corrupt)
    }

    async fn write_payment(
        tx: &mut Transaction<'_, Any>,
        w: &Write<Payment>,
    ) -> Result<(), StoreError> {
        let p = &w.value;
        let data = codec::payment_json(p);
        let session = p.session_id().map(ToString::to_string);
        let unknown = i64::from(p.outcome_unknown());
        let result = match w.expected_version {
            None => sqlx::query(
                "INSERT INTO payments (id, version, customer, session_id, status, outcome_unknown, created_at, updated_at, data) \
                 VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(p.id().as_str())
            .bind(p.customer().as_str())
            .bind(session)
            .bind(p.status().as_str())
            .bind(unknown)
            .bind(micros(p.created_at()))
            .bind(micros(p.updated_at()))
            .bind(data)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?,
            Some(version) => sqlx::query(
                "UPDATE payments SET version = version + 1, session_id = $1, status = $2, outcome_unknown = $3, \
                 updated_at = $4, data = $5 WHERE id = $6 AND version = $7",
            )
            .bind(session)
            .bind(p.status().as_str())
            .bind(unknown)
            .bind(micros(p.updated_at()))
            .bind(data)
            .bind(p.id().as_str())
            .bind(version)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?,
        };
        versioned_write(&result, "payment", p.id())
    }

    async fn write_token(
        &self,
        tx: &mut Transaction<'_, Any>,
        w: &Write<RecurrentToken>,
    ) -> Result<(), StoreError> {
        let t = &w.value;
        let data = codec::token_json(t);
        let result = match w.expected_version {
            None => {
                let sealed = self.keys.seal(t.id.as_str(), t.secret.expose());
                sqlx::query(
                    "INSERT INTO tokens (id, version, customer, status, secret_ciphertext, secret_nonce, key_id, created_at, data) \
                     VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(t.id.as_str())
                .bind(t.customer.as_str())
                .bind(t.status().as_str())
                .bind(sealed.ciphertext)
                .bind(sealed.nonce)
                .bind(sealed.key_id)
                .bind(micros(t.created_at))
                .bind(data)
                .execute(&mut **tx)
                .await
                .map_err(store_error)?
            }
            Some(version) => sqlx::query("UPDATE tokens SET version = version + 1, status = $1, data = $2 WHERE id = $3 AND version = $4")
                .bind(t.status().as_str())
                .bind(data)
                .bind(t.id.as_str())
                .bind(version)
                .execute(&mut **tx)
                .await
                .map_err(store_error)?,
        };
        versioned_write(&result, "token", &t.id)
    }

    async fn write_subscription(
        tx: &mut Transaction<'_, Any>,
        w: &Write<Subscription>,
    ) -> Result<(), StoreError> {
        let s = &w.value;
        let data = codec::subscription_json(s);
        let next = s.next_charge_at().map(micros);
        let result = match w.expected_version {
            None => sqlx::query(
                "INSERT INTO subscriptions (id, version, customer, status, next_charge_at, created_at, data) VALUES ($1, 1, $2, $3, $4, $5, $6)",
            )
            .bind(s.id().as_str())
            .bind(s.customer().as_str())
            .bind(s.status().as_str())
            .bind(next)
            .bind(micros(s.created_at()))
            .bind(data)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?,
            Some(version) => sqlx::query(
                "UPDATE subscriptions SET version = version + 1, status = $1, next_charge_at = $2, data = $3 WHERE id = $4 AND version = $5",
            )
            .bind(s.status().as_str())
            .bind(next)
            .bind(data)
            .bind(s.id().as_str())
            .bind(version)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?,
        };
        versioned_write(&result, "subscription", s.id())
    }

    async fn write_charge(
        tx: &mut Transaction<'_, Any>,
        c: &ChargeAttempt,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE subscription_charges SET status = $1 WHERE subscription_id = $2 AND period_index = $3 AND attempt = $4 AND payment_id = $5",
        )
        .bind(c.status.as_str())
        .bind(c.subscription_id.as_str())
        .bind(count(c.period_index))
        .bind(count(c.attempt))
        .bind(c.payment_id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
        if updated.rows_affected() == 1 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO subscription_charges (subscription_id, period_index, attempt, period_start, payment_id, status) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.subscription_id.as_str())
        .bind(count(c.period_index))
        .bind(count(c.attempt))
        .bind(micros(c.period_start))
        .bind(c.payment_id.as_str())
        .bind(c.status.as_str())
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(store_error)
    }

    /// Enqueues a command; `object` is the id of the object an event is
    /// about (its deliveries keep the feed's order).
    async fn enqueue(
        tx: &mut Transaction<'_, Any>,
        c: &OutboxCommand,
        object: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let (kind, subject) = command_parts(c);
        // Due at once (0): retries and leases run on real time, commits on business time.
        sqlx::query("INSERT INTO outbox (kind, subject, object_id, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 0, 0, $4)")
            .bind(kind)
            .bind(subject)
            .bind(object)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn commit_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        changes: &ChangeSet,
        at: i64,
    ) -> Result<(), StoreError> {
        if !changes.events.is_empty() && self.dialect == Dialect::Postgres {
            // Taken first, before any row lock: event ids are handed out in
            // commit order, so a reader paging by id never skips one.
            sqlx::query("SELECT pg_advisory_xact_lock(7263741)")
                .execute(&mut **tx)
                .await
                .map_err(store_error)?;
        }
        for w in &changes.payments {
            Self::write_payment(tx, w).await?;
        }
        for w in &changes.tokens {
            self.write_token(tx, w).await?;
        }
        for w in &changes.subscriptions {
            Self::write_subscription(tx, w).await?;
        }
        for c in &changes.charges {
            Self::write_charge(tx, c).await?;
        }
        for e in &changes.events {
            let row = sqlx::query("INSERT INTO events (kind, subject_id, data, created_at) VALUES ($1, $2, $3, $4) RETURNING seq")
                .bind(e.kind)
                .bind(e.subject.id())
                .bind(&e.data)
                .bind(at)
                .fetch_one(&mut **tx)
                .await
                .map_err(store_error)?;
            if self.deliver_events {
                Self::enqueue(
                    tx,
                    &OutboxCommand::DeliverEvent(event_id(get(&row, "seq")?)),
                    e.subject.id(),
                    at,
                )
                .await?;
            }
        }
        for c in &changes.outbox {
            Self::enqueue(tx, c, command_parts(c).1, at).await?;
        }
        for id in &changes.inbox_applied {
            sqlx::query("UPDATE inbox SET status = 'applied' WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl UnitOfWork for SqlStore {
    async fn commit(&self, changes: ChangeSet, at: OffsetDateTime) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        if let Err(e) = self.commit_in(&mut tx, &changes, micros(at)).await {
            let _ = tx.rollback().await;
            return Err(e);
        }
        tx.commit().await.map_err(|e| match store_error(e) {
            StoreError::Transient(why) | StoreError::Permanent(why) => {
                StoreError::UnknownOutcome(why)
            }
            other => other,
        })
    }
}

/// An insert or a version-checked update touches exactly one row; none means
/// another writer got there first (or the insert's id exists).
fn versioned_write(
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

fn versioned<T>(row: &AnyRow, value: T) -> Result<Versioned<T>, StoreError> {
    Ok(Versioned {
        value,
        version: get(row, "version")?,
    })
}

fn payment_row(row: &AnyRow) -> Result<Versioned<Payment>, StoreError> {
    let data: String = get(row, "data")?;
    versioned(row, codec::payment_from_json(&data).map_err(corrupt)?)
}

fn subscription_row(row: &AnyRow) -> Result<Versioned<Subscription>, StoreError> {
    let data: String = get(row, "data")?;
    versioned(row, codec::subscription_from_json(&data).map_err(corrupt)?)
}

#[async_trait]
impl PaymentRepository for SqlStore {
    async fn get(&self, id: &PaymentId) -> Result<Option<Versioned<Payment>>, StoreError> {
        let row = self
            .optional(
                sqlx::query("SELECT version, data FROM payments WHERE id = $1").bind(id.as_str()),
            )
            .await?;
        row.as_ref().map(payment_row).transpose()
    }

    async fn by_session(
        &self,
        session_id: &BankSessionId,
    ) -> Result<Option<Versioned<Payment>>, StoreError> {
        let row = self
            .optional(
                sqlx::query("SELECT version, data FROM payments WHERE session_id = $1")
                    .bind(session_id.as_str()),
            )
            .await?;
        row.as_ref().map(payment_row).transpose()
    }

    async fn list_by_customer(
        &self,
        customer: &CustomerReference,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let rows = self.all(sqlx::query("SELECT version, data FROM payments WHERE customer = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
            .bind(customer.as_str())
            .bind(count(limit))).await?;
        rows.iter()
            .map(|r| payment_row(r).map(|v| v.value))
            .collect()
    }

    async fn stale_pending(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let rows = self.all(sqlx::query(
            "SELECT version, data FROM payments WHERE status NOT IN ('succeeded', 'failed', 'cancelled') \
             AND ((status = 'pending' AND updated_at < $1) OR outcome_unknown = 1) ORDER BY updated_at LIMIT $2",
        )
        .bind(micros(before))
        .bind(count(limit))).await?;
        rows.iter()
            .map(|r| payment_row(r).map(|v| v.value))
            .collect()
    }
}

const TOKEN_COLUMNS: &str =
    "id, version, customer, status, secret_ciphertext, secret_nonce, key_id, created_at, data";

#[async_trait]
impl TokenRepository for SqlStore {
    async fn get(&self, id: &TokenId) -> Result<Option<Versioned<RecurrentToken>>, StoreError> {
        let row = self
            .optional(
                sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"))
                    .bind(id.as_str()),
            )
            .await?;
        row.map(|r| versioned(&r, self.token_row(&r)?)).transpose()
    }

    async fn list_by_customer(
        &self,
        customer: &CustomerReference,
    ) -> Result<Vec<RecurrentToken>, StoreError> {
        let rows = self.all(sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE customer = $1 ORDER BY created_at DESC, id DESC"))
            .bind(customer.as_str())).await?;
        rows.iter().map(|r| self.token_row(r)).collect()
    }
}

fn charge_row(row: &AnyRow) -> Result<ChargeAttempt, StoreError> {
    let status: String = get(row, "status")?;
    let bad = |e: domain::InvalidId| StoreError::Permanent(e.to_string());
    Ok(ChargeAttempt {
        subscription_id: SubscriptionId::parse(&get::<String>(row, "subscription_id")?)
            .map_err(bad)?,
        period_index: small(get(row, "period_index")?)?,
        period_start: from_micros(get(row, "period_start")?).map_err(corrupt)?,
        attempt: small(get(row, "attempt")?)?,
        payment_id: PaymentId::parse(&get::<String>(row, "payment_id")?).map_err(bad)?,
        status: match status.as_str() {
            "succeeded" => ChargeStatus::Succeeded,
            "failed" => ChargeStatus::Failed,
            _ => ChargeStatus::Pending,
        },
    })
}

const CHARGE_COLUMNS: &str =
    "subscription_id, period_index, attempt, period_start, payment_id, status";

#[async_trait]
impl SubscriptionRepository for SqlStore {
    async fn get(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<Versioned<Subscription>>, StoreError> {
        let row = self
            .optional(
                sqlx::query("SELECT version, data FROM subscriptions WHERE id = $1")
                    .bind(id.as_str()),
            )
            .await?;
        row.as_ref().map(subscription_row).transpose()
    }

    async fn due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Versioned<Subscription>>, StoreError> {
        let rows = self.all(sqlx::query(
            "SELECT version, data FROM subscriptions WHERE status IN ('active', 'past_due') AND next_charge_at <= $1 \
             ORDER BY next_charge_at LIMIT $2",
        )
        .bind(micros(now))
        .bind(count(limit))).await?;
        rows.iter().map(subscription_row).collect()
    }

    async fn charges(&self, id: &SubscriptionId) -> Result<Vec<ChargeAttempt>, StoreError> {
        let rows = self.all(sqlx::query(&format!(
            "SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE subscription_id = $1 ORDER BY period_index, attempt"
        ))
        .bind(id.as_str())).await?;
        rows.iter().map(charge_row).collect()
    }

    async fn charge_by_payment(
        &self,
        payment_id: &PaymentId,
    ) -> Result<Option<ChargeAttempt>, StoreError> {
        let row = self
            .optional(
                sqlx::query(&format!(
                    "SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE payment_id = $1"
                ))
                .bind(payment_id.as_str()),
            )
            .await?;
        row.as_ref().map(charge_row).transpose()
    }
}

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND created_at < $2")
            .bind(key)
            .bind(micros(now - IDEMPOTENCY_TTL))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key, fingerprint, status, created_at) VALUES ($1, $2, 'started', $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(fingerprint)
        .bind(micros(now))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 1 {
            return Ok(IdempotencyBegin::Started);
        }
        let row = self.optional(sqlx::query("SELECT fingerprint, status, response_status, response_body FROM idempotency_keys WHERE key = $1")
            .bind(key)).await?;
        let Some(row) = row else {
            // Expired and deleted between the two statements: take it again.
            return Box::pin(self.begin(key, fingerprint, now)).await;
        };
        if get::<String>(&row, "fingerprint")? != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if get::<String>(&row, "status")? != "done" {
            return Ok(IdempotencyBegin::InFlight);
        }
        let status: i64 = get(&row, "response_status")?;
        Ok(IdempotencyBegin::Replay(StoredResponse {
            status: u16::try_from(status)
                .map_err(|_| StoreError::Permanent("stored status out of range".into()))?,
            body: get(&row, "response_body")?,
        }))
    }

    async fn finish(&self, key: &str, response: StoredResponse) -> Result<(), StoreError> {
        sqlx::query("UPDATE idempotency_keys SET status = 'done', response_status = $1, response_body = $2 WHERE key = $3")
            .bind(i64::from(response.status))
            .bind(response.body)
            .bind(key)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND status = 'started'")
            .bind(key)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}

#[async_trait]
impl WebhookInbox for SqlStore {
    async fn store(&self, webhook: InboundWebhook) -> Result<bool, StoreError> {
        let at = micros(webhook.received_at);
        let result = sqlx::query(
            "INSERT INTO inbox (dedupe_key, body, received_at, status, attempts, next_attempt_at) VALUES ($1, $2, $3, 'pending', 0, 0) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(webhook.dedupe_key)
        .bind(webhook.body)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn pending(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        let rows = self.all(sqlx::query(
            "SELECT id, body, received_at, attempts FROM inbox WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(micros(now))
        .bind(count(limit))).await?;
        rows.iter()
            .map(|r| {
                Ok(InboxItem {
                    id: get(r, "id")?,
                    body: get(r, "body")?,
                    received_at: from_micros(get(r, "received_at")?).map_err(corrupt)?,
                    attempts: small(get(r, "attempts")?)?,
                })
            })
            .collect()
    }

    async fn defer(&self, id: i64, until: OffsetDateTime, note: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE inbox SET attempts = attempts + 1, next_attempt_at = $1, note = $2 WHERE id = $3")
            .bind(micros(until))
            .bind(note)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn reject(&self, id: i64, note: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE inbox SET status = 'rejected', note = $1 WHERE id = $2")
            .bind(note)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}

#[async_trait]
impl Outbox for SqlStore {
    async fn claim(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        // Events of one object are delivered in feed order: an event waits
        // while an earlier one of the same object is still undelivered.
        let sql = format!(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1 WHERE id IN (\
               SELECT o.id FROM outbox o WHERE o.next_attempt_at <= $2 AND (o.locked_until IS NULL OR o.locked_until <= $2) \
               AND NOT (o.kind = 'deliver_event' AND EXISTS (\
                 SELECT 1 FROM outbox p WHERE p.kind = 'deliver_event' AND p.object_id = o.object_id AND p.id < o.id)) \
               ORDER BY o.id LIMIT $3 {lock}) \
             RETURNING id, kind, subject, attempts"
        );
        let rows = self
            .all(
                sqlx::query(&sql)
                    .bind(micros(now + lease))
                    .bind(micros(now))
                    .bind(count(limit)),
            )
            .await?;
        let mut items: Vec<OutboxItem> = rows
            .iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: get(r, "id")?,
                    command: command(&get::<String>(r, "kind")?, &get::<String>(r, "subject")?)?,
                    attempts: small(get(r, "attempts")?)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    async fn complete(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn retry(&self, id: i64, at: OffsetDateTime, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET next_attempt_at = $1, locked_until = NULL, last_error = $2 WHERE id = $3")
            .bind(micros(at))
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn discard(&self, command: &OutboxCommand) -> Result<(), StoreError> {
        let (kind, subject) = command_parts(command);
        sqlx::query("DELETE FROM outbox WHERE kind = $1 AND subject = $2")
            .bind(kind)
            .bind(subject)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn depth(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        u64::try_from(get::<i64>(&row, "n")?)
            .map_err(|_| StoreError::Permanent("negative count".into()))
    }
}

fn event_row(row: &AnyRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: event_id(get(row, "seq")?),
        kind: get(row, "kind")?,
        subject_id: get(row, "subject_id")?,
        data: get(row, "data")?,
        created_at: from_micros(get(row, "created_at")?).map_err(corrupt)?,
    })
}

#[async_trait]
impl EventLog for SqlStore {
    async fn after(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>, StoreError> {
        let from = match &after {
            Some(id) => event_seq(id).ok_or_else(|| {
                StoreError::Permanent(format!("{id} is not an event id of this feed"))
            })?,
            None => 0,
        };
        let rows = self.all(sqlx::query("SELECT seq, kind, subject_id, data, created_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(from)
            .bind(count(limit))).await?;
        rows.iter().map(event_row).collect()
    }

    async fn get(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        let Some(seq) = event_seq(id) else {
            return Ok(None);
        };
        let row = self
            .optional(
                sqlx::query(
                    "SELECT seq, kind, subject_id, data, created_at FROM events WHERE seq = $1",
                )
                .bind(seq),
            )
            .await?;
        row.as_ref().map(event_row).transpose()
    }
}
