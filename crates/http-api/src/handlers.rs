//! The handlers. Each parses its input into a use-case command (a bad input
//! is a `400` and changes nothing), calls the service, and renders the result.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{CustomerReference, EventId, Payment, PaymentId, SubscriptionId, TokenId};
use ports::{IdempotencyBegin, StoredResponse};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use service::{ClockMove, ServiceError};
use sha2::{Digest, Sha256};
use time::Duration;

use crate::wire::{self, CreatePaymentIn, CreateSubscriptionIn, RefundIn, UpdateSubscriptionIn};
use crate::{ApiError, ApiState};

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn reply(status: StatusCode, body: Value) -> (StatusCode, Json<Value>) {
    (status, Json(body))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn id<T>(
    parse: fn(&str) -> Result<T, domain::InvalidId>,
    raw: &str,
    what: &str,
) -> Result<T, ApiError> {
    parse(raw).map_err(|_| ApiError::not_found(what))
}

/// Largest request body accepted (and buffered for `Idempotency-Key`).
const MAX_BODY: usize = 1 << 20;

/// Middleware on every `POST /v1` route: runs a request at most once per
/// `Idempotency-Key`. The same key and request replay the first answer for
/// 24 h; another request with the key is `409 idempotency_key_reused`; a
/// duplicate arriving while the first runs is `409 idempotency_key_in_use`.
pub(crate) async fn idempotency(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get("idempotency-key").cloned() else {
        return next.run(request).await;
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
    else {
        return ApiError::bad_request("Idempotency-Key must be 1–255 visible characters")
            .into_response();
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return ApiError::bad_request("the body is larger than 1 MiB").into_response();
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&body);
    let fingerprint = hex::encode(hasher.finalize());
    let store = &state.idempotency;
    let now = state.service.now();
    match store.begin(&key, &fingerprint, now).await {
        Err(e) => ApiError::from(ServiceError::from(e)).into_response(),
        Ok(IdempotencyBegin::Mismatch) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )
        .into_response(),
        Ok(IdempotencyBegin::InFlight) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still running; retry later",
        )
        .into_response(),
        Ok(IdempotencyBegin::Replay(stored)) => {
            let mut response = (
                StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                stored.body,
            )
                .into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        Ok(IdempotencyBegin::Started) => {
            let response = next.run(Request::from_parts(parts, Body::from(body))).await;
            let (parts, body) = response.into_parts();
            let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
            // A store outage proves nothing was done: free the key for a retry.
            let kept = if parts.status == StatusCode::SERVICE_UNAVAILABLE {
                store.release(&key).await
            } else {
                store
                    .finish(
                        &key,
                        StoredResponse {
                            status: parts.status.as_u16(),
                            body: body.to_vec(),
                        },
                    )
                    .await
            };
            if let Err(e) = kept {
                tracing::warn!(error = %e, "could not record the idempotent response");
            }
            Response::from_parts(parts, Body::from(body))
        }
    }
}

async fn payment_body(state: &ApiState, p: &Payment) -> Value {
    let token_status = match p.token_id() {
        Some(t) => state.service.token(t, false).await.ok().map(|t| t.status()),
        None => None,
    };
    wire::payment_json(p, token_status)
}

// ---- payments ---------------------------------------------------------------------------

pub(crate) async fn create_payment(State(state): State<ApiState>, body: Bytes) -> Answer {
    let command = parse::<CreatePaymentIn>(&body)?.command()?;
    let payment = state.service.start_payment(command).await?;
    tracing::Span::current().record("payment_id", payment.id().as_str());
    Ok(reply(
        StatusCode::CREATED,
        payment_body(&state, &payment).await,
    ))
}

#[derive(serde::Deserialize)]
pub(crate) struct CustomerQuery {
    customer_reference: Option<String>,
}

fn customer(q: &CustomerQuery) -> Result<CustomerReference, ApiError> {
    let raw = q
        .customer_reference
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("customer_reference is required"))?;
    CustomerReference::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(crate) async fn list_payments(
    State(state): State<ApiState>,
    Query(q): Query<CustomerQuery>,
) -> Answer {
    let customer = customer(&q)?;
    let payments = state.service.list_payments(&customer).await?;
    // One read of the customer's tokens for the whole page, not one per payment.
    let tokens: HashMap<_, _> = state
        .service
        .list_tokens(&customer)
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), t.status()))
        .collect();
    let data: Vec<Value> = payments
        .iter()
        .map(|p| wire::payment_json(p, p.token_id().and_then(|t| tokens.get(t).copied())))
        .collect();
    Ok(reply(StatusCode::OK, json!({ "data": data })))
}

