//! The merchant-facing payment and the bank facts that move it.
//!
//! A [`Payment`] only moves on [`BankFact`]s (API answers, webhooks, status
//! polls) and on the merchant's confirm/cancel. Facts arrive duplicated and
//! out of order: each has a *stage*, and a fact at or below the stage already
//! reached is ignored, so the final state does not depend on delivery order.

use time::OffsetDateTime;

use crate::bank::{AcquiringStatus, SessionStatus, observe};
use crate::machine::{Applied, Ignored, State, TransitionError};
use crate::{BankSessionId, CustomerReference, Money, PaymentId, TokenId};

mod error;
mod fact;
mod method;
mod status;

pub use error::PaymentError;
pub use fact::{
    BankDetails, BankFact, CardSummary, Effect, Failure, IssuedToken, NextAction, Outcome,
    PaymentEvent, SessionCommand,
};
pub use method::{
    CardData, CardError, Confirmation, Initiator, PaymentMethod, SubscriptionService,
};
pub use status::PaymentStatus;

/// What the merchant asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// The new payment's id.
    pub id: PaymentId,
    /// Who pays.
    pub customer: CustomerReference,
    /// How much.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// Ask the bank for a recurrent token.
    pub save_token: bool,
    /// How `ready_to_confirm` is answered.
    pub confirmation: Confirmation,
    /// Where the customer returns after 3-D Secure.
    pub return_url: Option<String>,
    /// Free text for the merchant.
    pub description: Option<String>,
    /// The merchant's metadata, opaque to the domain (the API keeps it as JSON text).
    pub metadata: Option<String>,
}

/// The merchant-facing payment aggregate.
///
/// Seed 002 (Smart Glocal two-step) through the [`crate::Payment`] machine
/// with manual confirmation.
///
/// ```
/// use domain::*;
/// let now = time::OffsetDateTime::UNIX_EPOCH;
/// let mut p = Payment::new(NewPayment {
///     id: PaymentId::parse("pay_2").unwrap(),
///     customer: CustomerReference::parse("lucky").unwrap(),
///     amount: Money::new(10_000, Currency::USD).unwrap(),
///     method: PaymentMethod::Token {
///         token_id: TokenId::parse("tok_1").unwrap(),
///         initiator: Initiator::Client,
///     },
///     save_token: false,
///     confirmation: Confirmation::Manual,
///     return_url: Some("https://smart-glocal.com".into()),
///     description: None,
///     metadata: None,
/// }, now).unwrap();
///
/// p.apply(BankFact::ReadyToConfirm, now);
/// assert_eq!(p.status(), PaymentStatus::RequiresConfirmation);
/// assert_eq!(p.confirm(now).unwrap().effects, vec![Effect::ConfirmSession]);
/// p.apply(BankFact::ActionRequired(NextAction::Redirect {
///     url: "https://smart-glocal.com?foo=bar".into(),
///     method: "GET".into(),
///     params: vec![("PaReq".into(), "sdfew".into())],
/// }), now);
/// assert_eq!(p.status(), PaymentStatus::RequiresAction);
/// p.apply(BankFact::Succeeded { token: None }, now);
/// assert_eq!(p.status(), PaymentStatus::Succeeded);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    p: PaymentParts,
}

impl Payment {
    /// Validates the merchant's request and creates a `pending` payment.
    pub fn new(new: NewPayment, now: OffsetDateTime) -> Result<Self, PaymentError> {
        if new.amount.is_zero() {
            return Err(PaymentError::ZeroAmount);
        }
        if new.method.is_fps() && new.amount.currency() != crate::Currency::RUB {
            return Err(PaymentError::FpsNeedsRub);
        }
        if let PaymentMethod::Token {
            initiator: Initiator::Client,
            ..
        } = new.method
            && new.return_url.as_deref().is_none_or(str::is_empty)
        {
            return Err(PaymentError::ReturnUrlRequired);
        }
        Ok(Self {
            p: PaymentParts {
                refunded: Money::zero(new.amount.currency()),
                new,
                status: PaymentStatus::Pending,
                stage: 0,
                session_id: None,
                session_status: None,
                acquiring_status: None,
                next_action: None,
                token_id: None,
                failure: None,
                cancel_requested: false,
                outcome_unknown: false,
                bank: BankDetails::default(),
                created_at: now,
                updated_at: now,
            },
        })
    }

