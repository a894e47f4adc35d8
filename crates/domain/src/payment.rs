//! The merchant-facing payment and the bank facts that move it.
//!
//! A [`Payment`] only moves on [`BankFact`]s (API answers, webhooks, status
//! polls) and on the merchant's confirm/cancel. Facts arrive duplicated and
//! out of order: each has a *stage*, and a fact at or below the stage already
//! reached is ignored, so the final state does not depend on delivery order.

use time::OffsetDateTime;

use crate::bank::{AcquiringStatus, SessionStatus, observe};
use crate::machine::{Applied, Ignored, State, Transition, TransitionError};
use crate::{
    BankSessionId, CustomerReference, ErrorCode, Money, PaymentId, RecurrentTokenSecret, TokenId,
};

/// The merchant-facing payment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Sent to the bank (or about to be); waiting for the bank.
    Pending,
    /// The customer has to act: 3-D Secure redirect, QR code or widget.
    RequiresAction,
    /// Manual confirmation: the merchant has to confirm or cancel.
    RequiresConfirmation,
    /// Money moved.
    Succeeded,
    /// Money did not move; see the error.
    Failed,
    /// Cancelled by the merchant before money moved.
    Cancelled,
}

impl State for PaymentStatus {
    const ALL: &'static [Self] = &[
        Self::Pending,
        Self::RequiresAction,
        Self::RequiresConfirmation,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];
    const MACHINE: &'static str = "Payment";
    const TRANSITIONS: &'static [Transition<Self>] = &[
        t(
            Self::Pending,
            "ready_to_confirm (manual)",
            Self::RequiresConfirmation,
        ),
        t(Self::Pending, "action_required", Self::RequiresAction),
        t(Self::Pending, "payment_finished succeeded", Self::Succeeded),
        t(Self::Pending, "payment_finished failed", Self::Failed),
        t(Self::Pending, "cancel confirmed", Self::Cancelled),
        t(Self::RequiresConfirmation, "confirm", Self::Pending),
        t(
            Self::RequiresConfirmation,
            "action_required",
            Self::RequiresAction,
        ),
        t(
            Self::RequiresConfirmation,
            "cancel confirmed",
            Self::Cancelled,
        ),
        t(
            Self::RequiresConfirmation,
            "payment_finished succeeded",
            Self::Succeeded,
        ),
        t(
            Self::RequiresConfirmation,
            "payment_finished failed",
            Self::Failed,
        ),
        t(Self::RequiresAction, "ready_to_capture", Self::Pending),
        t(
            Self::RequiresAction,
            "payment_finished succeeded",
            Self::Succeeded,
        ),
        t(
            Self::RequiresAction,
            "payment_finished failed",
            Self::Failed,
        ),
        t(Self::RequiresAction, "cancel confirmed", Self::Cancelled),
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::RequiresAction => "requires_action",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

const fn t(from: PaymentStatus, on: &'static str, to: PaymentStatus) -> Transition<PaymentStatus> {
    Transition { from, on, to }
}

/// Who starts a payment with a saved token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// MIT: the merchant charges without the customer.
    Merchant,
    /// CIT: the customer is present and passes 3-D Secure.
    Client,
}

/// An SBP subscription service (`subscription_service_info`): lets one
/// customer bind several subscriptions at the same bank.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionService {
    id: String,
    name: String,
}

impl SubscriptionService {
    /// Both parts must be 1–128 printable characters.
    pub fn new(id: &str, name: &str) -> Result<Self, PaymentError> {
        let ok = |s: &str| {
            !s.trim().is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control)
        };
        if ok(id) && ok(name) {
            Ok(Self {
                id: id.to_owned(),
                name: name.to_owned(),
            })
        } else {
            Err(PaymentError::InvalidSubscriptionService)
        }
    }

    /// The subscription's identifier at the merchant.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name the customer sees in the bank app.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How the customer pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethod {
    /// Card data entered once (the data itself never reaches the domain).
    Card,
    /// The bank's widget collects the card.
    Widget,
    /// A saved recurrent token.
    Token {
        /// The merchant-facing token.
        token_id: TokenId,
        /// MIT or CIT.
        initiator: Initiator,
    },
    /// An SBP payment by QR code / deeplink.
    Fps {
        /// Optional subscription service shown in the bank app.
        subscription_service: Option<SubscriptionService>,
    },
    /// An SBP account binding without a real charge.
    FpsBinding {
        /// Optional subscription service shown in the bank app.
        subscription_service: Option<SubscriptionService>,
    },
}

