//! Request bodies and query strings in, each parsed into a use-case command:
//! a bad input is a `400` that names the field and changes nothing.

use domain::{
    CardData, Confirmation, EventId, Initiator, Interval, IntervalUnit, PaymentMethod,
    SubscriptionService, TokenId,
};
use ports::Page;
use serde::Deserialize;
use serde_json::Value;
use service::{CreateSubscriptionCommand, StartPaymentCommand, UpdateSubscriptionCommand};
use utoipa::{IntoParams, ToSchema};

use super::shared::{
    Amount, ConfirmationName, Customer, InitiatorName, IntervalUnitName, SubscriptionServiceInfo,
};
use super::shared::{optional_whole_number, whole_number};
use super::time::parse_timestamp;
use crate::error::ApiError;

/// Card data in; never logged (`Debug` masks it).
#[derive(Deserialize, ToSchema)]
#[schema(as = Card)]
pub struct CardIn {
    /// The card number, 12–19 digits (spaces between them allowed).
    #[schema(pattern = r"^\s*([0-9]\s*){12,19}$")]
    number: String,
    /// `MM`, 01–12.
    #[schema(pattern = r"^\s*(0?[1-9]|1[0-2])\s*$")]
    expiry_month: String,
    /// `YY` or `YYYY`.
    #[schema(pattern = r"^\s*[0-9]{2,4}\s*$")]
    expiry_year: String,
    /// CVV/CVC, 3–4 digits.
    #[schema(pattern = r"^\s*[0-9]{3,4}\s*$")]
    security_code: String,
    /// The name on the card.
    holder_name: Option<String>,
}

impl std::fmt::Debug for CardIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardIn(***)")
    }
}

/// `method` in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = PaymentMethodRequest)]
pub enum MethodIn {
    /// Card data.
    Card {
        /// The card.
        card: CardIn,
    },
    /// The bank's widget.
    Widget {
        /// Show the bank's "I agree to recurring payments" box; a token is
        /// saved only if the customer ticks it (not with `save_token`).
        #[serde(default)]
        recurrent_checkbox: bool,
    },
    /// A saved token.
    Token {
        /// `tok_…`.
        #[schema(max_length = 64, pattern = r"^tok_[A-Za-z0-9_-]+$")]
        token_id: String,
        /// `merchant` (MIT, the default) or `client` (CIT).
        #[schema(value_type = Option<InitiatorName>)]
        initiator: Option<String>,
    },
    /// SBP QR payment.
    Fps,
    /// SBP binding.
    FpsBinding,
}

/// `POST /v1/payments` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CreatePayment)]
pub struct CreatePaymentIn {
    /// Who pays.
    customer: Customer,
    /// How much.
    amount: Amount,
    /// How.
    method: MethodIn,
    /// Ask the bank for a recurrent token (the merchant holds the consent).
    #[serde(default)]
    save_token: bool,
    /// `automatic` (default) or `manual`.
    #[schema(value_type = Option<ConfirmationName>)]
    confirmation: Option<String>,
    /// Where the customer returns after 3-D Secure (`http` or `https`, at
    /// most 2,048 characters).
    #[schema(format = "uri", max_length = 2048, pattern = r"^https?://")]
    return_url: Option<String>,
    /// For `fps` and `fps_binding` only.
    subscription_service: Option<SubscriptionServiceInfo>,
    /// Free text, at most 1,000 characters.
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// The merchant's own key-value data, returned as given.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// `metadata`: an object of at most 50 keys of at most 40 characters, each
/// value a string of at most 500 characters (`400 invalid_metadata`).
fn metadata_text(m: Option<Value>) -> Result<Option<String>, ApiError> {
    let invalid = |message: &str| ApiError::invalid_field("invalid_metadata", message);
    match m {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            if map.len() > 50 {
                return Err(invalid("metadata has at most 50 keys"));
            }
            for (key, value) in &map {
                if key.chars().count() > 40 {
                    return Err(invalid("metadata keys have at most 40 characters"));
                }
                match value {
                    Value::String(text) if text.chars().count() <= 500 => {}
                    Value::String(_) => {
                        return Err(invalid("metadata values have at most 500 characters"));
                    }
                    _ => return Err(invalid("metadata values are strings")),
                }
            }
            Ok(Some(Value::Object(map).to_string()))
        }
        Some(_) => Err(invalid("metadata must be an object")),
    }
}

