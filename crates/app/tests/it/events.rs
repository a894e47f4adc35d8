//! The event feed and signed deliveries.

use std::time::{Duration, Instant};

use app::demo::{self};
use serde_json::{Value, json};

use crate::support::{self, StoreKind, TestApp, events};

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
            events_http::signature(b"whsec_test", t, body.as_bytes()),
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

on_both_stores!(
    the_event_feed_pages_and_events_are_delivered_signed,
    failed_event_deliveries_are_retried_in_real_time_whatever_the_test_clock,
    a_redirecting_event_endpoint_is_a_failed_delivery_never_followed,
);

/// Issue 11 #8: a 3xx from the merchant is a failed delivery, retried at the
/// same URL; the redirect is never followed, and no event is lost.
async fn a_redirecting_event_endpoint_is_a_failed_delivery_never_followed(kind: StoreKind) {
    let receiver = support::refusing_event_receiver(2, support::Refusal::Redirect).await;
    let url = receiver.url.clone();
    let app = TestApp::start_with(kind, |c| c.events = Some((url, "whsec_test".into()))).await;
    demo::mit_with_token(&app.client).await.unwrap();
    let feed = events(&app.client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.received.lock().unwrap().len() < feed.len() {
        assert!(
            Instant::now() < deadline,
            "an event was lost to the redirect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        receiver.followed.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the redirect was never followed"
    );
    assert_eq!(
        receiver.requests.load(std::sync::atomic::Ordering::Relaxed),
        feed.len() as u64 + 2,
        "the two redirected deliveries were retried at the merchant's URL"
    );
    app.stop().await;
}
