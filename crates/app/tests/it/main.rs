//! End to end: the real router over real HTTP, the in-process sandbox bank on
//! port 0, on both stores (a temporary SQLite file, and a fresh PostgreSQL
//! database on the server of `DATABASE_URL`).

mod binary;
mod support;

use std::time::{Duration, Instant};

use app::demo::{self, Client};
use serde_json::{Value, json};
use support::{StoreKind, TestApp};

async fn flows(kind: StoreKind, flows: &[&str]) {
    let app = TestApp::start(kind).await;
    for (name, flow) in demo::flows()
        .into_iter()
        .filter(|(name, _)| flows.iter().any(|f| name.starts_with(f)))
    {
        flow(&app.client)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    app.stop().await;
}

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

async fn a_subscription_is_charged_each_period_through_the_test_clock(kind: StoreKind) {
    flows(kind, &["monthly"]).await;
}

async fn events(c: &Client) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let (_, page) = c.get(&format!("/v1/events?limit=7{after}")).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if let Some(last) = data.last() {
            after = format!("&after={}", last["id"].as_str().unwrap());
        }
        all.extend(data);
        if page["has_more"] != true {
            return all;
        }
    }
}

/// A customer's payments, newest first.
async fn payments_of(c: &Client, customer: &str) -> Vec<Value> {
    let (_, page) = c
        .get(&format!("/v1/payments?customer_reference={customer}"))
        .await;
    page["data"].as_array().cloned().unwrap_or_default()
}