impl PaymentMethod {
    /// The contract's name of the method (`card`, `widget`, `token`, `fps`, `fps_binding`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Widget => "widget",
            Self::Token { .. } => "token",
            Self::Fps { .. } => "fps",
            Self::FpsBinding { .. } => "fps_binding",
        }
    }

    /// Whether this is an SBP method (its tokens are SBP tokens).
    pub fn is_fps(&self) -> bool {
        matches!(self, Self::Fps { .. } | Self::FpsBinding { .. })
    }
}

/// How `ready_to_confirm` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Confirmation {
    /// Confirm at once.
    #[default]
    Automatic,
    /// Wait in `requires_confirmation` for the merchant.
    Manual,
}

/// What the customer must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAction {
    /// Send the customer to the 3-D Secure page.
    Redirect {
        /// Where to send the customer.
        url: String,
        /// `GET` or `POST`.
        method: String,
        /// Form parameters (`PaReq`, `MD`, …), in the bank's order.
        params: Vec<(String, String)>,
    },
    /// Show this SBP deeplink as a QR code.
    Qr {
        /// The deeplink.
        content: String,
    },
    /// Open the bank's widget with this public token.
    Widget {
        /// The widget's public token (valid 24 h).
        public_token: String,
    },
}

/// A failure as the bank reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The bank's code, verbatim.
    pub code: ErrorCode,
    /// The bank's description, or ours.
    pub message: String,
}

/// A recurrent token the bank issued with a successful payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The raw token.
    pub secret: RecurrentTokenSecret,
    /// When the bank created it.
    pub created_at: Option<OffsetDateTime>,
    /// The bank's expiry (informational; the bank does not enforce it).
    pub finished_at: Option<OffsetDateTime>,
    /// Whether the bank says it can be charged.
    pub is_active: bool,
}

/// Something the bank told us about a payment's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankFact {
    /// `ready_to_confirm`: the two-step session waits for our decision.
    ReadyToConfirm,
    /// `action_required`: the customer must act.
    ActionRequired(NextAction),
    /// `ready_to_capture`: funds are held.
    ReadyToCapture,
    /// `payment_finished` with the payment succeeded.
    Succeeded {
        /// A new recurrent token, when the bank issued one.
        token: Option<IssuedToken>,
    },
    /// `payment_finished` with the payment failed.
    Failed(Failure),
    /// The bank accepted our `session/cancel`.
    CancelConfirmed,
    /// `payment_refunded`: the total refunded so far.
    Refunded {
        /// Cumulative refunded amount.
        total: Money,
    },
}

impl BankFact {
    /// How far along the flow this fact is; facts never move a payment back.
    fn stage(&self) -> u8 {
        match self {
            Self::ReadyToConfirm => 1,
            Self::ActionRequired(_) => 2,
            Self::ReadyToCapture => 3,
            Self::Succeeded { .. } | Self::Failed(_) | Self::CancelConfirmed => 4,
            Self::Refunded { .. } => 5,
        }
    }

    /// The session and acquiring statuses this fact implies.
    fn bank_statuses(&self) -> (SessionStatus, AcquiringStatus) {
        match self {
            Self::ReadyToConfirm | Self::ActionRequired(_) => {
                (SessionStatus::InProgress, AcquiringStatus::Pending)
            }
            Self::ReadyToCapture => (SessionStatus::InProgress, AcquiringStatus::InProgress),
            Self::Succeeded { .. } | Self::Refunded { .. } => {
                (SessionStatus::Accepted, AcquiringStatus::Succeeded)
            }
            Self::Failed(_) | Self::CancelConfirmed => {
                (SessionStatus::Cancelled, AcquiringStatus::Failed)
            }
        }
    }
}

