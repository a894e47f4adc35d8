//! Objects out: each the typed shape of one schema of the OpenAPI document,
//! built from the domain by an explicit mapping. Every field is always
//! present; the ones that may be `null` are `Option`s, and the document says so.

use domain::{
    CardSummary, ChargeStatus, Confirmation, Initiator, IntervalUnit, NextAction, Payment,
    PaymentMethod, PaymentStatus, RecurrentToken, State, Subscription, SubscriptionService,
    SubscriptionStatus, TokenMethod, TokenStatus,
};
use ports::{ChargeAttempt, Event, Presenter};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::shared::{
    Amount, ConfirmationName, Customer, InitiatorName, IntervalUnitName, SubscriptionServiceInfo,
};
use super::time::timestamp;

fn metadata(m: Option<&str>) -> Option<Value> {
    m.and_then(|t| serde_json::from_str(t).ok())
}

/// The object kinds, as each object's `object` field names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A payment.
    Payment,
    /// A token.
    Token,
    /// A subscription.
    Subscription,
}

/// A string schema whose values are the names of the domain's states `S`,
/// so the document's enums are the state machines' own.
fn states<S: State>() -> Object {
    names(S::ALL.iter().map(|s| s.as_str()))
}

fn charge_statuses() -> Object {
    names(ChargeStatus::ALL.iter().map(|s| s.as_str()))
}

fn names<'a>(values: impl Iterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

/// A token's method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TokenMethodType)]
pub enum TokenMethodName {
    /// A bank card.
    Card,
    /// An SBP account.
    Fps,
}

/// A card as the bank showed it: its brand and last four digits, never more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = CardSummary)]
pub struct CardView {
    /// `visa`, `mastercard`, `mir`, …
    pub brand: String,
    /// The last four digits.
    pub last4: String,
}

impl From<&CardSummary> for CardView {
    fn from(c: &CardSummary) -> Self {
        Self {
            brand: c.brand.clone(),
            last4: c.last4.clone(),
        }
    }
}

/// How a payment is paid, as the merchant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = PaymentMethod)]
pub enum MethodView {
    /// Card data.
    Card {
        /// The card, once the bank showed it.
        #[schema(required = true)]
        card: Option<CardView>,
    },
    /// The bank's widget.
    Widget {
        /// Whether the widget shows the bank's recurring-payments box.
        recurrent_checkbox: bool,
        /// The card paid with, once the bank showed it.
        #[schema(required = true)]
        card: Option<CardView>,
    },
    /// A saved token.
    Token {
        /// `tok_…`.
        token_id: String,
        /// MIT or CIT.
        initiator: InitiatorName,
        /// The card behind the token, once the bank showed it.
        #[schema(required = true)]
        card: Option<CardView>,
    },
    /// SBP payment.
    Fps {
        /// The SBP subscription service, if any.
        #[schema(required = true)]
        subscription_service: Option<SubscriptionServiceInfo>,
    },
    /// SBP binding.
    FpsBinding {
        /// The SBP subscription service, if any.
        #[schema(required = true)]
        subscription_service: Option<SubscriptionServiceInfo>,
    },
}

impl MethodView {
    /// The method of `m`, with the card the bank showed (`card`).
    fn new(m: &PaymentMethod, card: Option<&CardSummary>) -> Self {
        let card = card.map(CardView::from);
        let service = |s: &Option<SubscriptionService>| {
            s.as_ref().map(|s| SubscriptionServiceInfo {
                id: s.id().to_owned(),
                name: s.name().to_owned(),
            })
        };
        match m {
            PaymentMethod::Card => Self::Card { card },
            PaymentMethod::Widget { recurrent_checkbox } => Self::Widget {
                recurrent_checkbox: *recurrent_checkbox,
                card,
            },
            PaymentMethod::Token {
                token_id,
                initiator,
            } => Self::Token {
                token_id: token_id.as_str().to_owned(),
                initiator: match initiator {
                    Initiator::Client => InitiatorName::Client,
                    Initiator::Merchant => InitiatorName::Merchant,
                },
                card,
            },
            PaymentMethod::Fps {
                subscription_service,
            } => Self::Fps {
                subscription_service: service(subscription_service),
            },
            PaymentMethod::FpsBinding {
                subscription_service,
            } => Self::FpsBinding {
                subscription_service: service(subscription_service),
            },
        }
    }
}

