//! Webhooks tripled, reversed, forged, late, and the faults around them.

use std::time::{Duration, Instant};

use app::demo::{self};
use serde_json::json;

use crate::support::{StoreKind, TestApp, count, events, payments_of};

async fn webhooks_tripled_and_reversed_end_in_the_same_state(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    app.sandbox().set_faults(sandbox::bank::Faults {
        duplicate_webhooks: 2,
        reverse_webhooks: true,
        ..Default::default()
    });
    let c = &app.client;
    demo::cit_with_3ds(c).await.unwrap();
    demo::manual_confirm(c).await.unwrap();
    demo::fps_paid(c).await.unwrap();
    demo::fps_expired(c).await.unwrap();
    // Let every copy arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.sandbox().webhook_stats().delivered < 3 * 9 {
        assert!(
            Instant::now() < deadline,
            "webhooks still arriving: {:?}",
            app.sandbox().webhook_stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = events(c).await;
    for customer in ["cust-cit", "cust-manual", "cust-fps"] {
        for p in &payments_of(c, customer).await {
            let id = p["id"].as_str().unwrap();
            let status = p["status"].as_str().unwrap();
            let terminal_events = ["payment.succeeded", "payment.failed", "payment.cancelled"]
                .iter()
                .map(|k| count(&all, k, id))
                .sum::<usize>();
            assert_eq!(
                terminal_events, 1,
                "{id} ({status}) must announce its end exactly once"
            );
            let created: Vec<_> = all
                .iter()
                .filter(|e| e["type"] == "token.created" && e["data"]["source_payment_id"] == id)
                .map(|e| e["data"]["id"].clone())
                .collect();
            // A charge with a saved token may show that token (the bank
            // echoes it) without creating one.
            assert!(
                created.len() <= 1 && created.iter().all(|t| *t == p["token"]["id"]),
                "{id}: one token at most, and the one shown: {created:?} vs {}",
                p["token"]
            );
        }
    }
    let (_, tokens) = c.get("/v1/tokens?customer_reference=cust-fps").await;
    assert_eq!(
        tokens["data"].as_array().unwrap().len(),
        1,
        "the paid QR saved exactly one token"
    );
    app.stop().await;
}

async fn a_restart_between_action_required_and_payment_finished_loses_nothing(kind: StoreKind) {
    let mut app = TestApp::start(kind).await;
    let token = demo::saved_card_token(&app.client, "cust-restart")
        .await
        .unwrap();
    let (status, created) = app
        .client
        .post(
            "/v1/payments",
            &demo::token_payment("cust-restart", &token, "client", 5_000),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let waiting = app
        .client
        .wait_status(&id, "requires_action")
        .await
        .unwrap();
    let session = waiting["bank"]["session_id"].as_str().unwrap().to_owned();
    let key_before = app.client.clone();

    app.restart().await;
    assert_eq!(
        app.api_key(),
        app.first_key,
        "the generated API key is kept"
    );
    let (status, _) = key_before.get("/healthz").await;
    assert_eq!(status, 0, "the old server is gone");
    assert_eq!(
        app.client.get(&format!("/v1/payments/{id}")).await.1["status"],
        "requires_action"
    );
    let (status, _) = app
        .client
        .sandbox(
            &format!("/sandbox/sessions/{session}/3ds"),
            &json!({ "approve": true }),
        )
        .await;
    assert_eq!(status, 200, "the sandbox kept the session");
    let done = app
        .client
        .wait_payment(&id, |p| {
            p["status"] == "succeeded" && p["token"]["id"].is_string()
        })
        .await
        .unwrap();
    assert_ne!(done["token"]["id"], token.as_str());
    // The token saved before the restart still charges.
    let (status, mit) = app
        .client
        .post(
            "/v1/payments",
            &demo::token_payment("cust-restart", &token, "merchant", 700),
        )
        .await;
    assert_eq!(status, 201, "{mit}");
    app.client
        .wait_status(mit["id"].as_str().unwrap(), "succeeded")
        .await
        .unwrap();
    app.stop().await;
}

async fn a_bank_timeout_after_execution_is_reconciled_and_charged_once(kind: StoreKind) {
    let app = TestApp::start_with(kind, |c| c.bank_timeout = Duration::from_secs(1)).await;
    // The answer to session/start/payment is lost, and no webhook gets through:
    // only session/status can tell what happened.
    app.sandbox().set_faults(sandbox::bank::Faults {
        hang_ms: 3_000,
        fail_webhook_deliveries: 10_000,
        ..Default::default()
    });
    let started = Instant::now();
    let (status, created) = app
        .client
        .post(
            "/v1/payments",
            &demo::card_payment("cust-lost", "4000000000005126", 12_345, false),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["status"], "pending",
        "the outcome is unknown, not failed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the answer was lost"
    );
    let id = created["id"].as_str().unwrap();
    app.client.wait_status(id, "succeeded").await.unwrap();
    let session = created["bank"]["session_id"].as_str().unwrap();
    let charges: Vec<_> = app
        .sandbox()
        .ledger()
        .into_iter()
        .filter(|e| e.session_id == session && e.kind == "charge")
        .collect();
    assert_eq!(charges.len(), 1, "charged exactly once: {charges:?}");
    assert_eq!(charges[0].amount, 12_345);
    assert_eq!(
        payments_of(&app.client, "cust-lost").await.len(),
        1,
        "never re-sent as a new payment"
    );
    app.stop().await;
}

/// The workers' idle polling, set long so that only a wake-up can carry
/// the work within the test's bound.
const NO_POLL: Duration = Duration::from_secs(600);

async fn a_webhook_is_applied_within_moments_of_its_arrival(kind: StoreKind) {
    let app = TestApp::start_with(kind, |c| c.worker_poll = NO_POLL).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-fast").await.unwrap();
    let (_, created) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-fast", &token, "client", 300),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let waiting = c.wait_status(id, "requires_action").await.unwrap();
    let session = waiting["bank"]["session_id"].as_str().unwrap();
    // Only the payment_finished webhook can move it now.
    let approved = Instant::now();
    c.sandbox(
        &format!("/sandbox/sessions/{session}/3ds"),
        &json!({ "approve": true }),
    )
    .await;
    c.wait_status(id, "succeeded").await.unwrap();
    let took = approved.elapsed();
    // The contract's "normally within 100 ms", with room for a loaded CI machine.
    assert!(
        took < Duration::from_secs(1),
        "the webhook took {took:?} to apply"
    );
    app.stop().await;
}

/// A `ready_to_confirm` that arrives by webhook, with no request of ours
/// waiting for it (the customer paid in the bank's widget), is confirmed at
/// once: the webhook wakes the inbox, and the applied webhook wakes the
/// outbox, which sends the confirm. Neither worker polls within the test.
async fn a_ready_to_confirm_webhook_is_confirmed_at_once_not_at_the_next_poll(kind: StoreKind) {
    let app = TestApp::start_with(kind, |c| c.worker_poll = NO_POLL).await;
    let c = &app.client;
    let body = json!({
        "customer": { "reference": "cust-wake" },
        "amount": { "value": 700, "currency": "RUB" },
        "method": { "type": "widget" },
    });
    let (status, created) = c.post("/v1/payments", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let public = created["next_action"]["public_token"].as_str().unwrap();
    let paid = Instant::now();
    let (status, answer) = c
        .sandbox(
            &format!("/sandbox/widget/{public}/pay"),
            &json!({ "number": "4242424242424242" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // ready_to_confirm -> inbox -> outbox: session/confirm -> payment_finished -> inbox.
    let done = c.wait_status(id, "succeeded").await.unwrap();
    let took = paid.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "confirmed and settled after {took:?}: a poll, not a wake-up, carried it"
    );
    assert_eq!(done["amount"]["value"], 700);
    let charged = app.charges_of_amount(700);
    assert_eq!(charged, 1, "charged once");
    // A second confirm would have reused the payment's confirm key.
    assert_eq!(app.sandbox().repeated_keys(), Vec::<String>::new());
    app.stop().await;
}

async fn forged_webhooks_are_refused_and_duplicates_answered(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let body = br#"{"type":"payment_finished","session":{"id":"ps_1","status":"accepted"}}"#;
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/bank131", app.base());
    let unsigned = http.post(&url).body(body.to_vec()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = http
        .post(&url)
        .header("X-PARTNER-SIGN", "Zm9yZ2Vk")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let signature = app.bank_signer().sign(body).unwrap();
    for _ in 0..2 {
        let signed = http
            .post(&url)
            .header("X-PARTNER-SIGN", &signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 200, "signed, and then its duplicate");
    }
    let garbage = b"not json at all";
    let signed = http
        .post(&url)
        .header("X-PARTNER-SIGN", app.bank_signer().sign(garbage).unwrap())
        .body(garbage.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed.status(),
        200,
        "a verified but unparsable body is stored for inspection"
    );
    let metrics = http
        .get(format!("{}/metrics", app.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"recur_webhooks_total{outcome="bad_signature"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"recur_webhooks_total{outcome="duplicate"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

/// A CIT waiting in 3-D Secure whose bank session the customer then paid,
/// with the bank's own `payment_finished` lost; returns (payment id, session id).
async fn paid_cit_without_its_webhook(app: &TestApp, customer: &str) -> (String, String) {
    let c = &app.client;
    let token = demo::saved_card_token(c, customer).await.unwrap();
    let (_, created) = c
        .post(
            "/v1/payments",
            &demo::token_payment(customer, &token, "client", 5_000),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let waiting = c.wait_status(&id, "requires_action").await.unwrap();
    let session = waiting["bank"]["session_id"].as_str().unwrap().to_owned();
    app.sandbox().set_faults(sandbox::bank::Faults {
        lose_webhooks: 1,
        ..Default::default()
    });
    c.sandbox(
        &format!("/sandbox/sessions/{session}/3ds"),
        &json!({ "approve": true }),
    )
    .await;
    (id, session)
}

async fn deliver_signed(app: &TestApp, body: &serde_json::Value) {
    let body = body.to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/bank131", app.base()))
        .header(
            "X-PARTNER-SIGN",
            app.bank_signer().sign(body.as_bytes()).unwrap(),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn a_thin_payment_finished_with_unknown_fields_is_applied_at_once(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let (id, session) = paid_cit_without_its_webhook(&app, "cust-thin").await;
    // No customer, a token without is_active or dates, fields nobody knows.
    deliver_signed(
        &app,
        &json!({
            "type": "payment_finished",
            "delivered_by": "bank-v9",
            "session": {
                "id": session,
                "status": "accepted",
                "surprise": { "nested": [1, 2, 3] },
                "acquiring_payments": [{
                    "status": "succeeded",
                    "recurrent": { "token": "thin-token-0001" },
                    "payment_details": { "type": "card", "card": "masked" },
                    "amounts": "not an object",
                    "metadata": { "recur_payment_id": id },
                }],
            },
        }),
    )
    .await;
    let done = app
        .client
        .wait_payment(&id, |p| p["status"] == "succeeded")
        .await
        .unwrap();
    assert!(
        done["token"]["id"].is_string(),
        "its token is saved: {done}"
    );
    app.stop().await;
}

async fn an_unreadable_known_webhook_makes_recur_ask_the_bank(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let (id, session) = paid_cit_without_its_webhook(&app, "cust-unreadable").await;
    deliver_signed(
        &app,
        &json!({
            "type": "payment_finished",
            "session": { "id": session, "status": { "unexpected": true } },
        }),
    )
    .await;
    // Not marked applied with no effect: the payment is checked with
    // session/status at once (no clock moves), and ends as the bank says.
    let done = app
        .client
        .wait_payment(&id, |p| p["status"] == "succeeded")
        .await
        .unwrap();
    assert!(done["token"]["id"].is_string(), "{done}");
    let metrics = reqwest::get(format!("{}/metrics", app.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("recur_webhooks_checked_instead_total 1"),
        "{metrics}"
    );
    app.stop().await;
}

on_both_stores!(
    a_thin_payment_finished_with_unknown_fields_is_applied_at_once,
    an_unreadable_known_webhook_makes_recur_ask_the_bank,
    webhooks_tripled_and_reversed_end_in_the_same_state,
    a_restart_between_action_required_and_payment_finished_loses_nothing,
    a_bank_timeout_after_execution_is_reconciled_and_charged_once,
    a_webhook_is_applied_within_moments_of_its_arrival,
    a_ready_to_confirm_webhook_is_confirmed_at_once_not_at_the_next_poll,
    forged_webhooks_are_refused_and_duplicates_answered,
);
