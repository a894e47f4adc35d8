//! A bank webhook: any body with any `X-PARTNER-SIGN` value is verified and
//! read without a panic; a forged signature never verifies, and a body that
//! reads is read the same way twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ports::WebhookDecoder;

const BANK_PUBLIC: &str =
    include_str!("../../crates/bank131/tests/fixtures/keys/partner_public.pem");

fuzz_target!(|input: &[u8]| {
    // The first line is the header's value, the rest the body.
    let split = input
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(input.len());
    let signature = String::from_utf8_lossy(&input[..split]);
    let body = input.get(split + 1..).unwrap_or_default();
    let verifier = bank131::Verifier::from_pems([BANK_PUBLIC]).expect("the fixture key");
    let webhooks = bank131::Bank131Webhooks::new(verifier);
    assert!(
        webhooks.verify(body, &signature).is_err(),
        "a signature nobody made with the private key verified"
    );
    let first = webhooks.decode(body);
    let again = webhooks.decode(body);
    assert_eq!(first.is_ok(), again.is_ok());
    if let (Ok(a), Ok(b)) = (first, again) {
        assert_eq!(a, b);
    }
    let _ = bank131::dto::Webhook::parse(body);
});