/// What the customer must do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = NextAction)]
pub enum NextActionView {
    /// Send the customer to the 3-D Secure page.
    Redirect {
        /// Where.
        #[schema(format = "uri")]
        url: String,
        /// `GET` or `POST`.
        method: String,
        /// Form parameters (`PaReq`, `MD`, …), in the bank's order.
        #[schema(value_type = BTreeMap<String, String>)]
        params: Map<String, Value>,
    },
    /// Show this SBP deeplink as a QR code.
    Qr {
        /// The deeplink.
        content: String,
    },
    /// Open the bank's widget with this public token.
    Widget {
        /// Valid 24 hours.
        public_token: String,
    },
}

impl From<&NextAction> for NextActionView {
    fn from(a: &NextAction) -> Self {
        match a {
            NextAction::Redirect {
                url,
                method,
                params,
            } => Self::Redirect {
                url: url.clone(),
                method: method.clone(),
                params: params
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            },
            NextAction::Qr { content } => Self::Qr {
                content: content.clone(),
            },
            NextAction::Widget { public_token } => Self::Widget {
                public_token: public_token.clone(),
            },
        }
    }
}

/// The bank's side of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = PaymentBank)]
pub struct BankView {
    /// The bank's id of the payment (`pm_…`), for support tickets.
    #[schema(required = true)]
    pub payment_id: Option<String>,
    /// The bank's fee, when it reported one.
    #[schema(required = true)]
    pub fee: Option<Amount>,
    /// The bank session (`ps_…`), once created.
    #[schema(required = true)]
    pub session_id: Option<String>,
    /// The session's status as last reported.
    #[schema(required = true)]
    pub session_status: Option<String>,
    /// The acquiring payment's status as last reported.
    #[schema(required = true)]
    pub payment_status: Option<String>,
}

/// The token a payment produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = PaymentToken)]
pub struct TokenRef {
    /// `tok_…`.
    pub id: String,
    /// Its status now.
    #[schema(schema_with = states::<TokenStatus>)]
    pub status: &'static str,
}

/// Why a payment failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = PaymentError)]
pub struct FailureView {
    /// The bank's code, verbatim.
    pub code: String,
    /// The bank's description, or ours.
    pub message: String,
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Payment)]
pub struct PaymentView {
    /// `pay_…`.
    #[schema(example = "pay_…")]
    pub id: String,
    /// Always `payment`.
    pub object: ObjectKind,
    /// Where it stands.
    #[schema(schema_with = states::<PaymentStatus>)]
    pub status: &'static str,
    /// How much.
    pub amount: Amount,
    /// How much was refunded.
    pub refunded_amount: Amount,
    /// Who pays.
    pub customer: Customer,
    /// How.
    pub method: MethodView,
    /// Whether a recurrent token was asked for.
    pub save_token: bool,
    /// How `ready_to_confirm` is answered.
    pub confirmation: ConfirmationName,
    /// The bank's side.
    pub bank: BankView,
    /// What the customer must do next.
    #[schema(required = true)]
    pub next_action: Option<NextActionView>,
    /// The token this payment produced.
    #[schema(required = true)]
    pub token: Option<TokenRef>,
    /// Why it failed.
    #[schema(required = true)]
    pub error: Option<FailureView>,
    /// Free text.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Where the customer returns after 3-D Secure.
    #[schema(required = true)]
    pub return_url: Option<String>,
    /// The merchant's metadata, as given.
    #[schema(required = true, value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl PaymentView {
    /// A payment, with its token's current status when known.
    pub fn new(p: &Payment, token_status: Option<TokenStatus>) -> Self {
        Self {
            id: p.id().as_str().to_owned(),
            object: ObjectKind::Payment,
            status: p.status().as_str(),
            amount: p.amount().into(),
            refunded_amount: p.refunded().into(),
            customer: p.customer().into(),
            method: MethodView::new(p.method(), p.bank_details().card.as_ref()),
            save_token: p.save_token(),
            confirmation: match p.confirmation() {
                Confirmation::Manual => ConfirmationName::Manual,
                Confirmation::Automatic => ConfirmationName::Automatic,
            },
            bank: BankView {
                payment_id: p.bank_details().payment_id.clone(),
                fee: p.bank_details().fee.map(Amount::from),
                session_id: p.session_id().map(|s| s.as_str().to_owned()),
                session_status: p.session_status().map(|s| s.as_str().to_owned()),
                payment_status: p.acquiring_status().map(|s| s.as_str().to_owned()),
            },
            next_action: p.next_action().map(NextActionView::from),
            token: p.token_id().map(|t| TokenRef {
                id: t.as_str().to_owned(),
                status: token_status.unwrap_or(TokenStatus::Active).as_str(),
            }),
            error: p.failure().map(|f| FailureView {
                code: f.code.as_str().to_owned(),
                message: f.message.clone(),
            }),
            description: p.description().map(str::to_owned),
            return_url: p.return_url().map(str::to_owned),
            metadata: metadata(p.metadata()),
            created_at: timestamp(p.created_at()),
            updated_at: timestamp(p.updated_at()),
        }
    }
}

