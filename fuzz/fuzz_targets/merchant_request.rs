//! A merchant request body: any bytes become a typed request and then a
//! use-case command, or a refusal; never a panic, and a refusal never quotes
//! a card number or a CVV it was given.
#![no_main]

use http_api::wire::{CreatePaymentIn, CreateSubscriptionIn, RefundIn, UpdateSubscriptionIn};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<CreatePaymentIn>(body) {
        if let Err(refused) = request.command() {
            let text = format!("{refused:?}");
            assert!(!text.contains("4111111111111111"), "{text}");
        }
    }
    if let Ok(request) = serde_json::from_slice::<CreateSubscriptionIn>(body) {
        let _ = request.command();
    }
    if let Ok(request) = serde_json::from_slice::<UpdateSubscriptionIn>(body) {
        let _ = request.command();
    }
    if let Ok(request) = serde_json::from_slice::<RefundIn>(body) {
        let _ = request.amount.map(|a| a.money("amount"));
    }
});
