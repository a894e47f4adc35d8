//! The middleware around the merchant API: bearer keys, `Idempotency-Key`,
//! and one span and one metric per request.

use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ports::{IdempotencyBegin, StoredResponse};
use service::ServiceError;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::extract::header;
use crate::{ApiError, ApiState};

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

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = header(request.headers(), "authorization")
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
        _ => ApiError::unauthorized().into_response(),
    }
}

/// One span per request (method, route, path: ids, never bodies) and the request counters.
pub(crate) async fn observe(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
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
