//! Idempotency keys: start, replay, mismatch, expiry, concurrency, leases
//! and the binding of a key to the payment its request created.

use ports::*;
use time::{Duration, OffsetDateTime};

use crate::changes::{self, commit};
use crate::fixtures::{now, payment};
use crate::{AllPorts, Harness};

/// A claim on `key` for a request with `content`, at business time `now()`
/// and real time `wall`.
fn claim_at(
    key: &str,
    content: &str,
    at: OffsetDateTime,
    wall: OffsetDateTime,
) -> IdempotencyClaim {
    IdempotencyClaim {
        key: key.to_owned(),
        content: content.as_bytes().to_vec(),
        now: at,
        wall,
    }
}

fn claim(key: &str, content: &str) -> IdempotencyClaim {
    claim_at(key, content, now(), now())
}

/// Starts `key` and returns its lease.
async fn started<S: AllPorts + ?Sized>(s: &S, c: IdempotencyClaim) -> IdempotencyLease {
    match s.begin(c).await.unwrap() {
        IdempotencyBegin::Started(lease) => lease,
        other => panic!("expected a start, got {other:?}"),
    }
}

/// A new key starts, with a lease of [`IDEMPOTENCY_LEASE`].
pub async fn idempotency_first_use_starts<H: Harness>(h: &H) {
    let s = h.store();
    let lease = started(&*s, claim("k1", "req")).await;
    assert_eq!(lease.key, "k1");
    assert_eq!(lease.until, now() + IDEMPOTENCY_LEASE);
}

/// The same key and request: in flight while running, then the stored response.
pub async fn idempotency_same_request_is_in_flight_then_replayed<H: Harness>(h: &H) {
    let s = h.store();
    let lease = started(&*s, claim("k1", "req")).await;
    assert_eq!(
        s.begin(claim("k1", "req")).await.unwrap(),
        IdempotencyBegin::InFlight
    );
    let response = StoredResponse {
        status: 201,
        body: br#"{"id":"pay_1"}"#.to_vec(),
    };
    s.finish(&lease.key, response.clone()).await.unwrap();
    let later = now() + Duration::hours(23);
    assert_eq!(
        s.begin(claim_at("k1", "req", later, later)).await.unwrap(),
        IdempotencyBegin::Replay(response)
    );
}

/// Runs a request with `key` to completion (a `201 {}` answer).
async fn answered<S: AllPorts + ?Sized>(s: &S, key: &str, content: &str) {
    let lease = started(s, claim(key, content)).await;
    s.finish(
        &lease.key,
        StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
        },
    )
    .await
    .unwrap();
}

/// The same key with another request is a mismatch, and the stored
/// fingerprint is a keyed hash, not the content.
pub async fn idempotency_other_request_with_the_key_is_a_mismatch<H: Harness>(h: &H) {
    let s = h.store();
    answered(&*s, "k1", "4242424242424242").await;
    assert_eq!(
        s.begin(claim("k1", "other")).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
}

/// After 24 hours a key is forgotten.
pub async fn idempotency_keys_expire_after_24_hours<H: Harness>(h: &H) {
    let s = h.store();
    answered(&*s, "k1", "req").await;
    let later = now() + IDEMPOTENCY_TTL + Duration::seconds(1);
    started(&*s, claim_at("k1", "other", later, later)).await;
}

/// A released key that created nothing can be used again.
pub async fn idempotency_release_frees_the_key<H: Harness>(h: &H) {
    let s = h.store();
    let lease = started(&*s, claim("k1", "req")).await;
    s.release(&lease).await.unwrap();
    started(&*s, claim("k1", "req2")).await;
}

/// A request that died holding its key (no answer, nothing created) is
/// taken over once its lease lapses (real time), and only then; the
/// lapsed holder can no longer bind a payment.
pub async fn idempotency_a_lapsed_lease_is_taken_over<H: Harness>(h: &H) {
    let s = h.store();
    let dead = started(&*s, claim("k-lease", "req")).await;
    let soon = now() + IDEMPOTENCY_LEASE - Duration::seconds(1);
    assert_eq!(
        s.begin(claim_at("k-lease", "req", now(), soon))
            .await
            .unwrap(),
        IdempotencyBegin::InFlight,
        "the first request may still be running"
    );
    let lapsed = now() + IDEMPOTENCY_LEASE + Duration::seconds(1);
    let fresh = started(&*s, claim_at("k-lease", "req", now(), lapsed)).await;
    assert_ne!(fresh, dead);
    let p = payment("cust-lease");
    let mut late = changes::insert(&p);
    late.idempotency = Some(IdempotencyBinding {
        lease: dead,
        payment_id: p.id().clone(),
    });
    assert!(
        matches!(commit(&*s, late).await, Err(StoreError::Conflict(_))),
        "the old holder creates nothing"
    );
    assert_eq!(PaymentRepository::get(&*s, p.id()).await.unwrap(), None);
}

/// Once its request created a payment, a key answers with that payment:
/// after a 5xx (release) at once, after a crash when the lease lapses.
pub async fn idempotency_a_key_bound_to_a_payment_never_starts_again<H: Harness>(h: &H) {
    let s = h.store();
    let lease = started(&*s, claim("k-bound", "req")).await;
    let p = payment("cust-bound");
    let mut create = changes::insert(&p);
    create.idempotency = Some(IdempotencyBinding {
        lease: lease.clone(),
        payment_id: p.id().clone(),
    });
    commit(&*s, create).await.unwrap();
    assert_eq!(
        s.begin(claim("k-bound", "req")).await.unwrap(),
        IdempotencyBegin::InFlight,
        "while it runs"
    );
    let lapsed = now() + IDEMPOTENCY_LEASE + Duration::seconds(1);
    assert_eq!(
        s.begin(claim_at("k-bound", "req", now(), lapsed))
            .await
            .unwrap(),
        IdempotencyBegin::Bound(p.id().clone()),
        "after a crash"
    );
    s.release(&lease).await.unwrap();
    assert_eq!(
        s.begin(claim("k-bound", "req")).await.unwrap(),
        IdempotencyBegin::Bound(p.id().clone()),
        "a 5xx keeps the binding"
    );
    assert_eq!(
        s.begin(claim("k-bound", "other")).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
}

/// Concurrent duplicates: exactly one starts.
pub async fn idempotency_concurrent_duplicates_start_once<H: Harness>(h: &H) {
    let s = h.store();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.begin(claim("k-race", "req")).await.unwrap() })
        })
        .collect();
    let mut started = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), IdempotencyBegin::Started(_)) {
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
    let later = now() + IDEMPOTENCY_TTL + Duration::seconds(2);
    started(&*s, claim_at("old", "f", later, later)).await;
}
