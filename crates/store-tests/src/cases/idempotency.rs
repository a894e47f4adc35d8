//! Idempotency keys: start, replay, mismatch, expiry, concurrency.

use ports::*;
use time::Duration;

use crate::fixtures::now;
use crate::{AllPorts, Harness};

/// A new key starts.
pub async fn idempotency_first_use_starts<H: Harness>(h: &H) {
    let s = h.store();
    assert_eq!(
        s.begin("k1", "fp", now()).await.unwrap(),
        IdempotencyBegin::Started
    );
}

/// The same key and request: in flight while running, then the stored response.
pub async fn idempotency_same_request_is_in_flight_then_replayed<H: Harness>(h: &H) {
    let s = h.store();
    s.begin("k1", "fp", now()).await.unwrap();
    assert_eq!(
        s.begin("k1", "fp", now()).await.unwrap(),
        IdempotencyBegin::InFlight
    );
    let response = StoredResponse {
        status: 201,
        body: br#"{"id":"pay_1"}"#.to_vec(),
    };
    s.finish("k1", response.clone()).await.unwrap();
    assert_eq!(
        s.begin("k1", "fp", now() + Duration::hours(23))
            .await
            .unwrap(),
        IdempotencyBegin::Replay(response)
    );
}

/// Runs a request with `key` to completion (a `201 {}` answer).
async fn answered<S: AllPorts + ?Sized>(s: &S, key: &str, fingerprint: &str) {
    assert_eq!(
        s.begin(key, fingerprint, now()).await.unwrap(),
        IdempotencyBegin::Started
    );
    s.finish(
        key,
        StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
        },
    )
    .await
    .unwrap();
}

/// The same key with another request is a mismatch.
pub async fn idempotency_other_request_with_the_key_is_a_mismatch<H: Harness>(h: &H) {
    let s = h.store();
    answered(&*s, "k1", "fp").await;
    assert_eq!(
        s.begin("k1", "other", now()).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
}

/// After 24 hours a key is forgotten.
pub async fn idempotency_keys_expire_after_24_hours<H: Harness>(h: &H) {
    let s = h.store();
    answered(&*s, "k1", "fp").await;
    assert_eq!(
        s.begin(
            "k1",
            "other",
            now() + IDEMPOTENCY_TTL + Duration::seconds(1)
        )
        .await
        .unwrap(),
        IdempotencyBegin::Started
    );
}

/// A released key can be used again.
pub async fn idempotency_release_frees_the_key<H: Harness>(h: &H) {
    let s = h.store();
    s.begin("k1", "fp", now()).await.unwrap();
    s.release("k1").await.unwrap();
    assert_eq!(
        s.begin("k1", "fp2", now()).await.unwrap(),
        IdempotencyBegin::Started
    );
}

/// Concurrent duplicates: exactly one starts.
pub async fn idempotency_concurrent_duplicates_start_once<H: Harness>(h: &H) {
    let s = h.store();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.begin("k-race", "fp", now()).await.unwrap() })
        })
        .collect();
    let mut started = 0;
    for t in tasks {
        if t.await.unwrap() == IdempotencyBegin::Started {
            started += 1;
        }
    }
    assert_eq!(started, 1);
}

/// Keys older than 24 hours are deleted; younger ones stay.
pub async fn expired_idempotency_keys_are_purged<H: Harness>(h: &H) {
    let s = h.store();
    answered(&*s, "old", "f").await;
    assert_eq!(
        s.purge_expired(now() + Duration::hours(1)).await.unwrap(),
        0,
        "still young"
    );
    assert_eq!(
        s.purge_expired(now() + IDEMPOTENCY_TTL + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.begin("old", "f", now() + IDEMPOTENCY_TTL + Duration::seconds(2))
            .await
            .unwrap(),
        IdempotencyBegin::Started,
        "the key is free again"
    );
}