    /// Records the bank session the payment runs in (the answer of `session/create`).
    /// A payment belongs to one session: a different id later is ignored as stale.
    pub fn attach_session(
        &mut self,
        session_id: BankSessionId,
        now: OffsetDateTime,
    ) -> Applied<PaymentStatus> {
        match &self.p.session_id {
            Some(existing) if *existing == session_id => Applied::Ignored(Ignored::Duplicate),
            Some(_) => Applied::Ignored(Ignored::Stale),
            None => {
                self.p.session_id = Some(session_id);
                self.p.session_status.get_or_insert(SessionStatus::Created);
                // A session/create whose answer was awaited has answered.
                self.p.outcome_unknown = false;
                self.p.updated_at = now;
                Applied::Changed {
                    from: self.p.status,
                    to: self.p.status,
                }
            }
        }
    }

    /// Shows the bank's widget (its public token, from the `token` call):
    /// the customer enters the card there, and the bank's `ready_to_confirm`
    /// follows. It comes before every bank fact of the widget flow, so any
    /// fact already applied makes it stale.
    pub fn show_widget(&mut self, public_token: String, now: OffsetDateTime) -> Outcome {
        if self.p.status.is_terminal() {
            return Outcome::ignored(Ignored::Terminal);
        }
        if self.p.stage > 0 || self.p.status != PaymentStatus::Pending {
            let action = NextAction::Widget { public_token };
            return Outcome::ignored(if self.p.next_action.as_ref() == Some(&action) {
                Ignored::Duplicate
            } else {
                Ignored::Stale
            });
        }
        let from = self.p.status;
        self.p.status = PaymentStatus::RequiresAction;
        self.p.next_action = Some(NextAction::Widget { public_token });
        self.p.updated_at = now;
        Outcome {
            applied: Applied::Changed {
                from,
                to: self.p.status,
            },
            effects: vec![Effect::Notify(PaymentEvent::RequiresAction)],
        }
    }

    fn is_widget(&self) -> bool {
        matches!(self.p.new.method, PaymentMethod::Widget { .. })
    }

    /// Marks that a request to the bank may or may not have executed: the
    /// payment stays `pending` until reconciliation (`session/status`) or a
    /// webhook tells what happened. It is never re-sent as a new payment.
    pub fn mark_outcome_unknown(&mut self, now: OffsetDateTime) {
        if !self.p.status.is_terminal() {
            self.p.outcome_unknown = true;
            self.p.updated_at = now;
        }
    }

    /// Applies a bank fact. Duplicates, stale facts and facts after a
    /// terminal state are ignored and change nothing.
    pub fn apply(&mut self, fact: BankFact, now: OffsetDateTime) -> Outcome {
        if let BankFact::Refunded { total } = &fact {
            return self.apply_refund(*total, now);
        }
        if self.p.status.is_terminal() {
            return Outcome::ignored(Ignored::Terminal);
        }
        if self.is_widget() && matches!(fact, BankFact::ActionRequired(_)) {
            // The bank redirects the widget's customer itself; the widget
            // stays the merchant's next action.
            return Outcome::ignored(Ignored::NotForThisFlow);
        }
        let stage = fact.stage();
        if stage < self.p.stage {
            return Outcome::ignored(Ignored::Stale);
        }
        if stage == self.p.stage && !self.refreshes_action(&fact) {
            return Outcome::ignored(Ignored::Duplicate);
        }
        let from = self.p.status;
        let (session, acquiring) = fact.bank_statuses();
        self.observe_bank(session, acquiring);
        self.p.stage = stage;
        self.p.outcome_unknown = false;
        self.p.updated_at = now;
        let mut effects = Vec::new();
        match fact {
            BankFact::ReadyToConfirm => {
                // The customer is done in the widget (if there was one).
                self.p.next_action = None;
                match self.p.new.confirmation {
                    Confirmation::Automatic => {
                        self.p.status = PaymentStatus::Pending;
                        effects.push(Effect::ConfirmSession);
                    }
                    Confirmation::Manual => {
                        self.p.status = PaymentStatus::RequiresConfirmation;
                        effects.push(Effect::Notify(PaymentEvent::RequiresConfirmation));
                    }
                }
            }
            BankFact::ActionRequired(action) => {
                self.p.status = PaymentStatus::RequiresAction;
                self.p.next_action = Some(action);
                effects.push(Effect::Notify(PaymentEvent::RequiresAction));
            }
            BankFact::ReadyToCapture => {
                self.p.status = PaymentStatus::Pending;
                self.p.next_action = None;
                effects.push(Effect::CaptureSession);
            }
            BankFact::Succeeded { token } => {
                self.p.status = PaymentStatus::Succeeded;
                self.p.next_action = None;
                if let Some(token) = token {
                    effects.push(Effect::SaveToken(token));
                }
                effects.push(Effect::Notify(PaymentEvent::Succeeded));
            }
            BankFact::Failed(failure) => {
                self.p.next_action = None;
                self.p.failure = Some(failure);
                if self.p.cancel_requested {
                    self.p.status = PaymentStatus::Cancelled;
                    effects.push(Effect::Notify(PaymentEvent::Cancelled));
                } else {
                    self.p.status = PaymentStatus::Failed;
                    effects.push(Effect::Notify(PaymentEvent::Failed));
                }
            }
            BankFact::CancelConfirmed => {
                self.p.next_action = None;
                self.p.status = PaymentStatus::Cancelled;
                effects.push(Effect::Notify(PaymentEvent::Cancelled));
            }
            BankFact::Abandoned(reason) => {
                self.p.next_action = None;
                self.p.failure = Some(reason);
                self.p.status = PaymentStatus::Cancelled;
                effects.push(Effect::Notify(PaymentEvent::Cancelled));
            }
            // Refunds returned at the top: they never move the flow.
            BankFact::Refunded { .. } => {}
        }
        debug_assert!(
            PaymentStatus::allows(from, self.p.status),
            "{from:?} -> {:?}",
            self.p.status
        );
        Outcome {
            applied: Applied::Changed {
                from,
                to: self.p.status,
            },
            effects,
        }
    }

