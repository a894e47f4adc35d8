//! # recur ports
//!
//! The traits recur's use cases need from the outside world, and the errors
//! they return. Each error can say whether to retry ([`GatewayError::Transient`]),
//! give up ([`GatewayError::Permanent`]), reconcile ([`GatewayError::UnknownOutcome`]),
//! re-read ([`StoreError::Conflict`]) or report a missing object (`NotFound`),
//! without matching on strings.
//!
//! Adapters implement these traits; the `app` crate passes them to the use
//! cases as `Arc<dyn Port>`. With the `mocks` feature every trait has a
//! `mockall` mock (`MockPaymentGateway`, …) for use-case unit tests.
//!
//! ## Example: a clock that only moves when asked
//!
//! ```
//! use ports::{Clock, ManualClock};
//! use time::{Duration, OffsetDateTime};
//!
//! let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
//! clock.advance(Duration::days(1)).unwrap();
//! assert_eq!(clock.now(), OffsetDateTime::UNIX_EPOCH + Duration::days(1));
//! assert!(clock.advance(Duration::seconds(-1)).is_err(), "time never goes back");
//! ```
//!
//! ## Example: a use case's atomic change
//!
//! ```
//! use ports::{ChangeSet, NewEvent, OutboxCommand, Subject, Write};
//! # use domain::*;
//! # let now = time::OffsetDateTime::UNIX_EPOCH;
//! # let payment = Payment::new(NewPayment {
//! #     id: PaymentId::parse("pay_1").unwrap(),
//! #     customer: CustomerReference::parse("c").unwrap(),
//! #     amount: Money::new(100, Currency::RUB).unwrap(),
//! #     method: PaymentMethod::Card, save_token: false,
//! #     confirmation: Confirmation::Automatic, return_url: None, description: None, metadata: None,
//! # }, now).unwrap();
//! // Change an aggregate, append an event and enqueue a command: all or nothing.
//! let changes = ChangeSet {
//!     outbox: vec![OutboxCommand::ConfirmSession(payment.id().clone())],
//!     events: vec![NewEvent {
//!         kind: "payment.requires_action",
//!         subject: Subject::Payment(payment.id().clone()),
//!         data: "{}".into(),
//!     }],
//!     payments: vec![Write::insert(payment)],
//!     ..ChangeSet::default()
//! };
//! assert!(!changes.is_empty());
//! ```
#![deny(missing_docs)]

mod gateway;
mod store;
mod telemetry;

use std::sync::Mutex;

use domain::{Payment, PaymentId, RecurrentToken, Subscription, SubscriptionId, TokenId};
use time::{Duration, OffsetDateTime};

pub use gateway::{
    CreateSession, DecodedWebhook, GatewayError, Instrument, PaymentGateway, Project, SessionCall,
    SessionRef, SessionSnapshot, StartPayment, TokenInfo, WebhookDecoder, WebhookError,
    WidgetToken,
};
pub use store::{
    Backlog, ChangeSet, ChargeAttempt, CommandClaim, DueCheck, Event, EventLog, IDEMPOTENCY_LEASE,
    IDEMPOTENCY_TTL, IdempotencyBegin, IdempotencyBinding, IdempotencyClaim, IdempotencyLease,
    IdempotencyStore, InboundWebhook, InboxItem, NewEvent, Outbox, OutboxCommand, OutboxItem, Page,
    PaymentRepository, StoreError, StoredResponse, Subject, SubscriptionRepository, TestClockStore,
    TokenRepository, UnitOfWork, Versioned, WebhookInbox, Write,
};

pub use telemetry::{NoTelemetry, Telemetry};

#[cfg(feature = "mocks")]
pub use gateway::{MockPaymentGateway, MockWebhookDecoder};
#[cfg(feature = "mocks")]
pub use store::{
    MockEventLog, MockIdempotencyStore, MockOutbox, MockPaymentRepository,
    MockSubscriptionRepository, MockTestClockStore, MockTokenRepository, MockUnitOfWork,
    MockWebhookInbox,
};

/// The service's notion of now (the scheduler, dunning, expiries, reconciliation).
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, UTC.
    fn now(&self) -> OffsetDateTime;
}

/// Drops sub-microsecond digits: the stores keep microseconds, so a time the
/// service hands out reads back the same after storage.
pub fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// The wall clock, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves forward, and only when asked (tests and the test-clock API).
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

/// Time was asked to go backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the clock never moves backwards")]
pub struct ClockBackwards;

impl ManualClock {
    /// A clock stopped at `at` (in microseconds).
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Mutex::new(to_micros(at)))
    }

    /// Moves forward by `by` (zero is allowed).
    pub fn advance(&self, by: Duration) -> Result<OffsetDateTime, ClockBackwards> {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if by.is_negative() {
            return Err(ClockBackwards);
        }
        *now = to_micros(*now + by);
        Ok(*now)
    }

    /// Moves forward to `to`.
    pub fn advance_to(&self, to: OffsetDateTime) -> Result<OffsetDateTime, ClockBackwards> {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let to = to_micros(to);
        if to < *now {
            return Err(ClockBackwards);
        }
        *now = to;
        Ok(*now)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_hand_out_microseconds_as_the_stores_keep_them() {
        let at = OffsetDateTime::UNIX_EPOCH + Duration::nanoseconds(1_234_567);
        let clock = ManualClock::new(at);
        assert_eq!(clock.now().nanosecond(), 1_234_000);
        assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
        clock.advance_to(at + Duration::nanoseconds(999)).unwrap();
        assert_eq!(clock.now().nanosecond() % 1_000, 0);
    }
}

/// Makes new identifiers.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait IdGenerator: Send + Sync {
    /// A new `pay_…`.
    fn payment_id(&self) -> PaymentId;
    /// A new `tok_…`.
    fn token_id(&self) -> TokenId;
    /// A new `sub_…`.
    fn subscription_id(&self) -> SubscriptionId;
}

/// Renders objects as the merchant API shows them, for event payloads.
/// The merchant wire format belongs to the HTTP adapter, which implements this.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Presenter: Send + Sync {
    /// A payment, JSON.
    fn payment(&self, payment: &Payment) -> String;
    /// A token, JSON.
    fn token(&self, token: &RecurrentToken) -> String;
    /// A subscription as it stands at `now`, JSON.
    fn subscription(&self, subscription: &Subscription, now: OffsetDateTime) -> String;
}

/// Delivers merchant events to `RECUR_EVENTS_URL`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// POSTs one event; `Err` with a reason when the merchant did not answer 2xx.
    async fn deliver(&self, event: &Event) -> Result<(), String>;
}
