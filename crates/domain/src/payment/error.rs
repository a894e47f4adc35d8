//! Why a payment could not be created or changed.

use crate::machine::TransitionError;

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
    /// The refund is larger than what is left to refund.
    RefundTooLarge,
    /// Nothing is left to refund.
    AlreadyRefunded,
    /// The refund is in another currency than the payment.
    CurrencyMismatch,
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
            Self::AlreadyRefunded => f.write_str("the payment is already refunded in full"),
            Self::CurrencyMismatch => {
                f.write_str("the refund is in another currency than the payment")
            }
            Self::Transition(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PaymentError {}

impl PaymentError {
    /// A machine-readable name of the refusal (`already_refunded`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::ZeroAmount => "zero_amount",
            Self::FpsNeedsRub => "fps_needs_rub",
            Self::InvalidSubscriptionService => "invalid_subscription_service",
            Self::ReturnUrlRequired => "return_url_required",
            Self::RefundTooLarge => "refund_too_large",
            Self::AlreadyRefunded => "already_refunded",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::Transition(_) => "invalid_state",
        }
    }
}
