//! What the bank tells about a session, and what a payment asks of its caller.

use time::OffsetDateTime;

use crate::bank::{AcquiringStatus, SessionStatus};
use crate::machine::{Applied, Ignored};
use crate::{ErrorCode, Money, RecurrentTokenSecret};

use super::status::PaymentStatus;

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
    /// The bank confirmed that the session will never be paid: it no longer
    /// knows it, or its widget expired unused (and the session was
    /// cancelled). The payment ends `cancelled` with the reason.
    Abandoned(Failure),
    /// `payment_refunded`: the total refunded so far.
    Refunded {
        /// Cumulative refunded amount.
        total: Money,
    },
}

impl BankFact {
    /// How far along the flow this fact is; facts never move a payment back.
    pub(crate) fn stage(&self) -> u8 {
        match self {
            Self::ReadyToConfirm => 1,
            Self::ActionRequired(_) => 2,
            Self::ReadyToCapture => 3,
            Self::Succeeded { .. }
            | Self::Failed(_)
            | Self::CancelConfirmed
            | Self::Abandoned(_) => 4,
            Self::Refunded { .. } => 5,
        }
    }

    /// The session and acquiring statuses this fact implies.
    pub(crate) fn bank_statuses(&self) -> (SessionStatus, AcquiringStatus) {
        match self {
            Self::ReadyToConfirm | Self::ActionRequired(_) => {
                (SessionStatus::InProgress, AcquiringStatus::Pending)
            }
            Self::ReadyToCapture => (SessionStatus::InProgress, AcquiringStatus::InProgress),
            Self::Succeeded { .. } | Self::Refunded { .. } => {
                (SessionStatus::Accepted, AcquiringStatus::Succeeded)
            }
            Self::Failed(_) | Self::CancelConfirmed | Self::Abandoned(_) => {
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
    /// Store this new recurrent token and [`Payment::attach_token`](crate::Payment::attach_token) it.
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
    pub(crate) fn ignored(why: Ignored) -> Self {
        Self {
            applied: Applied::Ignored(why),
            effects: Vec::new(),
        }
    }
}

/// A session command a payment waits for us to send to the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionCommand {
    /// `session/confirm`.
    Confirm,
    /// `session/capture`.
    Capture,
    /// `session/cancel`.
    Cancel,
}

/// A card as the bank shows it: never more than its brand and last digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardSummary {
    /// `visa`, `mastercard`, `mir`, …
    pub brand: String,
    /// The last four digits.
    pub last4: String,
}

/// What the bank reported about a payment beside its state: the merchant's
/// reference for support tickets, the card, the bank's fee.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankDetails {
    /// The bank's id of the acquiring payment (`pm_…`).
    pub payment_id: Option<String>,
    /// The card paid with.
    pub card: Option<CardSummary>,
    /// The bank's fee.
    pub fee: Option<Money>,
}

impl BankDetails {
    /// `self` with whatever `newer` reports; what it leaves out is kept.
    #[must_use]
    pub fn merged(&self, newer: BankDetails) -> Self {
        Self {
            payment_id: newer.payment_id.or_else(|| self.payment_id.clone()),
            card: newer.card.or_else(|| self.card.clone()),
            fee: newer.fee.or(self.fee),
        }
    }
}
