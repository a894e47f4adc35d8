//! The handlers. Each parses its input into a use-case command (a bad input
//! is a `400` and changes nothing), calls the service, and answers with a
//! typed body. Each `#[utoipa::path]` is that route's part of the OpenAPI
//! document; the router is made from the same declarations (`routes.rs`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::{Payment, PaymentId, SubscriptionId, TokenId};
use ports::IdempotencyLease;
use service::{ClockMove, Meanwhile, ServiceError};
use time::Duration;

use crate::extract::{JsonBody, PathId, PathIdAnd, QueryOf, RawBody, header};
use crate::wire::{
    AdvanceIn, ChargeList, ChargeView, Clock, CreatePaymentIn, CreateSubscriptionIn, EventList,
    EventView, EventsQuery, ListQuery, PaymentAction, PaymentList, PaymentView, RefundIn,
    StatusView, SubscriptionAction, SubscriptionView, TokenList, TokenQuery, TokenView,
    UpdateSubscriptionIn, parse_timestamp, timestamp,
};
use crate::{ApiError, ApiState};

/// A handler's answer: a status and a typed body, or the error envelope.
type Reply<T> = Result<(StatusCode, Json<T>), ApiError>;

fn ok<T>(body: T) -> (StatusCode, Json<T>) {
    (StatusCode::OK, Json(body))
}

pub(crate) async fn payment_view(state: &ApiState, p: &Payment) -> PaymentView {
    let token_status = match p.token_id() {
        Some(t) => state.service.token(t, false).await.ok().map(|t| t.status()),
        None => None,
    };
    PaymentView::new(p, token_status)
}

// ---- payments ---------------------------------------------------------------------------

/// Start a payment (card, widget, token, fps, fps_binding).
#[utoipa::path(post, path = "/v1/payments", tag = "payments", request_body = CreatePaymentIn,
    responses((status = 201, description = "Created", body = PaymentView)))]
pub(crate) async fn create_payment(
    State(state): State<ApiState>,
    lease: Option<Extension<IdempotencyLease>>,
    JsonBody(input): JsonBody<CreatePaymentIn>,
) -> Reply<PaymentView> {
    let mut command = input.command()?;
    command.idempotency = lease.map(|Extension(lease)| lease);
    let payment = state.service.start_payment(command).await?;
    Ok((
        StatusCode::CREATED,
        Json(payment_view(&state, &payment).await),
    ))
}

/// A page of a customer's payments, newest first.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", params(ListQuery),
    responses((status = 200, description = "OK", body = PaymentList)))]
pub(crate) async fn list_payments(
    State(state): State<ApiState>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Reply<PaymentList> {
    let customer = q.customer()?;
    let page = q.page(PaymentId::parse)?;
    let listed = state.service.list_payments(&customer, page).await?;
    // One read per token on the page, not one per payment.
    let mut tokens = HashMap::new();
    for id in listed.items.iter().filter_map(Payment::token_id) {
        if !tokens.contains_key(id) {
            let status = state
                .service
                .token(id, false)
                .await
                .ok()
                .map(|t| t.status());
            tokens.insert(id.clone(), status);
        }
    }
    let data = listed
        .items
        .iter()
        .map(|p| {
            PaymentView::new(
                p,
                p.token_id().and_then(|t| tokens.get(t).copied().flatten()),
            )
        })
        .collect();
    Ok(ok(PaymentList {
        data,
        has_more: listed.has_more,
    }))
}

/// A payment.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    responses((status = 200, description = "OK", body = PaymentView)))]
pub(crate) async fn get_payment(
    State(state): State<ApiState>,
    PathId(id): PathId<PaymentId>,
) -> Reply<PaymentView> {
    let payment = state.service.payment(&id).await?;
    Ok(ok(payment_view(&state, &payment).await))
}

/// Confirm or cancel a payment in requires_confirmation (manual confirmation).
#[utoipa::path(post, path = "/v1/payments/{id}/{action}", tag = "payments",
    params(("action" = inline(PaymentAction), Path)),
    responses((status = 200, description = "OK", body = PaymentView)))]
pub(crate) async fn decide_payment(
    State(state): State<ApiState>,
    PathIdAnd(id, action): PathIdAnd<PaymentId, PaymentAction>,
) -> Reply<PaymentView> {
    let payment = match action {
        PaymentAction::Confirm => state.service.confirm_payment(&id).await?,
        PaymentAction::Cancel => state.service.cancel_payment(&id).await?,
    };
    Ok(ok(payment_view(&state, &payment).await))
}

