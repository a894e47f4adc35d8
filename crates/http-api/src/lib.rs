//! # http-api
//!
//! recur's HTTP side, with axum: the merchant API of the contract (bearer
//! keys, `Idempotency-Key`, one error shape), the bank's webhook receiver
//! (signature over the raw bytes, durable inbox, `200`), health, readiness,
//! Prometheus metrics, the OpenAPI document and the test clock.
#![deny(missing_docs)]

mod error;
mod handlers;
pub mod metrics;
pub mod openapi;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use ports::IdempotencyStore;
use service::Service;
use tokio::sync::Notify;
use tracing::Instrument;

pub use error::ApiError;
pub use metrics::Metrics;
pub use wire::JsonPresenter;

/// A boxed future, for the hooks the app provides.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Everything the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The use cases.
    pub service: Service,
    /// Accepted bearer keys.
    pub api_keys: Arc<Vec<String>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Woken when a webhook is stored, so the inbox worker applies it at once.
    pub inbox_signal: Arc<Notify>,
    /// The merchant API's `Idempotency-Key` records (an HTTP concern, so
    /// the API holds its store itself).
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Whether the database answers (for `/readyz`).
    pub ready: Arc<dyn Fn() -> BoxFuture<bool> + Send + Sync>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("api_keys", &self.api_keys.len())
            .finish_non_exhaustive()
    }
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    let mut v1 = Router::new();
    for op in openapi::operations() {
        if !op.test_clock || state.service.has_test_clock() {
            v1 = v1.route(op.path, (op.handler)());
        }
    }
    // Layers run outside in: authentication, then idempotency, then the handler.
    let v1 = v1
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            handlers::idempotency,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(v1)
        .route("/webhooks/bank131", post(handlers::bank_webhook))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(key)
            if state
                .api_keys
                .iter()
                .any(|k| same(k.as_bytes(), key.as_bytes())) =>
        {
            next.run(request).await
        }
        _ => axum::response::IntoResponse::into_response(ApiError::unauthorized()),
    }
}

/// One span per request (method, route, path: ids, never bodies) and the request counters.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    // The payment id is recorded by the handler that learns it (a new payment).
    let span = tracing::info_span!("request", %method, %route, path = %request.uri().path(), payment_id = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    state.metrics.request(&method, &route, status);
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_millis(),
            "answered"
        );
    });
    response
}