pub(crate) async fn get_payment(State(state): State<ApiState>, Path(raw): Path<String>) -> Answer {
    let payment = state
        .service
        .payment(&id(PaymentId::parse, &raw, "payment")?)
        .await?;
    Ok(reply(StatusCode::OK, payment_body(&state, &payment).await))
}

pub(crate) async fn confirm_payment(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let payment = state
        .service
        .confirm_payment(&id(PaymentId::parse, &raw, "payment")?)
        .await?;
    Ok(reply(StatusCode::OK, payment_body(&state, &payment).await))
}

pub(crate) async fn cancel_payment(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let payment = state
        .service
        .cancel_payment(&id(PaymentId::parse, &raw, "payment")?)
        .await?;
    Ok(reply(StatusCode::OK, payment_body(&state, &payment).await))
}

pub(crate) async fn refund_payment(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Answer {
    let amount = parse::<RefundIn>(&body)?
        .amount
        .map(|a| a.money("amount"))
        .transpose()?;
    let payment = state
        .service
        .refund_payment(&id(PaymentId::parse, &raw, "payment")?, amount)
        .await?;
    Ok(reply(StatusCode::OK, payment_body(&state, &payment).await))
}

// ---- tokens -----------------------------------------------------------------------------

pub(crate) async fn list_tokens(
    State(state): State<ApiState>,
    Query(q): Query<CustomerQuery>,
) -> Answer {
    let tokens = state.service.list_tokens(&customer(&q)?).await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "data": tokens.iter().map(wire::token_json).collect::<Vec<_>>() }),
    ))
}

pub(crate) async fn get_token(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let refresh = match q.get("refresh").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("refresh must be true or false")),
    };
    let token = state
        .service
        .token(&id(TokenId::parse, &raw, "token")?, refresh)
        .await?;
    Ok(reply(StatusCode::OK, wire::token_json(&token)))
}

pub(crate) async fn disable_token(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let token = state
        .service
        .disable_token(&id(TokenId::parse, &raw, "token")?)
        .await?;
    // 202 whatever the status: disabling is the bank's to confirm (or it already did).
    Ok(reply(StatusCode::ACCEPTED, wire::token_json(&token)))
}

// ---- subscriptions ----------------------------------------------------------------------

pub(crate) async fn create_subscription(State(state): State<ApiState>, body: Bytes) -> Answer {
    let command = parse::<CreateSubscriptionIn>(&body)?.command()?;
    let subscription = state.service.create_subscription(command).await?;
    Ok(reply(
        StatusCode::CREATED,
        wire::subscription_json(&subscription),
    ))
}

pub(crate) async fn get_subscription(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let s = state
        .service
        .subscription(&id(SubscriptionId::parse, &raw, "subscription")?)
        .await?;
    Ok(reply(StatusCode::OK, wire::subscription_json(&s)))
}

pub(crate) async fn update_subscription(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Answer {
    let command = parse::<UpdateSubscriptionIn>(&body)?.command()?;
    let s = state
        .service
        .update_subscription(&id(SubscriptionId::parse, &raw, "subscription")?, command)
        .await?;
    Ok(reply(StatusCode::OK, wire::subscription_json(&s)))
}

pub(crate) async fn subscription_charges(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let charges = state
        .service
        .subscription_charges(&id(SubscriptionId::parse, &raw, "subscription")?)
        .await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "data": charges.iter().map(wire::charge_json).collect::<Vec<_>>() }),
    ))
}