fn count(events: &[Value], kind: &str, object: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == kind && e["data"]["id"] == object)
        .count()
}

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
            let tokens_from_it = all
                .iter()
                .filter(|e| e["type"] == "token.created" && e["data"]["source_payment_id"] == id)
                .count();
            assert_eq!(
                tokens_from_it,
                usize::from(p["token"]["id"].is_string()),
                "{id}: one token at most, and the one shown"
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

async fn idempotency_keys_replay_refuse_and_serialize(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let body = demo::card_payment("cust-idem", "4242424242424242", 1_000, false);
    let first = c.post_with("/v1/payments", &body, Some("order-1")).await;
    let again = c.post_with("/v1/payments", &body, Some("order-1")).await;
    assert_eq!(first.0, 201);
    assert_eq!(first, again, "same key, same body: the first answer");
    let mut other = body.clone();
    other["amount"]["value"] = json!(2_000);
    let reused = c.post_with("/v1/payments", &other, Some("order-1")).await;
    assert_eq!(
        (reused.0, reused.1["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    let racing: Vec<_> = (0..5)
        .map(|_| {
            let c = c.clone();
            let body = demo::card_payment("cust-race", "4242424242424242", 1_000, false);
            tokio::spawn(async move { c.post_with("/v1/payments", &body, Some("order-2")).await })
        })
        .collect();
    let mut created = 0;
    for r in racing {
        let (status, _) = r.await.unwrap();
        assert!(status == 201 || status == 409, "{status}");
        created += usize::from(status == 201);
    }
    assert!(created >= 1);
    assert_eq!(payments_of(c, "cust-race").await.len(), 1, "one execution");
    app.stop().await;
}

async fn bad_requests_get_a_clear_error_and_change_nothing(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let cases = [
        (json!({ "customer": { "reference": "cust-bad" } }), 400),
        (
            json!({ "customer": { "reference": "cust-bad" }, "amount": { "value": 100, "currency": "XXY" }, "method": { "type": "widget" } }),
            400,
        ),
        (
            json!({ "customer": { "reference": "cust-bad" }, "amount": { "value": -5, "currency": "RUB" }, "method": { "type": "widget" } }),
            400,
        ),
        (
            json!({ "customer": { "reference": "cust-bad" }, "amount": { "value": 0, "currency": "RUB" }, "method": { "type": "widget" } }),
            422,
        ),
        (
            json!({ "customer": { "reference": "cust-bad" }, "amount": { "value": 100, "currency": "USD" }, "method": { "type": "fps" } }),
            422,
        ),
        (
            json!({ "customer": { "reference": "cust-bad" }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": "card", "card": { "number": "42", "expiry_month": "12", "expiry_year": "30", "security_code": "1" } } }),
            400,
        ),
        (
            json!({ "customer": { "reference": "cust-bad" }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": "token", "token_id": "tok_nope" } }),
            404,
        ),
        (
            json!({ "customer": { "reference": "cust-bad" }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": "widget" }, "subscription_service": { "id": "s", "name": "n" } }),
            400,
        ),
    ];
    for (body, status) in cases {
        let (got, answer) = c.post("/v1/payments", &body).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{answer}"
        );
    }
    let (status, _) = c.post("/v1/payments/pay_missing/confirm", &json!({})).await;
    assert_eq!(status, 404);
    let created = payments_of(c, "cust-bad").await;
    assert!(
        created.is_empty(),
        "no refused request created a payment: {created:?}"
    );
    // Confirm and cancel answer 409 outside requires_confirmation, and change nothing.
    let (_, paid) = c
        .post(
            "/v1/payments",
            &demo::card_payment("cust-state", "4242424242424242", 100, false),
        )
        .await;
    let id = paid["id"].as_str().unwrap();
    let before = c.wait_status(id, "succeeded").await.unwrap();
    for verb in ["confirm", "cancel"] {
        let (status, answer) = c
            .post(&format!("/v1/payments/{id}/{verb}"), &json!({}))
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (409, Some("invalid_state")),
            "{verb}"
        );
    }
    assert_eq!(c.get(&format!("/v1/payments/{id}")).await.1, before);
    let no_key = reqwest::Client::new()
        .get(format!("{}/v1/events", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let wrong_key = reqwest::Client::new()
        .get(format!("{}/v1/events", app.base()))
        .bearer_auth("sk_wrong_wrong_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
    app.stop().await;
}

async fn a_webhook_is_applied_within_moments_of_its_arrival(kind: StoreKind) {
    let app = TestApp::start(kind).await;
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

async fn health_readiness_metrics_and_openapi_answer_and_readiness_follows_the_database(
    kind: StoreKind,
) {
    let app = TestApp::start(kind).await;
    demo::mit_with_token(&app.client).await.unwrap();
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            http.get(format!("{}{path}", app.base()))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    let metrics = http
        .get(format!("{}/metrics", app.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "recur_http_requests_total{method=\"POST\",route=\"/v1/payments\",status=\"201\"}",
        "recur_gateway_request_seconds_count",
        "recur_outbox_depth",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    let spec: Value = serde_json::from_str(
        &http
            .get(format!("{}/openapi.json", app.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/v1/payments/{id}/refund"]["post"].is_object());
    app.close_database().await;
    assert_eq!(
        http.get(format!("{}/readyz", app.base()))
            .send()
            .await
            .unwrap()
            .status(),
        503,
        "database unreachable"
    );
    assert_eq!(
        http.get(format!("{}/healthz", app.base()))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the process is up"
    );
    app.stop().await;
}

async fn the_event_feed_pages_and_events_are_delivered_signed(kind: StoreKind) {
    let (receiver, received) = support::event_receiver().await;
    let app = TestApp::start_with(kind, |c| c.events = Some((receiver, "whsec_test".into()))).await;
    demo::mit_with_token(&app.client).await.unwrap();
    let feed = events(&app.client).await;
    assert!(feed.iter().any(|e| e["type"] == "payment.succeeded"));
    assert!(feed.iter().any(|e| e["type"] == "token.created"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().len() < feed.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} events delivered",
            received.lock().unwrap().len(),
            feed.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (signature, body) in received.lock().unwrap().iter() {
        let (t, v1) = signature.split_once(",v1=").unwrap();
        let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        assert_eq!(
            gateway_http::events::signature(b"whsec_test", t, body.as_bytes()),
            *signature
        );
        let event: Value = serde_json::from_str(body).unwrap();
        assert!(
            feed.contains(&event),
            "delivered exactly as the feed shows it: {event}"
        );
        assert_eq!(v1.len(), 64);
    }
    app.stop().await;
}

async fn failed_event_deliveries_are_retried_in_real_time_whatever_the_test_clock(kind: StoreKind) {
    let (receiver, received, requests) = support::failing_event_receiver(2).await;
    let app = TestApp::start_with(kind, |c| c.events = Some((receiver, "whsec_test".into()))).await;
    // Business time jumps a year ahead; retries must not wait for it.
    app.client
        .post(
            "/v1/test/clock/advance",
            &json!({ "seconds": 365 * 86_400 }),
        )
        .await;
    demo::mit_with_token(&app.client).await.unwrap();
    let feed = events(&app.client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().len() < feed.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} events delivered",
            received.lock().unwrap().len(),
            feed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::Relaxed),
        feed.len() as u64 + 2,
        "two refused deliveries were retried"
    );
    let delivered: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(
        delivered.len(),
        feed.len(),
        "each event delivered once after the failures"
    );
    for object in feed.iter().map(|e| e["data"]["id"].clone()) {
        let in_feed: Vec<_> = feed
            .iter()
            .filter(|e| e["data"]["id"] == object)
            .map(|e| e["id"].clone())
            .collect();
        let in_delivery: Vec<_> = delivered
            .iter()
            .filter(|e| e["data"]["id"] == object)
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(
            in_delivery, in_feed,
            "one object's events arrive in feed order"
        );
    }
    app.stop().await;
}

async fn the_test_clock_never_goes_back_and_is_off_without_the_flag(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let (_, now) = app.client.get("/v1/test/clock").await;
    let (status, _) = app
        .client
        .post(
            "/v1/test/clock/advance",
            &json!({ "to": "2000-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, 409);
    let (status, moved) = app
        .client
        .post("/v1/test/clock/advance", &json!({ "seconds": 86_400 }))
        .await;
    assert_eq!(status, 200);
    assert_ne!(moved["now"], now["now"]);
    app.stop().await;
    let off = TestApp::start_with(kind, |c| c.test_clock = false).await;
    assert_eq!(off.client.get("/v1/test/clock").await.0, 404);
    off.stop().await;
}

async fn concurrent_clock_advances_charge_a_period_once(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let token = demo::saved_card_token(&app.client, "cust-once")
        .await
        .unwrap();
    let body = json!({ "customer": { "reference": "cust-once" }, "token_id": token, "amount": { "value": 500, "currency": "RUB" }, "interval": { "unit": "day", "count": 1 } });
    let (_, sub) = app.client.post("/v1/subscriptions", &body).await;
    let id = sub["id"].as_str().unwrap().to_owned();
    let advances: Vec<_> = (0..4)
        .map(|_| {
            let c = app.client.clone();
            tokio::spawn(async move {
                c.post("/v1/test/clock/advance", &json!({ "seconds": 10 }))
                    .await
            })
        })
        .collect();
    for a in advances {
        assert_eq!(a.await.unwrap().0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, charges) = app
            .client
            .get(&format!("/v1/subscriptions/{id}/charges"))
            .await;
        let data = charges["data"].as_array().unwrap().clone();
        if data.iter().any(|c| c["status"] == "succeeded") {
            assert_eq!(data.len(), 1, "one attempt for the first period: {data:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{charges}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let charged = app
        .sandbox()
        .ledger()
        .into_iter()
        .filter(|e| e.amount == 500)
        .count();
    assert_eq!(charged, 1, "the bank charged the period once");
    app.stop().await;
}

async fn a_year_of_monthly_billing_in_one_clock_advance_charges_each_period_once(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let token = demo::saved_card_token(&app.client, "cust-year")
        .await
        .unwrap();
    let body = json!({ "customer": { "reference": "cust-year" }, "token_id": token, "amount": { "value": 1_990, "currency": "RUB" }, "interval": { "unit": "month", "count": 1 } });
    let (_, sub) = app.client.post("/v1/subscriptions", &body).await;
    let id = sub["id"].as_str().unwrap();
    let (status, _) = app
        .client
        .post(
            "/v1/test/clock/advance",
            &json!({ "seconds": 366 * 86_400 + 60 }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, charges) = app
        .client
        .get(&format!("/v1/subscriptions/{id}/charges"))
        .await;
    let data = charges["data"].as_array().unwrap();
    let periods: Vec<_> = data
        .iter()
        .map(|c| c["period_index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        periods,
        (0..13).collect::<Vec<_>>(),
        "periods 0 to 12, each once: {charges}"
    );
    assert!(data.iter().all(|c| c["status"] == "succeeded"));
    let charged = app
        .sandbox()
        .ledger()
        .into_iter()
        .filter(|e| e.amount == 1_990)
        .count();
    assert_eq!(charged, 13);
    let (_, after) = app.client.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(after["status"], "active");
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
    let (status, rest) = c
        .post(&format!("/v1/payments/{id}/refund"), &json!({}))
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(
        rest["refunded_amount"]["value"], 10_000,
        "the default is what is left"
    );
    let (status, _) = c
        .post(&format!("/v1/payments/{id}/refund"), &json!({}))
        .await;
    assert_eq!(status, 422, "nothing left to refund");
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

async fn wait_charges(c: &Client, sub: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, charges) = c.get(&format!("/v1/subscriptions/{sub}/charges")).await;
        let data = charges["data"].as_array().cloned().unwrap_or_default();
        if data.len() >= count && data.iter().all(|c| c["status"] != "pending") {
            return data;
        }
        assert!(Instant::now() < deadline, "{charges}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn declined_charges_are_dunned_and_a_new_token_pays_a_past_due_subscription(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-dunning").await.unwrap();
    let body = json!({ "customer": { "reference": "cust-dunning" }, "token_id": token, "amount": { "value": 2_500, "currency": "RUB" }, "interval": { "unit": "month", "count": 1 } });
    let (_, sub) = c.post("/v1/subscriptions", &body).await;
    let id = sub["id"].as_str().unwrap().to_owned();

    // A soft decline: past due, retried a day later by the default policy.
    app.sandbox().set_faults(sandbox::bank::Faults {
        decline_next: vec!["insufficient_funds".into()],
        ..Default::default()
    });
    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    wait_charges(c, &id, 1).await;
    let (_, past_due) = c.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(
        (
            past_due["status"].as_str(),
            past_due["failed_attempts"].as_u64()
        ),
        (Some("past_due"), Some(1)),
        "{past_due}"
    );
    assert!(
        past_due["next_charge_at"].is_string(),
        "a retry is scheduled"
    );
    c.post("/v1/test/clock/advance", &json!({ "seconds": 86_400 }))
        .await;
    let charges = wait_charges(c, &id, 2).await;
    assert_eq!(charges[1]["status"], "succeeded");
    let (_, active) = c.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(
        (
            active["status"].as_str(),
            active["failed_attempts"].as_u64()
        ),
        (Some("active"), Some(0))
    );

    // A hard decline: past due with no retry, until the merchant gives a new token.
    app.sandbox().set_faults(sandbox::bank::Faults {
        decline_next: vec!["bank_card_expired".into()],
        ..Default::default()
    });
    c.post("/v1/test/clock/advance", &json!({ "seconds": 31 * 86_400 }))
        .await;
    wait_charges(c, &id, 3).await;
    let (_, stuck) = c.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(stuck["status"], "past_due");
    assert!(
        stuck["next_charge_at"].is_null(),
        "a hard decline is not retried: {stuck}"
    );
    let new_token = demo::saved_card_token(c, "cust-dunning").await.unwrap();
    let (status, updated) = c
        .post(
            &format!("/v1/subscriptions/{id}"),
            &json!({ "token_id": new_token }),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    let charges = wait_charges(c, &id, 4).await;
    let summary: Vec<_> = charges
        .iter()
        .map(|c| {
            (
                c["period_index"].as_u64().unwrap(),
                c["attempt"].as_u64().unwrap(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 1, "failed".into()),
            (0, 2, "succeeded".into()),
            (1, 1, "failed".into()),
            (1, 2, "succeeded".into())
        ]
    );
    let (_, paid) = c.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(paid["status"], "active");
    let all = events(c).await;
    for kind in [
        "subscription.charge_failed",
        "subscription.past_due",
        "subscription.charge_succeeded",
    ] {
        assert!(
            all.iter()
                .any(|e| e["type"] == kind && e["data"]["id"] == id.as_str()),
            "{kind} missing"
        );
    }
    app.stop().await;
}

async fn a_subscription_pauses_resumes_changes_and_cancels(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-life-sub").await.unwrap();
    let start = (time::OffsetDateTime::now_utc() + time::Duration::days(400))
        .replace_nanosecond(0)
        .unwrap();
    let start_at = start
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = json!({ "customer": { "reference": "cust-life-sub" }, "token_id": token, "amount": { "value": 1_000, "currency": "rub" },
        "interval": { "unit": "week", "count": 2 }, "start_at": start_at, "description": "Pool", "metadata": { "plan": "basic" } });
    let (status, sub) = c.post("/v1/subscriptions", &body).await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_owned();
    assert_eq!(sub["amount"]["currency"], "RUB");
    assert_eq!(sub["next_charge_at"].as_str(), Some(start_at.as_str()));
    assert_eq!(c.get(&format!("/v1/subscriptions/{id}")).await.1, sub);

    let (_, paused) = c
        .post(&format!("/v1/subscriptions/{id}/pause"), &json!({}))
        .await;
    assert_eq!(paused["status"], "paused");
    c.post(
        "/v1/test/clock/advance",
        &json!({ "seconds": 420 * 86_400 }),
    )
    .await;
    assert!(
        wait_charges_none(c, &id).await,
        "a paused subscription is not charged"
    );
    let (_, resumed) = c
        .post(&format!("/v1/subscriptions/{id}/resume"), &json!({}))
        .await;
    assert_eq!(resumed["status"], "active");

    let (status, changed) = c.post(&format!("/v1/subscriptions/{id}"), &json!({ "amount": { "value": 1_500, "currency": "RUB" }, "metadata": { "plan": "plus" } })).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["amount"]["value"].as_i64(),
            changed["metadata"]["plan"].as_str()
        ),
        (Some(1_500), Some("plus"))
    );
    let (status, refused) = c
        .post(
            &format!("/v1/subscriptions/{id}"),
            &json!({ "amount": { "value": 0, "currency": "RUB" } }),
        )
        .await;
    assert_eq!(status, 422, "{refused}");

    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    let charges = wait_charges(c, &id, 1).await;
    assert_eq!(
        charges.len(),
        1,
        "resuming bills the current period once, not the paused ones: {charges:?}"
    );
    let (_, payment) = c
        .get(&format!(
            "/v1/payments/{}",
            charges[0]["payment_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        payment["amount"]["value"], 1_500,
        "the new amount is charged"
    );

    let (_, cancelled) = c
        .post(&format!("/v1/subscriptions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["next_charge_at"].is_null());
    let (status, _) = c
        .post(&format!("/v1/subscriptions/{id}/resume"), &json!({}))
        .await;
    assert_eq!(status, 409, "cancelled is final");
    assert!(
        events(c)
            .await
            .iter()
            .any(|e| e["type"] == "subscription.cancelled" && e["data"]["id"] == id.as_str())
    );
    assert_eq!(c.get("/v1/subscriptions/sub_missing").await.0, 404);
    app.stop().await;
}

/// Whether a subscription still has no charge attempt once the jobs ran.
async fn wait_charges_none(c: &Client, sub: &str) -> bool {
    c.get(&format!("/v1/subscriptions/{sub}/charges")).await.1["data"]
        .as_array()
        .is_some_and(Vec::is_empty)
}

async fn a_subscription_never_charges_a_disabled_token(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-gone").await.unwrap();
    let body = json!({ "customer": { "reference": "cust-gone" }, "token_id": token, "amount": { "value": 777, "currency": "RUB" }, "interval": { "unit": "week", "count": 1 } });
    let (_, sub) = c.post("/v1/subscriptions", &body).await;
    let id = sub["id"].as_str().unwrap().to_owned();
    c.post(&format!("/v1/tokens/{token}/disable"), &json!({}))
        .await;
    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    let charges = wait_charges(c, &id, 1).await;
    assert_eq!(charges[0]["status"], "failed");
    let (_, payment) = c
        .get(&format!(
            "/v1/payments/{}",
            charges[0]["payment_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(payment["error"]["code"], "token_inactive", "{payment}");
    assert!(
        payment["bank"]["session_id"].is_null(),
        "no bank session was opened"
    );
    let (_, after) = c.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(after["status"], "past_due");
    assert!(
        app.sandbox().ledger().iter().all(|e| e.amount != 777),
        "the bank never saw the charge"
    );
    app.stop().await;
}

async fn card_numbers_never_reach_the_logs(kind: StoreKind) {
    let captured = support::capture_logs();
    let app = TestApp::start(kind).await;
    let (_, created) = app
        .client
        .post(
            "/v1/payments",
            &demo::card_payment("cust-logs", "4000000000009995", 100, true),
        )
        .await;
    app.client
        .wait_status(created["id"].as_str().unwrap(), "failed")
        .await
        .unwrap();
    app.stop().await;
    let logs = captured.text();
    assert!(logs.contains("/v1/payments"), "the capture works");
    for secret in ["4000000000009995", "security_code", "expiry_month"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

async fn a_token_the_bank_deactivated_is_disabled_and_never_charged_again(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let (_, first) = c
        .post(
            "/v1/payments",
            &demo::card_payment("cust-dies", "4000000000000341", 1_000, true),
        )
        .await;
    let token = c
        .wait_payment(first["id"].as_str().unwrap(), |p| {
            p["token"]["id"].is_string()
        })
        .await
        .unwrap()["token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, charge) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-dies", &token, "merchant", 500),
        )
        .await;
    c.wait_status(charge["id"].as_str().unwrap(), "succeeded")
        .await
        .unwrap();
    let (_, refused) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-dies", &token, "merchant", 500),
        )
        .await;
    let failed = c
        .wait_status(refused["id"].as_str().unwrap(), "failed")
        .await
        .unwrap();
    assert_eq!(failed["error"]["code"], "binding_is_deactivated");
    assert_eq!(
        c.get(&format!("/v1/tokens/{token}")).await.1["status"],
        "disabled"
    );
    let (status, answer) = c
        .post(
            "/v1/payments",
            &demo::token_payment("cust-dies", &token, "merchant", 500),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("token_inactive")),
        "no bank call any more"
    );
    app.stop().await;
}

async fn shutdown_finishes_within_ten_seconds(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    demo::mit_with_token(&app.client).await.unwrap();
    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(10));
}

macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::StoreKind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::StoreKind::Postgres).await;
                }
            )*
        }
    };
}

on_both_stores!(
    seed_000_card_cit_with_3ds_issues_a_new_token,
    seed_001_mit_widget_refresh_and_disable,
    seed_002_automatic_manual_confirm_and_cancel,
    seed_003_fps_qr_paid_expired_and_two_bindings,
    every_declining_card_fails_with_its_code_verbatim,
    a_subscription_is_charged_each_period_through_the_test_clock,
    webhooks_tripled_and_reversed_end_in_the_same_state,
    a_restart_between_action_required_and_payment_finished_loses_nothing,
    a_bank_timeout_after_execution_is_reconciled_and_charged_once,
    idempotency_keys_replay_refuse_and_serialize,
    bad_requests_get_a_clear_error_and_change_nothing,
    forged_webhooks_are_refused_and_duplicates_answered,
    a_webhook_is_applied_within_moments_of_its_arrival,
    health_readiness_metrics_and_openapi_answer_and_readiness_follows_the_database,
    the_event_feed_pages_and_events_are_delivered_signed,
    the_test_clock_never_goes_back_and_is_off_without_the_flag,
    failed_event_deliveries_are_retried_in_real_time_whatever_the_test_clock,
    concurrent_clock_advances_charge_a_period_once,
    a_year_of_monthly_billing_in_one_clock_advance_charges_each_period_once,
    refunds_are_partial_or_full_and_never_exceed_the_payment,
    declined_charges_are_dunned_and_a_new_token_pays_a_past_due_subscription,
    a_subscription_never_charges_a_disabled_token,
    a_subscription_pauses_resumes_changes_and_cancels,
    card_numbers_never_reach_the_logs,
    a_token_the_bank_deactivated_is_disabled_and_never_charged_again,
    shutdown_finishes_within_ten_seconds,
);

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