/// A token's method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = TokenMethod)]
pub struct TokenMethodView {
    /// `card` or `fps`.
    #[serde(rename = "type")]
    pub kind: TokenMethodName,
    /// The card behind a card token, once the bank showed it.
    #[schema(required = true)]
    pub card: Option<CardView>,
}

/// A recurrent token (never the raw bank token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    /// `tok_…`.
    #[schema(example = "tok_…")]
    pub id: String,
    /// Always `token`.
    pub object: ObjectKind,
    /// Whose.
    pub customer: Customer,
    /// Whether it can be charged.
    #[schema(schema_with = states::<TokenStatus>)]
    pub status: &'static str,
    /// Card or SBP.
    pub method: TokenMethodView,
    /// The payment that produced it.
    pub source_payment_id: String,
    /// The SBP subscription service it was bound for.
    #[schema(required = true)]
    pub subscription_service_id: Option<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the bank says it ends (or ended).
    #[schema(required = true, format = DateTime)]
    pub finished_at: Option<String>,
    /// When the bank was last asked about it.
    #[schema(required = true, format = DateTime)]
    pub last_checked_at: Option<String>,
}

impl From<&RecurrentToken> for TokenView {
    fn from(t: &RecurrentToken) -> Self {
        Self {
            id: t.id.as_str().to_owned(),
            object: ObjectKind::Token,
            customer: (&t.customer).into(),
            status: t.status().as_str(),
            method: TokenMethodView {
                kind: match t.method {
                    TokenMethod::Card => TokenMethodName::Card,
                    TokenMethod::Fps => TokenMethodName::Fps,
                },
                card: t.card.as_ref().map(CardView::from),
            },
            source_payment_id: t.source_payment_id.as_str().to_owned(),
            subscription_service_id: t.subscription_service_id.clone(),
            created_at: timestamp(t.created_at),
            finished_at: t.finished_at.map(timestamp),
            last_checked_at: t.last_checked_at.map(timestamp),
        }
    }
}

/// A subscription's interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Interval)]
pub struct IntervalView {
    /// The unit.
    pub unit: IntervalUnitName,
    /// How many units a period lasts.
    pub count: u32,
}

