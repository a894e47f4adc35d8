//! The token machine fed any sequence of disable requests, confirmations
//! and `token/info` answers: only table moves, a disabled token is never
//! active again, and only an active token can be charged.
#![no_main]

use domain::{
    CustomerReference, IssuedToken, PaymentId, RecurrentToken, RecurrentTokenSecret, State,
    TokenId, TokenMethod, TokenStatus,
};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|ops: Vec<u8>| {
    let now = OffsetDateTime::UNIX_EPOCH;
    let issued = IssuedToken {
        secret: RecurrentTokenSecret::parse("fuzz-token").expect("valid"),
        created_at: None,
        finished_at: None,
        is_active: true,
    };
    let mut token = RecurrentToken::issued(
        TokenId::parse("tok_fuzz").expect("valid"),
        CustomerReference::parse("fuzz").expect("valid"),
        &issued,
        TokenMethod::Card,
        PaymentId::parse("pay_fuzz").expect("valid"),
        now,
    );
    let mut disabled = false;
    for op in ops.into_iter().take(64) {
        let before = token.status();
        match op % 4 {
            0 => {
                token.request_disable();
            }
            1 => {
                let _ = token.disable_confirmed();
            }
            2 => {
                token.observe_info(true, None, now);
            }
            _ => {
                token.observe_info(false, None, now);
            }
        }
        assert!(
            TokenStatus::allows(before, token.status()),
            "{before:?} -> {:?}",
            token.status()
        );
        if disabled {
            assert_eq!(
                token.status(),
                TokenStatus::Disabled,
                "active again after disabled"
            );
        }
        disabled |= token.status() == TokenStatus::Disabled;
        assert_eq!(token.can_charge(), token.status() == TokenStatus::Active);
    }
});
