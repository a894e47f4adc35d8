//! # recur domain
//!
//! The pure model of recurring payments on the Bank 131 / Smart Glocal
//! protocol: money, identifiers, and the state machines of payments, tokens
//! and subscriptions. No IO, no async, no serde: wire formats and storage live
//! in the adapters, which map to and from these types.
//!
//! Everything is built by fallible constructors (parse, don't validate), and
//! every state machine keeps its transition table as data ([`all_tables`]).
//!
//! ## A worked example: seed 001, a first card payment that saves a token
//!
//! ```
//! use domain::*;
//! use time::OffsetDateTime;
//!
//! let now = OffsetDateTime::UNIX_EPOCH;
//! let mut payment = Payment::new(
//!     NewPayment {
//!         id: PaymentId::parse("pay_1").unwrap(),
//!         customer: CustomerReference::parse("lucky").unwrap(),
//!         amount: Money::new(10_000, Currency::parse("rub").unwrap()).unwrap(),
//!         method: PaymentMethod::Card,
//!         save_token: true,
//!         confirmation: Confirmation::Automatic,
//!         return_url: None,
//!         description: None,
//!         metadata: None,
//!     },
//!     now,
//! )
//! .unwrap();
//! payment.attach_session(BankSessionId::parse("ps_3230").unwrap(), now);
//!
//! // The bank's payment_finished webhook, mapped to a fact by the protocol crate:
//! let token = IssuedToken {
//!     secret: RecurrentTokenSecret::parse("feda2b21").unwrap(),
//!     created_at: None,
//!     finished_at: None,
//!     is_active: true,
//! };
//! let outcome = payment.apply(BankFact::Succeeded { token: Some(token) }, now);
//! assert_eq!(payment.status(), PaymentStatus::Succeeded);
//! assert!(matches!(outcome.effects[0], Effect::SaveToken(_)));
//!
//! // The same webhook again changes nothing and asks for no second token.
//! let again = payment.apply(BankFact::Succeeded { token: None }, now);
//! assert_eq!(again.applied, Applied::Ignored(Ignored::Terminal));
//! assert!(again.effects.is_empty());
//! ```
#![deny(missing_docs)]

mod bank;
mod decline;
mod ids;
mod machine;
mod money;
mod payment;
mod subscription;
mod token;

pub use bank::{AcquiringStatus, SessionStatus, observe};
pub use decline::{BankCode, DeclineClass, Dunning, DunningPolicy};
pub use ids::{
    BankSessionId, CustomerReference, ErrorCode, EventId, InvalidId, PaymentId,
    RecurrentTokenSecret, SubscriptionId, TokenId,
};
pub use machine::{Applied, Ignored, State, TableView, Transition, TransitionError, all_tables};
pub use money::{Currency, Money, MoneyError};
pub use payment::{
    BankDetails, BankFact, CardData, CardError, CardSummary, Confirmation, Effect, Failure,
    Initiator, IssuedToken, NewPayment, NextAction, Outcome, Payment, PaymentError, PaymentEvent,
    PaymentMethod, PaymentParts, PaymentStatus, SessionCommand, SubscriptionService,
};
pub use subscription::{
    ChargeStatus, DueCharge, Interval, IntervalUnit, NewSubscription, Period, Subscription,
    SubscriptionError, SubscriptionEvent, SubscriptionParts, SubscriptionStatus,
};
pub use token::{RecurrentToken, TokenMethod, TokenStatus};
