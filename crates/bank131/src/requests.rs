//! The request bodies recur sends (and the sandbox reads), one type per method.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dto::{Amount, Customer, PaymentDetails, PaymentOptions};

/// `session/create`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CreateSessionRequest {
    /// The amount of the payment to come (the widget charges it).
    pub amount_details: Option<Amount>,
    /// The customer of the payment to come.
    pub customer: Option<Customer>,
    /// Options for the payment to come (the widget reads `recurrent`).
    pub payment_options: Option<PaymentOptions>,
    /// Echoed back in the session.
    pub metadata: Option<Value>,
}

/// `session/start/payment` (with `session_id`) and `session/init/payment` (without).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// The created session (`session/start/payment` only).
    pub session_id: Option<String>,
    /// How.
    pub payment_details: PaymentDetails,
    /// How much.
    pub amount_details: Amount,
    /// Who.
    pub customer: Customer,
    /// Options.
    pub payment_options: Option<PaymentOptions>,
    /// Echoed back in the acquiring payment.
    pub metadata: Option<Value>,
}

/// `session/confirm`, `session/cancel`, `session/capture`, `session/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionIdRequest {
    /// The session.
    pub session_id: String,
}

/// `session/refund`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// The session.
    pub session_id: String,
    /// Partial amount; full refund when absent.
    pub amount_details: Option<Amount>,
}

/// `token` for the widget: `{"acquiring_widget": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetTokenRequest {
    /// The widget's parameters.
    pub acquiring_widget: AcquiringWidget,
}

/// The widget's parameters.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquiringWidget {
    /// The session the widget pays.
    pub session_id: String,
    /// Show "I agree to recurring payments".
    pub show_recurrent_checkbox: Option<bool>,
}

/// A token reference: `{"token": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRef {
    /// The raw token.
    pub token: String,
}

/// `token/info`: `{"type": "recurrent_token", "recurrent_token": {"token": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfoRequest {
    /// `recurrent_token`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The token.
    pub recurrent_token: TokenRef,
}

/// `recurrent/disable` and `recurrent/status`: `{"recurrent": {"token": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurrentRequest {
    /// The token.
    pub recurrent: TokenRef,
}
