//! The optimistic read-change-commit loop every aggregate uses.

use std::future::Future;
use std::pin::Pin;

use ports::{ChangeSet, StoreError};
use time::OffsetDateTime;
use tracing::info;

use crate::{Service, ServiceError};

/// How often a write that lost an optimistic-concurrency race is retried.
const CONFLICT_RETRIES: usize = 5;

/// One attempt's future, borrowing what the attempt reads.
pub(crate) type AttemptFuture<'a, R> =
    Pin<Box<dyn Future<Output = Result<Attempt<R>, ServiceError>> + Send + 'a>>;

/// What one attempt decided.
#[expect(
    clippy::large_enum_variant,
    reason = "lives for one await and is moved once; a box would only add an allocation"
)]
pub(crate) enum Attempt<R> {
    /// Nothing to write: return this.
    Unchanged(R),
    /// Commit these changes, then return this.
    Commit(ChangeSet, R),
}

impl Service {
    /// Runs `attempt` (read, change, build the writes at `now`) and commits
    /// what it returns; when a concurrent writer got there first (a version
    /// conflict), runs it again on a fresh read, a bounded number of times.
    /// `attempt` gets the attempt's number, from 0.
    pub(crate) async fn retry_on_conflict<'a, R>(
        &'a self,
        what: &str,
        mut attempt: impl FnMut(usize, OffsetDateTime) -> AttemptFuture<'a, R>,
    ) -> Result<R, ServiceError> {
        for number in 0..CONFLICT_RETRIES {
            let now = self.now();
            let (changes, result) = match attempt(number, now).await? {
                Attempt::Unchanged(result) => return Ok(result),
                Attempt::Commit(changes, result) => (changes, result),
            };
            match self.deps.uow.commit(changes, now).await {
                Ok(()) => return Ok(result),
                Err(StoreError::Conflict(why)) => info!(%what, %why, "concurrent update, retrying"),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Store(StoreError::Conflict(format!(
            "{what} kept changing"
        ))))
    }
}
