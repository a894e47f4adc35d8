//! Mapping between the wire types and the domain: bank objects become
//! [`BankFact`]s and snapshots; use-case requests become wire requests.

use domain::{
    AcquiringStatus, BankCode, BankDetails, BankFact, BankSessionId, CardSummary, Currency,
    ErrorCode, Failure, Initiator, IssuedToken, Money, NextAction, PaymentId, RecurrentTokenSecret,
    SessionStatus, State, SubscriptionService,
};
use ports::{
    CreateSession, DecodedWebhook, Instrument, SessionSnapshot, StartPayment, TokenInfo,
    WebhookDecoder, WebhookError,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dto::{
    AcquiringPayment, Amount, ApiError, BankCard, CardDetails, Customer, CustomerInteraction,
    FpsDetails, PaymentDetails, PaymentOptions, RecurrentDetails, RecurrentTokenInfo, Session,
    SubscriptionServiceInfo, Webhook,
};
use crate::requests::{CreateSessionRequest, PaymentRequest};
use crate::sign::Verifier;

/// The `metadata` key that carries our payment id through the bank.
pub const PAYMENT_ID_KEY: &str = "recur_payment_id";

/// Why a bank object could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError(pub String);

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MapError {}

/// Parses the bank's timestamps (`2018-05-27T02:03:00.000000Z`, `2020-07-14T13:17:11+03:00`).
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// A bank amount as money (currency compared case-insensitively).
pub fn money(amount: &Amount) -> Result<Money, MapError> {
    let currency = Currency::parse(&amount.currency).map_err(|e| MapError(e.to_string()))?;
    Money::new(amount.amount, currency).map_err(|e| MapError(e.to_string()))
}

/// Money as a bank amount; the currency in lower case, as the seeds send it.
pub fn amount(money: Money) -> Amount {
    Amount {
        amount: money.minor(),
        currency: money.currency().code().to_ascii_lowercase(),
    }
}

/// A bank error object as a failure, the code kept verbatim.
pub fn failure(error: Option<&ApiError>, fallback: BankCode) -> Failure {
    let code = error
        .and_then(|e| ErrorCode::parse(&e.code).ok())
        .unwrap_or_else(|| fallback.code());
    let message = error
        .and_then(|e| e.description.clone())
        .unwrap_or_else(|| code.as_str().to_owned());
    Failure { code, message }
}

/// A token the bank issued.
pub fn issued_token(info: &RecurrentTokenInfo) -> Option<IssuedToken> {
    Some(IssuedToken {
        secret: RecurrentTokenSecret::parse(&info.token).ok()?,
        created_at: info.created_at.as_deref().and_then(parse_time),
        finished_at: info.finished_at.as_deref().and_then(parse_time),
        is_active: info.is_active,
    })
}

/// `token/info` or `recurrent/disable` as the port's answer.
pub fn token_info(info: &RecurrentTokenInfo) -> TokenInfo {
    TokenInfo {
        is_active: info.is_active,
        finished_at: info.finished_at.as_deref().and_then(parse_time),
    }
}

fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the customer must do, from `customer_interaction`.
pub fn next_action(interaction: &CustomerInteraction) -> Option<NextAction> {
    if let Some(redirect) = &interaction.redirect {
        let params = redirect
            .params
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), param_text(v)))
            .collect();
        return Some(NextAction::Redirect {
            url: redirect.url.clone(),
            method: redirect.method.to_ascii_uppercase(),
            params,
        });
    }
    let qr = interaction.inform.as_ref()?.qr.as_ref()?;
    Some(NextAction::Qr {
        content: qr.content.clone(),
    })
}

/// The refunded total: the refunds the bank finished (`accepted`; the
/// official SDK's `AcquiringPaymentRefundStatusEnum`, `succeeded` tolerated).
/// Refunds in progress, declined or in error move no money. No `refunds` list
/// means the total is unknown, never "all of it".
fn refunded_total(payment: &AcquiringPayment) -> Option<Money> {
    let paid = payment
        .amount_details
        .as_ref()
        .and_then(|a| money(a).ok())?;
    let refunds = payment.refunds.as_ref().filter(|r| !r.is_empty())?;
    let mut total = Money::zero(paid.currency());
    for refund in refunds {
        let done = matches!(refund.status.as_deref(), Some("accepted" | "succeeded"));
        if let (true, Some(a)) = (done, &refund.amount_details) {
            total = total.checked_add(money(a).ok()?).ok()?;
        }
    }
    Some(total)
}

