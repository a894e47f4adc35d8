//! Tokens: one bank token is one `tok_`, and its end reads as the bank ended it.

use std::time::{Duration, Instant};

use app::demo;
use serde_json::json;

use crate::support::{StoreKind, TestApp};

async fn an_echoed_token_creates_no_twin_and_disabling_it_stops_every_charge(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-echo").await.unwrap();
    let (status, created) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-echo", &token, "merchant", 1_000),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let paid = c
        .wait_status(created["id"].as_str().unwrap(), "succeeded")
        .await
        .unwrap();
    // The bank reported the charged token back: it is the same tok_.
    assert_eq!(paid["token"]["id"], token.as_str(), "{paid}");
    let (_, tokens) = c.get("/v1/tokens?customer_reference=cust-echo").await;
    assert_eq!(
        tokens["data"].as_array().unwrap().len(),
        1,
        "no twin: {tokens}"
    );

    let (status, _) = c
        .post(&format!("/v1/tokens/{token}/disable"), &json!({}))
        .await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    let disabled = loop {
        let (_, t) = c.get(&format!("/v1/tokens/{token}")).await;
        if t["status"] == "disabled" {
            break t;
        }
        assert!(Instant::now() < deadline, "never disabled: {t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let finished = disabled["finished_at"].as_str().unwrap();
    assert!(
        !finished.starts_with("2000") && finished >= disabled["created_at"].as_str().unwrap(),
        "the disable time, not the bank's year-2000 placeholder: {disabled}"
    );
    let (status, refused) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-echo", &token, "merchant", 1_000),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "token_inactive");
    app.stop().await;
}

on_both_stores!(
    an_echoed_token_creates_no_twin_and_disabling_it_stops_every_charge,
    a_token_disabled_while_a_charge_starts_is_never_charged,
    no_raw_token_or_card_number_is_stored_in_plaintext,
);

async fn a_token_disabled_while_a_charge_starts_is_never_charged(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let token = demo::saved_card_token(&app.client, "cust-race")
        .await
        .unwrap();
    // A slow bank: session/create takes a moment, and the merchant disables
    // the token meanwhile.
    app.sandbox().set_faults(sandbox::bank::Faults {
        api_delay_ms: 400,
        ..Default::default()
    });
    let client = app.client.clone();
    let charge = {
        let token = token.clone();
        tokio::spawn(async move {
            client
                .post(
                    "/v1/payments",
                    &demo::token_payment("cust-race", &token, "merchant", 1_000),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, _) = app
        .client
        .post(&format!("/v1/tokens/{token}/disable"), &json!({}))
        .await;
    assert_eq!(status, 202);
    let (status, payment) = charge.await.unwrap();
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["status"], "failed", "{payment}");
    assert_eq!(payment["error"]["code"], "token_inactive");
    let charged = app
        .sandbox()
        .ledger()
        .iter()
        .filter(|e| e.kind == "charge" && e.partner_payment_id.as_deref() == payment["id"].as_str())
        .count();
    assert_eq!(charged, 0, "not charged");
    app.stop().await;
}

async fn no_raw_token_or_card_number_is_stored_in_plaintext(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    // Flows that make the bank send raw tokens in answers and webhooks.
    demo::cit_with_3ds(c).await.unwrap();
    demo::mit_with_token(c).await.unwrap();
    demo::widget(c).await.unwrap();
    demo::fps_paid(c).await.unwrap();
    demo::token_lifecycle(c).await.unwrap();
    let tokens = app.sandbox().issued_tokens();
    assert!(tokens.len() >= 4, "{tokens:?}");
    let stored = app.database_bytes();
    assert!(!stored.is_empty());
    let found = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    for token in &tokens {
        assert!(!found(token), "a raw bank token is stored in plaintext");
    }
    for pan in ["4242424242424242", "4000000000003220"] {
        assert!(!found(pan), "a card number is stored");
    }
    app.stop().await;
}
