//! Extractors: typed ids from the path and JSON bodies, each refusal in the
//! API's error envelope.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::request::Parts;
use domain::{InvalidId, PaymentId, SubscriptionId, TokenId};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// An id the routes take as `{id}`.
pub trait ResourceId: Sized + Send {
    /// What it names, for `404 <what> not found`.
    const WHAT: &'static str;
    /// Parses the path segment.
    fn parse_id(raw: &str) -> Result<Self, InvalidId>;
}

impl ResourceId for PaymentId {
    const WHAT: &'static str = "payment";
    fn parse_id(raw: &str) -> Result<Self, InvalidId> {
        Self::parse(raw)
    }
}

impl ResourceId for TokenId {
    const WHAT: &'static str = "token";
    fn parse_id(raw: &str) -> Result<Self, InvalidId> {
        Self::parse(raw)
    }
}

impl ResourceId for SubscriptionId {
    const WHAT: &'static str = "subscription";
    fn parse_id(raw: &str) -> Result<Self, InvalidId> {
        Self::parse(raw)
    }
}

/// A query string as `T`; one that does not fit is `400 invalid_request` in
/// the error envelope, naming no submitted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| Self(value))
            .map_err(|_| {
                ApiError::bad_request(
                    "the query string does not fit this route (numbers must be numbers)",
                )
            })
    }
}

/// The `{id}` of a route as a typed id; one that cannot be an id of its kind
/// is `404`, as an unknown id is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: ResourceId> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found(T::WHAT))?;
        T::parse_id(&raw)
            .map(PathId)
            .map_err(|_| ApiError::not_found(T::WHAT))
    }
}

/// The `{id}` of a route and the segment after it (an action), both typed;
/// either one unknown is `404`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathIdAnd<T, A>(pub T, pub A);

impl<S: Send + Sync, T: ResourceId, A: DeserializeOwned + Send> FromRequestParts<S>
    for PathIdAnd<T, A>
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((raw, action)) = Path::<(String, A)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("route"))?;
        T::parse_id(&raw)
            .map(|id| PathIdAnd(id, action))
            .map_err(|_| ApiError::not_found(T::WHAT))
    }
}

/// A header's value as text, `None` when absent or not visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON body as `T`; an empty one reads as `{}`, one that does not fit is
/// `400 invalid_request` naming no submitted value. The content type and size
/// are the body-limit middleware's to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let body = read_body(request.into_body()).await?;
        json_body(&body).map(JsonBody)
    }
}

/// A request body, whole: the route's limit layer stops one that is too
/// large (`413 body_too_large`) and the body timeout a client too slow to
/// send it (`408 request_timeout`), both in the error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        read_body(request.into_body()).await.map(RawBody)
    }
}

/// Reads `body` whole, in the error envelope (see [`RawBody`]).
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| {
            let cause = error.into_inner();
            if caused_by::<http_body_util::LengthLimitError>(&*cause) {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the body is larger than this route takes",
                )
            } else if caused_by::<tower_http::timeout::TimeoutError>(&*cause) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the body was not sent in time",
                )
            } else {
                ApiError::bad_request("the body could not be read")
            }
        })
}

/// Whether `error`, or an error it was caused by, is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(<dyn std::error::Error>::is::<E>)
}

/// A JSON body; an empty one reads as `{}`.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(json_error(&e)))
}

/// What is wrong with a body, without a single submitted value: serde's own
/// messages quote them (`invalid type: integer `123`` would be a CVV).
fn json_error(e: &serde_json::Error) -> String {
    let at = format!("at line {} column {}", e.line(), e.column());
    if !e.is_data() {
        return format!("invalid JSON body: malformed JSON {at}");
    }
    let message = e.to_string();
    // `missing field `x`` names our schema's field, never a submitted value.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
    {
        return format!("invalid JSON body: missing field `{field}`");
    }
    let kind = message
        .split_once(':')
        .map(|(kind, _)| kind)
        .filter(|kind| kind.chars().all(|c| c.is_ascii_lowercase() || c == ' '))
        .unwrap_or("invalid value");
    format!("invalid JSON body: {kind} {at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Card {
        number: String,
        security_code: String,
        kind: Kind,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Visa,
    }

    fn message(body: &str) -> String {
        json_body::<Card>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn body_errors_say_what_and_where_but_never_a_submitted_value() {
        let wrong_type =
            message(r#"{"number": 4111111111111111, "security_code": "1", "kind": "visa"}"#);
        assert!(!wrong_type.contains("4111111111111111"), "{wrong_type}");
        assert!(
            wrong_type.contains("invalid type at line 1"),
            "{wrong_type}"
        );
        let cvv = message(r#"{"number": "4", "security_code": 987, "kind": "visa"}"#);
        assert!(!cvv.contains("987"), "{cvv}");
        let variant = message(r#"{"number": "4", "security_code": "1", "kind": "secret-brand"}"#);
        assert!(!variant.contains("secret-brand"), "{variant}");
        assert_eq!(
            message(r#"{"number": "4", "kind": "visa"}"#),
            "invalid JSON body: missing field `security_code`"
        );
        let broken = message(r#"{"number": "4111111111111111""#);
        assert!(
            broken.starts_with("invalid JSON body: malformed JSON"),
            "{broken}"
        );
        assert!(!broken.contains("4111"), "{broken}");
    }
}