/// `description`: at most 1,000 characters (`400 description_too_long`).
fn description(text: Option<String>) -> Result<Option<String>, ApiError> {
    match text {
        Some(t) if t.chars().count() > 1_000 => Err(ApiError::invalid_field(
            "description_too_long",
            "description has at most 1000 characters",
        )),
        other => Ok(other),
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
        let (method, card) = match self.method {
            MethodIn::Card { card } => (
                PaymentMethod::Card,
                Some(
                    CardData::new(
                        &card.number,
                        &card.expiry_month,
                        &card.expiry_year,
                        &card.security_code,
                        card.holder_name,
                    )
                    .map_err(|e| ApiError::bad_request(format!("method.card.{e}")))?,
                ),
            ),
            MethodIn::Widget { recurrent_checkbox } => {
                if recurrent_checkbox && self.save_token {
                    return Err(ApiError::bad_request(
                        "save_token means the consent is given: it excludes method.recurrent_checkbox",
                    ));
                }
                (PaymentMethod::Widget { recurrent_checkbox }, None)
            }
            MethodIn::Token {
                token_id,
                initiator,
            } => (
                PaymentMethod::Token {
                    token_id: TokenId::parse(&token_id)
                        .map_err(|e| ApiError::bad_request(format!("method.token_id: {e}")))?,
                    initiator: match initiator.as_deref() {
                        None | Some("merchant") => Initiator::Merchant,
                        Some("client") => Initiator::Client,
                        Some(_) => {
                            return Err(ApiError::bad_request(
                                "method.initiator must be merchant or client",
                            ));
                        }
                    },
                },
                None,
            ),
            MethodIn::Fps => (
                PaymentMethod::Fps {
                    subscription_service: service,
                },
                None,
            ),
            MethodIn::FpsBinding => (
                PaymentMethod::FpsBinding {
                    subscription_service: service,
                },
                None,
            ),
        };
        let confirmation = match self.confirmation.as_deref() {
            None | Some("automatic") => Confirmation::Automatic,
            Some("manual") => Confirmation::Manual,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "confirmation must be automatic or manual",
                ));
            }
        };
        if let Some(url) = &self.return_url
            && (url.chars().count() > 2_048
                || !(url.starts_with("https://") || url.starts_with("http://")))
        {
            return Err(ApiError::invalid_field(
                "invalid_return_url",
                "return_url must be an http(s) URL of at most 2048 characters",
            ));
        }
        Ok(StartPaymentCommand {
            customer: self.customer.parse()?,
            amount: self.amount.money("amount")?,
            method,
            card,
            save_token: self.save_token,
            confirmation,
            return_url: self.return_url,
            description: description(self.description)?,
            metadata: metadata_text(self.metadata)?,
            idempotency: None,
        })
    }
}

/// `POST /v1/payments/{id}/refund` body.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[schema(as = Refund)]
pub struct RefundIn {
    /// Partial amount; full when absent.
    pub amount: Option<Amount>,
}

/// `interval` in.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = IntervalRequest)]
pub struct IntervalIn {
    /// `day`, `week` or `month`.
    #[schema(value_type = IntervalUnitName)]
    unit: String,
    /// How many units a period lasts (default 1).
    #[serde(default = "one", deserialize_with = "whole_number")]
    #[schema(value_type = u32, minimum = 1)]
    count: i64,
}

fn one() -> i64 {
    1
}

/// `POST /v1/subscriptions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CreateSubscription)]
pub struct CreateSubscriptionIn {
    /// Who pays.
    customer: Customer,
    /// The `tok_…` charged each period.
    #[schema(max_length = 64, pattern = r"^tok_[A-Za-z0-9_-]+$")]
    token_id: String,
    /// How much per period.
    amount: Amount,
    /// How long a period is.
    interval: IntervalIn,
    /// The first period's start (an anchor when in the past); now by default.
    #[schema(format = DateTime)]
    start_at: Option<String>,
    /// Free text, at most 1,000 characters.
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// The merchant's own key-value data.
    #[schema(value_type = Option<Object>)]
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
            interval: u32::try_from(self.interval.count)
                .ok()
                .and_then(|count| Interval::new(unit, count).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("interval.count must be 1 to a year's worth of units")
                })?,
            start_at: self
                .start_at
                .as_deref()
                .map(|s| parse_timestamp("start_at", s))
                .transpose()?,
            description: description(self.description)?,
            metadata: metadata_text(self.metadata)?,
        })
    }
}

