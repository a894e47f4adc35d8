//! The merchant wire format: request bodies in, objects out. Domain types are
//! not `Serialize`; this module maps them explicitly.

use domain::{
    CardData, Confirmation, Currency, CustomerReference, Initiator, Interval, IntervalUnit, Money,
    NextAction, Payment, PaymentMethod, RecurrentToken, State, Subscription, SubscriptionService,
    TokenId, TokenStatus,
};
use ports::{ChargeAttempt, Event, Presenter};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use service::{
    CreateSubscriptionCommand, MethodRequest, StartPaymentCommand, UpdateSubscriptionCommand,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// RFC 3339, UTC.
pub fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn opt_timestamp(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(timestamp(t)))
}

/// Parses an RFC 3339 time.
pub fn parse_timestamp(field: &str, s: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(ports::to_micros)
        .map_err(|_| ApiError::bad_request(format!("{field} must be an RFC 3339 time")))
}

fn money_json(m: Money) -> Value {
    json!({ "value": m.minor(), "currency": m.currency().code() })
}

fn metadata_json(m: Option<&str>) -> Value {
    m.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// `{"value": 10000, "currency": "rub"}` in.
#[derive(Debug, Deserialize)]
pub struct AmountIn {
    value: i64,
    currency: String,
}

impl AmountIn {
    /// As money (currency in any case).
    pub fn money(&self, field: &str) -> Result<Money, ApiError> {
        let currency = Currency::parse(&self.currency)
            .map_err(|e| ApiError::bad_request(format!("{field}.currency: {e}")))?;
        Money::new(self.value, currency)
            .map_err(|e| ApiError::bad_request(format!("{field}.value: {e}")))
    }
}

/// `{"reference": "cust-42"}` in.
#[derive(Debug, Deserialize)]
pub struct CustomerIn {
    reference: String,
}

impl CustomerIn {
    fn parse(&self) -> Result<CustomerReference, ApiError> {
        CustomerReference::parse(&self.reference)
            .map_err(|e| ApiError::bad_request(format!("customer.reference: {e}")))
    }
}

/// Card data in; never logged (`Debug` masks it).
#[derive(Deserialize)]
pub struct CardIn {
    number: String,
    expiry_month: String,
    expiry_year: String,
    security_code: String,
    #[serde(default)]
    holder_name: Option<String>,
}

impl std::fmt::Debug for CardIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardIn(***)")
    }
}

/// `method` in.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MethodIn {
    /// Card data.
    Card {
        /// The card.
        card: CardIn,
    },
    /// The bank's widget.
    Widget,
    /// A saved token.
    Token {
        /// `tok_…`.
        token_id: String,
        /// `merchant` (MIT) or `client` (CIT).
        #[serde(default)]
        initiator: Option<String>,
    },
    /// SBP QR payment.
    Fps,
    /// SBP binding.
    FpsBinding,
}

/// `subscription_service` in.
#[derive(Debug, Deserialize)]
pub struct ServiceIn {
    id: String,
    name: String,
}

/// `POST /v1/payments` body.
#[derive(Debug, Deserialize)]
pub struct CreatePaymentIn {
    customer: CustomerIn,
    amount: AmountIn,
    method: MethodIn,
    #[serde(default)]
    save_token: bool,
    #[serde(default)]
    confirmation: Option<String>,
    #[serde(default)]
    return_url: Option<String>,
    #[serde(default)]
    subscription_service: Option<ServiceIn>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn metadata_text(m: Option<Value>) -> Result<Option<String>, ApiError> {
    match m {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.to_string())),
        Some(_) => Err(ApiError::bad_request("metadata must be an object")),
    }
}

