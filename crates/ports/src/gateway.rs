//! The bank, as the use cases see it.

use async_trait::async_trait;
use domain::{
    AcquiringStatus, BankDetails, BankFact, BankSessionId, CardData, CustomerReference, ErrorCode,
    Initiator, Money, PaymentId, PaymentMethod, RecurrentTokenSecret, SessionCommand,
    SessionStatus, SubscriptionService,
};
use time::OffsetDateTime;

/// Why a call to the bank did not give an answer we can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Nothing was executed (refused before sending, or the bank said "try later"): safe to retry.
    #[error("bank temporarily unavailable: {0}")]
    Transient(String),
    /// The bank refused the request; the code is the bank's, verbatim.
    #[error("bank refused the request: {code} ({message})")]
    Permanent {
        /// The bank's error code.
        code: ErrorCode,
        /// The bank's description.
        message: String,
    },
    /// The request may or may not have executed (timeout after sending, 5xx,
    /// broken connection, unreadable answer). Resolve with `session/status`;
    /// never send a new payment instead.
    #[error("outcome unknown: {0}")]
    UnknownOutcome(String),
    /// The request conflicts with the session's state (`session_wrong_state`).
    #[error("conflict with the bank's state: {0}")]
    Conflict(String),
    /// The bank does not know the session or token.
    #[error("not found at the bank")]
    NotFound,
}

/// How the payment is paid at the bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instrument {
    /// Card data.
    Card(CardData),
    /// A saved token.
    Token {
        /// The bank's raw token.
        secret: RecurrentTokenSecret,
        /// MIT or CIT.
        initiator: Initiator,
    },
    /// SBP payment.
    Fps(Option<SubscriptionService>),
    /// SBP binding without a charge.
    FpsBinding(Option<SubscriptionService>),
}

/// Which of the partner's projects a session runs in. The bank may issue a
/// separate project for payments with the customer present (3-D Secure):
/// card, widget and customer-initiated token payments run there; merchant-
/// initiated charges and SBP on the main project. A session's every call
/// goes to the project that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Project {
    /// `BANK131_PROJECT`.
    Main,
    /// `BANK131_PROJECT_3DS` (the main project when none is configured).
    CustomerPresent,
}

impl Project {
    /// The project a payment paid this way runs in.
    pub fn for_method(method: &PaymentMethod) -> Self {
        match method {
            PaymentMethod::Card
            | PaymentMethod::Widget { .. }
            | PaymentMethod::Token {
                initiator: Initiator::Client,
                ..
            } => Self::CustomerPresent,
            PaymentMethod::Token { .. }
            | PaymentMethod::Fps { .. }
            | PaymentMethod::FpsBinding { .. } => Self::Main,
        }
    }
}

/// A `session/create` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSession {
    /// The project the session runs in.
    pub project: Project,
    /// Our payment, sent in `metadata` so that any webhook can be matched.
    pub payment_id: PaymentId,
    /// The amount of the payment to come (the widget charges it).
    pub amount: Money,
    /// The customer.
    pub customer: CustomerReference,
    /// Ask for a recurrent token (used by the widget).
    pub recurrent: bool,
    /// Deterministic idempotency key.
    pub idempotency_key: String,
}

/// A `session/start/payment` (or `session/init/payment`) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPayment {
    /// The project the session runs in.
    pub project: Project,
    /// The session from `session/create`.
    pub session_id: BankSessionId,
    /// Our payment, sent in `metadata`.
    pub payment_id: PaymentId,
    /// How it is paid.
    pub instrument: Instrument,
    /// How much.
    pub amount: Money,
    /// Who pays.
    pub customer: CustomerReference,
    /// Ask for a recurrent token.
    pub recurrent: bool,
    /// Where the customer returns after 3-D Secure.
    pub return_url: Option<String>,
    /// Deterministic idempotency key.
    pub idempotency_key: String,
}

/// What the bank says a session looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// The session.
    pub session_id: BankSessionId,
    /// Its status.
    pub status: SessionStatus,
    /// The acquiring payment's status, once there is one.
    pub payment_status: Option<AcquiringStatus>,
    /// Our payment id, read back from `metadata`.
    pub payment_id: Option<PaymentId>,
    /// What the snapshot means for the payment, if anything yet.
    pub fact: Option<BankFact>,
    /// What the bank reports beside the state (its payment id, the card, the fee).
    pub details: BankDetails,
}

/// The answer of `token/info` and `recurrent/disable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Whether the token can be charged.
    pub is_active: bool,
    /// The bank's (unenforced) expiry.
    pub finished_at: Option<OffsetDateTime>,
}

