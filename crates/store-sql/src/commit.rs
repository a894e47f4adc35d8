//! [`UnitOfWork`]: one transaction for every write of a [`ChangeSet`].

use async_trait::async_trait;
use ports::{ChangeSet, OutboxCommand, StoreError, UnitOfWork};
use sqlx::{Acquire, Any, Transaction};
use time::OffsetDateTime;

use crate::codec::micros;
use crate::db::{get, store_error};
use crate::events::event_id;
use crate::outbox::command_parts;
use crate::{Dialect, SqlStore};

impl SqlStore {
    pub(crate) async fn commit_in(
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
        if let Some(binding) = &changes.idempotency {
            Self::bind_idempotency(tx, binding).await?;
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
        let mut connection = self.pool.acquire().await.map_err(store_error)?;
        let mut tx = connection.begin().await.map_err(store_error)?;
        let written = self.commit_in(&mut tx, &changes, micros(at)).await;
        // Whether the transaction ended cleanly, committed or rolled back.
        let (ended_cleanly, result) = match written {
            Ok(()) => match tx.commit().await {
                Ok(()) => (true, Ok(())),
                Err(e) => (
                    false,
                    Err(match store_error(e) {
                        StoreError::Transient(why) | StoreError::Permanent(why) => {
                            StoreError::UnknownOutcome(why)
                        }
                        other => other,
                    }),
                ),
            },
            Err(e) => (tx.rollback().await.is_ok(), Err(e)),
        };
        if !ended_cleanly {
            // After a failed commit or rollback (a full disk, an I/O error)
            // the connection's transaction state is unknown: reused, it could
            // run every later "commit" inside a transaction that never
            // commits (SQLite's single connection did exactly that:
            // scripts/disk-full-drill). It is closed; the pool opens a new one.
            let _ = connection.close().await;
        }
        result
    }
}
