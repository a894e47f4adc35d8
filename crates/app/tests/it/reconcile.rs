//! Every open payment is settled with `session/status` when its news is
//! lost: a 3-D Secure payment whose `payment_finished` never arrives, and a
//! widget nobody used.

use std::time::Duration;

use app::demo;
use serde_json::json;

use crate::support::{StoreKind, TestApp};

async fn a_3ds_payment_whose_payment_finished_is_lost_ends_succeeded_once_checked(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-lost").await.unwrap();
    let (status, created) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-lost", &token, "client", 5_000),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let waiting = c.wait_status(&id, "requires_action").await.unwrap();
    let session = waiting["bank"]["session_id"].as_str().unwrap().to_owned();
    // The customer passes 3-D Secure, and the bank's payment_finished never
    // reaches recur (down for longer than the bank retries).
    app.sandbox().set_faults(sandbox::bank::Faults {
        lose_webhooks: 1,
        ..Default::default()
    });
    let (status, _) = c
        .sandbox(
            &format!("/sandbox/sessions/{session}/3ds"),
            &json!({ "approve": true }),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, still) = c.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(still["status"], "requires_action", "no news yet: {still}");

    // Fifteen minutes of service time without news: recur asks the bank.
    let (status, _) = c
        .post("/v1/test/clock/advance", &json!({ "seconds": 16 * 60 }))
        .await;
    assert_eq!(status, 200);
    let done = c
        .wait_payment(&id, |p| p["status"] == "succeeded")
        .await
        .unwrap();
    assert!(
        done["token"]["id"].is_string(),
        "the CIT's new token is saved from session/status: {done}"
    );
    let charged = app
        .sandbox()
        .ledger()
        .iter()
        .filter(|e| e.session_id == session)
        .count();
    assert_eq!(charged, 1, "charged once");
    app.stop().await;
}

async fn a_widget_nobody_used_is_cancelled_once_its_token_expired(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let (status, created) = c
        .post(
            "/v1/payments",
            &json!({
                "customer": { "reference": "cust-idle" },
                "amount": { "value": 10_000, "currency": "RUB" },
                "method": { "type": "widget" },
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // A day later the public token no longer works: nobody will pay.
    let (status, _) = c
        .post("/v1/test/clock/advance", &json!({ "seconds": 25 * 3600 }))
        .await;
    assert_eq!(status, 200);
    let done = c
        .wait_payment(&id, |p| p["status"] == "cancelled")
        .await
        .unwrap();
    assert_eq!(
        done["error"]["code"], "session_cancelled_by_partner",
        "{done}"
    );
    assert_eq!(done["next_action"], serde_json::Value::Null);
    app.stop().await;
}

async fn a_provider_error_on_start_is_settled_with_the_bank_never_failed(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-provider").await.unwrap();
    app.sandbox().set_faults(sandbox::bank::Faults {
        refuse_starts: vec!["provider_error".into()],
        ..Default::default()
    });
    let (status, created) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-provider", &token, "merchant", 2_000),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending", "not failed: {created}");
    let id = created["id"].as_str().unwrap();
    // session/status shows the session empty: the start never ran, so it is
    // sent again (no clock moves: an unknown outcome is checked at once).
    c.wait_status(id, "succeeded").await.unwrap();
    assert_eq!(app.charges_of_payment(id), 1, "charged exactly once");
    app.stop().await;
}

async fn a_charge_whose_session_create_failed_goes_on_as_the_same_attempt(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-resume").await.unwrap();
    let (status, sub) = c
        .post(
            "/v1/subscriptions",
            &json!({
                "customer": { "reference": "cust-resume" }, "token_id": token,
                "amount": { "value": 99_000, "currency": "RUB" },
                "interval": { "unit": "month", "count": 1 },
            }),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    let sub = sub["id"].as_str().unwrap().to_owned();
    // The charge's session/create does not answer (an HTML 500).
    app.sandbox().set_faults(sandbox::bank::Faults {
        api_5xx: 1,
        ..Default::default()
    });
    let (status, _) = c
        .post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let charges = loop {
        let (_, charges) = c.get(&format!("/v1/subscriptions/{sub}/charges")).await;
        if charges["data"][0]["status"] == "succeeded" {
            break charges;
        }
        assert!(std::time::Instant::now() < deadline, "{charges}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let data = charges["data"].as_array().unwrap();
    assert_eq!(
        data.len(),
        1,
        "one attempt, resumed, not a second one: {charges}"
    );
    assert_eq!(data[0]["attempt"], 1);
    let payment = data[0]["payment_id"].as_str().unwrap();
    assert_eq!(app.charges_of_payment(payment), 1, "charged exactly once");
    let (_, s) = c.get(&format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(
        s["failed_attempts"], 0,
        "our trouble is not the customer's: {s}"
    );
    app.stop().await;
}

on_both_stores!(
    a_redirect_from_the_bank_is_never_followed_and_the_charge_goes_on_once,
    a_provider_error_on_start_is_settled_with_the_bank_never_failed,
    a_charge_whose_session_create_failed_goes_on_as_the_same_attempt,
    a_3ds_payment_whose_payment_finished_is_lost_ends_succeeded_once_checked,
    a_widget_nobody_used_is_cancelled_once_its_token_expired,
);

/// Issue 11 #8, bank side: a `307` answer to `session/create` is not
/// followed (the gateway treats it as no answer); the payment is resumed and
/// the customer is charged exactly once.
async fn a_redirect_from_the_bank_is_never_followed_and_the_charge_goes_on_once(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-redirect").await.unwrap();
    app.sandbox().set_faults(sandbox::bank::Faults {
        api_redirects: 1,
        ..Default::default()
    });
    let (status, created) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-redirect", &token, "merchant", 4_400),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "pending", "no session yet: {created}");
    c.post("/v1/test/clock/advance", &json!({ "seconds": 60 }))
        .await;
    c.wait_status(&id, "succeeded").await.unwrap();
    let charged = app.charges_of_amount(4_400);
    assert_eq!(charged, 1, "the customer paid once");
    app.stop().await;
}
