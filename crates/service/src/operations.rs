//! Time and operations: the business clock, the test clock and the jobs it
//! runs, and the figures operators watch.

use domain::PaymentStatus;
use ports::Backlog;
use time::{Duration, OffsetDateTime};
use tracing::warn;

use crate::{Service, ServiceError};

/// What operators watch, read from the stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationalSnapshot {
    /// Outbox commands not yet carried out, and how long the oldest has waited.
    pub outbox: Waiting,
    /// Bank webhooks stored but not yet applied, and how long the oldest has waited.
    pub inbox: Waiting,
    /// How many payments are in each status.
    pub payments: Vec<(PaymentStatus, u64)>,
}

/// A queue's depth and the age of its oldest item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiting {
    /// Items waiting.
    pub depth: u64,
    /// How long the oldest has waited (zero when none waits).
    pub oldest_age: Duration,
}

impl Waiting {
    fn of(backlog: Backlog, now: OffsetDateTime) -> Self {
        Self {
            depth: backlog.depth,
            oldest_age: backlog
                .oldest
                .map_or(Duration::ZERO, |oldest| (now - oldest).max(Duration::ZERO)),
        }
    }
}

/// How the test clock is asked to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMove {
    /// Forward by this much.
    By(Duration),
    /// Forward to this moment.
    To(OffsetDateTime),
}

/// What the service did while the test clock moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meanwhile {
    /// It ran: every due moment is visited in order.
    ServiceRunning,
    /// It was down: jobs run only at the end.
    ServiceDown,
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

    /// Moves the test clock forward. While the service "runs", the clock
    /// stops at every subscription charge or retry that falls due on the way,
    /// in order, and runs the jobs there, so a year in one advance bills
    /// twelve months; while it is "down", jobs run once, at the end. Returns
    /// the new time.
    pub async fn advance_clock(
        &self,
        step: ClockMove,
        meanwhile: Meanwhile,
    ) -> Result<OffsetDateTime, ServiceError> {
        let test_clock = self
            .test_clock
            .as_ref()
            .ok_or(ServiceError::NotFound("test clock"))?;
        let clock = &test_clock.clock;
        let backwards = |e: ports::ClockBackwards| ServiceError::State(e.to_string());
        let target = match step {
            ClockMove::By(by) => self.now().checked_add(by),
            ClockMove::To(to) => Some(to),
        }
        .ok_or_else(|| ServiceError::invalid("the clock cannot move that far"))?;
        if target < self.now() {
            clock.advance_to(target).map_err(backwards)?;
        }
        if meanwhile == Meanwhile::ServiceRunning {
            // What is due now runs first: it was due before the clock moved.
            self.run_due_jobs().await;
            while let Some(at) = self.next_due_moment(target).await? {
                clock.advance_to(at).map_err(backwards)?;
                test_clock.kept.save(at).await?;
                self.run_due_jobs().await;
            }
        }
        clock.advance_to(target).map_err(backwards)?;
        test_clock.kept.save(target).await?;
        self.run_due_jobs().await;
        Ok(self.now())
    }

    /// The earliest subscription charge or retry due after now and no later
    /// than `until` (charges already due now are the scheduler's, not a stop).
    async fn next_due_moment(
        &self,
        until: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, ServiceError> {
        let now = self.now();
        let due = self
            .deps
            .subscriptions
            .due(until, crate::work::BATCH)
            .await?;
        Ok(due
            .iter()
            .filter_map(|s| s.value.next_charge_at())
            .filter(|at| *at > now)
            .min())
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
        let now = self.now();
        Ok(OperationalSnapshot {
            outbox: Waiting::of(self.deps.outbox.backlog().await?, now),
            inbox: Waiting::of(self.deps.inbox.unapplied().await?, now),
            payments: self.deps.payments.count_by_status().await?,
        })
    }
}
