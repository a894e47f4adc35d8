//! Wire types of the Bank 131 acquiring API, exactly as the seeds show them.
//!
//! Input is read tolerantly (unknown fields are ignored, optional fields may be
//! missing, `acquiring_payments` may be called `payment_list`); output skips
//! absent fields so that requests serialize exactly like the seeds.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An optional part read leniently: a part that is present but not in the
/// shape this crate knows reads as absent instead of failing the whole
/// object (webhooks gain fields, and a thin one must still be applied).
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// `true`: a token the bank hands over without saying otherwise can be charged.
fn active() -> bool {
    true
}

/// An amount in minor units and a currency code (any case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Minor units.
    pub amount: i64,
    /// Currency code as sent (`rub`, `RUB`, `usd`).
    pub currency: String,
}

/// The customer.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The merchant's reference.
    #[serde(default)]
    pub reference: String,
    /// Contacts (masked phone numbers in webhooks).
    pub contacts: Option<Value>,
}

/// Card data, as sent (`bank_card`). `Debug` never shows the number or CVV.
#[serde_with::skip_serializing_none]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankCard {
    /// PAN.
    pub number: String,
    /// `MM`.
    pub expiration_month: String,
    /// `YY`.
    pub expiration_year: String,
    /// CVV/CVC.
    pub security_code: Option<String>,
    /// Name on the card (`cardholder_name`, as the official SDK's card model
    /// names it).
    pub cardholder_name: Option<String>,
}

impl fmt::Debug for BankCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last4 = self
            .number
            .get(self.number.len().saturating_sub(4)..)
            .unwrap_or("");
        write!(f, "BankCard(**** {last4})")
    }
}

/// `payment_details.card`: card data in requests, brand and last digits in webhooks.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CardDetails {
    /// `bank_card`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The card data (requests only).
    pub bank_card: Option<BankCard>,
    /// Card brand (webhooks).
    pub brand: Option<String>,
    /// Last four digits (webhooks).
    pub last4: Option<String>,
}

/// `payment_details.recurrent`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurrentDetails {
    /// The raw token.
    #[serde(default)]
    pub token: String,
    /// `client` for a CIT; absent for a MIT.
    pub initiator: Option<String>,
}

/// `subscription_service_info` of an SBP payment or binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionServiceInfo {
    /// The merchant's subscription id.
    pub id: String,
    /// The name the payer sees.
    pub name: String,
}

/// `payment_details.faster_payment_system(_binding)`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FpsDetails {
    /// Several subscriptions of one payer at one bank.
    pub subscription_service_info: Option<SubscriptionServiceInfo>,
}

/// How the payment is paid.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentDetails {
    /// A bank card.
    Card {
        /// The card.
        #[serde(default)]
        card: CardDetails,
    },
    /// A recurrent token.
    Recurrent {
        /// The token.
        recurrent: RecurrentDetails,
    },
    /// An SBP payment.
    FasterPaymentSystem {
        /// SBP options.
        faster_payment_system: Option<FpsDetails>,
    },
    /// An SBP account binding (no real charge).
    FasterPaymentSystemBinding {
        /// SBP options.
        faster_payment_system_binding: Option<FpsDetails>,
    },
    /// A type this crate does not know.
    #[serde(other)]
    Unknown,
}

/// `payment_options`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PaymentOptions {
    /// Ask for a recurrent token.
    pub recurrent: Option<bool>,
    /// Where the customer returns after 3-D Secure.
    pub return_url: Option<String>,
}

/// A recurrent token as the bank describes it (`RecurrentTokenInfo`).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurrentTokenInfo {
    /// The raw token.
    pub token: String,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// The unenforced expiry (RFC 3339; may read year 2000 after disabling).
    pub finished_at: Option<String>,
    /// Whether it can be charged.
    #[serde(default = "active")]
    pub is_active: bool,
    /// `recurrent_token`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The card's brand (`visa`, `mastercard`, `mir`), when the bank says.
    pub brand: Option<String>,
    /// The card's last four digits, when the bank says.
    pub last4: Option<String>,
}