/// Refund a succeeded payment (in full by default).
#[utoipa::path(post, path = "/v1/payments/{id}/refund", tag = "payments", request_body = RefundIn,
    responses((status = 200, description = "OK", body = PaymentView)))]
pub(crate) async fn refund_payment(
    State(state): State<ApiState>,
    PathId(id): PathId<PaymentId>,
    JsonBody(input): JsonBody<RefundIn>,
) -> Reply<PaymentView> {
    let amount = input.amount.map(|a| a.money("amount")).transpose()?;
    let payment = state.service.refund_payment(&id, amount).await?;
    Ok(ok(payment_view(&state, &payment).await))
}

// ---- tokens -----------------------------------------------------------------------------

/// A page of a customer's tokens, newest first.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(ListQuery),
    responses((status = 200, description = "OK", body = TokenList)))]
pub(crate) async fn list_tokens(
    State(state): State<ApiState>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Reply<TokenList> {
    let page = q.page(TokenId::parse)?;
    let listed = state.service.list_tokens(&q.customer()?, page).await?;
    Ok(ok(TokenList {
        data: listed.items.iter().map(TokenView::from).collect(),
        has_more: listed.has_more,
    }))
}

/// A token; `?refresh=true` asks the bank first.
#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens",
    params(TokenQuery),
    responses((status = 200, description = "OK", body = TokenView)))]
pub(crate) async fn get_token(
    State(state): State<ApiState>,
    PathId(id): PathId<TokenId>,
    QueryOf(q): QueryOf<TokenQuery>,
) -> Reply<TokenView> {
    let token = state.service.token(&id, q.refresh()?).await?;
    Ok(ok(TokenView::from(&token)))
}

/// Disable a token (202 until the bank confirms).
#[utoipa::path(post, path = "/v1/tokens/{id}/disable", tag = "tokens",
    responses((status = 202, description = "Disabling (or already disabled)", body = TokenView)))]
pub(crate) async fn disable_token(
    State(state): State<ApiState>,
    PathId(id): PathId<TokenId>,
) -> Reply<TokenView> {
    let token = state.service.disable_token(&id).await?;
    // 202 whatever the status: disabling is the bank's to confirm (or it already did).
    Ok((StatusCode::ACCEPTED, Json(TokenView::from(&token))))
}

// ---- subscriptions ----------------------------------------------------------------------

/// Create a subscription.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions",
    request_body = CreateSubscriptionIn,
    responses((status = 201, description = "Created", body = SubscriptionView)))]
pub(crate) async fn create_subscription(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<CreateSubscriptionIn>,
) -> Reply<SubscriptionView> {
    let command = input.command()?;
    let subscription = state.service.create_subscription(command).await?;
    Ok((
        StatusCode::CREATED,
        Json(SubscriptionView::at(&subscription, state.service.now())),
    ))
}

/// A subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions",
    responses((status = 200, description = "OK", body = SubscriptionView)))]
pub(crate) async fn get_subscription(
    State(state): State<ApiState>,
    PathId(id): PathId<SubscriptionId>,
) -> Reply<SubscriptionView> {
    let subscription = state.service.subscription(&id).await?;
    Ok(ok(SubscriptionView::at(&subscription, state.service.now())))
}

/// Change the token, amount or metadata.
#[utoipa::path(post, path = "/v1/subscriptions/{id}", tag = "subscriptions",
    request_body = UpdateSubscriptionIn,
    responses((status = 200, description = "OK", body = SubscriptionView)))]
pub(crate) async fn update_subscription(
    State(state): State<ApiState>,
    PathId(id): PathId<SubscriptionId>,
    JsonBody(input): JsonBody<UpdateSubscriptionIn>,
) -> Reply<SubscriptionView> {
    let command = input.command()?;
    let s = state.service.update_subscription(&id, command).await?;
    Ok(ok(SubscriptionView::at(&s, state.service.now())))
}

/// A subscription's charge attempts, oldest first.
#[utoipa::path(get, path = "/v1/subscriptions/{id}/charges", tag = "subscriptions",
    responses((status = 200, description = "OK", body = ChargeList)))]
pub(crate) async fn subscription_charges(
    State(state): State<ApiState>,
    PathId(id): PathId<SubscriptionId>,
) -> Reply<ChargeList> {
    let charges = state.service.subscription_charges(&id).await?;
    Ok(ok(ChargeList {
        data: charges.iter().map(ChargeView::from).collect(),
    }))
}

