//! How aggregates are stored: queried fields in columns, the rest as one JSON
//! document per row. The document never holds the raw recurrent token (that
//! is encrypted in its own columns) and no card data exists to store.

use domain::{
    AcquiringStatus, BankDetails, BankSessionId, CardSummary, Confirmation, Currency,
    CustomerReference, ErrorCode, Failure, Initiator, Interval, IntervalUnit, Money, NewPayment,
    NewSubscription, NextAction, PaymentId, PaymentMethod, PaymentParts, PaymentStatus,
    SessionStatus, State, SubscriptionId, SubscriptionParts, SubscriptionService,
    SubscriptionStatus, TokenId, TokenMethod, TokenStatus,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A stored value that no longer parses (the schema or the code changed under it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub String);

fn corrupt(what: &str, e: impl std::fmt::Display) -> Corrupt {
    Corrupt(format!("stored {what} is invalid: {e}"))
}

/// Microseconds since the Unix epoch: the stores' time column type.
pub fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The inverse of [`micros`].
pub fn from_micros(v: i64) -> Result<OffsetDateTime, Corrupt> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000)
        .map_err(|e| corrupt("timestamp", e))
}

fn state<S: State>(name: &str) -> Result<S, Corrupt> {
    S::parse(name).ok_or_else(|| corrupt(S::MACHINE, name))
}

#[derive(Serialize, Deserialize)]
struct MoneyDoc {
    minor: i64,
    currency: String,
}

impl MoneyDoc {
    fn of(m: Money) -> Self {
        Self {
            minor: m.minor(),
            currency: m.currency().code().to_owned(),
        }
    }
    fn money(&self) -> Result<Money, Corrupt> {
        let currency = Currency::parse(&self.currency).map_err(|e| corrupt("currency", e))?;
        Money::new(self.minor, currency).map_err(|e| corrupt("amount", e))
    }
}