impl CreatePaymentIn {
    /// The use case's command.
    pub fn command(self) -> Result<StartPaymentCommand, ApiError> {
        let service = self
            .subscription_service
            .map(|s| {
                SubscriptionService::new(&s.id, &s.name)
                    .map_err(|e| ApiError::bad_request(format!("subscription_service: {e}")))
            })
            .transpose()?;
        let fps = matches!(self.method, MethodIn::Fps | MethodIn::FpsBinding);
        if service.is_some() && !fps {
            return Err(ApiError::bad_request(
                "subscription_service only applies to fps and fps_binding",
            ));
        }
        let method = match self.method {
            MethodIn::Card { card } => MethodRequest::Card(
                CardData::new(
                    &card.number,
                    &card.expiry_month,
                    &card.expiry_year,
                    &card.security_code,
                    card.holder_name,
                )
                .map_err(|e| ApiError::bad_request(format!("method.card.{e}")))?,
            ),
            MethodIn::Widget => MethodRequest::Widget,
            MethodIn::Token {
                token_id,
                initiator,
            } => MethodRequest::Token {
                token_id: TokenId::parse(&token_id)
                    .map_err(|e| ApiError::bad_request(format!("method.token_id: {e}")))?,
                initiator: match initiator.as_deref() {
                    None | Some("merchant") => Initiator::Merchant,
                    Some("client") => Initiator::Client,
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "method.initiator must be merchant or client, not {other:?}"
                        )));
                    }
                },
            },
            MethodIn::Fps => MethodRequest::Fps(service),
            MethodIn::FpsBinding => MethodRequest::FpsBinding(service),
        };
        let confirmation = match self.confirmation.as_deref() {
            None | Some("automatic") => Confirmation::Automatic,
            Some("manual") => Confirmation::Manual,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "confirmation must be automatic or manual, not {other:?}"
                )));
            }
        };
        if let Some(url) = &self.return_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ApiError::bad_request("return_url must be an http(s) URL"));
        }
        Ok(StartPaymentCommand {
            customer: self.customer.parse()?,
            amount: self.amount.money("amount")?,
            method,
            save_token: self.save_token,
            confirmation,
            return_url: self.return_url,
            description: self.description,
            metadata: metadata_text(self.metadata)?,
        })
    }
}

/// `POST /v1/payments/{id}/refund` body.
#[derive(Debug, Deserialize, Default)]
pub struct RefundIn {
    /// Partial amount; full when absent.
    #[serde(default)]
    pub amount: Option<AmountIn>,
}

