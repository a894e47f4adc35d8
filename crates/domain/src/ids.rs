//! Identifiers and other validated strings.
//!
//! Every type here is built by a fallible constructor: once you hold one, it is valid.

use std::fmt;

/// Why a string was refused as an identifier or reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId {
    /// Which kind of value was being parsed, e.g. `"payment id"`.
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.kind, self.reason)
    }
}

impl std::error::Error for InvalidId {}

const MAX_ID_LEN: usize = 64;

fn check_prefixed(kind: &'static str, prefix: &str, raw: &str) -> Result<(), InvalidId> {
    let err = |reason| InvalidId { kind, reason };
    let Some(rest) = raw.strip_prefix(prefix) else {
        return Err(err("wrong prefix"));
    };
    if rest.is_empty() {
        return Err(err("empty after the prefix"));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(err("too long"));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(err("only ASCII letters, digits, '_' and '-' are allowed"));
    }
    Ok(())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("The prefix every ", $kind, " starts with.")]
            pub const PREFIX: &'static str = $prefix;

            #[doc = concat!("Parses a ", $kind, " such as `", $prefix, "…`.")]
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                check_prefixed($kind, $prefix, raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A merchant-facing payment, `pay_…`.
    PaymentId, "pay_", "payment id"
);
prefixed_id!(
    /// A merchant-facing recurrent token handle, `tok_…` (never the bank's raw token).
    TokenId, "tok_", "token id"
);
prefixed_id!(
    /// A subscription, `sub_…`.
    SubscriptionId, "sub_", "subscription id"
);
prefixed_id!(
    /// A merchant event in the feed, `evt_…`.
    EventId, "evt_", "event id"
);
prefixed_id!(
    /// The bank's payment session, `ps_…`.
    BankSessionId, "ps_", "bank session id"
);

/// The merchant's own reference for a customer (1–128 printable characters).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CustomerReference(String);

impl CustomerReference {
    /// Parses a customer reference.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let err = |reason| InvalidId {
            kind: "customer reference",
            reason,
        };
        if raw.trim().is_empty() {
            return Err(err("must not be empty"));
        }
        if raw.chars().count() > 128 {
            return Err(err("longer than 128 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(err("contains control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bank's raw recurrent token. It is a secret: whoever holds it can charge
/// the customer, so `Debug` and `Display` print `***` and only
/// [`RecurrentTokenSecret::expose`] gives the value (to the gateway and the
/// encrypting store).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RecurrentTokenSecret(String);

impl RecurrentTokenSecret {
    /// Parses a token: 1–512 visible ASCII characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let err = |reason| InvalidId {
            kind: "recurrent token",
            reason,
        };
        if raw.is_empty() {
            return Err(err("must not be empty"));
        }
        if raw.len() > 512 {
            return Err(err("longer than 512 bytes"));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("only visible ASCII characters are allowed"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The raw token, for the bank gateway and the encrypting store only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecurrentTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecurrentTokenSecret(***)")
    }
}

impl fmt::Display for RecurrentTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A bank error code, kept verbatim (`insufficient_funds`, `3DS_error`, or a
/// code nobody has documented yet).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ErrorCode(String);

impl ErrorCode {
    /// Parses a code: 1–64 visible ASCII characters, case kept.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let err = |reason| InvalidId {
            kind: "error code",
            reason,
        };
        if raw.is_empty() || raw.len() > 64 {
            return Err(err("must be 1 to 64 bytes"));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("only visible ASCII characters are allowed"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The code as the bank wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_ids_check_prefix_and_charset() {
        assert!(PaymentId::parse("pay_01HXYZ").is_ok());
        assert!(PaymentId::parse("tok_01HXYZ").is_err());
        assert!(PaymentId::parse("pay_").is_err());
        assert!(PaymentId::parse("pay_a b").is_err());
        assert!(PaymentId::parse(&format!("pay_{}", "a".repeat(61))).is_err());
        assert!(BankSessionId::parse("ps_3230").is_ok());
    }

    #[test]
    fn secret_token_never_prints_its_value() {
        let raw = "feda2b2106a2e8747bbdc4c9f53c7f5f6ab845ffa1b7cc68ca839720af99b3d1";
        let token = RecurrentTokenSecret::parse(raw).unwrap();
        assert!(!format!("{token:?}").contains("feda"));
        assert!(!format!("{token}").contains("feda"));
        assert_eq!(token.expose(), raw);
    }

    #[test]
    fn customer_reference_refuses_empty_and_control_characters() {
        assert!(CustomerReference::parse("user@131.ru").is_ok());
        assert!(CustomerReference::parse(" ").is_err());
        assert!(CustomerReference::parse("a\nb").is_err());
        assert!(CustomerReference::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn error_codes_are_kept_verbatim() {
        assert_eq!(ErrorCode::parse("3DS_error").unwrap().as_str(), "3DS_error");
        assert!(ErrorCode::parse("").is_err());
    }
}
