//! What the sandbox bank keeps: sessions, payments, tokens, widgets, the ledger, faults.

use bank131::dto::{AcquiringPayment, Amount, RecurrentTokenInfo, Response, Session, Webhook};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cards::Behavior;

/// A refused request: code and description for the error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The bank error code.
    pub code: &'static str,
    /// Human text.
    pub description: String,
}

pub(crate) fn refuse(code: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        code,
        description: description.into(),
    }
}

/// What the session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaiting {
    /// Nothing: no payment yet, or finished.
    Nothing,
    /// `session/confirm` or `session/cancel`.
    Confirm,
    /// The customer on the 3-D Secure page.
    ThreeDs,
    /// The customer paying the QR code.
    Qr,
    /// `session/capture`.
    Capture,
}

/// A payment inside a session, with what the sandbox needs to play it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// The wire view (card details reduced to brand and last four).
    pub view: AcquiringPayment,
    /// How it behaves.
    pub behavior: Behavior,
    /// The token charged, for token payments.
    pub charged_token: Option<String>,
    /// Whether a new recurrent token is issued on success.
    pub issue_token: bool,
    /// Whether the customer initiated a token payment (3-D Secure).
    pub client_initiated: bool,
}

/// A session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The wire view without payments.
    pub view: Session,
    /// Its payment.
    pub payment: Option<PaymentRecord>,
    /// What it waits for.
    pub awaiting: Awaiting,
    /// `payment_options.recurrent` of `session/create`.
    pub recurrent: bool,
    /// Where the customer pages live (`http://host`).
    pub base_url: String,
    /// The amount given at `session/create` (the widget charges it).
    pub amount: Option<Amount>,
    /// The customer given at `session/create`.
    pub customer: Option<bank131::dto::Customer>,
    /// The project (`X-PARTNER-PROJECT`) that created it: every later call
    /// about the session must come from the same project.
    #[serde(default)]
    pub project: String,
}

impl SessionRecord {
    /// The wire view with its payment.
    pub fn wire(&self) -> Session {
        let mut session = self.view.clone();
        session.acquiring_payments = self.payment.iter().map(|p| p.view.clone()).collect();
        session
    }
}

/// A recurrent token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The wire view.
    pub info: RecurrentTokenInfo,
    /// Who it belongs to.
    pub customer: String,
    /// Becomes inactive after its first charge (test card `…0341`).
    pub dies_after_charge: bool,
    /// `card` or `fps`.
    pub rail: String,
}

/// One line of the ledger: money that moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The project whose session moved the money.
    #[serde(default)]
    pub project: String,
    /// `charge`, `refund` or `binding` (SBP binding: nothing charged).
    pub kind: String,
    /// The session.
    pub session_id: String,
    /// The partner's payment id from metadata, if sent.
    pub partner_payment_id: Option<String>,
    /// The token charged, if any.
    pub token: Option<String>,
    /// Minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// When.
    pub at: String,
}

/// Faults to inject, set through the control API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Send every webhook this many extra times.
    pub duplicate_webhooks: u32,
    /// Hold a session's webhooks until it finishes, then send them newest first.
    pub reverse_webhooks: bool,
    /// Wait this long before sending each webhook.
    pub webhook_delay_ms: u64,
    /// The next this-many delivery attempts fail without reaching the partner.
    pub fail_webhook_deliveries: u32,
    /// The next this-many API requests answer HTTP 500 without doing anything.
    pub api_5xx: u32,
    /// The next this-many API requests answer `307` (to the same URL) without
    /// doing anything: a client must not follow it.
    pub api_redirects: u32,
    /// The next this-many API requests hang past the client's timeout without doing anything.
    pub api_timeouts: u32,
    /// The next this-many API requests are executed, then their answer is lost.
    pub drop_responses: u32,
    /// The next `session/create` requests answer these error codes, in
    /// order, without being executed.
    pub refuse_creates: Vec<String>,
    /// The next `session/start/payment` (or `init`) requests answer these
    /// error codes, in order, without being executed.
    pub refuse_starts: Vec<String>,
    /// Every API request waits this long before it is executed (a slow bank).
    pub api_delay_ms: u64,
    /// How long a "hang" lasts, in milliseconds (default 3000).
    pub hang_ms: u64,
    /// The next this-many webhooks are never delivered (the partner was
    /// down longer than the bank retries).
    pub lose_webhooks: u32,
    /// The next payments that would succeed are declined with these codes,
    /// in order (e.g. `["insufficient_funds"]` to exercise dunning).
    pub decline_next: Vec<String>,
}

/// A widget public token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Widget {
    /// The session it pays.
    pub session_id: String,
    /// Whether to show "I agree to recurring payments".
    pub show_recurrent_checkbox: bool,
    /// When it stops working (24 h after it was issued).
    pub expires_at: i64,
}

/// How long a widget public token works.
pub const WIDGET_TOKEN_TTL: time::Duration = time::Duration::hours(24);

/// What a call produced: the answer and the webhooks to send.
pub type Outcome = Result<(Response, Vec<Webhook>), Refusal>;

pub(crate) fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("system randomness");
    hex::encode(buf)
}

pub(crate) fn with_session(session: Session) -> Response {
    Response {
        session: Some(session),
        ..Response::ok()
    }
}
