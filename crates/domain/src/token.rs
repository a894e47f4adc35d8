//! Recurrent tokens: what the bank issued after a successful payment, and whether it can still be charged.

use time::OffsetDateTime;

use crate::machine::{Applied, Ignored, State, Transition, TransitionError, state_names};
use crate::{CustomerReference, PaymentId, RecurrentTokenSecret, TokenId};

/// A token's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenStatus {
    /// Can be charged.
    Active,
    /// We asked the bank to disable it and are waiting for its answer. Never charged.
    Disabling,
    /// The bank says it is inactive. Never charged again.
    Disabled,
}

impl State for TokenStatus {
    state_names! {
        Active => "active",
        Disabling => "disabling",
        Disabled => "disabled",
    }
    const MACHINE: &'static str = "RecurrentToken";
    const TRANSITIONS: &'static [Transition<Self>] = &[
        Transition {
            from: Self::Active,
            on: "disable requested",
            to: Self::Disabling,
        },
        Transition {
            from: Self::Active,
            on: "bank reports is_active=false",
            to: Self::Disabled,
        },
        Transition {
            from: Self::Disabling,
            on: "recurrent/disable confirmed",
            to: Self::Disabled,
        },
        Transition {
            from: Self::Disabling,
            on: "bank reports is_active=false",
            to: Self::Disabled,
        },
    ];
}

/// Which rail a token charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenMethod {
    /// A bank card.
    Card,
    /// An SBP (Faster Payments System) binding.
    Fps,
}

impl TokenMethod {
    /// The contract's name: `card` or `fps`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Fps => "fps",
        }
    }
}

/// A saved recurrent token.
///
/// Seed 001's token lifecycle through [`crate::RecurrentToken`]:
/// token/info, then recurrent/disable.
///
/// ```
/// use domain::*;
/// let now = time::OffsetDateTime::UNIX_EPOCH;
/// let issued = IssuedToken {
///     secret: RecurrentTokenSecret::parse("e9876f32").unwrap(),
///     created_at: None, finished_at: None, is_active: true,
/// };
/// let mut token = RecurrentToken::issued(
///     TokenId::parse("tok_1").unwrap(),
///     CustomerReference::parse("lucky").unwrap(),
///     &issued, TokenMethod::Card, PaymentId::parse("pay_1").unwrap(), now);
/// assert!(token.can_charge());
/// token.observe_info(true, None, now);            // token/info: still active
/// token.request_disable();                        // merchant asks
/// assert_eq!(token.status(), TokenStatus::Disabling);
/// assert!(!token.can_charge());                   // never charged from here on
/// token.disable_confirmed().unwrap();             // recurrent/disable answered
/// assert_eq!(token.status(), TokenStatus::Disabled);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrentToken {
    /// The merchant-facing id.
    pub id: TokenId,
    /// Whose token it is.
    pub customer: CustomerReference,
    /// The bank's raw token.
    pub secret: RecurrentTokenSecret,
    /// Card or SBP.
    pub method: TokenMethod,
    /// The payment that produced it.
    pub source_payment_id: PaymentId,
    /// The SBP subscription service it was bound for, if any.
    pub subscription_service_id: Option<String>,
    /// The card behind it, as the bank showed it.
    pub card: Option<crate::CardSummary>,
    /// The bank's expiry; kept but not enforced, as the bank does not enforce it.
    pub finished_at: Option<OffsetDateTime>,
    /// When the bank was last asked about it.
    pub last_checked_at: Option<OffsetDateTime>,
    /// When we saved it.
    pub created_at: OffsetDateTime,
    status: TokenStatus,
}

impl RecurrentToken {
    /// A token as the bank issued it; `is_active=false` makes it disabled from the start.
    pub fn issued(
        id: TokenId,
        customer: CustomerReference,
        issued: &crate::IssuedToken,
        method: TokenMethod,
        source_payment_id: PaymentId,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            customer,
            secret: issued.secret.clone(),
            method,
            source_payment_id,
            subscription_service_id: None,
            card: None,
            finished_at: issued.finished_at,
            last_checked_at: None,
            created_at: now,
            status: if issued.is_active {
                TokenStatus::Active
            } else {
                TokenStatus::Disabled
            },
        }
    }

    /// Rebuilds a token from storage.
    #[must_use]
    pub fn with_status(mut self, status: TokenStatus) -> Self {
        self.status = status;
        self
    }

    /// The status.
    pub fn status(&self) -> TokenStatus {
        self.status
    }

    /// Whether a payment may be sent with this token. `finished_at` is not
    /// looked at: the bank itself ignores it.
    pub fn can_charge(&self) -> bool {
        self.status == TokenStatus::Active
    }

    /// The merchant asks to disable the token. It stops being chargeable at once.
    pub fn request_disable(&mut self) -> Applied<TokenStatus> {
        match self.status {
            TokenStatus::Active => self.move_to(TokenStatus::Disabling),
            TokenStatus::Disabling | TokenStatus::Disabled => Applied::Ignored(Ignored::Duplicate),
        }
    }

    /// The bank confirmed `recurrent/disable`.
    pub fn disable_confirmed(&mut self) -> Result<Applied<TokenStatus>, TransitionError> {
        match self.status {
            TokenStatus::Active => Err(TransitionError::new(
                self.status,
                "confirm the disabling of",
            )),
            TokenStatus::Disabling => Ok(self.move_to(TokenStatus::Disabled)),
            TokenStatus::Disabled => Ok(Applied::Ignored(Ignored::Duplicate)),
        }
    }

    /// The bank answered `token/info`. An inactive token is disabled for
    /// good; an active answer never revives a token we are disabling.
    pub fn observe_info(
        &mut self,
        is_active: bool,
        finished_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Applied<TokenStatus> {
        self.last_checked_at = Some(now);
        if let Some(finished) = finished_at {
            // A disabled token reads as finished in the year 2000 (the bank's
            // placeholder): what the merchant wants to know is when it ended.
            self.finished_at = Some(if !is_active && finished < self.created_at {
                self.finished_at.filter(|f| *f <= now).unwrap_or(now)
            } else {
                finished
            });
        }
        if is_active || self.status == TokenStatus::Disabled {
            Applied::Ignored(Ignored::Duplicate)
        } else {
            self.move_to(TokenStatus::Disabled)
        }
    }

    fn move_to(&mut self, to: TokenStatus) -> Applied<TokenStatus> {
        let from = self.status;
        debug_assert!(TokenStatus::allows(from, to));
        self.status = to;
        Applied::Changed { from, to }
    }
}
