//! [`UnitOfWork`]: one transaction for every write of a [`ChangeSet`].

use std::sync::Arc;

use async_trait::async_trait;
use domain::{Payment, TokenId};
use ports::{ChangeSet, OutboxCommand, StoreError, UnitOfWork, Write};
use sqlx::pool::PoolConnection;
use sqlx::{Acquire, Any, AnyConnection, Transaction};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;

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
        // The guard holds against the token as stored before this change
        // set: on the payment updates themselves, else on its own first.
        let guard = changes.chargeable_token.as_ref();
        if let Some(token) = guard
            && !changes
                .payments
                .iter()
                .any(|w| w.expected_version.is_some())
        {
            Self::check_chargeable(tx, token).await?;
        }
        for w in &changes.payments {
            Self::write_payment(tx, w, guard).await?;
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
        for c in &changes.outbox {
            Self::enqueue(tx, c, command_parts(c).1, at).await?;
        }
        if let Some(binding) = &changes.idempotency {
            Self::bind_idempotency(tx, binding).await?;
        }
        for id in &changes.inbox_applied {
            Self::mark_applied(tx, *id).await?;
        }
        for id in &changes.outbox_done {
            Self::remove_command(tx, *id).await?;
        }
        if !changes.events.is_empty() && self.dialect == Dialect::Postgres {
            // Event ids are handed out in commit order, so that a reader
            // paging by id never skips one: the lock is held from the first
            // id to the commit. Taken last, when every row this transaction
            // writes is locked already, so it is held only for the event
            // inserts and the commit (no other commit waits behind a
            // transaction that is still writing its rows), and its holder
            // waits for nothing (no deadlock): what follows only inserts
            // rows nobody else can insert (new event ids).
            sqlx::query("SELECT pg_advisory_xact_lock(7263741)")
                .execute(&mut **tx)
                .await
                .map_err(store_error)?;
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
        Ok(())
    }

    async fn mark_applied(connection: &mut AnyConnection, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE inbox SET status = 'applied' WHERE id = $1")
            .bind(id)
            .execute(connection)
            .await
            .map(drop)
            .map_err(store_error)
    }
}

/// A change set that is a single statement: atomic on its own, so written
/// without a transaction (no `BEGIN` and `COMMIT` round trips).
enum OneStatement<'a> {
    Payment(&'a Write<Payment>, Option<&'a TokenId>),
    InboxMark(i64),
    CommandDone(i64),
}

impl<'a> OneStatement<'a> {
    fn of(changes: &'a ChangeSet) -> Option<Self> {
        let ChangeSet {
            payments,
            tokens,
            subscriptions,
            charges,
            events,
            outbox,
            inbox_applied,
            outbox_done,
            idempotency,
            chargeable_token,
        } = changes;
        let others = tokens.is_empty()
            && subscriptions.is_empty()
            && charges.is_empty()
            && events.is_empty()
            && outbox.is_empty()
            && idempotency.is_none();
        // A guard rides on a payment update; with anything else it is a statement of its own.
        let guarded =
            |w: &Write<Payment>| chargeable_token.is_none() || w.expected_version.is_some();
        let unguarded = chargeable_token.is_none();
        match (
            payments.as_slice(),
            inbox_applied.as_slice(),
            outbox_done.as_slice(),
        ) {
            ([payment], [], []) if others && guarded(payment) => {
                Some(Self::Payment(payment, chargeable_token.as_ref()))
            }
            ([], [id], []) if others && unguarded => Some(Self::InboxMark(*id)),
            ([], [], [id]) if others && unguarded => Some(Self::CommandDone(*id)),
            _ => None,
        }
    }
}

#[async_trait]
impl UnitOfWork for SqlStore {
    async fn commit(&self, changes: ChangeSet, at: OffsetDateTime) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        match self.dialect {
            Dialect::Postgres => self.commit_alone(changes, micros(at)).await,
            Dialect::Sqlite => self.commit_grouped(changes, micros(at)).await,
        }
    }
}

