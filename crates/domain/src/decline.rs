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
        BankCode::parse(code.as_str()).map_or(Self::HardDecline, BankCode::class)
    }
}

/// Every error code recur reacts to, by name: the codes the bank documents,
/// and `token_inactive`, recur's own code for a charge refused before any bank
/// call because its token can no longer be charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BankCode {
    /// `identification_error`
    IdentificationError,
    /// `authentication_error`
    AuthenticationError,
    /// `authorization_error`
    AuthorizationError,
    /// `invalid_request`
    InvalidRequest,
    /// `idempotency_key_already_exists`
    IdempotencyKeyAlreadyExists,
    /// `session_wrong_state`
    SessionWrongState,
    /// `internal_error`
    InternalError,
    /// `provider_error`
    ProviderError,
    /// `provider_unavailable`
    ProviderUnavailable,
    /// `confirm_timeout`
    ConfirmTimeout,
    /// `capture_timeout`
    CaptureTimeout,
    /// `bank_card_expired`
    BankCardExpired,
    /// `card_number_does_not_exist`
    CardNumberDoesNotExist,
    /// `binding_is_deactivated`
    BindingIsDeactivated,
    /// `not_permitted_by_issuer_bank`
    NotPermittedByIssuerBank,
    /// `3DS_error`
    ThreeDsError,
    /// `insufficient_funds`
    InsufficientFunds,
    /// `declined_by_issuer_bank`
    DeclinedByIssuerBank,
    /// `activity_count_exceeded`
    ActivityCountExceeded,
    /// `session_cancelled`
    SessionCancelled,
    /// `session_cancelled_by_partner`
    SessionCancelledByPartner,
    /// `operation_rejected`
    OperationRejected,
    /// `qr_expired`
    QrExpired,
    /// `token_inactive` (recur's own, never sent by the bank)
    TokenInactive,
}

/// Each code's wire name and class, as data (docs and tests walk it).
const CODES: &[(BankCode, &str, DeclineClass)] = &[
    (
        BankCode::IdentificationError,
        "identification_error",
        DeclineClass::Configuration,
    ),
    (
        BankCode::AuthenticationError,
        "authentication_error",
        DeclineClass::Configuration,
    ),
    (
        BankCode::AuthorizationError,
        "authorization_error",
        DeclineClass::Configuration,
    ),
    (
        BankCode::InvalidRequest,
        "invalid_request",
        DeclineClass::Configuration,
    ),
    (
        BankCode::IdempotencyKeyAlreadyExists,
        "idempotency_key_already_exists",
        DeclineClass::Configuration,
    ),
    (
        BankCode::SessionWrongState,
        "session_wrong_state",
        DeclineClass::Configuration,
    ),
    (
        BankCode::InternalError,
        "internal_error",
        DeclineClass::RetryLater,
    ),
    (
        BankCode::ProviderError,
        "provider_error",
        DeclineClass::RetryLater,
    ),
    (
        BankCode::ProviderUnavailable,
        "provider_unavailable",
        DeclineClass::RetryLater,
    ),
    (
        BankCode::ConfirmTimeout,
        "confirm_timeout",
        DeclineClass::RetryLater,
    ),
    (
        BankCode::CaptureTimeout,
        "capture_timeout",
        DeclineClass::RetryLater,
    ),
    (
        BankCode::BankCardExpired,
        "bank_card_expired",
        DeclineClass::HardDecline,
    ),
    (
        BankCode::CardNumberDoesNotExist,
        "card_number_does_not_exist",
        DeclineClass::HardDecline,
    ),
    (
        BankCode::BindingIsDeactivated,
        "binding_is_deactivated",
        DeclineClass::HardDecline,
    ),
    (
        BankCode::NotPermittedByIssuerBank,
        "not_permitted_by_issuer_bank",
        DeclineClass::HardDecline,
    ),
    (
        BankCode::ThreeDsError,
        "3DS_error",
        DeclineClass::NeedsCustomer,
    ),
    (
        BankCode::InsufficientFunds,
        "insufficient_funds",
        DeclineClass::SoftDecline,
    ),
    (
        BankCode::DeclinedByIssuerBank,
        "declined_by_issuer_bank",
        DeclineClass::SoftDecline,
    ),
    (
        BankCode::ActivityCountExceeded,
        "activity_count_exceeded",
        DeclineClass::SoftDecline,
    ),
    (
        BankCode::SessionCancelled,
        "session_cancelled",
        DeclineClass::Cancelled,
    ),
    (
        BankCode::SessionCancelledByPartner,
        "session_cancelled_by_partner",
        DeclineClass::Cancelled,
    ),
    (
        BankCode::OperationRejected,
        "operation_rejected",
        DeclineClass::Cancelled,
    ),
    (BankCode::QrExpired, "qr_expired", DeclineClass::Cancelled),
    (
        BankCode::TokenInactive,
        "token_inactive",
        DeclineClass::HardDecline,
    ),
];

impl BankCode {
    /// Every code, in the order of the bank's documentation.
    pub fn all() -> impl Iterator<Item = Self> {
        CODES.iter().map(|(code, _, _)| *code)
    }

    /// The named code for a wire string, `None` for a code nobody told us about.
    pub fn parse(s: &str) -> Option<Self> {
        CODES
            .iter()
            .find(|(_, name, _)| *name == s)
            .map(|(code, _, _)| *code)
    }

    fn row(self) -> &'static (BankCode, &'static str, DeclineClass) {
        CODES
            .iter()
            .find(|(code, _, _)| *code == self)
            .expect("every code has a row")
    }

    /// The wire name, verbatim.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The code as an [`ErrorCode`].
    pub fn code(self) -> ErrorCode {
        ErrorCode::parse(self.as_str()).expect("every named code is a valid code")
    }

    /// What it says about trying again.
    pub fn class(self) -> DeclineClass {
        self.row().2
    }

    /// Whether the token that was charged can never be charged again: the
    /// bank says the binding is gone or the card behind it no longer exists.
    /// Other hard declines (unknown codes included) end dunning but leave the
    /// token to the merchant.
    pub fn kills_token(self) -> bool {
        matches!(
            self,
            Self::BindingIsDeactivated
                | Self::BankCardExpired
                | Self::CardNumberDoesNotExist
                | Self::TokenInactive
        )
    }

    /// Whether `code` is this one.
    pub fn is(self, code: &ErrorCode) -> bool {
        code.as_str() == self.as_str()
    }
}

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
        for code in BankCode::all() {
            assert_eq!(BankCode::parse(code.as_str()), Some(code));
            assert_eq!(DeclineClass::of(&code.code()), code.class(), "{code:?}");
        }
        assert_eq!(BankCode::all().count(), CODES.len());
    }

    #[test]
    fn only_codes_that_say_the_card_is_gone_kill_the_token() {
        let killers: Vec<_> = BankCode::all().filter(|c| c.kills_token()).collect();
        assert_eq!(
            killers,
            [
                BankCode::BankCardExpired,
                BankCode::CardNumberDoesNotExist,
                BankCode::BindingIsDeactivated,
                BankCode::TokenInactive
            ]
        );
        assert!(!BankCode::InsufficientFunds.kills_token());
    }

    #[test]
    fn unknown_codes_are_hard_declines() {
        let code = ErrorCode::parse("brand_new_code").unwrap();
        assert_eq!(DeclineClass::of(&code), DeclineClass::HardDecline);
        assert_eq!(
            BankCode::parse("brand_new_code"),
            None,
            "an unknown code kills no token"
        );
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