    /// A second `action_required` with a different action (a refreshed QR code) replaces the first.
    fn refreshes_action(&self, fact: &BankFact) -> bool {
        matches!(fact, BankFact::ActionRequired(action) if self.p.next_action.as_ref() != Some(action))
    }

    fn observe_bank(&mut self, session: SessionStatus, acquiring: AcquiringStatus) {
        self.p.session_status = Some(match self.p.session_status {
            Some(current) => match observe(current, session) {
                Applied::Changed { to, .. } => to,
                Applied::Ignored(_) => current,
            },
            None => session,
        });
        self.p.acquiring_status = Some(match self.p.acquiring_status {
            Some(current) => match observe(current, acquiring) {
                Applied::Changed { to, .. } => to,
                Applied::Ignored(_) => current,
            },
            None => acquiring,
        });
    }

    /// Refund totals are cumulative, so the largest one wins whatever the
    /// order. A refund can overtake the `payment_finished` it follows: its
    /// total is kept, and the status still waits for `payment_finished`.
    fn apply_refund(&mut self, total: Money, now: OffsetDateTime) -> Outcome {
        let grows = total.currency() == self.p.new.amount.currency()
            && total.minor() > self.p.refunded.minor()
            && total.minor() <= self.p.new.amount.minor();
        let failed = matches!(
            self.p.status,
            PaymentStatus::Failed | PaymentStatus::Cancelled
        );
        if failed || !grows {
            return Outcome::ignored(if total == self.p.refunded {
                Ignored::Duplicate
            } else {
                Ignored::Stale
            });
        }
        self.p.refunded = total;
        self.p.updated_at = now;
        let effects = if self.p.status == PaymentStatus::Succeeded {
            vec![Effect::Notify(PaymentEvent::Refunded)]
        } else {
            Vec::new()
        };
        Outcome {
            applied: Applied::Changed {
                from: self.p.status,
                to: self.p.status,
            },
            effects,
        }
    }

    /// The merchant confirms a payment waiting in `requires_confirmation`.
    pub fn confirm(&mut self, now: OffsetDateTime) -> Result<Outcome, PaymentError> {
        if self.p.status != PaymentStatus::RequiresConfirmation || self.p.cancel_requested {
            return Err(PaymentError::Transition(TransitionError::new(
                self.p.status,
                "confirm",
            )));
        }
        self.p.status = PaymentStatus::Pending;
        self.p.updated_at = now;
        Ok(Outcome {
            applied: Applied::Changed {
                from: PaymentStatus::RequiresConfirmation,
                to: PaymentStatus::Pending,
            },
            effects: vec![Effect::ConfirmSession],
        })
    }

