//! The bank's widget, as its payment scenario goes: widget → the customer
//! enters the card → `ready_to_confirm` → confirm (automatic or the
//! merchant's) → 3-D Secure inside the widget when the card needs it →
//! `payment_finished`; and the consent box, ticked or not.

use app::demo::Client;
use serde_json::{Value, json};

use crate::support::{StoreKind, TestApp};

async fn widget_payment(c: &Client, customer: &str, method: Value, extra: Value) -> Value {
    let mut body = json!({
        "customer": { "reference": customer },
        "amount": { "value": 10_000, "currency": "RUB" },
        "method": method,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = c.post("/v1/payments", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "requires_action", "{created}");
    assert_eq!(created["next_action"]["type"], "widget", "{created}");
    created
}

async fn pay_in_widget(c: &Client, payment: &Value, number: &str, ticked: bool) {
    let public = payment["next_action"]["public_token"].as_str().unwrap();
    let (status, body) = c
        .sandbox(
            &format!("/sandbox/widget/{public}/pay"),
            &json!({ "number": number, "save": ticked }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn id(p: &Value) -> &str {
    p["id"].as_str().unwrap()
}

async fn widget_payments_go_through_ready_to_confirm(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;

    // Automatic confirmation, a 3-D Secure card entered in the widget.
    let auto = widget_payment(
        c,
        "cust-widget-3ds",
        json!({ "type": "widget" }),
        json!({ "save_token": true }),
    )
    .await;
    pay_in_widget(c, &auto, "4000000000003220", false).await;
    // recur confirms on ready_to_confirm; the bank then takes the widget's
    // customer to 3-D Secure itself.
    let session = auto["bank"]["session_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, s) = c.sandbox_get(&format!("/sandbox/sessions/{session}")).await;
        if s["session"]["acquiring_payments"][0]["customer_interaction"]["redirect"].is_object() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never confirmed: {s}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, during) = c.get(&format!("/v1/payments/{}", id(&auto))).await;
    assert_ne!(
        during["next_action"]["type"], "redirect",
        "the merchant is never handed the widget's own 3-D Secure redirect: {during}"
    );
    let (status, _) = c
        .sandbox(
            &format!("/sandbox/sessions/{session}/3ds"),
            &json!({ "approve": true }),
        )
        .await;
    assert_eq!(status, 200);
    let done = c
        .wait_payment(id(&auto), |p| p["status"] == "succeeded")
        .await
        .unwrap();
    assert!(done["token"]["id"].is_string(), "save_token: {done}");

    // Manual confirmation: the merchant decides after the customer paid.
    let manual = widget_payment(
        c,
        "cust-widget-manual",
        json!({ "type": "widget" }),
        json!({ "confirmation": "manual" }),
    )
    .await;
    pay_in_widget(c, &manual, "4242424242424242", false).await;
    c.wait_status(id(&manual), "requires_confirmation")
        .await
        .unwrap();
    let (status, confirmed) = c
        .post(&format!("/v1/payments/{}/confirm", id(&manual)), &json!({}))
        .await;
    assert_eq!(status, 200, "{confirmed}");
    let done = c.wait_status(id(&manual), "succeeded").await.unwrap();
    assert!(done["token"].is_null(), "no consent, no token: {done}");
    app.stop().await;
}

async fn the_widgets_consent_box_saves_a_token_only_when_ticked(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let method = json!({ "type": "widget", "recurrent_checkbox": true });
    for (customer, ticked) in [("cust-box-ticked", true), ("cust-box-unticked", false)] {
        let payment = widget_payment(c, customer, method.clone(), json!({})).await;
        assert_eq!(payment["method"]["recurrent_checkbox"], true);
        pay_in_widget(c, &payment, "4242424242424242", ticked).await;
        let done = c.wait_status(id(&payment), "succeeded").await.unwrap();
        assert_eq!(
            done["token"]["id"].is_string(),
            ticked,
            "ticked {ticked}: {done}"
        );
    }
    let (status, refused) = c
        .post(
            "/v1/payments",
            &json!({
                "customer": { "reference": "cust-box" },
                "amount": { "value": 100, "currency": "RUB" },
                "method": method, "save_token": true,
            }),
        )
        .await;
    assert_eq!(status, 400, "consent given and asked at once: {refused}");
    app.stop().await;
}

on_both_stores!(
    widget_payments_go_through_ready_to_confirm,
    the_widgets_consent_box_saves_a_token_only_when_ticked,
);