/// A billing period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Period)]
pub struct PeriodView {
    /// Its first moment.
    #[schema(format = DateTime)]
    pub start: String,
    /// Its end (the next period's start).
    #[schema(format = DateTime)]
    pub end: String,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionView {
    /// `sub_…`.
    #[schema(example = "sub_…")]
    pub id: String,
    /// Always `subscription`.
    pub object: ObjectKind,
    /// Where it stands.
    #[schema(schema_with = states::<SubscriptionStatus>)]
    pub status: &'static str,
    /// Who pays.
    pub customer: Customer,
    /// The token charged.
    pub token_id: String,
    /// How much per period.
    pub amount: Amount,
    /// How long a period is.
    pub interval: IntervalView,
    /// The first period's start (the anchor).
    #[schema(format = DateTime)]
    pub start_at: String,
    /// The period the customer is in.
    #[schema(required = true)]
    pub current_period: Option<PeriodView>,
    /// When the next charge (or retry) is due; `null` when none is.
    #[schema(required = true, format = DateTime)]
    pub next_charge_at: Option<String>,
    /// Failed attempts of the current period.
    pub failed_attempts: u32,
    /// Free text.
    #[schema(required = true)]
    pub description: Option<String>,
    /// The merchant's metadata, as given.
    #[schema(required = true, value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl SubscriptionView {
    /// The subscription as it stands at `now` (its current period depends on it).
    pub fn at(s: &Subscription, now: OffsetDateTime) -> Self {
        Self {
            id: s.id().as_str().to_owned(),
            object: ObjectKind::Subscription,
            status: s.status().as_str(),
            customer: s.customer().into(),
            token_id: s.token_id().as_str().to_owned(),
            amount: s.amount().into(),
            interval: IntervalView {
                unit: match s.interval().unit() {
                    IntervalUnit::Day => IntervalUnitName::Day,
                    IntervalUnit::Week => IntervalUnitName::Week,
                    IntervalUnit::Month => IntervalUnitName::Month,
                },
                count: s.interval().count(),
            },
            start_at: timestamp(s.anchor()),
            current_period: s.current_period(now).map(|p| PeriodView {
                start: timestamp(p.start),
                end: timestamp(p.end),
            }),
            next_charge_at: s.next_charge_at().map(timestamp),
            failed_attempts: s.failed_attempts(),
            description: s.description().map(str::to_owned),
            metadata: metadata(s.metadata()),
            created_at: timestamp(s.created_at()),
        }
    }
}

/// A subscription charge attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Charge)]
pub struct ChargeView {
    /// The period's start.
    #[schema(format = DateTime)]
    pub period_start: String,
    /// The period's number, from 0.
    pub period_index: u32,
    /// The attempt's number in the period, from 1 (0: the period was skipped).
    pub attempt: u32,
    /// The payment that carries it; `null` for a skipped period.
    #[schema(required = true)]
    pub payment_id: Option<String>,
    /// Its outcome.
    #[schema(schema_with = charge_statuses)]
    pub status: &'static str,
}

impl From<&ChargeAttempt> for ChargeView {
    fn from(c: &ChargeAttempt) -> Self {
        Self {
            period_start: timestamp(c.period_start),
            period_index: c.period_index,
            attempt: c.attempt,
            payment_id: c.payment_id.as_ref().map(|id| id.as_str().to_owned()),
            status: c.status.as_str(),
        }
    }
}

/// An event, as the feed shows it and as it is POSTed to the merchant.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// `evt_…`, in feed order.
    #[schema(example = "evt_…")]
    pub id: String,
    /// What happened (`payment.succeeded`, …).
    #[serde(rename = "type")]
    #[schema(example = "payment.succeeded")]
    pub kind: String,
    /// When.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The object as it was then.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            id: e.id.as_str().to_owned(),
            kind: e.kind.clone(),
            created_at: timestamp(e.created_at),
            data: serde_json::from_str(&e.data).unwrap_or(Value::Null),
        }
    }
}

/// A page of payments, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PaymentList {
    /// The payments, newest first.
    pub data: Vec<PaymentView>,
    /// Whether a next page exists (ask with `starting_after` = the last id).
    pub has_more: bool,
}

/// A customer's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TokenList {
    /// The tokens, newest first.
    pub data: Vec<TokenView>,
    /// Whether a next page exists (ask with `starting_after` = the last id).
    pub has_more: bool,
}

/// A subscription's charge attempts, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChargeList {
    /// The attempts.
    pub data: Vec<ChargeView>,
}

/// A page of the event feed, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventList {
    /// The events.
    pub data: Vec<EventView>,
    /// Whether more events follow the last one.
    pub has_more: bool,
}

/// The test clock's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Clock {
    /// Business time now.
    #[schema(format = DateTime)]
    pub now: String,
}

/// A short status answer (health, readiness, webhook receipts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusView {
    /// `ok`, `ready`, or why not.
    pub status: &'static str,
}

/// An event's JSON body, as the feed shows it and as it is POSTed.
pub fn event_body(e: &Event) -> String {
    serde_json::to_string(&EventView::from(e)).unwrap_or_default()
}

/// Renders objects as the merchant API shows them, for event payloads.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonPresenter;

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Presenter for JsonPresenter {
    fn payment(&self, payment: &Payment) -> String {
        json(&PaymentView::new(payment, None))
    }

    fn token(&self, token: &RecurrentToken) -> String {
        json(&TokenView::from(token))
    }

    fn subscription(&self, subscription: &Subscription, now: OffsetDateTime) -> String {
        json(&SubscriptionView::at(subscription, now))
    }
}
