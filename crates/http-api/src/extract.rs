//! Extractors: typed ids from the path and JSON bodies, each refusal in the
//! API's error envelope.

use axum::extract::{FromRequestParts, Path};
use axum::http::HeaderMap;
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

/// A JSON body; an empty one reads as `{}`.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}
