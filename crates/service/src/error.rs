use ports::{GatewayError, StoreError};

/// Why a use case refused or failed. Each variant maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request is well-formed but not acceptable (`422`).
    #[error("{0}")]
    Invalid(String),
    /// Refused for a named reason (`422` with that code).
    #[error("{message}")]
    Refused {
        /// Machine-readable (`already_refunded`, `currency_mismatch`, …).
        code: &'static str,
        /// For people.
        message: String,
    },
    /// A list cursor that is not one of the listed objects (`400`).
    #[error("the cursor is not an object of this list")]
    InvalidCursor,
    /// No such object (`404`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The token cannot be charged (`422 token_inactive`); nothing was sent to the bank.
    #[error("the token is not active")]
    TokenInactive,
    /// Not allowed in the object's current state (`409`).
    #[error("{0}")]
    State(String),
    /// The webhook's signature did not verify (`401`).
    #[error("invalid webhook signature")]
    Unauthorized,
    /// The bank failed (`502`).
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The database failed (`503`, or `409` on a conflict).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub(crate) fn invalid(e: impl std::fmt::Display) -> Self {
        Self::Invalid(e.to_string())
    }
}
