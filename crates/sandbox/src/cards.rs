//! The sandbox's test cards. No bank publishes test card numbers for this
//! API, so the sandbox defines its own (listed in the README). Any other
//! number that passes the Luhn check behaves like the success card.

use serde::{Deserialize, Serialize};

/// How a payment behaves at the sandbox bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "code")]
pub enum Behavior {
    /// Succeeds at once.
    Approve,
    /// Asks for 3-D Secure; Approve succeeds, Decline fails with `3DS_error`.
    ThreeDs,
    /// Asks for 3-D Secure, which fails with `3DS_error` even when approved.
    ThreeDsFails,
    /// Declined with this code.
    Decline(String),
    /// Funds are held: `ready_to_capture`, then `session/capture`.
    Hold,
    /// Succeeds, but the token it issues becomes inactive after its first charge.
    TokenDies,
    /// Executes, then the answer is lost (the client times out).
    DropResponse,
    /// An SBP payment or binding: a QR code the customer pays or lets expire.
    Qr,
}

/// One test card.
#[derive(Debug, Clone, Copy)]
pub struct TestCard {
    /// The number.
    pub number: &'static str,
    /// What it does.
    pub description: &'static str,
}

/// Every test card, in the order the README lists them.
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: "4242424242424242",
        description: "succeeds without 3-D Secure",
    },
    TestCard {
        number: "4000000000003220",
        description: "asks for 3-D Secure; Approve succeeds, Decline fails with 3DS_error",
    },
    TestCard {
        number: "4000000000009995",
        description: "declined: insufficient_funds",
    },
    TestCard {
        number: "4000000000000002",
        description: "declined: declined_by_issuer_bank",
    },
    TestCard {
        number: "4000000000000069",
        description: "declined: bank_card_expired",
    },
    TestCard {
        number: "4000000000000101",
        description: "declined: card_number_does_not_exist",
    },
    TestCard {
        number: "4000000000003063",
        description: "asks for 3-D Secure, which fails with 3DS_error",
    },
    TestCard {
        number: "4000000000000341",
        description: "succeeds; the token it issues becomes inactive after its first charge",
    },
    TestCard {
        number: "4000000000000077",
        description: "funds held: ready_to_capture, then captured",
    },
    TestCard {
        number: "4000000000005126",
        description: "succeeds, but the answer to session/start/payment is lost (timeout)",
    },
];

/// The card's brand by its first digit (test cards are Visa; 5 is
/// Mastercard, 2 is Mir).
pub fn brand(number: &str) -> &'static str {
    match number.trim_start().chars().next() {
        Some('5') => "mastercard",
        Some('2') => "mir",
        _ => "visa",
    }
}

/// What a card number does. Invalid numbers are refused with `invalid_request`.
pub fn behavior(number: &str) -> Result<Behavior, &'static str> {
    let digits: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    if !(12..=19).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !luhn(&digits)
    {
        return Err("card number is not valid");
    }
    Ok(match digits.as_str() {
        "4000000000003220" => Behavior::ThreeDs,
        "4000000000009995" => Behavior::Decline("insufficient_funds".into()),
        "4000000000000002" => Behavior::Decline("declined_by_issuer_bank".into()),
        "4000000000000069" => Behavior::Decline("bank_card_expired".into()),
        "4000000000000101" => Behavior::Decline("card_number_does_not_exist".into()),
        "4000000000003063" => Behavior::ThreeDsFails,
        "4000000000000341" => Behavior::TokenDies,
        "4000000000000077" => Behavior::Hold,
        "4000000000005126" => Behavior::DropResponse,
        _ => Behavior::Approve,
    })
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_card_passes_luhn_and_has_its_behavior() {
        for card in TEST_CARDS {
            assert!(behavior(card.number).is_ok(), "{}", card.number);
        }
        assert_eq!(
            behavior("4000 0000 0000 9995").unwrap(),
            Behavior::Decline("insufficient_funds".into())
        );
        assert!(behavior("4242424242424241").is_err());
        assert!(behavior("abc").is_err());
    }
}