/// `customer_interaction.redirect`: the 3-D Secure page.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    /// Full URL.
    pub url: String,
    /// URL without the query.
    pub base_url: Option<String>,
    /// `GET` or `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Query parameters.
    pub qs: Option<Map<String, Value>>,
    /// Form parameters (`PaReq`, `MD`, `TermUrl`).
    pub params: Option<Map<String, Value>>,
}

fn default_method() -> String {
    "GET".into()
}

/// `customer_interaction.inform.qr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qr {
    /// The SBP deeplink.
    pub content: String,
}

/// `customer_interaction.inform`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Inform {
    /// The QR code to show.
    pub qr: Option<Qr>,
}

/// What the customer must do.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CustomerInteraction {
    /// `redirect` or `inform`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// 3-D Secure redirect.
    pub redirect: Option<Redirect>,
    /// Information to show (SBP QR).
    pub inform: Option<Inform>,
}

/// `amounts`: fees, net and gross.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Amounts {
    /// Net amount.
    pub net: Option<Amount>,
    /// Gross amount.
    pub gross: Option<Amount>,
    /// Fees.
    pub fee: Option<Value>,
}

/// An error object.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The code, verbatim.
    pub code: String,
    /// Human text.
    pub description: Option<String>,
}

/// A refund of an acquiring payment.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// When it was asked for.
    pub created_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// The refund's id.
    pub id: Option<String>,
    /// Its status.
    pub status: Option<String>,
    /// Its amount.
    pub amount_details: Option<Amount>,
}

/// An acquiring payment inside a session.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquiringPayment {
    /// `pm_…`.
    #[serde(default)]
    pub id: String,
    /// `pending`, `in_progress`, `succeeded`, `failed`.
    #[serde(default)]
    pub status: String,
    /// Created.
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    /// Finished.
    #[serde(default, deserialize_with = "lenient")]
    pub finished_at: Option<String>,
    /// Who pays.
    #[serde(default, deserialize_with = "lenient")]
    pub customer: Option<Customer>,
    /// How.
    #[serde(default, deserialize_with = "lenient")]
    pub payment_details: Option<PaymentDetails>,
    /// How much.
    #[serde(default, deserialize_with = "lenient")]
    pub amount_details: Option<Amount>,
    /// Fees, net, gross.
    #[serde(default, deserialize_with = "lenient")]
    pub amounts: Option<Amounts>,
    /// Options as sent.
    #[serde(default, deserialize_with = "lenient")]
    pub payment_options: Option<PaymentOptions>,
    /// A new recurrent token, on success.
    #[serde(default, deserialize_with = "lenient")]
    pub recurrent: Option<RecurrentTokenInfo>,
    /// What the customer must do.
    #[serde(default, deserialize_with = "lenient")]
    pub customer_interaction: Option<CustomerInteraction>,
    /// Refunds.
    #[serde(default, deserialize_with = "lenient")]
    pub refunds: Option<Vec<Refund>>,
    /// What the partner sent in `metadata`.
    #[serde(default, deserialize_with = "lenient")]
    pub metadata: Option<Value>,
    /// Subscription data.
    #[serde(default, deserialize_with = "lenient")]
    pub subscription: Option<Value>,
    /// Why it failed.
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<ApiError>,
}

/// A payment session.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `ps_…`.
    pub id: String,
    /// `created`, `in_progress`, `accepted`, `cancelled`, `error`.
    pub status: String,
    /// Created.
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    /// Updated.
    #[serde(default, deserialize_with = "lenient")]
    pub updated_at: Option<String>,
    /// Finished.
    #[serde(default, deserialize_with = "lenient")]
    pub finished_at: Option<String>,
    /// The payments (v1 name; v2 calls it `payment_list`).
    #[serde(default, alias = "payment_list", skip_serializing_if = "Vec::is_empty")]
    pub acquiring_payments: Vec<AcquiringPayment>,
    /// `confirm` or `capture` when the bank waits for the partner.
    #[serde(default, deserialize_with = "lenient")]
    pub next_action: Option<String>,
    /// When each partner action happened.
    #[serde(default, deserialize_with = "lenient")]
    pub actions: Option<Value>,
    /// What the partner sent in `metadata` at `session/create`.
    #[serde(default, deserialize_with = "lenient")]
    pub metadata: Option<Value>,
    /// Why it failed.
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<ApiError>,
}

