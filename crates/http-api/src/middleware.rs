//! The middleware around the merchant API: bearer keys, `Idempotency-Key`,
//! and one span and one metric per request.

use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ports::{IdempotencyBegin, IdempotencyClaim, StoredResponse};
use serde_json::Value;
use service::ServiceError;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::extract::header;
use crate::handlers::payment_view;
use crate::{ApiError, ApiState};

/// Largest merchant API request body (as the contract says).
pub(crate) const MAX_API_BODY: usize = 64 * 1024;
/// Largest bank webhook body.
pub(crate) const MAX_WEBHOOK_BODY: usize = 1 << 20;

/// The merchant API's body rules, before anything reads the body: at most
/// 64 KiB (`413 body_too_large`), and a non-empty `POST` body is JSON
/// (`415 unsupported_media_type`). Answers in the error envelope.
pub(crate) async fn api_body_limits(request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        let declared = declared_length(request.headers());
        let json = header(request.headers(), header::CONTENT_TYPE.as_str())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        let has_body = declared != Some(0)
            && (declared.is_some() || request.headers().contains_key(header::TRANSFER_ENCODING));
        if has_body && !json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be Content-Type: application/json",
            )
            .into_response();
        }
    }
    limit_body(request, next, MAX_API_BODY).await
}

/// The webhook route's body limit (1 MiB), in the error envelope.
pub(crate) async fn webhook_body_limit(request: Request, next: Next) -> Response {
    limit_body(request, next, MAX_WEBHOOK_BODY).await
}

/// The `Content-Length` a request declares, if it declares a readable one.
fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    header(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok())
}

async fn limit_body(request: Request, next: Next, limit: usize) -> Response {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {} KiB", limit / 1024),
        )
        .into_response()
    };
    if declared_length(request.headers()).is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => too_large(),
    }
}

/// Which API key sent a request: a short hash of it, so that
/// `Idempotency-Key`s of different keys never meet.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeyScope(String);

impl ApiKeyScope {
    fn of(api_key: &str) -> Self {
        Self(hex::encode(&Sha256::digest(api_key.as_bytes())[..8]))
    }
}