impl SqlStore {
    /// One change set, one transaction (PostgreSQL: its commits run side by
    /// side, and the server groups their WAL flushes itself); a change set
    /// of one statement is that statement alone, which is atomic already.
    async fn commit_alone(&self, changes: ChangeSet, at: i64) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(store_error)?;
        if let Some(one) = OneStatement::of(&changes) {
            let written = match one {
                OneStatement::Payment(w, guard) => {
                    Self::write_payment(&mut connection, w, guard).await
                }
                OneStatement::InboxMark(id) => Self::mark_applied(&mut connection, id).await,
                OneStatement::CommandDone(id) => Self::remove_command(&mut connection, id).await,
            };
            return match written {
                // The server never answered: the statement may have been
                // written (as a failed COMMIT), and the connection is unsure.
                Err(StoreError::Transient(why)) => {
                    let _ = connection.close().await;
                    Err(StoreError::UnknownOutcome(why))
                }
                other => other,
            };
        }
        let mut tx = connection.begin().await.map_err(store_error)?;
        let written = self.commit_in(&mut tx, &changes, at).await;
        let (ended_cleanly, result) = match written {
            Ok(()) => end(tx.commit().await),
            Err(e) => (tx.rollback().await.is_ok(), Err(e)),
        };
        close_if_unclean(connection, ended_cleanly).await;
        result
    }

    /// SQLite has one writer: change sets committed at the same time are
    /// written in one transaction (one sync to disk for all), each in a
    /// savepoint of its own so that one refused (a version conflict) is
    /// rolled back alone. The first caller to get the writer's turn writes
    /// every change set queued by then, in a task of its own so that a caller
    /// giving up cannot abandon the others' commit halfway.
    async fn commit_grouped(&self, changes: ChangeSet, at: i64) -> Result<(), StoreError> {
        let (reply, mut answer) = oneshot::channel();
        self.group
            .queued
            .lock()
            .map_err(poisoned)?
            .push(Queued { changes, at, reply });
        let turn = Arc::clone(&self.group.writer).lock_owned().await;
        match answer.try_recv() {
            // An earlier writer took ours with its group (it answers before
            // passing the turn on).
            Ok(result) => return result,
            Err(TryRecvError::Closed) => return Err(no_answer()),
            Err(TryRecvError::Empty) => {}
        }
        let group = std::mem::take(&mut *self.group.queued.lock().map_err(poisoned)?);
        let store = self.clone();
        tokio::spawn(async move {
            store.write_group(group).await;
            drop(turn);
        });
        answer.await.unwrap_or_else(|_| Err(no_answer()))
    }

    /// Writes a group of change sets in one transaction and answers each.
    async fn write_group(&self, group: Vec<Queued>) {
        let mut connection = match self.pool.acquire().await {
            Ok(connection) => connection,
            Err(e) => return answer_all(group, &store_error(e)),
        };
        let mut tx = match connection.begin().await {
            Ok(tx) => tx,
            Err(e) => return answer_all(group, &store_error(e)),
        };
        let mut written = Vec::with_capacity(group.len());
        for queued in group {
            match self.write_in_savepoint(&mut tx, &queued).await {
                Ok(()) => written.push(queued.reply),
                Err(e) => {
                    let _ = queued.reply.send(Err(e));
                }
            }
        }
        let (ended_cleanly, result) = end(tx.commit().await);
        close_if_unclean(connection, ended_cleanly).await;
        for reply in written {
            let _ = reply.send(result.clone());
        }
    }

    async fn write_in_savepoint(
        &self,
        tx: &mut Transaction<'_, Any>,
        queued: &Queued,
    ) -> Result<(), StoreError> {
        let mut savepoint = tx.begin().await.map_err(store_error)?;
        match self
            .commit_in(&mut savepoint, &queued.changes, queued.at)
            .await
        {
            Ok(()) => savepoint.commit().await.map_err(store_error),
            Err(e) => {
                savepoint.rollback().await.map_err(store_error)?;
                Err(e)
            }
        }
    }
}

/// Change sets waiting for SQLite's writer, and the writer's turn.
#[derive(Default)]
pub(crate) struct CommitGroup {
    queued: std::sync::Mutex<Vec<Queued>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// A change set waiting to be written, and where its outcome goes.
struct Queued {
    changes: ChangeSet,
    at: i64,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

fn answer_all(group: Vec<Queued>, error: &StoreError) {
    for queued in group {
        let _ = queued.reply.send(Err(error.clone()));
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Permanent("the commit queue's lock is poisoned".into())
}

fn no_answer() -> StoreError {
    StoreError::UnknownOutcome("the group commit ended without an answer".into())
}

/// A transaction's commit: whether it ended cleanly, and the outcome the
/// caller sees (a commit that failed may have been written: unknown).
fn end(committed: Result<(), sqlx::Error>) -> (bool, Result<(), StoreError>) {
    match committed {
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
    }
}

/// After a failed commit or rollback (a full disk, an I/O error) the
/// connection's transaction state is unknown: reused, it could run every
/// later "commit" inside a transaction that never commits (SQLite's single
/// connection did exactly that: scripts/disk-full-drill). It is closed; the
/// pool opens a new one.
async fn close_if_unclean(connection: PoolConnection<Any>, ended_cleanly: bool) {
    if !ended_cleanly {
        let _ = connection.close().await;
    }
}
