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
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Instrument;

use crate::extract::{header, read_body};
use crate::handlers::payment_view;
use crate::{ApiError, ApiState};

/// Largest merchant API request body (as the contract says).
pub(crate) const MAX_API_BODY: usize = 64 * 1024;
/// Largest bank webhook body.
pub(crate) const MAX_WEBHOOK_BODY: usize = 1 << 20;

/// A non-empty `POST` body to the merchant API is JSON (`415
/// unsupported_media_type` otherwise), in the error envelope. Its size is
/// the route's `RequestBodyLimitLayer`'s to check.
pub(crate) async fn require_json(request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        let declared = header(request.headers(), header::CONTENT_LENGTH.as_str())
            .and_then(|v| v.parse::<u64>().ok());
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
    next.run(request).await
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
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
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

/// Whether a caller's `X-Request-Id` is a sane one to keep and log: 1–128
/// of `A-Z a-z 0-9 . _ -`.
fn sane_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Drops an `X-Request-Id` that is not [sane](sane_request_id), so that
/// tower-http's `SetRequestIdLayer` gives the request a new one instead.
pub(crate) async fn drop_unsafe_request_id(mut request: Request, next: Next) -> Response {
    if header(request.headers(), REQUEST_ID).is_none_or(|id| !sane_request_id(id)) {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// New request ids for tower-http's request-id layers: `req_`, the time in
/// microseconds and a process-wide counter, in hex.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("req_{now:x}{n:06x}"))
            .ok()
            .map(RequestId::new)
    }
}

/// Every error answer, from every layer, in the error envelope: an answer
/// a layer made without one (tower-http's timeout and body limit, a
/// rejection) gets the envelope here, with a code named after its status.
pub(crate) async fn errors_in_the_envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json = header(response.headers(), header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("body_too_large", "the body is larger than this route takes")
        }
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request was not sent in time"),
        StatusCode::SERVICE_UNAVAILABLE => (
            "timeout",
            "the request took too long; it may have taken effect: retry with the same Idempotency-Key",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the body must be Content-Type: application/json",
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this route does not take this method")
        }
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        s if s.is_client_error() => ("invalid_request", "the request could not be read"),
        _ => ("internal_error", "the request failed"),
    };
    let (mut parts, _) = response.into_parts();
    let enveloped = ApiError::new(status, code, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (fresh, body) = enveloped.into_parts();
    parts.headers.extend(fresh.headers);
    Response::from_parts(parts, body)
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
    // Set by tower-http's request-id layer outside this one.
    let request_id = header(request.headers(), REQUEST_ID)
        .unwrap_or_default()
        .to_owned();
    // The payment id is recorded by the handler that learns it (a new payment).
    let span = tracing::info_span!("request", %request_id, %method, %route, path = %request.uri().path(), payment_id = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
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
    fn only_a_sane_request_id_is_kept_and_new_ones_differ() {
        assert!(sane_request_id("abc-123_x.y"));
        assert!(!sane_request_id("has space"));
        assert!(!sane_request_id(&"a".repeat(129)));
        assert!(!sane_request_id(""));
        let request = Request::new(Body::empty());
        let (a, b) = (
            NewRequestId.make_request_id(&request).unwrap(),
            NewRequestId.make_request_id(&request).unwrap(),
        );
        assert_ne!(a.header_value(), b.header_value(), "new ids differ");
        assert!(a.header_value().to_str().unwrap().starts_with("req_"));
    }

    #[test]
    fn api_key_scopes_differ_per_key_and_do_not_reveal_it() {
        let a = ApiKeyScope::of("sk_live_a").0;
        assert_ne!(a, ApiKeyScope::of("sk_live_b").0);
        assert!(!a.contains("sk_live"));
        assert_eq!(a.len(), 16);
    }
}
