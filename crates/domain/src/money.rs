//! Amounts of money in minor units and their ISO 4217 currency.

use std::fmt;

/// Why a [`Currency`] or [`Money`] could not be built or combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    /// The text is not an ISO 4217 alphabetic code this crate knows.
    UnknownCurrency(String),
    /// Amounts are never negative.
    Negative(i64),
    /// Two amounts of different currencies were combined.
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit in an `i64` of minor units, or would be negative.
    Overflow,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The submitted values are not repeated: error answers echo nothing.
            Self::UnknownCurrency(_) => f.write_str("not a known ISO 4217 currency code"),
            Self::Negative(_) => f.write_str("amount must not be negative"),
            Self::CurrencyMismatch(a, b) => write!(f, "cannot combine {a} with {b}"),
            Self::Overflow => f.write_str("amount out of range"),
        }
    }
}

impl std::error::Error for MoneyError {}

/// Active ISO 4217 alphabetic codes (2024 list, funds codes excluded).
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL \
BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP \
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW \
KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO \
NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD \
SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD \
XCG XOF XPF YER ZAR ZMW ZWG";

/// An ISO 4217 currency, always upper case. Parsing is case-insensitive
/// because the bank writes `rub`, `RUB` and `usd` in its own examples.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Russian rouble.
    pub const RUB: Currency = Currency(*b"RUB");
    /// US dollar.
    pub const USD: Currency = Currency(*b"USD");

    /// Every code [`Currency::parse`] knows, upper case.
    pub fn codes() -> impl Iterator<Item = &'static str> {
        ISO_4217.split(' ')
    }

    /// Parses an alphabetic ISO 4217 code in any case.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        let known = upper.len() == 3 && ISO_4217.split(' ').any(|c| c == upper);
        if !known {
            return Err(MoneyError::UnknownCurrency(code.to_owned()));
        }
        let b = upper.as_bytes();
        Ok(Self([b[0], b[1], b[2]]))
    }

    /// The upper-case code, e.g. `"RUB"`.
    pub fn code(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

/// A non-negative amount in minor units (kopecks, cents) of one currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Builds an amount; negative amounts are refused.
    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative(minor));
        }
        Ok(Self { minor, currency })
    }

    /// Zero of a currency.
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// `self + other`, refusing mixed currencies and overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    /// `self - other`, refusing mixed currencies and results below zero.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        match self.minor.checked_sub(other.minor) {
            Some(minor) if minor >= 0 => Ok(Money { minor, ..self }),
            _ => Err(MoneyError::Overflow),
        }
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.minor, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_parse_is_case_insensitive_and_returns_upper_case() {
        assert_eq!(Currency::parse("rub").unwrap(), Currency::RUB);
        assert_eq!(Currency::parse("Usd").unwrap().code(), "USD");
    }

    #[test]
    fn currency_parse_refuses_unknown_codes() {
        for bad in ["", "RU", "RUBB", "XYZ", "12A", "руб"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn money_refuses_negative_amounts() {
        assert_eq!(Money::new(-1, Currency::RUB), Err(MoneyError::Negative(-1)));
    }

    #[test]
    fn money_arithmetic_is_checked() {
        let a = Money::new(i64::MAX, Currency::RUB).unwrap();
        let one = Money::new(1, Currency::RUB).unwrap();
        assert_eq!(a.checked_add(one), Err(MoneyError::Overflow));
        assert_eq!(one.checked_sub(a), Err(MoneyError::Overflow));
        let usd = Money::new(1, Currency::USD).unwrap();
        assert!(matches!(
            one.checked_add(usd),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert_eq!(a.checked_sub(one).unwrap().minor(), i64::MAX - 1);
    }
}
