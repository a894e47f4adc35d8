//! The merchant API's edges: idempotency, bad input, operations routes, logs, shutdown.

use std::time::{Duration, Instant};

use app::demo::{self};
use serde_json::{Value, json};

use crate::support::{self, StoreKind, TestApp, payments_of};

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

async fn shutdown_finishes_within_ten_seconds(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    demo::mit_with_token(&app.client).await.unwrap();
    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(10));
}

on_both_stores!(
    idempotency_keys_replay_refuse_and_serialize,
    bad_requests_get_a_clear_error_and_change_nothing,
    health_readiness_metrics_and_openapi_answer_and_readiness_follows_the_database,
    card_numbers_never_reach_the_logs,
    shutdown_finishes_within_ten_seconds,
);