/// What a session (from a webhook of type `kind`, or from an API answer when
/// `kind` is `None`) means for the payment.
pub fn fact_of(session: &Session, kind: Option<&str>) -> Option<BankFact> {
    let payment = session.payment();
    if kind == Some("payment_refunded") {
        return payment
            .and_then(refunded_total)
            .map(|total| BankFact::Refunded { total });
    }
    let succeeded = || BankFact::Succeeded {
        token: payment
            .and_then(|p| p.recurrent.as_ref())
            .and_then(issued_token),
    };
    match (session.status.as_str(), payment.map(|p| p.status.as_str())) {
        (_, Some("succeeded")) | ("accepted", _) => return Some(succeeded()),
        (_, Some("failed")) | ("cancelled", _) => {
            let error = payment
                .and_then(|p| p.error.as_ref())
                .or(session.error.as_ref());
            return Some(BankFact::Failed(failure(error, BankCode::SessionCancelled)));
        }
        _ => {}
    }
    if kind == Some("ready_to_capture") || session.next_action.as_deref() == Some("capture") {
        return Some(BankFact::ReadyToCapture);
    }
    if let Some(action) = payment
        .and_then(|p| p.customer_interaction.as_ref())
        .and_then(next_action)
    {
        return Some(BankFact::ActionRequired(action));
    }
    if kind == Some("ready_to_confirm") || session.next_action.as_deref() == Some("confirm") {
        return Some(BankFact::ReadyToConfirm);
    }
    None
}

/// Our payment id, echoed in the payment's or the session's `metadata`.
pub fn payment_id_of(session: &Session) -> Option<PaymentId> {
    let from = |m: Option<&Value>| {
        m?.get(PAYMENT_ID_KEY)?
            .as_str()
            .and_then(|s| PaymentId::parse(s).ok())
    };
    from(session.payment().and_then(|p| p.metadata.as_ref()))
        .or_else(|| from(session.metadata.as_ref()))
}

/// What the bank reports about a session's payment beside its state: the
/// acquiring payment's id, the card's brand and last digits, the merchant fee
/// (`amounts.fee.merchant_fee`, seed 003).
pub fn details_of(session: &Session) -> BankDetails {
    let Some(payment) = session.payment() else {
        return BankDetails::default();
    };
    let card = match &payment.payment_details {
        Some(PaymentDetails::Card { card }) => card
            .brand
            .clone()
            .zip(card.last4.clone())
            .map(|(brand, last4)| CardSummary { brand, last4 }),
        _ => None,
    };
    let fee = payment
        .amounts
        .as_ref()
        .and_then(|a| a.fee.as_ref())
        .and_then(|fee| serde_json::from_value::<Amount>(fee.get("merchant_fee")?.clone()).ok())
        .and_then(|a| money(&a).ok());
    BankDetails {
        payment_id: Some(payment.id.clone()).filter(|id| !id.is_empty()),
        card,
        fee,
    }
}

/// The session a child session was started from (`metadata.parent_session_id`
/// of its payment or of the session, seed 003).
pub fn parent_session_of(session: &Session) -> Option<BankSessionId> {
    let from = |m: Option<&Value>| {
        m?.get("parent_session_id")?
            .as_str()
            .and_then(|s| BankSessionId::parse(s).ok())
    };
    from(session.payment().and_then(|p| p.metadata.as_ref()))
        .or_else(|| from(session.metadata.as_ref()))
}

/// A session as the port's snapshot.
pub fn snapshot(session: &Session, kind: Option<&str>) -> Result<SessionSnapshot, MapError> {
    Ok(SessionSnapshot {
        session_id: BankSessionId::parse(&session.id).map_err(|e| MapError(e.to_string()))?,
        status: SessionStatus::parse(&session.status)
            .ok_or_else(|| MapError(format!("unknown session status {:?}", session.status)))?,
        payment_status: session
            .payment()
            .and_then(|p| AcquiringStatus::parse(&p.status)),
        payment_id: payment_id_of(session),
        fact: fact_of(session, kind),
        details: details_of(session),
    })
}

fn metadata(payment_id: &PaymentId) -> Value {
    json!({ PAYMENT_ID_KEY: payment_id.as_str() })
}

fn service_info(service: Option<&SubscriptionService>) -> Option<FpsDetails> {
    service.map(|s| FpsDetails {
        subscription_service_info: Some(SubscriptionServiceInfo {
            id: s.id().to_owned(),
            name: s.name().to_owned(),
        }),
    })
}

/// The `session/create` body.
pub fn create_session_request(request: &CreateSession) -> CreateSessionRequest {
    CreateSessionRequest {
        amount_details: Some(amount(request.amount)),
        customer: Some(Customer {
            reference: request.customer.as_str().to_owned(),
            contacts: None,
        }),
        payment_options: request.recurrent.then_some(PaymentOptions {
            recurrent: Some(true),
            return_url: None,
        }),
        metadata: Some(metadata(&request.payment_id)),
    }
}

/// `YY`, as the bank's card model takes the year (`2030` → `30`).
fn two_digit_year(year: &str) -> String {
    year.get(year.len().saturating_sub(2)..)
        .unwrap_or(year)
        .to_owned()
}

