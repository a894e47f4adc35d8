//! recur's use cases, written only against the [`ports`].
//!
//! [`Service`] holds the ports as `Arc<dyn Port>` (the app wires real
//! adapters, tests wire mocks) and exposes one method per use case:
//! starting payments, applying bank facts, confirm/cancel/refund, the token
//! lifecycle, subscription charging, and the background steps (webhook inbox,
//! outbox, reconciliation) that the app runs in a loop.

mod error;
mod payments;
mod subscriptions;
mod tokens;
mod workers;

use std::sync::Arc;

use domain::DunningPolicy;
use ports::{
    Clock, EventLog, EventSink, IdGenerator, IdempotencyStore, Outbox, PaymentGateway,
    PaymentRepository, Presenter, SubscriptionRepository, TokenRepository, UnitOfWork,
    WebhookDecoder, WebhookInbox,
};

pub use error::ServiceError;
pub use payments::{MethodRequest, StartPaymentCommand};
pub use subscriptions::{CreateSubscriptionCommand, UpdateSubscriptionCommand};
pub use workers::WorkReport;

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
    /// Idempotency keys of the merchant API.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Stored bank webhooks.
    pub inbox: Arc<dyn WebhookInbox>,
    /// Background commands.
    pub outbox: Arc<dyn Outbox>,
    /// The merchant event feed.
    pub events: Arc<dyn EventLog>,
    /// Merchant event delivery, when `RECUR_EVENTS_URL` is set.
    pub event_sink: Option<Arc<dyn EventSink>>,
    /// The service's business time: scheduling, dunning, expiries,
    /// reconciliation thresholds, timestamps. The test clock replaces it.
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
}

impl Service {
    /// Wires the use cases to their ports.
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// The ports, for adapters that read directly (listing, the event feed).
    pub fn deps(&self) -> &Deps {
        &self.deps
    }
}

#[cfg(test)]
mod tests;