/// What the caller must do after a fact or command was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send `session/confirm`.
    ConfirmSession,
    /// Send `session/cancel`.
    CancelSession,
    /// Send `session/capture`.
    CaptureSession,
    /// Store this new recurrent token and [`Payment::attach_token`] it.
    SaveToken(IssuedToken),
    /// Tell the merchant (an event in the feed).
    Notify(PaymentEvent),
}

/// Merchant events about a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentEvent {
    /// `payment.requires_action`
    RequiresAction,
    /// `payment.requires_confirmation`
    RequiresConfirmation,
    /// `payment.succeeded`
    Succeeded,
    /// `payment.failed`
    Failed,
    /// `payment.cancelled`
    Cancelled,
    /// `payment.refunded`
    Refunded,
}

impl PaymentEvent {
    /// The event type's name in the merchant feed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresAction => "payment.requires_action",
            Self::RequiresConfirmation => "payment.requires_confirmation",
            Self::Succeeded => "payment.succeeded",
            Self::Failed => "payment.failed",
            Self::Cancelled => "payment.cancelled",
            Self::Refunded => "payment.refunded",
        }
    }
}

/// The result of applying a fact or command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What happened to the state.
    pub applied: Applied<PaymentStatus>,
    /// What the caller must do now.
    pub effects: Vec<Effect>,
}

impl Outcome {
    fn ignored(why: Ignored) -> Self {
        Self {
            applied: Applied::Ignored(why),
            effects: Vec::new(),
        }
    }
}

/// Why a payment could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentError {
    /// The amount is zero.
    ZeroAmount,
    /// SBP works in roubles only.
    FpsNeedsRub,
    /// `subscription_service` needs an id and a name.
    InvalidSubscriptionService,
    /// A CIT needs a `return_url` for the customer to come back to.
    ReturnUrlRequired,
    /// The refund is larger than what is left to refund, or in another currency.
    RefundTooLarge,
    /// The command is not legal in this state.
    Transition(TransitionError),
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ZeroAmount => f.write_str("amount must be greater than zero"),
            Self::FpsNeedsRub => f.write_str("SBP payments are in RUB only"),
            Self::InvalidSubscriptionService => {
                f.write_str("subscription_service needs a non-empty id and name")
            }
            Self::ReturnUrlRequired => {
                f.write_str("a customer-initiated token payment needs return_url")
            }
            Self::RefundTooLarge => f.write_str("refund exceeds the amount left to refund"),
            Self::Transition(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PaymentError {}

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
                self.p.updated_at = now;
                Applied::Changed {
                    from: self.p.status,
                    to: self.p.status,
                }
            }
        }
    }

    /// Shows a next action that did not come from a webhook (the widget's public token).
    pub fn show_widget(&mut self, public_token: String, now: OffsetDateTime) -> Outcome {
        self.apply(
            BankFact::ActionRequired(NextAction::Widget { public_token }),
            now,
        )
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
            BankFact::ReadyToConfirm => match self.p.new.confirmation {
                Confirmation::Automatic => effects.push(Effect::ConfirmSession),
                Confirmation::Manual => {
                    self.p.status = PaymentStatus::RequiresConfirmation;
                    effects.push(Effect::Notify(PaymentEvent::RequiresConfirmation));
                }
            },
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
        if amount.is_zero() {
            return Err(PaymentError::ZeroAmount);
        }
        let left = self
            .p
            .new
            .amount
            .checked_sub(self.p.refunded)
            .map_err(|_| PaymentError::RefundTooLarge)?;
        if amount.currency() != left.currency() || amount.minor() > left.minor() {
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
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}
