//! New identifiers: a millisecond time prefix (so ids sort by creation) and 80 random bits.

use domain::{PaymentId, SubscriptionId, TokenId};
use ports::IdGenerator;

/// Random hex of `bytes` bytes from the system's CSPRNG.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("system randomness");
    hex::encode(buf)
}

fn suffix() -> String {
    let millis = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(0);
    format!("{:012x}{}", millis & 0xffff_ffff_ffff, random_hex(10))
}

/// Ids from time and randomness.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn payment_id(&self) -> PaymentId {
        PaymentId::parse(&format!("pay_{}", suffix())).expect("well-formed id")
    }

    fn token_id(&self) -> TokenId {
        TokenId::parse(&format!("tok_{}", suffix())).expect("well-formed id")
    }

    fn subscription_id(&self) -> SubscriptionId {
        SubscriptionId::parse(&format!("sub_{}", suffix())).expect("well-formed id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let a = RandomIds.payment_id();
        let b = RandomIds.payment_id();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), "pay_".len() + 32);
    }
}