/// `interval` in.
#[derive(Debug, Deserialize)]
pub struct IntervalIn {
    unit: String,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// `POST /v1/subscriptions` body.
#[derive(Debug, Deserialize)]
pub struct CreateSubscriptionIn {
    customer: CustomerIn,
    token_id: String,
    amount: AmountIn,
    interval: IntervalIn,
    #[serde(default)]
    start_at: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

impl CreateSubscriptionIn {
    /// The use case's command.
    pub fn command(self) -> Result<CreateSubscriptionCommand, ApiError> {
        let unit = IntervalUnit::parse(&self.interval.unit)
            .ok_or_else(|| ApiError::bad_request("interval.unit must be day, week or month"))?;
        Ok(CreateSubscriptionCommand {
            customer: self.customer.parse()?,
            token_id: TokenId::parse(&self.token_id)
                .map_err(|e| ApiError::bad_request(format!("token_id: {e}")))?,
            amount: self.amount.money("amount")?,
            interval: Interval::new(unit, self.interval.count)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            start_at: self
                .start_at
                .as_deref()
                .map(|s| parse_timestamp("start_at", s))
                .transpose()?,
            description: self.description,
            metadata: metadata_text(self.metadata)?,
        })
    }
}

/// `POST /v1/subscriptions/{id}` body.
#[derive(Debug, Deserialize)]
pub struct UpdateSubscriptionIn {
    #[serde(default)]
    token_id: Option<String>,
    #[serde(default)]
    amount: Option<AmountIn>,
    #[serde(default)]
    metadata: Option<Value>,
}

impl UpdateSubscriptionIn {
    /// The use case's command.
    pub fn command(self) -> Result<UpdateSubscriptionCommand, ApiError> {
        Ok(UpdateSubscriptionCommand {
            token_id: self
                .token_id
                .map(|t| {
                    TokenId::parse(&t).map_err(|e| ApiError::bad_request(format!("token_id: {e}")))
                })
                .transpose()?,
            amount: self.amount.map(|a| a.money("amount")).transpose()?,
            metadata: metadata_text(self.metadata)?,
        })
    }
}

/// Renders objects as the merchant API shows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonPresenter;

fn method_json(m: &PaymentMethod) -> Value {
    let service = |s: &Option<SubscriptionService>| {
        s.as_ref()
            .map_or(Value::Null, |s| json!({ "id": s.id(), "name": s.name() }))
    };
    match m {
        PaymentMethod::Token {
            token_id,
            initiator,
        } => json!({
            "type": "token",
            "token_id": token_id.as_str(),
            "initiator": if *initiator == Initiator::Client { "client" } else { "merchant" },
        }),
        PaymentMethod::Fps {
            subscription_service,
        }
        | PaymentMethod::FpsBinding {
            subscription_service,
        } => {
            json!({ "type": m.kind(), "subscription_service": service(subscription_service) })
        }
        other => json!({ "type": other.kind() }),
    }
}

fn next_action_json(a: Option<&NextAction>) -> Value {
    match a {
        None => Value::Null,
        Some(NextAction::Redirect {
            url,
            method,
            params,
        }) => {
            let params: Map<String, Value> = params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({ "type": "redirect", "url": url, "method": method, "params": params })
        }
        Some(NextAction::Qr { content }) => json!({ "type": "qr", "content": content }),
        Some(NextAction::Widget { public_token }) => {
            json!({ "type": "widget", "public_token": public_token })
        }
    }
}

/// A payment, with its token's current status when known.
pub fn payment_json(p: &Payment, token_status: Option<TokenStatus>) -> Value {
    json!({
        "id": p.id().as_str(),
        "object": "payment",
        "status": p.status().as_str(),
        "amount": money_json(p.amount()),
        "refunded_amount": money_json(p.refunded()),
        "customer": { "reference": p.customer().as_str() },
        "method": method_json(p.method()),
        "save_token": p.save_token(),
        "confirmation": if p.confirmation() == Confirmation::Manual { "manual" } else { "automatic" },
        "bank": {
            "session_id": p.session_id().map(domain::BankSessionId::as_str),
            "session_status": p.session_status().map(State::as_str),
            "payment_status": p.acquiring_status().map(State::as_str),
        },
        "next_action": next_action_json(p.next_action()),
        "token": p.token_id().map_or(Value::Null, |t| json!({
            "id": t.as_str(),
            "status": token_status.unwrap_or(TokenStatus::Active).as_str(),
        })),
        "error": p.failure().map_or(Value::Null, |f| json!({ "code": f.code.as_str(), "message": f.message })),
        "description": p.description(),
        "return_url": p.return_url(),
        "metadata": metadata_json(p.metadata()),
        "created_at": timestamp(p.created_at()),
        "updated_at": timestamp(p.updated_at()),
    })
}

/// A token (never the raw bank token).
pub fn token_json(t: &RecurrentToken) -> Value {
    json!({
        "id": t.id.as_str(),
        "object": "token",
        "customer": { "reference": t.customer.as_str() },
        "status": t.status().as_str(),
        "method": { "type": t.method.as_str() },
        "source_payment_id": t.source_payment_id.as_str(),
        "subscription_service_id": t.subscription_service_id,
        "created_at": timestamp(t.created_at),
        "finished_at": opt_timestamp(t.finished_at),
        "last_checked_at": opt_timestamp(t.last_checked_at),
    })
}

/// A subscription.
pub fn subscription_json(s: &Subscription) -> Value {
    let period = s.current_period();
    json!({
        "id": s.id().as_str(),
        "object": "subscription",
        "status": s.status().as_str(),
        "customer": { "reference": s.customer().as_str() },
        "token_id": s.token_id().as_str(),
        "amount": money_json(s.amount()),
        "interval": { "unit": s.interval().unit().as_str(), "count": s.interval().count() },
        "start_at": timestamp(s.anchor()),
        "current_period": period.map_or(Value::Null, |p| json!({ "start": timestamp(p.start), "end": timestamp(p.end) })),
        "next_charge_at": opt_timestamp(s.next_charge_at()),
        "failed_attempts": s.failed_attempts(),
        "description": s.description(),
        "metadata": metadata_json(s.metadata()),
        "created_at": timestamp(s.created_at()),
    })
}

/// A subscription charge attempt.
pub fn charge_json(c: &ChargeAttempt) -> Value {
    json!({
        "period_start": timestamp(c.period_start),
        "period_index": c.period_index,
        "attempt": c.attempt,
        "payment_id": c.payment_id.as_str(),
        "status": c.status.as_str(),
    })
}

/// An event as the feed shows it (and as it is POSTed to the merchant).
pub fn event_json(e: &Event) -> Value {
    json!({
        "id": e.id.as_str(),
        "type": e.kind,
        "created_at": timestamp(e.created_at),
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
    })
}

impl Presenter for JsonPresenter {
    fn payment(&self, payment: &Payment) -> String {
        payment_json(payment, None).to_string()
    }

    fn token(&self, token: &RecurrentToken) -> String {
        token_json(token).to_string()
    }

    fn subscription(&self, subscription: &Subscription) -> String {
        subscription_json(subscription).to_string()
    }
}
