//! The route table: the merchant API's operations (each with its
//! `#[utoipa::path]`, so the router and the OpenAPI document come from one
//! declaration), the middleware around them, and the bank and operations routes.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, ApiState, handlers, middleware as mw, openapi};

/// The merchant API's operations; the test clock's only when `test_clock`.
pub(crate) fn merchant_api(test_clock: bool) -> OpenApiRouter<ApiState> {
    let api = OpenApiRouter::with_openapi(openapi::ErrorSchemas::openapi())
        .routes(routes!(handlers::create_payment, handlers::list_payments))
        .routes(routes!(handlers::get_payment))
        .routes(routes!(handlers::decide_payment))
        .routes(routes!(handlers::refund_payment))
        .routes(routes!(handlers::list_tokens))
        .routes(routes!(handlers::get_token))
        .routes(routes!(handlers::disable_token))
        .routes(routes!(handlers::create_subscription))
        .routes(routes!(
            handlers::get_subscription,
            handlers::update_subscription
        ))
        .routes(routes!(handlers::subscription_charges))
        .routes(routes!(handlers::change_subscription))
        .routes(routes!(handlers::list_events));
    if test_clock {
        api.routes(routes!(handlers::get_clock))
            .routes(routes!(handlers::advance_clock))
    } else {
        api
    }
}

/// The OpenAPI document of every merchant API operation (the test clock's included).
pub(crate) fn document() -> serde_json::Value {
    let (_, api) = merchant_api(true).split_for_parts();
    openapi::complete(&api)
}

async fn no_route() -> ApiError {
    ApiError::not_found("route")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method",
    )
}

async fn openapi_json(State(_): State<ApiState>) -> Response {
    Json(document()).into_response()
}

/// How long a client may take to send a request's body once its headers
/// are in (`408 request_timeout`).
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole HTTP surface. Layers run outside in: a request id (tower-http,
/// a caller's sane `X-Request-Id` kept), every error in the envelope, the
/// request's span and metrics, the body and request timeouts (tower-http),
/// then per route group: bearer keys, JSON only, the body limit
/// (tower-http), `Idempotency-Key`, the handler.
pub(crate) fn router(state: ApiState) -> Router {
    let (v1, _) = merchant_api(state.service.has_test_clock()).split_for_parts();
    let v1 = v1
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            mw::idempotency,
        ))
        .route_layer(RequestBodyLimitLayer::new(mw::MAX_API_BODY))
        .route_layer(middleware::from_fn(mw::require_json))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            mw::authenticate,
        ));
    Router::new()
        .merge(v1)
        .route(
            "/webhooks/bank131",
            post(handlers::bank_webhook).layer(RequestBodyLimitLayer::new(mw::MAX_WEBHOOK_BODY)),
        )
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(openapi_json))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.request_timeout,
        ))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(middleware::from_fn_with_state(state.clone(), mw::observe))
        .layer(middleware::from_fn(mw::errors_in_the_envelope))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(mw::NewRequestId))
        .layer(middleware::from_fn(mw::drop_unsafe_request_id))
        .with_state(state)
}
