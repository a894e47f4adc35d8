//! Shapes that travel both ways: amounts, customers, and the names of enums.

use domain::{Currency, CustomerReference, Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The largest amount accepted, in minor units: a JavaScript client can still
/// read it back exactly, and no real charge is larger.
pub const MAX_AMOUNT: i64 = 999_999_999_999;

/// `{"value": 10000, "currency": "RUB"}`: minor units; ISO 4217, any case
/// in, upper case out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Amount {
    /// Minor units (kopecks, cents); a JSON number with no fraction
    /// (`100` or `100.0`).
    #[schema(minimum = 0, maximum = 999_999_999_999_i64)]
    #[serde(deserialize_with = "whole_number")]
    pub value: i64,
    /// ISO 4217 code, any case (the document's pattern lists every code).
    #[schema(example = "RUB")]
    pub currency: String,
}

impl Amount {
    /// As money (currency in any case).
    pub fn money(&self, field: &str) -> Result<Money, ApiError> {
        let currency = Currency::parse(&self.currency)
            .map_err(|e| ApiError::bad_request(format!("{field}.currency: {e}")))?;
        if self.value > MAX_AMOUNT {
            return Err(ApiError::invalid_field(
                "amount_too_large",
                format!("{field}.value must be at most {MAX_AMOUNT}"),
            ));
        }
        Money::new(self.value, currency)
            .map_err(|e| ApiError::bad_request(format!("{field}.value: {e}")))
    }
}

impl From<Money> for Amount {
    fn from(m: Money) -> Self {
        Self {
            value: m.minor(),
            currency: m.currency().code().to_owned(),
        }
    }
}

/// `{"reference": "cust-42"}`: the merchant's own customer reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// The merchant's reference: 1–128 characters, not all blank, no
    /// control characters.
    #[schema(
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub reference: String,
}

/// A JSON number that is a whole number, as JSON Schema's `integer` is
/// (`100.0` included); anything else is refused without echoing it.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // The range check is the caller's (`amount_too_large`); this bound
        // only keeps the cast exact.
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 =>
        {
            #[allow(clippy::cast_possible_truncation)]
            Ok(f as i64)
        }
        _ => Err(serde::de::Error::custom("not a whole number")),
    }
}

/// [`whole_number`] for an optional field (`null` or absent is `None`).
pub(crate) fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] i64);
    Ok(Option::<Whole>::deserialize(d)?.map(|Whole(n)| n))
}

impl Customer {
    /// As a checked reference.
    pub fn parse(&self) -> Result<CustomerReference, ApiError> {
        CustomerReference::parse(&self.reference)
            .map_err(|e| ApiError::bad_request(format!("customer.reference: {e}")))
    }
}

impl From<&CustomerReference> for Customer {
    fn from(c: &CustomerReference) -> Self {
        Self {
            reference: c.as_str().to_owned(),
        }
    }
}

/// How `ready_to_confirm` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Confirmation)]
pub enum ConfirmationName {
    /// Confirm at once (the default).
    Automatic,
    /// Stop in `requires_confirmation` for the merchant.
    Manual,
}

/// Who starts a token payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Initiator)]
pub enum InitiatorName {
    /// MIT: no customer present (the default).
    Merchant,
    /// CIT: the customer passes 3-D Secure.
    Client,
}

/// The unit of a subscription's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = IntervalUnit)]
pub enum IntervalUnitName {
    /// Days.
    Day,
    /// Weeks.
    Week,
    /// Calendar months.
    Month,
}

/// An SBP subscription service shown in the customer's bank app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = SubscriptionService)]
pub struct SubscriptionServiceInfo {
    /// The merchant's id of the subscription (1–128 characters).
    #[schema(
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub id: String,
    /// The name the customer sees (1–128 characters).
    #[schema(
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
}