/// A session command for one session: `session/confirm`, `session/cancel`
/// or `session/capture`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCall {
    /// Which command.
    pub command: SessionCommand,
    /// The session.
    pub session_id: BankSessionId,
    /// The project the session belongs to.
    pub project: Project,
    /// The same key for every resend of this command.
    pub idempotency_key: String,
}

impl SessionCall {
    /// `command` for `session_id` in `project`, sent with `idempotency_key`.
    pub fn new(
        command: SessionCommand,
        session_id: BankSessionId,
        project: Project,
        idempotency_key: String,
    ) -> Self {
        Self {
            command,
            session_id,
            project,
            idempotency_key,
        }
    }
}

/// A session at the bank: every call on one names it and the project it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// The session.
    pub session_id: BankSessionId,
    /// The project the session belongs to.
    pub project: Project,
}

impl SessionRef {
    /// `session_id` in `project`.
    pub fn new(session_id: BankSessionId, project: Project) -> Self {
        Self {
            session_id,
            project,
        }
    }
}

/// A public token for the bank's payment widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetToken {
    /// The public token.
    pub public_token: String,
    /// When it stops working (24 h).
    pub expires_at: Option<OffsetDateTime>,
}

/// The Bank 131 acquiring API.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// `session/create`: moves no money, returns the session id.
    async fn create_session(&self, request: CreateSession)
    -> Result<SessionSnapshot, GatewayError>;
    /// `session/start/payment` in a created session.
    async fn start_payment(&self, request: StartPayment) -> Result<SessionSnapshot, GatewayError>;
    /// `session/confirm`, `session/cancel` or `session/capture`: one call on
    /// a session, told apart by the command.
    async fn session_command(&self, call: SessionCall) -> Result<SessionSnapshot, GatewayError>;
    /// `session/refund`, full when `amount` is `None`.
    async fn refund(
        &self,
        session: SessionRef,
        amount: Option<Money>,
        idempotency_key: String,
    ) -> Result<SessionSnapshot, GatewayError>;
    /// `session/status`: how every unknown outcome is resolved.
    async fn session_status(&self, session: SessionRef) -> Result<SessionSnapshot, GatewayError>;
    /// `token` for the payment widget.
    async fn widget_token(
        &self,
        session: SessionRef,
        show_recurrent_checkbox: bool,
    ) -> Result<WidgetToken, GatewayError>;
    /// `token/info` about a recurrent token.
    async fn token_info(&self, token: RecurrentTokenSecret) -> Result<TokenInfo, GatewayError>;
    /// `recurrent/disable`.
    async fn disable_token(
        &self,
        token: RecurrentTokenSecret,
        idempotency_key: String,
    ) -> Result<TokenInfo, GatewayError>;
}

/// A webhook from the bank, verified and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedWebhook {
    /// The webhook's `type` (`payment_finished`, …, or one we do not know).
    pub kind: String,
    /// The session it is about.
    pub session_id: Option<BankSessionId>,
    /// Our payment id from `metadata`, when the bank echoed it.
    pub payment_id: Option<PaymentId>,
    /// The session this one was started from (`metadata.parent_session_id`,
    /// seed 003: the bank reports an SBP payment's failure on a child session).
    pub parent_session_id: Option<BankSessionId>,
    /// What it means for the payment (`None` for types that move nothing).
    pub fact: Option<BankFact>,
    /// What the bank reports beside the state.
    pub details: BankDetails,
}

/// Why a webhook was refused or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing or does not verify with any bank key.
    #[error("webhook signature missing or invalid")]
    BadSignature,
    /// Signed, but not a webhook we can read.
    #[error("unreadable webhook: {0}")]
    Unparsable(String),
    /// Signed, of a known type, but its session cannot be read: what it
    /// says must be asked of the bank (`session/status`) instead.
    #[error("unreadable {kind} webhook: {reason}")]
    UnreadableKnown {
        /// The webhook's type.
        kind: String,
        /// The session it names, when even that much can be read.
        session_id: Option<BankSessionId>,
        /// Why it could not be read.
        reason: String,
    },
}

/// Checks and reads the bank's webhooks (signature over the raw body first).
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait WebhookDecoder: Send + Sync {
    /// Verifies `X-PARTNER-SIGN` over the exact raw body (an absent header is `""`).
    fn verify(&self, body: &[u8], signature: &str) -> Result<(), WebhookError>;
    /// Reads a verified body.
    fn decode(&self, body: &[u8]) -> Result<DecodedWebhook, WebhookError>;
}
