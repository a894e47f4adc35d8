//! How a payment is paid and confirmed.

use crate::TokenId;

use super::error::PaymentError;

/// Who starts a payment with a saved token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// MIT: the merchant charges without the customer.
    Merchant,
    /// CIT: the customer is present and passes 3-D Secure.
    Client,
}

/// An SBP subscription service (`subscription_service_info`): lets one
/// customer bind several subscriptions at the same bank.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionService {
    id: String,
    name: String,
}

impl SubscriptionService {
    /// Both parts must be 1–128 printable characters.
    pub fn new(id: &str, name: &str) -> Result<Self, PaymentError> {
        let ok = |s: &str| {
            !s.trim().is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control)
        };
        if ok(id) && ok(name) {
            Ok(Self {
                id: id.to_owned(),
                name: name.to_owned(),
            })
        } else {
            Err(PaymentError::InvalidSubscriptionService)
        }
    }

    /// The subscription's identifier at the merchant.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name the customer sees in the bank app.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How the customer pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethod {
    /// Card data entered once (the data itself never reaches the domain).
    Card,
    /// The bank's widget collects the card.
    Widget {
        /// The widget shows the bank's "I agree to recurring payments" box,
        /// and a token is saved only if the customer ticks it.
        recurrent_checkbox: bool,
    },
    /// A saved recurrent token.
    Token {
        /// The merchant-facing token.
        token_id: TokenId,
        /// MIT or CIT.
        initiator: Initiator,
    },
    /// An SBP payment by QR code / deeplink.
    Fps {
        /// Optional subscription service shown in the bank app.
        subscription_service: Option<SubscriptionService>,
    },
    /// An SBP account binding without a real charge.
    FpsBinding {
        /// Optional subscription service shown in the bank app.
        subscription_service: Option<SubscriptionService>,
    },
}

impl PaymentMethod {
    /// The contract's name of the method (`card`, `widget`, `token`, `fps`, `fps_binding`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Widget { .. } => "widget",
            Self::Token { .. } => "token",
            Self::Fps { .. } => "fps",
            Self::FpsBinding { .. } => "fps_binding",
        }
    }

    /// Whether this is an SBP method (its tokens are SBP tokens).
    pub fn is_fps(&self) -> bool {
        matches!(self, Self::Fps { .. } | Self::FpsBinding { .. })
    }
}

/// How `ready_to_confirm` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Confirmation {
    /// Confirm at once.
    #[default]
    Automatic,
    /// Wait in `requires_confirmation` for the merchant.
    Manual,
}

/// Card data for a first payment. It goes straight to the bank: never stored,
/// never logged (`Debug` masks everything but the last four digits). Once
/// built, every part is digits of the right length and the month is 01–12.
///
/// ```
/// use domain::CardData;
/// let card = CardData::new("4242 4242 4242 4242", "3", "29", "123", None).unwrap();
/// assert_eq!((card.number(), card.expiry_month()), ("4242424242424242", "03"));
/// assert_eq!(format!("{card:?}"), "CardData(**** 4242, cvv ***)");
/// assert!(CardData::new("4242", "13", "29", "123", None).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CardData {
    number: String,
    expiry_month: String,
    expiry_year: String,
    security_code: String,
    holder_name: Option<String>,
}

/// Which part of the card data is wrong (the value itself is never quoted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardError {
    /// The number is not 12–19 digits.
    Number,
    /// The month is not 1–12.
    ExpiryMonth,
    /// The year is not 2–4 digits.
    ExpiryYear,
    /// The CVV/CVC is not 3–4 digits.
    SecurityCode,
}

impl CardError {
    /// The contract's field name of the wrong part, under `method.card`.
    pub fn field(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::ExpiryMonth => "expiry_month",
            Self::ExpiryYear => "expiry_year",
            Self::SecurityCode => "security_code",
        }
    }
}

impl std::fmt::Display for CardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number => f.write_str("number must be 12–19 digits"),
            Self::ExpiryMonth => f.write_str("expiry_month must be 01–12"),
            Self::ExpiryYear => f.write_str("expiry_year must be 2–4 digits"),
            Self::SecurityCode => f.write_str("security_code must be 3–4 digits"),
        }
    }
}

impl std::error::Error for CardError {}

/// `s` without white space, when it is digits only and `len` long.
fn digits(
    s: &str,
    len: std::ops::RangeInclusive<usize>,
    error: CardError,
) -> Result<String, CardError> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if len.contains(&clean.len()) && clean.bytes().all(|b| b.is_ascii_digit()) {
        Ok(clean)
    } else {
        Err(error)
    }
}

impl CardData {
    /// Checks and normalizes card data (white space dropped, the month as `MM`).
    pub fn new(
        number: &str,
        expiry_month: &str,
        expiry_year: &str,
        security_code: &str,
        holder_name: Option<String>,
    ) -> Result<Self, CardError> {
        let month = digits(expiry_month, 1..=2, CardError::ExpiryMonth)?;
        if !(1..=12).contains(&month.parse::<u8>().unwrap_or(0)) {
            return Err(CardError::ExpiryMonth);
        }
        Ok(Self {
            number: digits(number, 12..=19, CardError::Number)?,
            expiry_month: format!("{month:0>2}"),
            expiry_year: digits(expiry_year, 2..=4, CardError::ExpiryYear)?,
            security_code: digits(security_code, 3..=4, CardError::SecurityCode)?,
            holder_name,
        })
    }

    /// The card number (PAN), digits only.
    pub fn number(&self) -> &str {
        &self.number
    }
    /// `MM`.
    pub fn expiry_month(&self) -> &str {
        &self.expiry_month
    }
    /// `YY` or `YYYY`.
    pub fn expiry_year(&self) -> &str {
        &self.expiry_year
    }
    /// CVV/CVC.
    pub fn security_code(&self) -> &str {
        &self.security_code
    }
    /// The name on the card.
    pub fn holder_name(&self) -> Option<&str> {
        self.holder_name.as_deref()
    }
    /// The last four digits, the only part that may be shown.
    pub fn last4(&self) -> &str {
        let n = self.number.len();
        self.number.get(n.saturating_sub(4)..).unwrap_or("")
    }
}

impl std::fmt::Debug for CardData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardData(**** {}, cvv ***)", self.last4())
    }
}
