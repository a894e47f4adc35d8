//! The one error type of the merchant API: `{"error": {"code", "message"}}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ports::{GatewayError, StoreError};
use serde::Serialize;
use service::ServiceError;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// `400 invalid_request`: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// `400` with a code naming the rule a field broke (`metadata_too_large`, …).
    pub fn invalid_field(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `401 unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <key>` header is required",
        )
    }

    /// `404 not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_request", m)
            }
            ServiceError::Refused { code, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ServiceError::NotFound(what) => Self::not_found(what),
            // A well-formed cursor naming nothing in the list: the object
            // the request names is not found (a malformed one is `400`).
            ServiceError::InvalidCursor => Self::new(
                StatusCode::NOT_FOUND,
                "cursor_not_found",
                "the cursor (starting_after, after) names no object of this list",
            ),
            ServiceError::TokenInactive => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "token_inactive",
                "the token is not active; nothing was sent to the bank",
            ),
            ServiceError::State(m) => Self::new(StatusCode::CONFLICT, "invalid_state", m),
            ServiceError::Unauthorized => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "webhook signature invalid",
            ),
            ServiceError::Gateway(g) => match g {
                GatewayError::Permanent { code, message } => Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_error",
                    format!("the bank refused: {code} ({message})"),
                ),
                other => Self::new(StatusCode::BAD_GATEWAY, "provider_error", other.to_string()),
            },
            ServiceError::Store(StoreError::Conflict(m)) => {
                Self::new(StatusCode::CONFLICT, "conflict", m)
            }
            ServiceError::Store(StoreError::NotFound) => Self::not_found("object"),
            ServiceError::Store(other) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                other.to_string(),
            ),
        }
    }
}

/// The error envelope every error answer has.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable (`invalid_request`, `token_inactive`, …).
    pub code: &'static str,
    /// For people; never quotes a card number or a CVV.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
