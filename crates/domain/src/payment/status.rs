//! The merchant-facing payment status and its transition table.

use crate::machine::{State, Transition, state_names};

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
    state_names! {
        Pending => "pending",
        RequiresAction => "requires_action",
        RequiresConfirmation => "requires_confirmation",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
    const MACHINE: &'static str = "Payment";
    const TRANSITIONS: &'static [Transition<Self>] = &[
        t(
            Self::Pending,
            "ready_to_confirm (manual)",
            Self::RequiresConfirmation,
        ),
        t(Self::Pending, "action_required", Self::RequiresAction),
        t(Self::Pending, "widget shown", Self::RequiresAction),
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
        t(
            Self::RequiresAction,
            "ready_to_confirm (widget, automatic)",
            Self::Pending,
        ),
        t(
            Self::RequiresAction,
            "ready_to_confirm (widget, manual)",
            Self::RequiresConfirmation,
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
}

const fn t(from: PaymentStatus, on: &'static str, to: PaymentStatus) -> Transition<PaymentStatus> {
    Transition { from, on, to }
}
