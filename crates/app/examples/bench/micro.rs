//! The per-operation costs: one RSA-2048 `X-PARTNER-SIGN` signature and its
//! verification, one AES-256-GCM token seal and open, one bank fact applied.

use bank131::{Signer, Verifier};
use domain::{
    BankFact, Confirmation, Currency, CustomerReference, Money, NewPayment, Payment, PaymentId,
    PaymentMethod,
};
use store_sql::crypto::TokenKeys;

use crate::measure::{per_op, time};

/// RSA-2048 signatures per second on one core with aws-lc-rs, and the table.
pub fn run() -> (f64, String) {
    let signer = Signer::generate().expect("key");
    let verifier =
        Verifier::from_pems([signer.public_pem().expect("pem").as_str()]).expect("verifier");
    let body = br#"{"session_id":"ps_3230","payment_details":{"type":"recurrent","recurrent":{"token":"feda2b21"}}}"#;
    let signature = signer.sign(body).expect("sign");
    let n = 500;
    let sign = time(n, || {
        signer.sign(body).expect("sign");
    });
    let verify = time(n, || assert!(verifier.verify(body, &signature)));
    let keys = TokenKeys::ephemeral();
    let secret = "feda2b2106a2e8747bbdc4c9f53c7f5f6ab845ffa1b7cc68ca839720af99b3d1";
    let sealed = keys.seal("tok_1", secret);
    let seal = time(n * 20, || {
        keys.seal("tok_1", secret);
    });
    let open = time(n * 20, || {
        keys.open("tok_1", &sealed).expect("open");
    });
    let now = time::OffsetDateTime::now_utc();
    let fresh = Payment::new(
        NewPayment {
            id: PaymentId::parse("pay_bench").expect("id"),
            customer: CustomerReference::parse("c").expect("ref"),
            amount: Money::new(100, Currency::RUB).expect("money"),
            method: PaymentMethod::Card,
            save_token: false,
            confirmation: Confirmation::Automatic,
            return_url: None,
            description: None,
            metadata: None,
        },
        now,
    )
    .expect("payment");
    let apply = time(n * 100, || {
        let mut p = fresh.clone();
        p.apply(BankFact::Succeeded { token: None }, now);
    });
    let table = [
        "| what | per operation |\n| --- | --- |".to_owned(),
        format!(
            "| RSA-2048 `X-PARTNER-SIGN` signature (aws-lc-rs) | {} |",
            per_op(sign, n)
        ),
        format!(
            "| RSA-2048 signature verification | {} |",
            per_op(verify, n)
        ),
        format!("| AES-256-GCM token seal | {} |", per_op(seal, n * 20)),
        format!("| AES-256-GCM token open | {} |", per_op(open, n * 20)),
        format!(
            "| apply one bank fact to a payment (domain) | {} |",
            per_op(apply, n * 100)
        ),
    ]
    .join("\n");
    (f64::from(n) / sign.as_secs_f64(), table)
}