/// `POST /v1/subscriptions/{id}` body: only the given fields change.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = UpdateSubscription)]
pub struct UpdateSubscriptionIn {
    /// A new token (how a past-due subscription whose token died is paid again).
    #[schema(max_length = 64, pattern = r"^tok_[A-Za-z0-9_-]+$")]
    token_id: Option<String>,
    /// A new amount for future charges.
    amount: Option<Amount>,
    /// New metadata.
    #[schema(value_type = Option<Object>)]
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

/// `POST /v1/test/clock/advance` body: exactly one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = Advance)]
pub struct AdvanceIn {
    /// Move forward by this many seconds (at most a hundred years).
    #[schema(minimum = 0, maximum = 3_162_240_000_i64)]
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub seconds: Option<i64>,
    /// Move forward to this time.
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// `true`: as if the service were down meanwhile; jobs run only at the
    /// end (periods that ended unpaid are skipped). By default every due
    /// moment is visited in order, as if the service had run the whole time.
    #[serde(default)]
    pub service_down: bool,
}

/// `?customer_reference=&limit=&starting_after=` of the payment and token lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Whose objects to list (as `customer.reference` was given).
    #[param(
        required = true,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub customer_reference: Option<String>,
    /// Page size, 1–100 (default 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The id of the last object of the previous page.
    pub starting_after: Option<String>,
}

impl ListQuery {
    /// The customer, required.
    pub fn customer(&self) -> Result<domain::CustomerReference, ApiError> {
        let raw = self
            .customer_reference
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("customer_reference is required"))?;
        domain::CustomerReference::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// The page asked for; `parse` reads the cursor as an id of the listed kind.
    pub fn page<Id, E>(&self, parse: impl Fn(&str) -> Result<Id, E>) -> Result<Page<Id>, ApiError> {
        let limit = page_size(self.limit, 100)?;
        let after = cursor("starting_after", self.starting_after.as_deref(), parse)?;
        Ok(Page { after, limit })
    }
}

/// A page size of 1 to `max`, 100 when not given.
fn page_size(limit: Option<u32>, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!("limit must be 1–{max}")))
    }
}

/// The cursor parameter `name`, read by `parse` as an id of the listed kind
/// (`400 invalid_cursor` otherwise).
fn cursor<Id, E>(
    name: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<Id, E>,
) -> Result<Option<Id>, ApiError> {
    raw.map(|raw| {
        parse(raw).map_err(|_| {
            ApiError::invalid_field(
                "invalid_cursor",
                format!("{name} is not an id of this list"),
            )
        })
    })
    .transpose()
}

/// `?refresh=` of `GET /v1/tokens/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// `true` asks the bank (`token/info`) first.
    #[param(value_type = Option<bool>)]
    pub refresh: Option<String>,
}

impl TokenQuery {
    /// Whether to ask the bank first.
    pub fn refresh(&self) -> Result<bool, ApiError> {
        match self.refresh.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::bad_request("refresh must be true or false")),
        }
    }
}

/// `?after=&limit=` of the event feed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The last event id already seen.
    #[param(max_length = 64, pattern = r"^evt_[A-Za-z0-9_-]+$")]
    pub after: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl EventsQuery {
    /// The cursor and the page size.
    pub fn page(&self) -> Result<(Option<EventId>, u32), ApiError> {
        let limit = page_size(self.limit, 1_000)?;
        let after = cursor("after", self.after.as_deref(), EventId::parse)?;
        Ok((after, limit))
    }
}

/// What `POST /v1/payments/{id}/{action}` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentAction {
    /// Confirm a payment in `requires_confirmation`.
    Confirm,
    /// Cancel a payment in `requires_confirmation`.
    Cancel,
}

/// What `POST /v1/subscriptions/{id}/{action}` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionAction {
    /// Stop charging until resumed (`409` unless active or past due).
    Pause,
    /// Charge again (`409` unless paused).
    Resume,
    /// End for good.
    Cancel,
}
