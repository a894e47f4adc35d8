//! The unit of work: all or nothing, empty change sets, killed writers, reopening.

use std::collections::BTreeSet;

use domain::*;
use ports::*;

use crate::Harness;
use crate::changes::{commit, insert, payments, stored_payment};
use crate::fixtures::{self, charge, confirm, event, now, payment, subscription, token, webhook};

/// A change set with one failing write writes nothing at all.
pub async fn failed_change_set_writes_nothing<H: Harness>(h: &H) {
    let s = h.store();
    let existing = payment("c");
    commit(&*s, insert(&existing)).await.unwrap();
    let fresh = payment("c");
    let t = token("c");
    let bad = ChangeSet {
        payments: vec![Write::insert(fresh.clone()), Write::insert(existing)],
        tokens: vec![Write::insert(t.clone())],
        events: vec![event("payment.succeeded", fresh.id())],
        outbox: vec![confirm("pay_x")],
        ..ChangeSet::default()
    };
    assert!(commit(&*s, bad).await.is_err());
    assert!(
        PaymentRepository::get(&*s, fresh.id())
            .await
            .unwrap()
            .is_none()
    );
    assert!(TokenRepository::get(&*s, &t.id).await.unwrap().is_none());
    assert!(s.after(None, 10).await.unwrap().is_empty());
    assert_eq!(s.backlog().await.unwrap().depth, 0);
}

/// An empty change set succeeds and writes nothing.
pub async fn empty_change_set_is_a_no_op<H: Harness>(h: &H) {
    let s = h.store();
    commit(&*s, ChangeSet::default()).await.unwrap();
    assert!(s.after(None, 10).await.unwrap().is_empty());
}

/// Change sets committed at the same time (SQLite writes them as one group)
/// are each all or nothing: a refused one (a stale version, a duplicate id)
/// fails alone and the others are written.
pub async fn concurrent_change_sets_fail_alone<H: Harness>(h: &H) {
    let s = h.store();
    let shared = payment("c");
    commit(&*s, insert(&shared)).await.unwrap();
    let mut tasks = Vec::new();
    let mut fresh = Vec::new();
    for i in 0..24 {
        let changes = match i % 6 {
            // Two writers of one version: one wins.
            0 | 1 => payments(vec![Write {
                value: shared.clone(),
                expected_version: Some(1),
            }]),
            // The id is taken.
            2 => insert(&shared),
            _ => {
                let p = payment("c");
                fresh.push(p.id().clone());
                ChangeSet {
                    events: vec![event("payment.created", p.id())],
                    ..insert(&p)
                }
            }
        };
        let store = s.clone();
        tasks.push(tokio::spawn(
            async move { store.commit(changes, now()).await },
        ));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        if i % 6 >= 3 {
            assert_eq!(outcome, &Ok(()), "change set {i}");
        }
        if i % 6 == 2 {
            assert!(outcome.is_err(), "a taken id is refused");
        }
    }
    let updates = outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| i % 6 < 2 && o.is_ok())
        .count();
    assert_eq!(updates, 1, "one writer of version 1 wins: {outcomes:?}");
    assert_eq!(stored_payment(&*s, shared.id()).await.version, 2);
    for id in &fresh {
        stored_payment(&*s, id).await;
    }
    assert_eq!(s.after(None, 100).await.unwrap().len(), fresh.len());
}

/// Writers killed at random points mid-transaction leave each change set whole or absent.
pub async fn aborted_writers_leave_all_or_nothing<H: Harness>(h: &H) {
    let s = h.store();
    let mut sets = Vec::new();
    for i in 0..20u64 {
        let p = payment("c");
        let t = token("c");
        let changes = ChangeSet {
            events: vec![event("payment.succeeded", p.id())],
            tokens: vec![Write::insert(t.clone())],
            payments: vec![Write::insert(p.clone())],
            ..ChangeSet::default()
        };
        let store = s.clone();
        let task = tokio::spawn(async move { store.commit(changes, now()).await });
        // Let it run a little, then kill it wherever it is.
        for _ in 0..(i % 5) {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        sets.push((p, t));
    }
    // A writer may outlive its aborted caller (SQLite's group commit writes
    // in a task of its own): one more commit through the same store lands
    // after every group still being written, so that what is read next
    // cannot change between reading the events and the payments.
    commit(&*s, insert(&payment("fence"))).await.unwrap();
    // Give rollbacks of dropped transactions time to finish, by reopening.
    let fresh = h.reopen().await;
    let events: BTreeSet<String> = fresh
        .after(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.subject_id)
        .collect();
    for (p, t) in sets {
        let has_payment = PaymentRepository::get(&*fresh, p.id())
            .await
            .unwrap()
            .is_some();
        let has_token = TokenRepository::get(&*fresh, &t.id)
            .await
            .unwrap()
            .is_some();
        let has_event = events.contains(p.id().as_str());
        assert!(
            has_payment == has_token && has_token == has_event,
            "partial commit of {}: {has_payment} {has_token} {has_event}",
            p.id()
        );
    }
}

/// Everything written is there after the store is dropped and the database reopened.
pub async fn everything_survives_a_reopen<H: Harness>(h: &H) {
    let s = h.store();
    let p = fixtures::rich_payment();
    let t = token("c");
    let sub = subscription(now());
    let c = charge(&sub, 0, 1, ChargeStatus::Pending);
    let IdempotencyBegin::Started(lease) = s.begin(claim(now())).await.unwrap() else {
        panic!("a new key starts");
    };
    commit(
        &*s,
        ChangeSet {
            payments: vec![Write::insert(p.clone())],
            tokens: vec![Write::insert(t.clone())],
            subscriptions: vec![Write::insert(sub.clone())],
            charges: vec![c.clone()],
            events: vec![event("payment.succeeded", p.id())],
            outbox: vec![confirm("pay_1")],
            inbox_applied: vec![],
            outbox_done: vec![],
            idempotency: Some(IdempotencyBinding {
                lease,
                payment_id: p.id().clone(),
            }),
            chargeable_token: None,
        },
    )
    .await
    .unwrap();
    s.store(webhook("w")).await.unwrap();
    drop(s);
    let r = h.reopen().await;
    assert_eq!(
        PaymentRepository::get(&*r, p.id())
            .await
            .unwrap()
            .unwrap()
            .value,
        p
    );
    assert_eq!(
        TokenRepository::get(&*r, &t.id)
            .await
            .unwrap()
            .unwrap()
            .value,
        t
    );
    assert_eq!(
        SubscriptionRepository::get(&*r, sub.id())
            .await
            .unwrap()
            .unwrap()
            .value,
        sub
    );
    assert_eq!(r.charges(sub.id()).await.unwrap(), vec![c]);
    assert_eq!(r.after(None, 10).await.unwrap().len(), 1);
    assert_eq!(r.backlog().await.unwrap().depth, 1);
    assert_eq!(r.pending(now(), 10).await.unwrap().len(), 1);
    assert_eq!(
        r.begin(claim(now())).await.unwrap(),
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        r.begin(claim(
            now() + IDEMPOTENCY_LEASE + time::Duration::seconds(1)
        ))
        .await
        .unwrap(),
        IdempotencyBegin::Bound(p.id().clone())
    );
}

fn claim(wall: time::OffsetDateTime) -> IdempotencyClaim {
    IdempotencyClaim {
        key: "k".into(),
        content: b"req".to_vec(),
        now: now(),
        wall,
    }
}
