//! The seed flows, declines and refunds, end to end.

use app::demo::{self};
use serde_json::json;

use crate::support::{StoreKind, TestApp, flows, payments_of};

async fn seed_000_card_cit_with_3ds_issues_a_new_token(kind: StoreKind) {
    flows(kind, &["000"]).await;
}

async fn seed_001_mit_widget_refresh_and_disable(kind: StoreKind) {
    flows(kind, &["001"]).await;
}

async fn seed_002_automatic_manual_confirm_and_cancel(kind: StoreKind) {
    flows(kind, &["002"]).await;
}

async fn seed_003_fps_qr_paid_expired_and_two_bindings(kind: StoreKind) {
    flows(kind, &["003"]).await;
}

async fn every_declining_card_fails_with_its_code_verbatim(kind: StoreKind) {
    flows(kind, &["declining"]).await;
}

/// A session command is sent once per payment, even when the bank's
/// `ready_to_confirm` webhook and the starting request's answer race: a
/// repeated idempotency key at the bank is a request sent twice.
async fn every_session_command_reaches_the_bank_once(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-once").await.unwrap();
    let charges = (0..24).map(|i| {
        let body = json!({
            "customer": { "reference": "cust-once" },
            "amount": { "value": 1_000 + i, "currency": "RUB" },
            "method": { "type": "token", "token_id": token },
        });
        async move { c.post("/v1/payments", &body).await }
    });
    for (status, payment) in futures_util::future::join_all(charges).await {
        assert_eq!(status, 201, "{payment}");
    }
    for (name, flow) in demo::flows()
        .into_iter()
        .filter(|(name, _)| name.starts_with("000") || name.starts_with("002"))
    {
        flow(c).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while payments_of(c, "cust-once")
        .await
        .iter()
        .any(|p| p["status"] != "succeeded")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "charges never settled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for i in 0..24 {
        let charged = app.charges_of_amount(1_000 + i);
        assert_eq!(charged, 1, "charge {i} once");
    }
    assert_eq!(app.sandbox().repeated_keys(), Vec::<String>::new());
    app.stop().await;
}

async fn refunds_are_partial_or_full_and_never_exceed_the_payment(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let (_, paid) = c
        .post(
            "/v1/payments",
            &demo::card_payment("cust-refund", "4242424242424242", 10_000, false),
        )
        .await;
    let id = paid["id"].as_str().unwrap();
    c.wait_status(id, "succeeded").await.unwrap();
    let (status, partial) = c
        .post(
            &format!("/v1/payments/{id}/refund"),
            &json!({ "amount": { "value": 4_000, "currency": "RUB" } }),
        )
        .await;
    assert_eq!(status, 200, "{partial}");
    assert_eq!(partial["refunded_amount"]["value"], 4_000);
    let (status, too_much) = c
        .post(
            &format!("/v1/payments/{id}/refund"),
            &json!({ "amount": { "value": 6_001, "currency": "RUB" } }),
        )
        .await;
    assert_eq!(status, 422, "{too_much}");
    assert_eq!(too_much["error"]["code"], "refund_too_large");
    let (status, dollars) = c
        .post(
            &format!("/v1/payments/{id}/refund"),
            &json!({ "amount": { "value": 100, "currency": "USD" } }),
        )
        .await;
    assert_eq!(status, 422, "{dollars}");
    assert_eq!(dollars["error"]["code"], "currency_mismatch");
    let (status, rest) = c
        .post(&format!("/v1/payments/{id}/refund"), &json!({}))
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(
        rest["refunded_amount"]["value"], 10_000,
        "the default is what is left"
    );
    let (status, nothing) = c
        .post(&format!("/v1/payments/{id}/refund"), &json!({}))
        .await;
    assert_eq!(status, 422, "nothing left to refund: {nothing}");
    assert_eq!(nothing["error"]["code"], "already_refunded");
    let refunds: i64 = app
        .sandbox()
        .ledger()
        .iter()
        .filter(|e| e.kind == "refund")
        .map(|e| e.amount)
        .sum();
    assert_eq!(refunds, 10_000, "the bank refunded exactly the payment");
    let (_, unpaid) = c
        .post(
            "/v1/payments",
            &demo::card_payment("cust-refund", "4000000000009995", 500, false),
        )
        .await;
    c.wait_status(unpaid["id"].as_str().unwrap(), "failed")
        .await
        .unwrap();
    let (status, _) = c
        .post(
            &format!("/v1/payments/{}/refund", unpaid["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409, "a failed payment cannot be refunded");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_every_flow() {
    let app = TestApp::start(StoreKind::Sqlite).await;
    let results = demo::run_flows(&app.client).await;
    for r in &results {
        assert!(r.outcome.is_ok(), "{}: {:?}", r.name, r.outcome);
    }
    assert_eq!(results.len(), demo::flows().len());
    app.stop().await;
}

on_both_stores!(
    the_merchant_sees_the_banks_payment_id_card_and_fee,
    seed_000_card_cit_with_3ds_issues_a_new_token,
    seed_001_mit_widget_refresh_and_disable,
    seed_002_automatic_manual_confirm_and_cancel,
    seed_003_fps_qr_paid_expired_and_two_bindings,
    every_declining_card_fails_with_its_code_verbatim,
    every_session_command_reaches_the_bank_once,
    refunds_are_partial_or_full_and_never_exceed_the_payment,
);

async fn the_merchant_sees_the_banks_payment_id_card_and_fee(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-details").await.unwrap();
    let (_, payments) = c.get("/v1/payments?customer_reference=cust-details").await;
    let paid = &payments["data"][0];
    assert!(
        paid["bank"]["payment_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("pm_")),
        "{paid}"
    );
    assert_eq!(
        paid["method"]["card"],
        json!({ "brand": "visa", "last4": "4242" })
    );
    assert_eq!(
        paid["bank"]["fee"],
        json!({ "value": 70, "currency": "RUB" })
    );
    let serialized = paid.to_string();
    assert!(!serialized.contains("4242424242424242"), "never the PAN");
    let (_, shown) = c.get(&format!("/v1/tokens/{token}")).await;
    assert_eq!(
        shown["method"]["card"],
        json!({ "brand": "visa", "last4": "4242" })
    );
    app.stop().await;
}