/// Pause, resume or cancel a subscription.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/{action}", tag = "subscriptions",
    params(("action" = inline(SubscriptionAction), Path)),
    responses((status = 200, description = "OK", body = SubscriptionView)))]
pub(crate) async fn change_subscription(
    State(state): State<ApiState>,
    PathIdAnd(id, action): PathIdAnd<SubscriptionId, SubscriptionAction>,
) -> Reply<SubscriptionView> {
    let service = &state.service;
    let subscription = match action {
        SubscriptionAction::Pause => service.pause_subscription(&id).await?,
        SubscriptionAction::Resume => service.resume_subscription(&id).await?,
        SubscriptionAction::Cancel => service.cancel_subscription(&id).await?,
    };
    Ok(ok(SubscriptionView::at(&subscription, service.now())))
}

// ---- events -----------------------------------------------------------------------------

/// The event feed, oldest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, description = "OK", body = EventList)))]
pub(crate) async fn list_events(
    State(state): State<ApiState>,
    QueryOf(q): QueryOf<EventsQuery>,
) -> Reply<EventList> {
    let (after, limit) = q.page()?;
    let mut events = state.service.events_after(after, limit + 1).await?;
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    Ok(ok(EventList {
        data: events.iter().map(EventView::from).collect(),
        has_more,
    }))
}

// ---- test clock ---------------------------------------------------------------------------

/// The test clock (only with RECUR_TEST_CLOCK=true; otherwise 404).
#[utoipa::path(get, path = "/v1/test/clock", tag = "test clock",
    responses((status = 200, description = "OK", body = Clock)))]
pub(crate) async fn get_clock(State(state): State<ApiState>) -> Reply<Clock> {
    Ok(ok(Clock {
        now: timestamp(state.service.now()),
    }))
}

/// The longest single move of the test clock, in seconds.
const MAX_CLOCK_STEP: i64 = 100 * 366 * 86_400;

/// Move the test clock forward and run the jobs that became due (only with
/// RECUR_TEST_CLOCK=true; otherwise 404).
#[utoipa::path(post, path = "/v1/test/clock/advance", tag = "test clock", request_body = AdvanceIn,
    responses((status = 200, description = "OK", body = Clock)))]
pub(crate) async fn advance_clock(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<AdvanceIn>,
) -> Reply<Clock> {
    if !state.service.has_test_clock() {
        return Err(ApiError::not_found("route"));
    }
    let step = match (input.seconds, input.to) {
        (Some(s), None) if (0..=MAX_CLOCK_STEP).contains(&s) => ClockMove::By(Duration::seconds(s)),
        (Some(_), None) => {
            return Err(ApiError::bad_request(format!(
                "seconds must be 0–{MAX_CLOCK_STEP} (a hundred years)"
            )));
        }
        (None, Some(to)) => ClockMove::To(parse_timestamp("to", &to)?),
        _ => return Err(ApiError::bad_request("give exactly one of seconds or to")),
    };
    let meanwhile = if input.service_down {
        Meanwhile::ServiceDown
    } else {
        Meanwhile::ServiceRunning
    };
    // A task of its own: a client that stops waiting (or the request
    // timeout) must not cut the charges that fell due off halfway.
    let service = state.service.clone();
    let now = tokio::spawn(async move { service.advance_clock(step, meanwhile).await })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("the clock's move failed: {e}"),
            )
        })?
        .map_err(|e| match e {
            ServiceError::State(m) => ApiError::new(StatusCode::CONFLICT, "clock_backwards", m),
            other => other.into(),
        })?;
    Ok(ok(Clock {
        now: timestamp(now),
    }))
}

// ---- bank side and operations -------------------------------------------------------------

fn status(code: StatusCode, status: &'static str) -> Response {
    (code, Json(StatusView { status })).into_response()
}

pub(crate) async fn bank_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let signature = header(&headers, "x-partner-sign").unwrap_or_default();
    match state.service.receive_webhook(&body, signature).await {
        Ok(new) => {
            state
                .metrics
                .webhook(if new { "stored" } else { "duplicate" });
            state.inbox_signal.notify_one();
            status(StatusCode::OK, "ok")
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
    status(StatusCode::OK, "ok")
}

pub(crate) async fn readyz(State(state): State<ApiState>) -> Response {
    if (state.ready)().await {
        status(StatusCode::OK, "ready")
    } else {
        status(StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

pub(crate) async fn metrics(State(state): State<ApiState>) -> Response {
    let snapshot = state.service.operational_snapshot().await.ok();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        state.metrics.render(snapshot.as_ref()),
    )
        .into_response()
}
