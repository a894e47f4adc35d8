//! Subscriptions: periods, dunning, pause and resume, dead tokens.

use app::demo::{self};
use serde_json::json;

use crate::support::{StoreKind, TestApp, events, flows, wait_charges, wait_charges_none};

async fn a_subscription_is_charged_each_period_through_the_test_clock(kind: StoreKind) {
    flows(kind, &["monthly"]).await;
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

/// More charges in flight than the store has connections (PostgreSQL's pool
/// is 16, SQLite's 1): a pass must never wait for a connection that one of
/// its own parked charges holds (charges once hung this way, one of them in
/// an idle transaction holding the event-order lock). Every subscription is
/// charged once and recur knows it.
async fn a_billing_day_with_more_charges_in_flight_than_connections_ends(kind: StoreKind) {
    const N: i64 = 300;
    let logs = crate::support::capture_logs();
    let app = TestApp::start_with(kind, |c| c.worker_in_flight = 64).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-busy-day").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..N {
        let body = json!({ "customer": { "reference": "cust-busy-day" }, "token_id": token,
            "amount": { "value": 70_000 + i, "currency": "RUB" }, "interval": { "unit": "month", "count": 1 } });
        let (status, sub) = c.post("/v1/subscriptions", &body).await;
        assert_eq!(status, 201, "{sub}");
        ids.push(sub["id"].as_str().unwrap().to_owned());
    }
    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut charged: Vec<i64> = Vec::new();
    while charged.len() < ids.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {N} charged after 120 s",
            charged.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        charged = app
            .sandbox()
            .ledger()
            .iter()
            .filter(|e| e.kind == "charge" && e.amount >= 70_000)
            .map(|e| e.amount)
            .collect();
    }
    charged.sort_unstable();
    charged.dedup();
    assert_eq!(charged.len(), ids.len(), "each subscription charged once");
    for id in &ids {
        let charges = wait_charges(c, id, 1).await;
        assert_eq!(charge_summary(&charges), vec![(0, "succeeded".to_owned())]);
    }
    // Not one charge waited out the pool's timeout and was put off.
    let logs = logs.text();
    let put_off: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("could not start a subscription charge"))
        .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        .collect();
    assert!(put_off.is_empty(), "{put_off:#?}");
}

on_both_stores!(
    a_backdated_anchor_charges_the_current_period_once_not_every_past_one,
    after_downtime_only_the_current_period_is_charged_and_missed_ones_are_skipped,
    current_period_is_the_paid_period_until_it_ends,
    a_subscription_is_charged_each_period_through_the_test_clock,
    declined_charges_are_dunned_and_a_new_token_pays_a_past_due_subscription,
    a_subscription_pauses_resumes_changes_and_cancels,
    a_subscription_never_charges_a_disabled_token,
    a_token_the_bank_deactivated_is_disabled_and_never_charged_again,
    a_billing_day_with_more_charges_in_flight_than_connections_ends,
);

fn charge_summary(charges: &[serde_json::Value]) -> Vec<(u64, String)> {
    charges
        .iter()
        .map(|c| {
            (
                c["period_index"].as_u64().unwrap(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn a_backdated_anchor_charges_the_current_period_once_not_every_past_one(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-backdated").await.unwrap();
    let (_, clock) = c.get("/v1/test/clock").await;
    let now = time::OffsetDateTime::parse(
        clock["now"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let month_ago = (now - time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = json!({ "customer": { "reference": "cust-backdated" }, "token_id": token, "amount": { "value": 777, "currency": "RUB" }, "interval": { "unit": "day", "count": 1 }, "start_at": month_ago });
    let (status, sub) = c.post("/v1/subscriptions", &body).await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_owned();
    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    let charges = wait_charges(c, &id, 1).await;
    assert_eq!(
        charge_summary(&charges),
        vec![(30, "succeeded".to_owned())],
        "only the period that contains today: {charges:?}"
    );
    let charged = app.charges_of_amount(777);
    assert_eq!(charged, 1, "the customer paid one day, not thirty-one");
    app.stop().await;
}

async fn after_downtime_only_the_current_period_is_charged_and_missed_ones_are_skipped(
    kind: StoreKind,
) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-downtime").await.unwrap();
    let body = json!({ "customer": { "reference": "cust-downtime" }, "token_id": token, "amount": { "value": 333, "currency": "RUB" }, "interval": { "unit": "day", "count": 1 } });
    let (_, sub) = c.post("/v1/subscriptions", &body).await;
    let id = sub["id"].as_str().unwrap().to_owned();
    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    wait_charges(c, &id, 1).await;
    let (status, _) = c
        .post(
            "/v1/test/clock/advance",
            &json!({ "seconds": 4 * 86_400 + 3_600, "service_down": true }),
        )
        .await;
    assert_eq!(status, 200);
    let charges = wait_charges(c, &id, 5).await;
    let expected: Vec<(u64, String)> = [
        (0, "succeeded"),
        (1, "skipped"),
        (2, "skipped"),
        (3, "skipped"),
        (4, "succeeded"),
    ]
    .into_iter()
    .map(|(i, s)| (i, s.to_owned()))
    .collect();
    assert_eq!(charge_summary(&charges), expected, "{charges:?}");
    assert!(
        charges
            .iter()
            .filter(|c| c["status"] == "skipped")
            .all(|c| c["payment_id"].is_null() && c["attempt"] == 0),
        "{charges:?}"
    );
    let skipped_events = events(c)
        .await
        .into_iter()
        .filter(|e| e["type"] == "subscription.period_skipped" && e["data"]["id"] == id.as_str())
        .count();
    assert_eq!(skipped_events, 3, "one event per skipped period");
    let charged = app.charges_of_amount(333);
    assert_eq!(charged, 2, "periods 0 and 4, nothing back to back");
    app.stop().await;
}

async fn current_period_is_the_paid_period_until_it_ends(kind: StoreKind) {
    let app = TestApp::start(kind).await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-period").await.unwrap();
    let body = json!({ "customer": { "reference": "cust-period" }, "token_id": token, "amount": { "value": 444, "currency": "RUB" }, "interval": { "unit": "month", "count": 1 } });
    let (_, before) = c.post("/v1/subscriptions", &body).await;
    let id = before["id"].as_str().unwrap().to_owned();
    assert_eq!(before["current_period"]["start"], before["start_at"]);
    c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
        .await;
    wait_charges(c, &id, 1).await;
    let (_, paid) = c.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(
        paid["current_period"]["start"], before["start_at"],
        "the paid period is the current one: {paid}"
    );
    assert_eq!(
        paid["next_charge_at"], paid["current_period"]["end"],
        "the next charge is when the paid period ends"
    );
    let end = paid["current_period"]["end"].clone();
    c.post("/v1/test/clock/advance", &json!({ "to": end }))
        .await;
    wait_charges(c, &id, 2).await;
    let (_, second) = c.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(second["current_period"]["start"], end, "{second}");
    app.stop().await;
}
