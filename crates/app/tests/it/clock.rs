//! The test clock: never backwards, concurrent advances, a year in one jump.

use std::time::{Duration, Instant};

use app::demo::{self};
use serde_json::json;

use crate::support::{StoreKind, TestApp};

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
    assert!(data.iter().all(|c| c["status"] == "succeeded"), "{charges}");
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

on_both_stores!(
    the_test_clock_never_moves_back_across_a_restart,
    the_test_clock_never_goes_back_and_is_off_without_the_flag,
    concurrent_clock_advances_charge_a_period_once,
    a_year_of_monthly_billing_in_one_clock_advance_charges_each_period_once,
);

async fn the_test_clock_never_moves_back_across_a_restart(kind: StoreKind) {
    let mut app = TestApp::start(kind).await;
    let (status, moved) = app
        .client
        .post(
            "/v1/test/clock/advance",
            &json!({ "seconds": 100 * 86_400 }),
        )
        .await;
    assert_eq!(status, 200);
    app.restart().await;
    let (_, after) = app.client.get("/v1/test/clock").await;
    assert_eq!(
        after["now"], moved["now"],
        "a restart keeps the test clock's time"
    );
    app.stop().await;
}