pub(crate) async fn pause_subscription(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let s = state
        .service
        .pause_subscription(&id(SubscriptionId::parse, &raw, "subscription")?)
        .await?;
    Ok(reply(StatusCode::OK, wire::subscription_json(&s)))
}

pub(crate) async fn resume_subscription(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let s = state
        .service
        .resume_subscription(&id(SubscriptionId::parse, &raw, "subscription")?)
        .await?;
    Ok(reply(StatusCode::OK, wire::subscription_json(&s)))
}

pub(crate) async fn cancel_subscription(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Answer {
    let s = state
        .service
        .cancel_subscription(&id(SubscriptionId::parse, &raw, "subscription")?)
        .await?;
    Ok(reply(StatusCode::OK, wire::subscription_json(&s)))
}

// ---- events -----------------------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(crate) struct EventsQuery {
    after: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn list_events(
    State(state): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Answer {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1–1000"));
    }
    let after = q
        .after
        .as_deref()
        .map(|a| EventId::parse(a).map_err(|e| ApiError::bad_request(format!("after: {e}"))))
        .transpose()?;
    let mut events = state.service.events_after(after, limit + 1).await?;
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    Ok(reply(
        StatusCode::OK,
        json!({ "data": events.iter().map(wire::event_json).collect::<Vec<_>>(), "has_more": has_more }),
    ))
}

// ---- test clock ---------------------------------------------------------------------------

pub(crate) async fn get_clock(State(state): State<ApiState>) -> Answer {
    Ok(reply(
        StatusCode::OK,
        json!({ "now": wire::timestamp(state.service.now()) }),
    ))
}

#[derive(serde::Deserialize)]
struct AdvanceIn {
    seconds: Option<i64>,
    to: Option<String>,
}

pub(crate) async fn advance_clock(State(state): State<ApiState>, body: Bytes) -> Answer {
    if !state.service.has_test_clock() {
        return Err(ApiError::not_found("route"));
    }
    let input = parse::<AdvanceIn>(&body)?;
    let step = match (input.seconds, input.to) {
        (Some(s), None) => ClockMove::By(Duration::seconds(s)),
        (None, Some(to)) => ClockMove::To(wire::parse_timestamp("to", &to)?),
        _ => return Err(ApiError::bad_request("give exactly one of seconds or to")),
    };
    let now = state
        .service
        .advance_clock(step)
        .await
        .map_err(|e| match e {
            ServiceError::State(m) => ApiError::new(StatusCode::CONFLICT, "clock_backwards", m),
            other => other.into(),
        })?;
    Ok(reply(
        StatusCode::OK,
        json!({ "now": wire::timestamp(now) }),
    ))
}

// ---- bank side and operations -------------------------------------------------------------

pub(crate) async fn bank_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-partner-sign")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match state.service.receive_webhook(&body, signature).await {
        Ok(new) => {
            state
                .metrics
                .webhook(if new { "stored" } else { "duplicate" });
            state.inbox_signal.notify_one();
            (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
        }
        Err(ServiceError::Unauthorized) => {
            state.metrics.webhook("bad_signature");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "X-PARTNER-SIGN does not verify",
            )
            .into_response()
        }
        Err(e) => {
            state.metrics.webhook("store_failed");
            ApiError::from(e).into_response()
        }
    }
}

pub(crate) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(crate) async fn readyz(State(state): State<ApiState>) -> Response {
    if (state.ready)().await {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "database unreachable" })),
        )
            .into_response()
    }
}

pub(crate) async fn metrics(State(state): State<ApiState>) -> Response {
    let depth = state
        .service
        .operational_snapshot()
        .await
        .ok()
        .map(|s| s.outbox_depth);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(depth),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}