/// Middleware on every `POST /v1` route: runs a request at most once per
/// `Idempotency-Key` and API key. The same key and request replay the first
/// answer for 24 h; once a request has created its payment, a retry answers
/// with that payment's current state instead of creating another, even when
/// the first ended without an answer (a `503`, a crash). Another request with
/// the key is `409 idempotency_key_reused`; a retry while the first is still
/// running (its 60 s lease holds) is `409 idempotency_key_in_use`, and after
/// the lease lapses a request that created nothing is taken over.
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
    let scope = request
        .extensions()
        .get::<ApiKeyScope>()
        .map_or("", |s| s.0.as_str())
        .to_owned();
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_API_BODY).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is larger than 64 KiB",
        )
        .into_response();
    };
    let claim = IdempotencyClaim {
        key: format!("{scope}:{key}"),
        content: request_content(parts.uri.path(), &body),
        now: state.service.now(),
        wall: OffsetDateTime::now_utc(),
    };
    let store = &state.idempotency;
    match store.begin(claim).await {
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
        Ok(IdempotencyBegin::Replay(stored)) => replayed(
            StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
            stored.body,
        ),
        Ok(IdempotencyBegin::Bound(payment_id)) => match state.service.payment(&payment_id).await {
            Ok(payment) => {
                let view = payment_view(&state, &payment).await;
                let body = serde_json::to_vec(&view).unwrap_or_default();
                replayed(StatusCode::OK, body)
            }
            Err(e) => ApiError::from(e).into_response(),
        },
        Ok(IdempotencyBegin::Started(lease)) => {
            let mut request = Request::from_parts(parts, Body::from(body));
            request.extensions_mut().insert(lease.clone());
            let response = next.run(request).await;
            let (parts, body) = response.into_parts();
            let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
            // A 5xx is no answer worth keeping (a store outage, the bank
            // failing): the key is freed if nothing was created, and otherwise
            // stays bound, so a retry sees the payment as it is by then.
            let kept = if parts.status.is_server_error() {
                store.release(&lease).await
            } else {
                store
                    .finish(
                        &lease.key,
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

fn replayed(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// What makes two requests the same: the path and the body's content. A
/// JSON body is compared as JSON (object keys sorted, spacing ignored), so a
/// client that re-serializes the same request is not refused.
fn request_content(path: &str, body: &[u8]) -> Vec<u8> {
    let mut content = format!("POST {path}\n").into_bytes();
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => content.extend(canonical(&value).to_string().into_bytes()),
        Err(_) => content.extend_from_slice(body),
    }
    content
}

/// `value` with every object's keys in sorted order.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
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
            let scope = ApiKeyScope::of(key);
            let mut request = request;
            request.extensions_mut().insert(scope);
            next.run(request).await
        }
        _ => ApiError::unauthorized().into_response(),
    }
}

const REQUEST_ID: &str = "x-request-id";

/// The caller's `X-Request-Id` when it is a sane one (1–128 of
/// `A-Z a-z 0-9 . _ -`), otherwise a new `req_…`: it is in every log line of
/// the request and in the answer, so both sides can find one request.
fn request_id(headers: &axum::http::HeaderMap) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let given = header(headers, REQUEST_ID).filter(|id| {
        (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    given.map_or_else(
        || {
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("req_{started:x}{n:06x}")
        },
        str::to_owned,
    )
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
    let request_id = request_id(request.headers());
    // The payment id is recorded by the handler that learns it (a new payment).
    let span = tracing::info_span!("request", %request_id, %method, %route, path = %request.uri().path(), payment_id = tracing::field::Empty);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    state
        .metrics
        .request(&method, &route, status, started.elapsed());
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_millis(),
            "answered"
        );
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_json_in_other_spacing_and_key_order_is_the_same_request() {
        let a = request_content(
            "/v1/payments",
            br#"{"a":1,"b":{"d":[1,{"y":2,"x":1}],"c":"z"}}"#,
        );
        let b = request_content(
            "/v1/payments",
            b"{ \"b\": { \"c\": \"z\", \"d\": [1, {\"x\": 1, \"y\": 2}] },\n \"a\": 1 }",
        );
        assert_eq!(a, b);
        let other = request_content(
            "/v1/payments",
            br#"{"a":2,"b":{"c":"z","d":[1,{"x":1,"y":2}]}}"#,
        );
        assert_ne!(a, other);
        assert_ne!(
            a,
            request_content(
                "/v1/subscriptions",
                br#"{"a":1,"b":{"c":"z","d":[1,{"x":1,"y":2}]}}"#
            )
        );
        let array_order = request_content(
            "/v1/payments",
            br#"{"a":1,"b":{"c":"z","d":[{"x":1,"y":2},1]}}"#,
        );
        assert_ne!(a, array_order, "array order is content");
    }

    #[test]
    fn a_sane_request_id_is_kept_and_anything_else_replaced() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(REQUEST_ID, HeaderValue::from_str(value).unwrap());
            request_id(&headers)
        };
        assert_eq!(with("abc-123_x.y"), "abc-123_x.y");
        assert!(with("has space").starts_with("req_"));
        assert!(with(&"a".repeat(129)).starts_with("req_"));
        let (a, b) = (
            request_id(&axum::http::HeaderMap::new()),
            request_id(&axum::http::HeaderMap::new()),
        );
        assert_ne!(a, b, "generated ids differ");
    }

    #[test]
    fn api_key_scopes_differ_per_key_and_do_not_reveal_it() {
        let a = ApiKeyScope::of("sk_live_a").0;
        assert_ne!(a, ApiKeyScope::of("sk_live_b").0);
        assert!(!a.contains("sk_live"));
        assert_eq!(a.len(), 16);
    }
}
