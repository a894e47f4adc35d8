//! Time and operations: the business clock, the test clock and the jobs it
//! runs, and the figures operators watch.

use time::{Duration, OffsetDateTime};
use tracing::warn;

use crate::{Service, ServiceError};

/// What operators watch, read from the stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationalSnapshot {
    /// Outbox commands not yet carried out.
    pub outbox_depth: u64,
    /// Signed webhooks of a known type that could not be read, whose payment
    /// was checked with the bank instead (since this process started).
    pub webhooks_checked_instead: u64,
}

/// How the test clock is asked to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMove {
    /// Forward by this much.
    By(Duration),
    /// Forward to this moment.
    To(OffsetDateTime),
}

impl Service {
    /// Business time now (the test clock's time when it is on).
    pub fn now(&self) -> OffsetDateTime {
        self.deps.clock.now()
    }

    /// Whether business time is the test clock.
    pub fn has_test_clock(&self) -> bool {
        self.test_clock.is_some()
    }

    /// Moves the test clock forward, then runs every job that became due, as
    /// if the service had run the whole time. Returns the new time.
    pub async fn advance_clock(&self, step: ClockMove) -> Result<OffsetDateTime, ServiceError> {
        let clock = self
            .test_clock
            .as_ref()
            .ok_or(ServiceError::NotFound("test clock"))?;
        let moved = match step {
            ClockMove::By(by) => clock.advance(by),
            ClockMove::To(to) => clock.advance_to(to),
        };
        moved.map_err(|e| ServiceError::State(e.to_string()))?;
        self.run_due_jobs().await;
        Ok(self.now())
    }

    /// Runs every job that is due now: subscription charges (until nothing is
    /// due, so a jump of a year bills every period in it), then the outbox and
    /// the inbox until they are idle, then reconciliation.
    pub async fn run_due_jobs(&self) {
        let now = self.now();
        for _ in 0..10_000 {
            match self.run_scheduler(now).await {
                Ok(report) if report.done > 0 => {}
                Ok(_) => break,
                Err(e) => {
                    warn!(error = %e, "scheduler failed");
                    break;
                }
            }
        }
        for _ in 0..20 {
            let outbox = self.run_outbox().await.unwrap_or_default();
            let inbox = self.apply_inbox().await.unwrap_or_default();
            if outbox.done + inbox.done == 0 {
                break;
            }
        }
        if let Err(e) = self.reconcile().await {
            warn!(error = %e, "reconciliation failed");
        }
    }

    /// Deletes handled bank webhooks received more than `retention` ago
    /// (their bodies, sealed, carry raw tokens); returns how many went.
    pub async fn purge_inbox(&self, retention: Duration) -> Result<u64, ServiceError> {
        Ok(self.deps.inbox.purge(self.now() - retention).await?)
    }

    /// The figures for `/metrics`.
    pub async fn operational_snapshot(&self) -> Result<OperationalSnapshot, ServiceError> {
        Ok(OperationalSnapshot {
            outbox_depth: self.deps.outbox.depth().await?,
            webhooks_checked_instead: self
                .counters
                .webhooks_checked_instead
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}
