//! The merchant API's edges: idempotency, bad input, operations routes, logs, shutdown.

use std::time::{Duration, Instant};

use app::demo::{self};
use serde_json::{Value, json};

use crate::support::{self, StoreKind, TestApp, json_of, payments_of};

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
        "recur_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/payments\",status=\"201\"}",
        "recur_bank_request_duration_seconds_bucket{le=",
        "recur_queue_depth{queue=\"outbox\"}",
        "recur_queue_oldest_age_seconds{queue=\"inbox\"}",
        "recur_payments{status=",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    let spec = json_of(http.get(format!("{}/openapi.json", app.base()))).await;
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

/// Every bank call made for a payment is logged inside a span that names the
/// payment, from its first call (`session/create`) on.
async fn bank_calls_for_a_payment_are_logged_with_its_id(kind: StoreKind) {
    let captured = support::capture_logs();
    let app = TestApp::start(kind).await;
    let id =
        support::token_payment_with_a_saved_card(&app.client, "cust-log-ids", "merchant", 4_321)
            .await;
    app.client.wait_status(&id, "succeeded").await.unwrap();
    app.stop().await;
    let logs = captured.text();
    let calls: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("bank call") && l.contains(&id))
        .collect();
    for method in ["session/create", "session/start/payment"] {
        assert!(
            calls.iter().any(|l| l.contains(method)),
            "no {method} line names {id}: {calls:?}"
        );
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
    idempotency_keys_are_scoped_per_api_key_and_compare_content_not_bytes,
    a_request_given_up_mid_flight_never_becomes_two_payments,
    a_retry_after_a_5xx_answers_with_the_payment_it_created,
    error_answers_never_echo_a_submitted_value,
    request_limits_are_enforced_with_their_own_codes_in_the_envelope,
    payments_and_tokens_are_listed_in_pages,
    bad_requests_get_a_clear_error_and_change_nothing,
    health_readiness_metrics_and_openapi_answer_and_readiness_follows_the_database,
    card_numbers_never_reach_the_logs,
    bank_calls_for_a_payment_are_logged_with_its_id,
    shutdown_finishes_within_ten_seconds,
);

/// POSTs raw bytes (to control spacing and key order) with `api_key`.
async fn post_raw(app: &TestApp, api_key: &str, body: &str, idempotency_key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/payments", app.base()))
        .bearer_auth(api_key)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", idempotency_key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn idempotency_keys_are_scoped_per_api_key_and_compare_content_not_bytes(kind: StoreKind) {
    let app = TestApp::start_with(kind, |c| {
        c.api_keys = Some(vec!["sk_test_shop_a".into(), "sk_test_shop_b".into()]);
    })
    .await;
    let compact = r#"{"customer":{"reference":"cust-scope"},"amount":{"value":1500,"currency":"RUB"},"method":{"type":"widget"}}"#;
    let reordered = r#"{
        "method": { "type": "widget" },
        "amount": { "currency": "RUB", "value": 1500 },
        "customer": { "reference": "cust-scope" }
    }"#;
    let (status, first) = post_raw(&app, "sk_test_shop_a", compact, "order-7").await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = post_raw(&app, "sk_test_shop_a", reordered, "order-7").await;
    assert_eq!(
        status, 201,
        "the same request re-serialized is the same request: {again}"
    );
    assert_eq!(again["id"], first["id"]);
    let (status, other_shop) = post_raw(&app, "sk_test_shop_b", compact, "order-7").await;
    assert_eq!(
        status, 201,
        "another API key's order-7 is another key: {other_shop}"
    );
    assert_ne!(other_shop["id"], first["id"]);
    let changed = compact.replace("1500", "1600");
    let (status, reused) = post_raw(&app, "sk_test_shop_a", &changed, "order-7").await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    assert_eq!(payments_of(&app.client, "cust-scope").await.len(), 2);
    app.stop().await;
}