#[derive(Serialize, Deserialize)]
struct ServiceDoc {
    id: String,
    name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MethodDoc {
    Card,
    Widget {
        #[serde(default)]
        recurrent_checkbox: bool,
    },
    Token {
        token_id: String,
        client: bool,
    },
    Fps {
        service: Option<ServiceDoc>,
    },
    FpsBinding {
        service: Option<ServiceDoc>,
    },
}

/// The stored form of a [`NextAction`]: `{"type": "redirect", "url": …}` and so on.
#[derive(Serialize, Deserialize)]
#[serde(remote = "NextAction", tag = "type", rename_all = "snake_case")]
enum ActionDoc {
    Redirect {
        url: String,
        method: String,
        params: Vec<(String, String)>,
    },
    Qr {
        content: String,
    },
    Widget {
        public_token: String,
    },
}

/// A payment's next action, if any, in its stored form.
#[derive(Serialize, Deserialize)]
struct StoredAction(#[serde(with = "ActionDoc")] NextAction);

#[derive(Serialize, Deserialize)]
struct FailureDoc {
    code: String,
    message: String,
}

/// The JSON document of a payment (its flags mirror the aggregate's).
#[derive(Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)]
struct PaymentDoc {
    id: String,
    customer: String,
    amount: MoneyDoc,
    method: MethodDoc,
    save_token: bool,
    manual: bool,
    return_url: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
    status: String,
    stage: u8,
    session_id: Option<String>,
    session_status: Option<String>,
    acquiring_status: Option<String>,
    next_action: Option<StoredAction>,
    token_id: Option<String>,
    failure: Option<FailureDoc>,
    refunded: MoneyDoc,
    cancel_requested: bool,
    outcome_unknown: bool,
    #[serde(default)]
    bank: BankDoc,
    created_at: i64,
    updated_at: i64,
}

/// What the bank reported beside the state (documents written before it
/// existed read as empty).
#[derive(Serialize, Deserialize, Default)]
struct BankDoc {
    #[serde(default)]
    payment_id: Option<String>,
    #[serde(default)]
    card: Option<CardDoc>,
    #[serde(default)]
    fee: Option<MoneyDoc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CardDoc {
    brand: String,
    last4: String,
}

impl CardDoc {
    fn of(c: &CardSummary) -> Self {
        Self {
            brand: c.brand.clone(),
            last4: c.last4.clone(),
        }
    }

    fn summary(self) -> CardSummary {
        CardSummary {
            brand: self.brand,
            last4: self.last4,
        }
    }
}

fn service_doc(s: Option<&SubscriptionService>) -> Option<ServiceDoc> {
    s.map(|s| ServiceDoc {
        id: s.id().to_owned(),
        name: s.name().to_owned(),
    })
}

fn service(s: Option<ServiceDoc>) -> Result<Option<SubscriptionService>, Corrupt> {
    s.map(|s| {
        SubscriptionService::new(&s.id, &s.name).map_err(|e| corrupt("subscription service", e))
    })
    .transpose()
}

fn id<T>(parse: fn(&str) -> Result<T, domain::InvalidId>, raw: &str) -> Result<T, Corrupt> {
    parse(raw).map_err(|e| corrupt("id", e))
}

/// A payment as its JSON document.
pub fn payment_json(p: &domain::Payment) -> String {
    let parts = p.to_parts();
    let new = parts.new;
    let doc = PaymentDoc {
        id: new.id.to_string(),
        customer: new.customer.to_string(),
        amount: MoneyDoc::of(new.amount),
        method: match &new.method {
            PaymentMethod::Card => MethodDoc::Card,
            PaymentMethod::Widget { recurrent_checkbox } => MethodDoc::Widget {
                recurrent_checkbox: *recurrent_checkbox,
            },
            PaymentMethod::Token {
                token_id,
                initiator,
            } => MethodDoc::Token {
                token_id: token_id.to_string(),
                client: *initiator == Initiator::Client,
            },
            PaymentMethod::Fps {
                subscription_service,
            } => MethodDoc::Fps {
                service: service_doc(subscription_service.as_ref()),
            },
            PaymentMethod::FpsBinding {
                subscription_service,
            } => MethodDoc::FpsBinding {
                service: service_doc(subscription_service.as_ref()),
            },
        },
        save_token: new.save_token,
        manual: new.confirmation == Confirmation::Manual,
        return_url: new.return_url,
        description: new.description,
        metadata: new.metadata,
        status: parts.status.as_str().to_owned(),
        stage: parts.stage,
        session_id: parts.session_id.map(|s| s.to_string()),
        session_status: parts.session_status.map(|s| s.as_str().to_owned()),
        acquiring_status: parts.acquiring_status.map(|s| s.as_str().to_owned()),
        next_action: parts.next_action.map(StoredAction),
        token_id: parts.token_id.map(|t| t.to_string()),
        failure: parts.failure.map(|f| FailureDoc {
            code: f.code.as_str().to_owned(),
            message: f.message,
        }),
        refunded: MoneyDoc::of(parts.refunded),
        cancel_requested: parts.cancel_requested,
        outcome_unknown: parts.outcome_unknown,
        bank: BankDoc {
            payment_id: parts.bank.payment_id.clone(),
            card: parts.bank.card.as_ref().map(CardDoc::of),
            fee: parts.bank.fee.map(MoneyDoc::of),
        },
        created_at: micros(parts.created_at),
        updated_at: micros(parts.updated_at),
    };
    serde_json::to_string(&doc).expect("a payment document always serializes")
}

/// A payment from its JSON document.
pub fn payment_from_json(text: &str) -> Result<domain::Payment, Corrupt> {
    let d: PaymentDoc = serde_json::from_str(text).map_err(|e| corrupt("payment", e))?;
    let method = match d.method {
        MethodDoc::Card => PaymentMethod::Card,
        MethodDoc::Widget { recurrent_checkbox } => PaymentMethod::Widget { recurrent_checkbox },
        MethodDoc::Token { token_id, client } => PaymentMethod::Token {
            token_id: id(TokenId::parse, &token_id)?,
            initiator: if client {
                Initiator::Client
            } else {
                Initiator::Merchant
            },
        },
        MethodDoc::Fps { service: s } => PaymentMethod::Fps {
            subscription_service: service(s)?,
        },
        MethodDoc::FpsBinding { service: s } => PaymentMethod::FpsBinding {
            subscription_service: service(s)?,
        },
    };
    Ok(domain::Payment::restore(PaymentParts {
        new: NewPayment {
            id: id(PaymentId::parse, &d.id)?,
            customer: id(CustomerReference::parse, &d.customer)?,
            amount: d.amount.money()?,
            method,
            save_token: d.save_token,
            confirmation: if d.manual {
                Confirmation::Manual
            } else {
                Confirmation::Automatic
            },
            return_url: d.return_url,
            description: d.description,
            metadata: d.metadata,
        },
        status: state::<PaymentStatus>(&d.status)?,
        stage: d.stage,
        session_id: d
            .session_id
            .as_deref()
            .map(|s| id(BankSessionId::parse, s))
            .transpose()?,
        session_status: d
            .session_status
            .as_deref()
            .map(state::<SessionStatus>)
            .transpose()?,
        acquiring_status: d
            .acquiring_status
            .as_deref()
            .map(state::<AcquiringStatus>)
            .transpose()?,
        next_action: d.next_action.map(|StoredAction(a)| a),
        token_id: d
            .token_id
            .as_deref()
            .map(|t| id(TokenId::parse, t))
            .transpose()?,
        failure: d
            .failure
            .map(|f| {
                Ok::<_, Corrupt>(Failure {
                    code: ErrorCode::parse(&f.code).map_err(|e| corrupt("error code", e))?,
                    message: f.message,
                })
            })
            .transpose()?,
        refunded: d.refunded.money()?,
        cancel_requested: d.cancel_requested,
        outcome_unknown: d.outcome_unknown,
        bank: BankDetails {
            payment_id: d.bank.payment_id,
            card: d.bank.card.map(CardDoc::summary),
            fee: d.bank.fee.map(|m| m.money()).transpose()?,
        },
        created_at: from_micros(d.created_at)?,
        updated_at: from_micros(d.updated_at)?,
    }))
}

/// The JSON document of a token (everything but the secret).
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenDoc {
    /// `card` or `fps`.
    pub method: String,
    /// The source payment.
    pub source_payment_id: String,
    /// SBP subscription service.
    pub subscription_service_id: Option<String>,
    /// Bank expiry.
    pub finished_at: Option<i64>,
    /// Last `token/info`.
    pub last_checked_at: Option<i64>,
    /// The card behind it (brand and last digits only).
    #[serde(default)]
    card: Option<CardDoc>,
}

/// A token's document.
pub fn token_json(t: &domain::RecurrentToken) -> String {
    let doc = TokenDoc {
        method: t.method.as_str().to_owned(),
        source_payment_id: t.source_payment_id.to_string(),
        subscription_service_id: t.subscription_service_id.clone(),
        finished_at: t.finished_at.map(micros),
        last_checked_at: t.last_checked_at.map(micros),
        card: t.card.as_ref().map(CardDoc::of),
    };
    serde_json::to_string(&doc).expect("a token document always serializes")
}

/// The stored columns of a token, decrypted.
#[derive(Debug)]
pub struct TokenColumns<'a> {
    /// `tok_…`.
    pub id: &'a str,
    /// Customer.
    pub customer: &'a str,
    /// Status.
    pub status: &'a str,
    /// Decrypted raw token.
    pub secret: &'a str,
    /// Created.
    pub created_at: i64,
    /// Document.
    pub data: &'a str,
}

/// A token from its columns.
pub fn token_from(c: &TokenColumns<'_>) -> Result<domain::RecurrentToken, Corrupt> {
    let d: TokenDoc = serde_json::from_str(c.data).map_err(|e| corrupt("token", e))?;
    let issued = domain::IssuedToken {
        secret: domain::RecurrentTokenSecret::parse(c.secret)
            .map_err(|e| corrupt("token secret", e))?,
        created_at: None,
        finished_at: d.finished_at.map(from_micros).transpose()?,
        is_active: true,
    };
    let method = if d.method == "fps" {
        TokenMethod::Fps
    } else {
        TokenMethod::Card
    };
    let mut token = domain::RecurrentToken::issued(
        id(TokenId::parse, c.id)?,
        id(CustomerReference::parse, c.customer)?,
        &issued,
        method,
        id(PaymentId::parse, &d.source_payment_id)?,
        from_micros(c.created_at)?,
    )
    .with_status(state::<TokenStatus>(c.status)?);
    token.subscription_service_id = d.subscription_service_id;
    token.last_checked_at = d.last_checked_at.map(from_micros).transpose()?;
    token.card = d.card.map(CardDoc::summary);
    Ok(token)
}

#[derive(Serialize, Deserialize)]
struct SubscriptionDoc {
    id: String,
    customer: String,
    token_id: String,
    amount: MoneyDoc,
    unit: String,
    count: u32,
    anchor: i64,
    description: Option<String>,
    metadata: Option<String>,
    status: String,
    period_index: u32,
    attempts_in_period: u32,
    in_flight: Option<u32>,
    failed_attempts: u32,
    next_charge_at: Option<i64>,
    created_at: i64,
}

/// A subscription's document.
pub fn subscription_json(s: &domain::Subscription) -> String {
    let p = s.to_parts();
    let doc = SubscriptionDoc {
        id: p.new.id.to_string(),
        customer: p.new.customer.to_string(),
        token_id: p.new.token_id.to_string(),
        amount: MoneyDoc::of(p.new.amount),
        unit: p.new.interval.unit().as_str().to_owned(),
        count: p.new.interval.count(),
        anchor: micros(p.new.start_at),
        description: p.new.description,
        metadata: p.new.metadata,
        status: p.status.as_str().to_owned(),
        period_index: p.period_index,
        attempts_in_period: p.attempts_in_period,
        in_flight: p.in_flight,
        failed_attempts: p.failed_attempts,
        next_charge_at: p.next_charge_at.map(micros),
        created_at: micros(p.created_at),
    };
    serde_json::to_string(&doc).expect("a subscription document always serializes")
}

/// A subscription from its document.
pub fn subscription_from_json(text: &str) -> Result<domain::Subscription, Corrupt> {
    let d: SubscriptionDoc = serde_json::from_str(text).map_err(|e| corrupt("subscription", e))?;
    let unit = IntervalUnit::parse(&d.unit).ok_or_else(|| corrupt("interval unit", &d.unit))?;
    Ok(domain::Subscription::restore(SubscriptionParts {
        new: NewSubscription {
            id: id(SubscriptionId::parse, &d.id)?,
            customer: id(CustomerReference::parse, &d.customer)?,
            token_id: id(TokenId::parse, &d.token_id)?,
            amount: d.amount.money()?,
            interval: Interval::new(unit, d.count).map_err(|e| corrupt("interval", e))?,
            start_at: from_micros(d.anchor)?,
            description: d.description,
            metadata: d.metadata,
        },
        status: state::<SubscriptionStatus>(&d.status)?,
        period_index: d.period_index,
        attempts_in_period: d.attempts_in_period,
        in_flight: d.in_flight,
        failed_attempts: d.failed_attempts,
        next_charge_at: d.next_charge_at.map(from_micros).transpose()?,
        created_at: from_micros(d.created_at)?,
    }))
}

#[cfg(test)]
mod tests {
    use domain::{
        Confirmation, Currency, CustomerReference, Money, NewPayment, Payment, PaymentId,
        PaymentMethod,
    };

    use super::{payment_from_json, payment_json};

    #[test]
    fn a_stored_payment_with_an_unknown_status_is_an_error_not_pending() {
        let payment = Payment::new(
            NewPayment {
                id: PaymentId::parse("pay_1").unwrap(),
                customer: CustomerReference::parse("c").unwrap(),
                amount: Money::new(100, Currency::RUB).unwrap(),
                method: PaymentMethod::Card,
                save_token: false,
                confirmation: Confirmation::Automatic,
                return_url: None,
                description: None,
                metadata: None,
            },
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let stored = payment_json(&payment);
        assert_eq!(payment_from_json(&stored).unwrap(), payment);
        let renamed = stored.replace(r#""status":"pending""#, r#""status":"teleported""#);
        assert_ne!(renamed, stored, "the fixture names its status");
        let error = payment_from_json(&renamed).unwrap_err();
        assert!(error.0.contains("teleported"), "{}", error.0);
    }
}
