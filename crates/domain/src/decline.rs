//! What a bank error code means for the next attempt, and when that attempt happens.

use time::{Duration, OffsetDateTime};

use crate::ErrorCode;

/// What a bank error code says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclineClass {
    /// The provider failed; the same request may work later.
    RetryLater,
    /// The issuer declined for now (funds, limits); a later attempt may succeed.
    SoftDecline,
    /// The card or token is unusable; never retry with it. Unknown codes land here.
    HardDecline,
    /// The customer has to be present (3-D Secure / a CIT).
    NeedsCustomer,
    /// The session was cancelled (by the bank, the partner, or an unpaid QR).
    Cancelled,
    /// Our request or set-up is wrong; retrying cannot help until someone fixes it.
    Configuration,
}

impl DeclineClass {
    /// Classifies a bank error code. Unknown codes are hard declines.
    pub fn of(code: &ErrorCode) -> Self {
        Self::of_str(code.as_str())
    }

    fn of_str(code: &str) -> Self {
        match code {
            "internal_error"
            | "provider_error"
            | "provider_unavailable"
            | "confirm_timeout"
            | "capture_timeout" => Self::RetryLater,
            "insufficient_funds" | "declined_by_issuer_bank" | "activity_count_exceeded" => {
                Self::SoftDecline
            }
            "3DS_error" => Self::NeedsCustomer,
            "session_cancelled"
            | "session_cancelled_by_partner"
            | "operation_rejected"
            | "qr_expired" => Self::Cancelled,
            "identification_error"
            | "authentication_error"
            | "authorization_error"
            | "invalid_request"
            | "idempotency_key_already_exists"
            | "session_wrong_state" => Self::Configuration,
            // bank_card_expired, card_number_does_not_exist, binding_is_deactivated,
            // not_permitted_by_issuer_bank and every code nobody told us about.
            _ => Self::HardDecline,
        }
    }

    /// Whether the token that was charged can never be charged again.
    pub fn kills_token(self) -> bool {
        matches!(self, Self::HardDecline)
    }
}

/// Every error code the bank documents, with its class (for docs and tests).
pub const DOCUMENTED_CODES: &[(&str, DeclineClass)] = &[
    ("identification_error", DeclineClass::Configuration),
    ("authentication_error", DeclineClass::Configuration),
    ("authorization_error", DeclineClass::Configuration),
    ("invalid_request", DeclineClass::Configuration),
    (
        "idempotency_key_already_exists",
        DeclineClass::Configuration,
    ),
    ("session_wrong_state", DeclineClass::Configuration),
    ("internal_error", DeclineClass::RetryLater),
    ("provider_error", DeclineClass::RetryLater),
    ("provider_unavailable", DeclineClass::RetryLater),
    ("confirm_timeout", DeclineClass::RetryLater),
    ("capture_timeout", DeclineClass::RetryLater),
    ("bank_card_expired", DeclineClass::HardDecline),
    ("card_number_does_not_exist", DeclineClass::HardDecline),
    ("binding_is_deactivated", DeclineClass::HardDecline),
    ("not_permitted_by_issuer_bank", DeclineClass::HardDecline),
    ("3DS_error", DeclineClass::NeedsCustomer),
    ("insufficient_funds", DeclineClass::SoftDecline),
    ("declined_by_issuer_bank", DeclineClass::SoftDecline),
    ("activity_count_exceeded", DeclineClass::SoftDecline),
    ("session_cancelled", DeclineClass::Cancelled),
    ("session_cancelled_by_partner", DeclineClass::Cancelled),
    ("operation_rejected", DeclineClass::Cancelled),
    ("qr_expired", DeclineClass::Cancelled),
];

/// When to try a failed subscription charge again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DunningPolicy {
    soft: Vec<Duration>,
    retry_later: Vec<Duration>,
}

/// The dunning decision for one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dunning {
    /// Try again at this time.
    RetryAt(OffsetDateTime),
    /// Stop retrying; the customer or the merchant has to act.
    GiveUp,
}

impl Default for DunningPolicy {
    /// Soft declines: 1, 3 and 7 days after the failure. Provider trouble:
    /// 1 hour, 6 hours, 1 day, 3 days. Everything else gives up at once.
    fn default() -> Self {
        Self {
            soft: vec![Duration::days(1), Duration::days(3), Duration::days(7)],
            retry_later: vec![
                Duration::hours(1),
                Duration::hours(6),
                Duration::days(1),
                Duration::days(3),
            ],
        }
    }
}

impl DunningPolicy {
    /// A custom schedule: the delay before each retry after a soft decline and
    /// after a provider failure. An empty schedule never retries.
    /// Delays must be positive.
    pub fn new(soft: Vec<Duration>, retry_later: Vec<Duration>) -> Option<Self> {
        let positive = |d: &Duration| d.is_positive();
        (soft.iter().all(positive) && retry_later.iter().all(positive))
            .then_some(Self { soft, retry_later })
    }

    /// Decides what follows the failure of attempt number `attempt` (1-based)
    /// with the given class, at `now`.
    pub fn next(&self, class: DeclineClass, attempt: u32, now: OffsetDateTime) -> Dunning {
        let schedule = match class {
            DeclineClass::SoftDecline => &self.soft,
            DeclineClass::RetryLater => &self.retry_later,
            DeclineClass::HardDecline
            | DeclineClass::NeedsCustomer
            | DeclineClass::Cancelled
            | DeclineClass::Configuration => return Dunning::GiveUp,
        };
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        match schedule.get(index) {
            Some(delay) => Dunning::RetryAt(now + *delay),
            None => Dunning::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_its_class() {
        for (code, class) in DOCUMENTED_CODES {
            assert_eq!(
                DeclineClass::of(&ErrorCode::parse(code).unwrap()),
                *class,
                "{code}"
            );
        }
    }

    #[test]
    fn unknown_codes_are_hard_declines() {
        let code = ErrorCode::parse("brand_new_code").unwrap();
        assert_eq!(DeclineClass::of(&code), DeclineClass::HardDecline);
        assert!(DeclineClass::of(&code).kills_token());
    }

    #[test]
    fn default_policy_retries_soft_declines_three_times_then_gives_up() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let p = DunningPolicy::default();
        assert_eq!(
            p.next(DeclineClass::SoftDecline, 1, now),
            Dunning::RetryAt(now + Duration::days(1))
        );
        assert_eq!(
            p.next(DeclineClass::SoftDecline, 3, now),
            Dunning::RetryAt(now + Duration::days(7))
        );
        assert_eq!(p.next(DeclineClass::SoftDecline, 4, now), Dunning::GiveUp);
        assert_eq!(p.next(DeclineClass::HardDecline, 1, now), Dunning::GiveUp);
        assert_eq!(p.next(DeclineClass::NeedsCustomer, 1, now), Dunning::GiveUp);
    }

    #[test]
    fn custom_policy_refuses_non_positive_delays() {
        assert!(DunningPolicy::new(vec![Duration::ZERO], vec![]).is_none());
        let p = DunningPolicy::new(vec![], vec![Duration::minutes(5)]).unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(p.next(DeclineClass::SoftDecline, 1, now), Dunning::GiveUp);
        assert_eq!(
            p.next(DeclineClass::RetryLater, 1, now),
            Dunning::RetryAt(now + Duration::minutes(5))
        );
    }
}
