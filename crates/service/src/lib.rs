//! recur's use cases, written only against the [`ports`].
//!
//! [`Service`] holds the ports as `Arc<dyn Port>` (the app wires real
//! adapters, tests wire mocks) and exposes one method per use case. Nothing
//! outside this crate reaches a port through it: what an adapter needs is a
//! use case ([`Service::events_after`], [`Service::now`],
//! [`Service::operational_snapshot`], …). Each file holds one concern:
//!
//! | file | concern |
//! |---|---|
//! | `payments.rs` | start, confirm, cancel, refund and read payments |
//! | `apply.rs` | change a stored payment and commit its effects |
//! | `commands.rs` | session commands (confirm, capture, cancel) and the outbox |
//! | `webhooks.rs` | bank webhooks in (verify, store) and applied (inbox) |
//! | `reconcile.rs` | settle open payments with `session/status` |
//! | `subscriptions.rs` | subscriptions and their per-period charges |
//! | `tokens.rs` | the token lifecycle |
//! | `events.rs` | the merchant event feed and its delivery |
//! | `operations.rs` | the clock, the test clock's jobs, operational figures |
//! | `retry.rs` | the optimistic read-change-commit loop every aggregate uses |
//! | `work.rs` | batch sizes, backoff and reports of background steps |

mod apply;
mod commands;
mod error;
mod events;
mod list;
mod operations;
mod payments;
mod reconcile;
mod retry;
mod subscriptions;
mod tokens;
mod webhooks;
mod work;

use std::sync::Arc;

use domain::DunningPolicy;
use ports::{
    Clock, EventLog, EventSink, IdGenerator, ManualClock, Outbox, PaymentGateway,
    PaymentRepository, Presenter, SubscriptionRepository, Telemetry, TestClockStore,
    TokenRepository, UnitOfWork, WebhookDecoder, WebhookInbox,
};

pub use error::ServiceError;
pub use list::Listed;
pub use operations::{ClockMove, Meanwhile, OperationalSnapshot, Waiting};
pub use payments::StartPaymentCommand;
pub use subscriptions::{CreateSubscriptionCommand, UpdateSubscriptionCommand};
pub use work::WorkReport;

/// Everything the use cases need from the outside.
#[derive(Clone)]
pub struct Deps {
    /// The bank.
    pub gateway: Arc<dyn PaymentGateway>,
    /// Verifies and reads bank webhooks.
    pub webhooks: Arc<dyn WebhookDecoder>,
    /// Atomic commits.
    pub uow: Arc<dyn UnitOfWork>,
    /// Payments.
    pub payments: Arc<dyn PaymentRepository>,
    /// Tokens.
    pub tokens: Arc<dyn TokenRepository>,
    /// Subscriptions.
    pub subscriptions: Arc<dyn SubscriptionRepository>,
    /// Stored bank webhooks.
    pub inbox: Arc<dyn WebhookInbox>,
    /// Background commands.
    pub outbox: Arc<dyn Outbox>,
    /// The merchant event feed.
    pub events: Arc<dyn EventLog>,
    /// Merchant event delivery, when `RECUR_EVENTS_URL` is set.
    pub event_sink: Option<Arc<dyn EventSink>>,
    /// The service's business time: scheduling, dunning, expiries,
    /// reconciliation thresholds, timestamps. [`Service::with_test_clock`]
    /// replaces it.
    pub clock: Arc<dyn Clock>,
    /// Real time, for retries and leases of the inbox and outbox, which must
    /// keep moving when a test clock stands still (or jumps ahead).
    pub wall_clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn IdGenerator>,
    /// The merchant wire format, for event payloads.
    pub presenter: Arc<dyn Presenter>,
    /// When to retry failed subscription charges.
    pub dunning: DunningPolicy,
    /// Where outcomes are counted for operators ([`ports::NoTelemetry`] counts nothing).
    pub telemetry: Arc<dyn Telemetry>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("dunning", &self.dunning)
            .finish_non_exhaustive()
    }
}

/// The use cases.
#[derive(Debug, Clone)]
pub struct Service {
    deps: Deps,
    /// The test clock, when business time moves only on request. It is also
    /// `deps.clock`: [`Service::with_test_clock`] sets both.
    test_clock: Option<TestClock>,
    /// How many items a background worker carries out at the same time.
    in_flight: usize,
    /// The subscriptions this process is charging now.
    charging: work::InProgress<domain::SubscriptionId>,
}

/// Background items carried out at the same time by default: enough to hide
/// the bank's latency, few enough to leave the store's pool to the API.
pub const DEFAULT_IN_FLIGHT: usize = 8;

/// The test clock and where its time is kept.
#[derive(Clone)]
struct TestClock {
    clock: Arc<ManualClock>,
    kept: Arc<dyn TestClockStore>,
}

impl std::fmt::Debug for TestClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClock")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Wires the use cases to their ports.
    pub fn new(deps: Deps) -> Self {
        Self {
            deps,
            test_clock: None,
            in_flight: DEFAULT_IN_FLIGHT,
            charging: work::InProgress::default(),
        }
    }

    /// Lets each background worker (outbox, scheduler) carry out up to
    /// `in_flight` items of its batch at the same time (at least one).
    #[must_use]
    pub fn with_in_flight(mut self, in_flight: usize) -> Self {
        self.in_flight = in_flight.max(1);
        self
    }

    /// Business time moves only when asked: the test clock, moved by
    /// [`Service::advance_clock`], each move kept in `kept` (start `clock`
    /// at what `kept` holds, so that a restart never moves it back).
    #[must_use]
    pub fn with_test_clock(
        mut self,
        clock: Arc<ManualClock>,
        kept: Arc<dyn TestClockStore>,
    ) -> Self {
        self.deps.clock = clock.clone();
        self.test_clock = Some(TestClock { clock, kept });
        self
    }
}

#[cfg(test)]
mod tests;