/// The `session/start/payment` body.
pub fn payment_request(request: &StartPayment) -> PaymentRequest {
    let payment_details = match &request.instrument {
        Instrument::Card(card) => PaymentDetails::Card {
            card: CardDetails {
                kind: Some("bank_card".into()),
                bank_card: Some(BankCard {
                    number: card.number().to_owned(),
                    expiration_month: card.expiry_month().to_owned(),
                    expiration_year: two_digit_year(card.expiry_year()),
                    security_code: Some(card.security_code().to_owned()),
                    cardholder_name: card.holder_name().map(str::to_owned),
                }),
                brand: None,
                last4: None,
            },
        },
        Instrument::Token { secret, initiator } => PaymentDetails::Recurrent {
            recurrent: RecurrentDetails {
                token: secret.expose().to_owned(),
                initiator: (*initiator == Initiator::Client).then(|| "client".to_owned()),
            },
        },
        Instrument::Fps(service) => PaymentDetails::FasterPaymentSystem {
            faster_payment_system: service_info(service.as_ref()),
        },
        Instrument::FpsBinding(service) => PaymentDetails::FasterPaymentSystemBinding {
            faster_payment_system_binding: service_info(service.as_ref()),
        },
    };
    let options = PaymentOptions {
        recurrent: request.recurrent.then_some(true),
        return_url: request.return_url.clone(),
    };
    PaymentRequest {
        session_id: Some(request.session_id.as_str().to_owned()),
        payment_details,
        amount_details: amount(request.amount),
        customer: Customer {
            reference: request.customer.as_str().to_owned(),
            contacts: None,
        },
        payment_options: (options != PaymentOptions::default()).then_some(options),
        metadata: Some(metadata(&request.payment_id)),
    }
}

/// Verifies and reads the bank's webhooks.
#[derive(Debug, Clone)]
pub struct Bank131Webhooks {
    verifier: Verifier,
}

impl Bank131Webhooks {
    /// Webhooks signed by any of the bank's keys in `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl WebhookDecoder for Bank131Webhooks {
    fn verify(&self, body: &[u8], signature: &str) -> Result<(), WebhookError> {
        if self.verifier.verify(body, signature) {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }

    fn decode(&self, body: &[u8]) -> Result<DecodedWebhook, WebhookError> {
        let webhook = Webhook::parse(body).map_err(|e| WebhookError::Unparsable(e.to_string()))?;
        let unreadable = |reason: String| {
            let raw: Value = serde_json::from_slice(body).unwrap_or_default();
            WebhookError::UnreadableKnown {
                kind: webhook.kind().to_owned(),
                session_id: raw["session"]["id"]
                    .as_str()
                    .and_then(|id| BankSessionId::parse(id).ok()),
                reason,
            }
        };
        let Some(session) = webhook.session() else {
            if KNOWN_WEBHOOKS.contains(&webhook.kind()) {
                return Err(unreadable("its session is missing or malformed".into()));
            }
            return Ok(DecodedWebhook {
                kind: webhook.kind().to_owned(),
                session_id: None,
                payment_id: None,
                parent_session_id: None,
                fact: None,
                details: BankDetails::default(),
            });
        };
        let snapshot = snapshot(session, Some(webhook.kind())).map_err(|e| unreadable(e.0))?;
        Ok(DecodedWebhook {
            kind: webhook.kind().to_owned(),
            session_id: Some(snapshot.session_id),
            payment_id: snapshot.payment_id,
            parent_session_id: parent_session_of(session),
            fact: snapshot.fact,
            details: snapshot.details,
        })
    }
}

/// The webhook types the bank documents (bank131-api.md, "Webhook types").
const KNOWN_WEBHOOKS: &[&str] = &[
    "ready_to_confirm",
    "action_required",
    "ready_to_capture",
    "payment_finished",
    "payment_refunded",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn refunded_session(refunds: &str) -> Session {
        serde_json::from_str(&format!(
            r#"{{"id": "ps_1", "status": "accepted", "acquiring_payments": [{{
                "id": "pm_1", "status": "succeeded",
                "amount_details": {{"amount": 10000, "currency": "rub"}}{refunds}
            }}]}}"#
        ))
        .expect("a session")
    }

    #[test]
    fn only_finished_refunds_count_and_a_missing_list_is_unknown() {
        let mixed = refunded_session(
            r#", "refunds": [
                {"id": "rf_1", "status": "accepted", "amount_details": {"amount": 3000, "currency": "rub"}},
                {"id": "rf_2", "status": "in_progress", "amount_details": {"amount": 2000, "currency": "rub"}},
                {"id": "rf_3", "status": "declined", "amount_details": {"amount": 1000, "currency": "rub"}},
                {"id": "rf_4", "status": "error", "amount_details": {"amount": 500, "currency": "rub"}}
            ]"#,
        );
        assert_eq!(
            fact_of(&mixed, Some("payment_refunded")),
            Some(BankFact::Refunded {
                total: Money::new(3000, domain::Currency::RUB).unwrap()
            })
        );
        assert_eq!(
            fact_of(&refunded_session(""), Some("payment_refunded")),
            None,
            "no refunds list: unknown, never a full refund"
        );
        assert_eq!(
            fact_of(
                &refunded_session(r#", "refunds": []"#),
                Some("payment_refunded")
            ),
            None
        );
    }

    #[test]
    fn states_parse_their_wire_names() {
        assert_eq!(
            SessionStatus::parse("in_progress").map(State::as_str),
            Some("in_progress")
        );
    }
}