impl Session {
    /// The session's (first) acquiring payment.
    pub fn payment(&self) -> Option<&AcquiringPayment> {
        self.acquiring_payments.first()
    }
}

/// The response envelope of every method.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// `ok` or `error`.
    pub status: String,
    /// On error.
    pub error: Option<ApiError>,
    /// Session methods.
    pub session: Option<Session>,
    /// Widget `token`.
    pub public_token: Option<String>,
    /// `token/info` (the official SDK's name).
    pub info: Option<RecurrentTokenInfo>,
    /// `token/info` (alternative name).
    pub recurrent_token: Option<RecurrentTokenInfo>,
    /// `recurrent/status` and `recurrent/disable`.
    pub recurrent: Option<RecurrentTokenInfo>,
}

impl Response {
    /// A successful envelope.
    pub fn ok() -> Self {
        Self {
            status: "ok".into(),
            error: None,
            session: None,
            public_token: None,
            info: None,
            recurrent_token: None,
            recurrent: None,
        }
    }

    /// An error envelope.
    pub fn error(code: &str, description: &str) -> Self {
        Self {
            status: "error".into(),
            error: Some(ApiError {
                code: code.into(),
                description: Some(description.into()),
            }),
            ..Self::ok()
        }
    }

    /// The token info under whichever name the bank used.
    pub fn token_info(&self) -> Option<&RecurrentTokenInfo> {
        self.info
            .as_ref()
            .or(self.recurrent_token.as_ref())
            .or(self.recurrent.as_ref())
    }
}

/// The five webhook types, and any other.
#[derive(Debug, Clone, PartialEq)]
pub enum Webhook {
    /// `ready_to_confirm`.
    ReadyToConfirm(Session),
    /// `action_required`.
    ActionRequired(Session),
    /// `ready_to_capture`.
    ReadyToCapture(Session),
    /// `payment_finished`.
    PaymentFinished(Session),
    /// `payment_refunded`.
    PaymentRefunded(Session),
    /// A type we do not know, kept whole.
    Unknown {
        /// Its `type`, if any.
        kind: String,
        /// The raw JSON.
        raw: Value,
    },
}

#[derive(Deserialize)]
struct RawWebhook {
    #[serde(rename = "type")]
    kind: String,
    session: Option<Session>,
}

impl Webhook {
    /// Parses a webhook body. Unknown types (and known types without a
    /// session) become [`Webhook::Unknown`]; only non-JSON is an error.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: Value = serde_json::from_slice(body)?;
        let unknown = |raw: Value| {
            let kind = raw
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Webhook::Unknown { kind, raw }
        };
        let Ok(RawWebhook {
            kind,
            session: Some(session),
        }) = RawWebhook::deserialize(&raw)
        else {
            return Ok(unknown(raw));
        };
        Ok(match kind.as_str() {
            "ready_to_confirm" => Self::ReadyToConfirm(session),
            "action_required" => Self::ActionRequired(session),
            "ready_to_capture" => Self::ReadyToCapture(session),
            "payment_finished" => Self::PaymentFinished(session),
            "payment_refunded" => Self::PaymentRefunded(session),
            _ => unknown(raw),
        })
    }

    /// The webhook's `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::ReadyToConfirm(_) => "ready_to_confirm",
            Self::ActionRequired(_) => "action_required",
            Self::ReadyToCapture(_) => "ready_to_capture",
            Self::PaymentFinished(_) => "payment_finished",
            Self::PaymentRefunded(_) => "payment_refunded",
            Self::Unknown { kind, .. } => kind,
        }
    }

    /// The session, for known types.
    pub fn session(&self) -> Option<&Session> {
        match self {
            Self::ReadyToConfirm(s)
            | Self::ActionRequired(s)
            | Self::ReadyToCapture(s)
            | Self::PaymentFinished(s)
            | Self::PaymentRefunded(s) => Some(s),
            Self::Unknown { .. } => None,
        }
    }

    /// The body to send for this webhook (sandbox side).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Unknown { raw, .. } => raw.clone(),
            known => serde_json::json!({ "type": known.kind(), "session": known.session() }),
        }
    }
}
