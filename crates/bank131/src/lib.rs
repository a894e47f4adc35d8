//! # bank131
//!
//! The Bank 131 / Smart Glocal acquiring protocol, without IO: the wire types
//! ([`dto`]), `X-PARTNER-SIGN` signing and verification ([`sign`]), and the
//! mapping of bank objects to domain facts ([`map`]). The HTTP gateway and
//! the sandbox both speak the protocol through this crate.
#![deny(missing_docs)]

pub mod dto;
pub mod map;
pub mod requests;
pub mod sign;

pub use map::{Bank131Webhooks, PAYMENT_ID_KEY};
pub use sign::{KeyError, Signer, Verifier, signatures_made};

/// The header carrying the project id.
pub const PROJECT_HEADER: &str = "X-PARTNER-PROJECT";
/// The header carrying the signature.
pub const SIGN_HEADER: &str = "X-PARTNER-SIGN";
/// The header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-PARTNER-IDEMPOTENCY-KEY";

/// The method paths this project uses, under `<base>/api/v1/`.
pub mod methods {
    /// `session/create`.
    pub const SESSION_CREATE: &str = "session/create";
    /// `session/start/payment`.
    pub const SESSION_START_PAYMENT: &str = "session/start/payment";
    /// `session/init/payment`.
    pub const SESSION_INIT_PAYMENT: &str = "session/init/payment";
    /// `session/confirm`.
    pub const SESSION_CONFIRM: &str = "session/confirm";
    /// `session/cancel`.
    pub const SESSION_CANCEL: &str = "session/cancel";
    /// `session/capture`.
    pub const SESSION_CAPTURE: &str = "session/capture";
    /// `session/refund`.
    pub const SESSION_REFUND: &str = "session/refund";
    /// `session/status`.
    pub const SESSION_STATUS: &str = "session/status";
    /// `token` (widget public token).
    pub const TOKEN: &str = "token";
    /// `token/info`.
    pub const TOKEN_INFO: &str = "token/info";
    /// `recurrent/status`.
    pub const RECURRENT_STATUS: &str = "recurrent/status";
    /// `recurrent/disable`.
    pub const RECURRENT_DISABLE: &str = "recurrent/disable";
}
