//! # http-api
//!
//! recur's HTTP side, with axum: the merchant API of the contract (bearer
//! keys, `Idempotency-Key`, one error shape), the bank's webhook receiver
//! (signature over the raw bytes, durable inbox, `200`), health, readiness,
//! Prometheus metrics, the OpenAPI document and the test clock.
#![deny(missing_docs)]

mod error;
mod extract;
mod handlers;
pub mod metrics;
mod middleware;
mod openapi;
mod routes;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use ports::IdempotencyStore;
use service::Service;
use tokio::sync::Notify;

pub use error::{ApiError, ErrorBody};
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
    /// The longest a request may run before it is answered `503 timeout`
    /// (long enough for every bank call a request makes to time out first).
    pub request_timeout: std::time::Duration,
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
    routes::router(state)
}

/// The merchant API's OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> serde_json::Value {
    routes::document()
}
