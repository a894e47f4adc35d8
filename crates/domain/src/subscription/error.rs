//! Why a subscription could not be created or changed.

use crate::machine::TransitionError;

/// Why a subscription could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionError {
    /// The interval count is out of range for its unit.
    InvalidInterval,
    /// The amount is zero.
    ZeroAmount,
    /// The charge does not belong to the period/attempt in flight.
    UnexpectedCharge,
    /// The command is not legal in this state.
    Transition(TransitionError),
}

impl std::fmt::Display for SubscriptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidInterval => {
                f.write_str("interval.count must be 1–365 days, 1–52 weeks or 1–12 months")
            }
            Self::ZeroAmount => f.write_str("amount must be greater than zero"),
            Self::UnexpectedCharge => f.write_str("no such charge attempt is in flight"),
            Self::Transition(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SubscriptionError {}