    /// The merchant cancels a payment waiting in `requires_confirmation`.
    /// It becomes `cancelled` when the bank confirms; asking twice is a no-op.
    pub fn cancel(&mut self, now: OffsetDateTime) -> Result<Outcome, PaymentError> {
        if self.p.status != PaymentStatus::RequiresConfirmation {
            return Err(PaymentError::Transition(TransitionError::new(
                self.p.status,
                "cancel",
            )));
        }
        if self.p.cancel_requested {
            return Ok(Outcome::ignored(Ignored::Duplicate));
        }
        self.p.cancel_requested = true;
        self.p.updated_at = now;
        Ok(Outcome {
            applied: Applied::Changed {
                from: self.p.status,
                to: self.p.status,
            },
            effects: vec![Effect::CancelSession],
        })
    }

    /// Checks a refund request against what is left to refund.
    pub fn check_refund(&self, amount: Money) -> Result<(), PaymentError> {
        if self.p.status != PaymentStatus::Succeeded {
            return Err(PaymentError::Transition(TransitionError::new(
                self.p.status,
                "refund",
            )));
        }
        if self.p.refunded.minor() >= self.p.new.amount.minor() {
            return Err(PaymentError::AlreadyRefunded);
        }
        if amount.currency() != self.p.new.amount.currency() {
            return Err(PaymentError::CurrencyMismatch);
        }
        if amount.is_zero() {
            return Err(PaymentError::ZeroAmount);
        }
        let left = self
            .p
            .new
            .amount
            .checked_sub(self.p.refunded)
            .map_err(|_| PaymentError::RefundTooLarge)?;
        if amount.minor() > left.minor() {
            return Err(PaymentError::RefundTooLarge);
        }
        Ok(())
    }

    /// Links the token that [`Effect::SaveToken`] asked the caller to store.
    pub fn attach_token(&mut self, token_id: TokenId) {
        self.p.token_id.get_or_insert(token_id);
    }

    /// Rebuilds a payment from storage. Only stores should call this.
    pub fn restore(parts: PaymentParts) -> Self {
        Self { p: parts }
    }

    /// Splits a payment into its stored parts (the inverse of [`Payment::restore`]).
    pub fn to_parts(&self) -> PaymentParts {
        self.p.clone()
    }

    /// The id.
    pub fn id(&self) -> &PaymentId {
        &self.p.new.id
    }
    /// The customer.
    pub fn customer(&self) -> &CustomerReference {
        &self.p.new.customer
    }
    /// The amount.
    pub fn amount(&self) -> Money {
        self.p.new.amount
    }
    /// The method.
    pub fn method(&self) -> &PaymentMethod {
        &self.p.new.method
    }
    /// Whether a recurrent token was asked for.
    pub fn save_token(&self) -> bool {
        self.p.new.save_token
    }
    /// Automatic or manual confirmation.
    pub fn confirmation(&self) -> Confirmation {
        self.p.new.confirmation
    }
    /// Where the customer returns after 3-D Secure.
    pub fn return_url(&self) -> Option<&str> {
        self.p.new.return_url.as_deref()
    }
    /// The merchant's description.
    pub fn description(&self) -> Option<&str> {
        self.p.new.description.as_deref()
    }
    /// The merchant's metadata (opaque).
    pub fn metadata(&self) -> Option<&str> {
        self.p.new.metadata.as_deref()
    }
    /// The status.
    pub fn status(&self) -> PaymentStatus {
        self.p.status
    }
    /// The bank session, once created.
    pub fn session_id(&self) -> Option<&BankSessionId> {
        self.p.session_id.as_ref()
    }
    /// The bank session's status as last reported.
    pub fn session_status(&self) -> Option<SessionStatus> {
        self.p.session_status
    }
    /// The acquiring payment's status as last reported.
    pub fn acquiring_status(&self) -> Option<AcquiringStatus> {
        self.p.acquiring_status
    }
    /// What the customer must do next.
    pub fn next_action(&self) -> Option<&NextAction> {
        self.p.next_action.as_ref()
    }
    /// The token this payment produced.
    pub fn token_id(&self) -> Option<&TokenId> {
        self.p.token_id.as_ref()
    }
    /// Why it failed.
    pub fn failure(&self) -> Option<&Failure> {
        self.p.failure.as_ref()
    }
    /// How much was refunded.
    pub fn refunded(&self) -> Money {
        self.p.refunded
    }
    /// Whether `session/confirm` is (still) to be sent: `ready_to_confirm`
    /// was answered with a confirmation and nothing later has arrived.
    pub fn awaits_bank_confirmation(&self) -> bool {
        self.p.status == PaymentStatus::Pending && self.p.stage == 1
    }
    /// Whether `session/capture` is (still) to be sent.
    pub fn awaits_capture(&self) -> bool {
        self.p.status == PaymentStatus::Pending && self.p.stage == 3
    }
    /// The session command this payment waits for, if any: confirm after
    /// `ready_to_confirm`, capture of held funds, or the merchant's cancel.
    /// A command already carried out is no longer pending.
    pub fn pending_session_command(&self) -> Option<SessionCommand> {
        if self.p.session_id.is_none() {
            None
        } else if self.awaits_bank_confirmation() {
            Some(SessionCommand::Confirm)
        } else if self.awaits_capture() {
            Some(SessionCommand::Capture)
        } else if self.p.cancel_requested && !self.p.status.is_terminal() {
            Some(SessionCommand::Cancel)
        } else {
            None
        }
    }
    /// When to ask the bank (`session/status`) about this payment if no
    /// news arrives: at once for an unknown outcome, after
    /// [`Payment::PENDING_CHECK`] while the bank works, after
    /// [`Payment::QUIET_CHECK`] while the customer or the merchant has to act
    /// (3-D Secure, a QR code, the widget, a manual confirmation), never once
    /// finished.
    pub fn next_check_at(&self) -> Option<OffsetDateTime> {
        if self.p.status.is_terminal() {
            None
        } else if self.p.outcome_unknown {
            Some(self.p.updated_at)
        } else {
            Some(self.p.updated_at + self.check_interval())
        }
    }