async fn a_request_given_up_mid_flight_never_becomes_two_payments(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let token = demo::saved_card_token(&app.client, "cust-gave-up")
        .await
        .unwrap();
    app.sandbox().set_faults(sandbox::bank::Faults {
        api_delay_ms: 1_500,
        ..Default::default()
    });
    let body = demo::token_payment("cust-gave-up", &token, "merchant", 2_100);
    // The client gives up while the bank is slow: the payment exists, the
    // request may be dropped, and the key holds its lease.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .post(format!("{}/v1/payments", app.base()))
        .bearer_auth(app.api_key())
        .header("Idempotency-Key", "order-gave-up")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    assert!(impatient.is_err(), "the client timed out");
    let (status, retry) = app
        .client
        .post_with("/v1/payments", &body, Some("order-gave-up"))
        .await;
    assert!(
        status == 409 && retry["error"]["code"] == "idempotency_key_in_use"
            || status == 201
            || status == 200,
        "{status} {retry}"
    );
    app.sandbox().set_faults(sandbox::bank::Faults::default());
    // A dropped request's payment is resumed by reconciliation.
    app.client
        .post("/v1/test/clock/advance", &json!({ "seconds": 60 }))
        .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let payments: Vec<Value> = payments_of(&app.client, "cust-gave-up")
            .await
            .into_iter()
            .filter(|p| p["amount"]["value"] == 2_100)
            .collect();
        assert_eq!(payments.len(), 1, "never a second payment: {payments:?}");
        if payments[0]["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{payments:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let charged = app.charges_of_amount(2_100);
    assert_eq!(charged, 1, "the customer paid once");
    app.stop().await;
}

async fn error_answers_never_echo_a_submitted_value(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let secrets = ["4111111111111111", "987", "QQQ", "dollars", "later"];
    let cases = [
        json!({ "customer": { "reference": "cust-echo" }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": "card", "card": { "number": 4_111_111_111_111_111_u64, "expiry_month": "12", "expiry_year": "30", "security_code": "123" } } }),
        json!({ "customer": { "reference": "cust-echo" }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": "card", "card": { "number": "4111111111111111", "expiry_month": "12", "expiry_year": "30", "security_code": 987 } } }),
        json!({ "customer": { "reference": "cust-echo" }, "amount": { "value": 100, "currency": "QQQ" }, "method": { "type": "widget" } }),
        json!({ "customer": { "reference": "cust-echo" }, "amount": { "value": "dollars", "currency": "RUB" }, "method": { "type": "widget" } }),
        json!({ "customer": { "reference": "cust-echo" }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": "widget" }, "confirmation": "later" }),
    ];
    for body in cases {
        let (status, answer) = c.post("/v1/payments", &body).await;
        assert_eq!(status, 400, "{answer}");
        let text = answer.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} echoed in {text}");
        }
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert!(payments_of(c, "cust-echo").await.is_empty());
    app.stop().await;
}

async fn a_retry_after_a_5xx_answers_with_the_payment_it_created(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-5xx").await.unwrap();
    app.sandbox().set_faults(sandbox::bank::Faults {
        refuse_creates: vec!["invalid_request".into()],
        ..Default::default()
    });
    let body = demo::token_payment("cust-5xx", &token, "merchant", 3_300);
    let (status, first) = c.post_with("/v1/payments", &body, Some("order-5xx")).await;
    assert_eq!(status, 502, "the bank refused the session: {first}");
    let (status, retry) = c.post_with("/v1/payments", &body, Some("order-5xx")).await;
    assert_eq!(
        status, 200,
        "the payment the first request created: {retry}"
    );
    assert_eq!(retry["status"], "failed", "{retry}");
    let created: Vec<Value> = payments_of(c, "cust-5xx")
        .await
        .into_iter()
        .filter(|p| p["amount"]["value"] == 3_300)
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["id"], retry["id"]);
    let charged = app.charges_of_amount(3_300);
    assert_eq!(
        charged, 0,
        "the customer paid nothing, and the merchant sees why"
    );
    app.stop().await;
}

/// A raw request: method, path, content type and body, with the API key.
async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", app.base()))
        .bearer_auth(app.api_key())
        .body(body);
    if let Some(t) = content_type {
        request = request.header("Content-Type", t);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn request_limits_are_enforced_with_their_own_codes_in_the_envelope(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let widget = |extra: Value| {
        let mut body = json!({ "customer": { "reference": "cust-limits" }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": "widget" } });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let too_many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (widget(json!({ "metadata": too_many })), "invalid_metadata"),
        (
            widget(json!({ "metadata": { "k".repeat(41): "v" } })),
            "invalid_metadata",
        ),
        (
            widget(json!({ "metadata": { "k": "v".repeat(501) } })),
            "invalid_metadata",
        ),
        (
            widget(json!({ "metadata": { "k": 5 } })),
            "invalid_metadata",
        ),
        (
            widget(json!({ "description": "d".repeat(1_001) })),
            "description_too_long",
        ),
        (
            widget(json!({ "return_url": format!("https://shop.example/{}", "r".repeat(2_048)) })),
            "invalid_return_url",
        ),
        (
            widget(json!({ "return_url": "ftp://shop.example/" })),
            "invalid_return_url",
        ),
        (
            widget(json!({ "amount": { "value": 1_000_000_000_000_i64, "currency": "RUB" } })),
            "amount_too_large",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = c.post("/v1/payments", &body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    }
    let fine = widget(
        json!({ "metadata": { "k".repeat(40): "v".repeat(500) }, "description": "d".repeat(1_000) }),
    );
    assert_eq!(c.post("/v1/payments", &fine).await.0, 201);

    let body = serde_json::to_vec(&widget(json!({}))).unwrap();
    let (status, answer) = raw(
        &app,
        "POST",
        "/v1/payments",
        Some("text/plain"),
        body.clone(),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, answer) = raw(&app, "POST", "/v1/payments", None, body).await;
    assert_eq!(status, 415, "{answer}");
    let huge = format!(r#"{{"description": "{}"}}"#, "x".repeat(70 * 1024)).into_bytes();
    let (status, answer) = raw(&app, "POST", "/v1/payments", Some("application/json"), huge).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let echoed = reqwest::Client::new()
        .get(format!("{}/healthz", app.base()))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");
    let minted = reqwest::get(format!("{}/healthz", app.base()))
        .await
        .unwrap();
    assert!(
        minted.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let (status, answer) = raw(&app, "GET", "/v1/nothing-here", None, Vec::new()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // A malformed {id} is the object not found, as an unknown one is (PathId).
    for path in [
        "/v1/payments/not-a-payment-id",
        "/v1/tokens/pay_1",
        "/v1/subscriptions/%20",
    ] {
        let (status, answer) = raw(&app, "GET", path, None, Vec::new()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(!message.starts_with("route"), "the route exists: {message}");
    }
    let (status, answer) = raw(&app, "DELETE", "/v1/payments", None, Vec::new()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    for query in ["limit=abc", "limit=0", "limit=101"] {
        let (status, answer) = c
            .get(&format!(
                "/v1/payments?customer_reference=cust-limits&{query}"
            ))
            .await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // A malformed cursor is a bad request; a well-formed one naming no
    // event is the object the request names not being found.
    for (cursor, status_and_code) in [
        ("evt_zzzz", (404, "cursor_not_found")),
        ("evt_99999999999999", (404, "cursor_not_found")),
        ("garbage", (400, "invalid_cursor")),
    ] {
        let (status, answer) = c.get(&format!("/v1/events?after={cursor}")).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str().unwrap_or_default()),
            status_and_code,
            "{cursor}: {answer}"
        );
    }
    let (status, answer) = c.get("/v1/events?limit=abc").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = c
        .post("/v1/test/clock/advance", &json!({ "seconds": i64::MAX }))
        .await;
    assert_eq!(status, 400, "a huge step is refused, not a panic");
    // A confirm with no body at all needs no content type.
    let (status, answer) = raw(
        &app,
        "POST",
        "/v1/payments/pay_missing/confirm",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    app.stop().await;
}

async fn payments_and_tokens_are_listed_in_pages(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let mut created = Vec::new();
    for value in [101, 102, 103] {
        let body = json!({ "customer": { "reference": "cust-pages" }, "amount": { "value": value, "currency": "RUB" }, "method": { "type": "widget" } });
        let (_, p) = c.post("/v1/payments", &body).await;
        created.push(p["id"].as_str().unwrap().to_owned());
    }
    let (status, first) = c
        .get("/v1/payments?customer_reference=cust-pages&limit=2")
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["has_more"], true);
    let ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![created[2].as_str(), created[1].as_str()],
        "newest first"
    );
    let (_, second) = c
        .get(&format!(
            "/v1/payments?customer_reference=cust-pages&limit=2&starting_after={}",
            ids[1]
        ))
        .await;
    assert_eq!(second["has_more"], false);
    assert_eq!(second["data"][0]["id"], created[0].as_str());
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    let (status, answer) = c
        .get("/v1/payments?customer_reference=cust-pages&starting_after=pay_00000000000000000000000000000000")
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("cursor_not_found"))
    );
    let (status, answer) = c
        .get(&format!(
            "/v1/payments?customer_reference=someone-else&starting_after={}",
            created[0]
        ))
        .await;
    assert_eq!(
        status, 404,
        "another customer's payment is no cursor: {answer}"
    );
    let (status, answer) = c
        .get("/v1/payments?customer_reference=cust-pages&starting_after=garbage")
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );

    let a = demo::saved_card_token(c, "cust-page-tok").await.unwrap();
    let b = demo::saved_card_token(c, "cust-page-tok").await.unwrap();
    let (_, first) = c
        .get("/v1/tokens?customer_reference=cust-page-tok&limit=1")
        .await;
    assert_eq!(first["has_more"], true, "{first}");
    let last = first["data"][0]["id"].as_str().unwrap().to_owned();
    let (_, rest) = c
        .get(&format!(
            "/v1/tokens?customer_reference=cust-page-tok&limit=1&starting_after={last}"
        ))
        .await;
    assert_eq!(rest["has_more"], false, "{rest}");
    let mut seen = vec![last, rest["data"][0]["id"].as_str().unwrap().to_owned()];
    seen.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(seen, expected);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_never_keep_webhooks_from_being_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start(StoreKind::Sqlite).await;
    let addr = app.base().trim_start_matches("http://").to_owned();
    // Hundreds of clients that send a header byte now and then, forever.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"POST /webhooks/bank131 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let trickle = tokio::spawn(async move {
        for _ in 0..20 {
            for stream in &mut slow {
                let _ = stream.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        slow
    });
    // The bank's webhook (unsigned here: answered 401, but answered) and a
    // health check go through at once.
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/bank131", app.base()))
        .header("Content-Type", "application/json")
        .body(r#"{"type":"payment_finished"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let health = reqwest::get(format!("{}/healthz", app.base()))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // And the slow ones are cut off once their headers take too long.
    let mut slow = trickle.await.unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), slow[0].read(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "a client still sending headers after the header timeout is disconnected"
    );
    app.stop().await;
}

/// Sends `head` and then `body` on a raw connection and reads the answer
/// until the server closes it (or 15 s pass).
async fn raw_exchange(app: &TestApp, head: String, body: &[u8], pause: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    tokio::time::sleep(pause).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// tower-http's body limit holds for a body without a `Content-Length`
/// (chunked), and a client that stops sending its body is answered
/// `408`; both in the error envelope, and a caller's unusable request id
/// is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_oversize_and_stalled_bodies_are_refused_in_the_envelope() {
    let app = TestApp::start(StoreKind::Sqlite).await;
    let head = |extra: &str| {
        format!(
            "POST /v1/payments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nConnection: close\r\n{extra}\r\n",
            app.api_key()
        )
    };
    let chunk = vec![b' '; 70 * 1024];
    let mut chunked = format!("{:x}\r\n", chunk.len()).into_bytes();
    chunked.extend(&chunk);
    chunked.extend(b"\r\n0\r\n\r\n");
    let too_large = raw_exchange(
        &app,
        head("Transfer-Encoding: chunked\r\n"),
        &chunked,
        Duration::ZERO,
    )
    .await;
    assert!(
        too_large.starts_with("HTTP/1.1 413") && too_large.contains(r#""code":"body_too_large""#),
        "{too_large}"
    );
    let started = Instant::now();
    let stalled = raw_exchange(
        &app,
        head(&format!(
            "Content-Length: 100\r\nX-Request-Id: {}\r\n",
            "r".repeat(200)
        )),
        b"{\"customer\":",
        Duration::ZERO,
    )
    .await;
    assert!(
        stalled.starts_with("HTTP/1.1 408") && stalled.contains(r#""code":"request_timeout""#),
        "{stalled}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stalled.to_lowercase().contains("x-request-id: req_"),
        "{stalled}"
    );
    app.stop().await;
}
