//! [`Outbox`]: commands for background workers, claimed with a lease.

use async_trait::async_trait;
use domain::{EventId, PaymentId, TokenId};
use ports::{Backlog, CommandClaim, Outbox, OutboxCommand, OutboxItem, StoreError};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Transaction};
use time::{Duration, OffsetDateTime};

use crate::SqlStore;
use crate::codec::micros;
use crate::db::{get, sql_int, store_error, to_u32};

pub(crate) fn command_parts(c: &OutboxCommand) -> (&'static str, &str) {
    match c {
        OutboxCommand::ConfirmSession(id) => ("confirm_session", id.as_str()),
        OutboxCommand::CancelSession(id) => ("cancel_session", id.as_str()),
        OutboxCommand::CaptureSession(id) => ("capture_session", id.as_str()),
        OutboxCommand::DisableToken(id) => ("disable_token", id.as_str()),
        OutboxCommand::DeliverEvent(id) => ("deliver_event", id.as_str()),
    }
}

pub(crate) fn command(kind: &str, subject: &str) -> Result<OutboxCommand, StoreError> {
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

impl SqlStore {
    /// Enqueues a command; `object` is the id of the object an event is
    /// about (its deliveries keep the feed's order).
    pub(crate) async fn enqueue(
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
}

/// A statement that reads the outbox, planned at each use rather than
/// prepared once per connection. The outbox is a queue, empty most of the
/// time; a plan PostgreSQL caches while it is empty (a sequential scan, free
/// on no rows) would stay with the connection when a backlog builds, and then
/// every completion and claim would scan the whole backlog: the busier the
/// day, the slower each command. Planned afresh, lookups use the indexes as
/// soon as there are rows to skip.
fn queue_query(sql: &str) -> Query<'_, Any, AnyArguments<'_>> {
    sqlx::query(sql).persistent(false)
}

/// A command carried out leaves the queue.
const REMOVE: &str = "DELETE FROM outbox WHERE id = $1";

impl SqlStore {
    /// Removes a command carried out, within a commit (see
    /// [`ports::ChangeSet::outbox_done`]).
    pub(crate) async fn remove_command(
        connection: &mut AnyConnection,
        id: i64,
    ) -> Result<(), StoreError> {
        queue_query(REMOVE)
            .bind(id)
            .execute(connection)
            .await
            .map(drop)
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
        let lock = self.dialect.skip_locked();
        // Events of one object are delivered in feed order: an event waits
        // while an earlier one of the same object is still undelivered.
        let due = format!(
            "SELECT o.id FROM outbox o WHERE o.next_attempt_at <= $2 AND (o.locked_until IS NULL OR o.locked_until <= $2) \
             AND NOT (o.kind = 'deliver_event' AND EXISTS (\
               SELECT 1 FROM outbox p WHERE p.kind = 'deliver_event' AND p.object_id = o.object_id AND p.id < o.id)) \
             ORDER BY o.id LIMIT $3 {lock}"
        );
        let sql = format!(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1 WHERE {} \
             RETURNING id, kind, subject, attempts",
            self.dialect.id_among(&due)
        );
        let rows = self
            .all(
                queue_query(&sql)
                    .bind(micros(now + lease))
                    .bind(micros(now))
                    .bind(sql_int(limit)),
            )
            .await?;
        let mut items: Vec<OutboxItem> = rows
            .iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: get(r, "id")?,
                    command: command(&get::<String>(r, "kind")?, &get::<String>(r, "subject")?)?,
                    attempts: to_u32(get(r, "attempts")?)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    async fn complete(&self, id: i64) -> Result<(), StoreError> {
        self.run(queue_query(REMOVE).bind(id)).await
    }

    async fn retry(&self, id: i64, at: OffsetDateTime, error: &str) -> Result<(), StoreError> {
        self.run(queue_query("UPDATE outbox SET next_attempt_at = $1, locked_until = NULL, last_error = $2 WHERE id = $3")
            .bind(micros(at))
            .bind(error)
            .bind(id)).await
    }

    async fn claim_command(
        &self,
        command: &OutboxCommand,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<CommandClaim, StoreError> {
        let (kind, subject) = command_parts(command);
        let lock = self.dialect.skip_locked();
        let sql = format!(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1 WHERE id = (\
               SELECT id FROM outbox WHERE kind = $2 AND subject = $3 \
               AND (locked_until IS NULL OR locked_until <= $4) ORDER BY id LIMIT 1 {lock}) \
             RETURNING id, attempts"
        );
        let claimed = self
            .all(
                queue_query(&sql)
                    .bind(micros(now + lease))
                    .bind(kind)
                    .bind(subject)
                    .bind(micros(now)),
            )
            .await?;
        if let Some(row) = claimed.first() {
            return Ok(CommandClaim::Claimed(OutboxItem {
                id: get(row, "id")?,
                command: command.clone(),
                attempts: to_u32(get(row, "attempts")?)?,
            }));
        }
        let queued = self
            .all(
                queue_query("SELECT id FROM outbox WHERE kind = $1 AND subject = $2 LIMIT 1")
                    .bind(kind)
                    .bind(subject),
            )
            .await?;
        Ok(if queued.is_empty() {
            CommandClaim::NotQueued
        } else {
            CommandClaim::Busy
        })
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.backlog_of("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox")
            .await
    }
}