    /// When to ask again after `checks` answers without news: the interval
    /// doubles with each, up to [`Payment::MAX_CHECK_INTERVAL`], so payments
    /// stuck for long are asked about rarely and never starve newer ones.
    pub fn recheck_at(&self, checks: u32, now: OffsetDateTime) -> OffsetDateTime {
        let doubled = self
            .check_interval()
            .checked_mul(1_i32 << checks.min(16))
            .unwrap_or(Self::MAX_CHECK_INTERVAL);
        now + doubled.min(Self::MAX_CHECK_INTERVAL)
    }

    fn check_interval(&self) -> time::Duration {
        if self.p.status == PaymentStatus::Pending {
            Self::PENDING_CHECK
        } else {
            Self::QUIET_CHECK
        }
    }

    /// How long a payment the bank works on waits for news before recur asks.
    pub const PENDING_CHECK: time::Duration = time::Duration::seconds(30);
    /// How long a payment waiting for the customer or the merchant waits.
    pub const QUIET_CHECK: time::Duration = time::Duration::minutes(15);
    /// The longest wait between two checks of one payment.
    pub const MAX_CHECK_INTERVAL: time::Duration = time::Duration::hours(6);

    /// What the bank reported beside the state.
    pub fn bank_details(&self) -> &BankDetails {
        &self.p.bank
    }

    /// Records what the bank reported about the payment (its id, the card,
    /// the fee). Returns whether anything new was learnt.
    pub fn observe_bank_details(&mut self, details: BankDetails, now: OffsetDateTime) -> bool {
        let merged = self.p.bank.merged(details);
        if merged == self.p.bank {
            return false;
        }
        self.p.bank = merged;
        self.p.updated_at = now;
        true
    }

    /// Whether the merchant asked to cancel.
    pub fn cancel_requested(&self) -> bool {
        self.p.cancel_requested
    }
    /// Whether a request's outcome is unknown and needs reconciliation.
    pub fn outcome_unknown(&self) -> bool {
        self.p.outcome_unknown
    }
    /// When it was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.p.created_at
    }
    /// When it last changed.
    pub fn updated_at(&self) -> OffsetDateTime {
        self.p.updated_at
    }
}

/// A payment's stored parts, for stores to write and read back.
/// [`Payment::restore`] trusts them: only a store that wrote them should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentParts {
    /// What the merchant asked for.
    pub new: NewPayment,
    /// The status.
    pub status: PaymentStatus,
    /// How far the bank's facts got (duplicates and stale facts are below it).
    pub stage: u8,
    /// The bank session, once created.
    pub session_id: Option<BankSessionId>,
    /// The session's status as last reported.
    pub session_status: Option<SessionStatus>,
    /// The acquiring payment's status as last reported.
    pub acquiring_status: Option<AcquiringStatus>,
    /// What the customer must do next.
    pub next_action: Option<NextAction>,
    /// The token this payment produced.
    pub token_id: Option<TokenId>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The refunded total.
    pub refunded: Money,
    /// Whether the merchant asked to cancel.
    pub cancel_requested: bool,
    /// Whether the last request's outcome is unknown.
    pub outcome_unknown: bool,
    /// What the bank reported beside the state.
    pub bank: BankDetails,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}
