//! Payments: round trips, optimistic concurrency, lookups, reconciliation candidates.

use std::collections::BTreeSet;

use domain::*;
use ports::*;
use time::Duration;

use crate::Harness;
use crate::changes::{self, commit, insert, stored_payment};
use crate::fixtures::{self, customer, now, payment, payment_at};

/// Every field of a payment survives storage.
pub async fn payment_round_trips_every_field<H: Harness>(h: &H) {
    let s = h.store();
    for p in [payment("cust-1"), fixtures::rich_payment()] {
        commit(&*s, insert(&p)).await.unwrap();
        let read = stored_payment(&*s, p.id()).await;
        assert_eq!(read.value, p);
        assert_eq!(read.version, 1);
    }
}

/// Inserting an id that exists is a conflict.
pub async fn payment_insert_of_an_existing_id_conflicts<H: Harness>(h: &H) {
    let s = h.store();
    let p = payment("cust-1");
    commit(&*s, insert(&p)).await.unwrap();
    assert!(matches!(
        commit(&*s, insert(&p)).await,
        Err(StoreError::Conflict(_))
    ));
}

/// An update of a version that is no longer current is a conflict.
pub async fn payment_update_of_a_stale_version_conflicts<H: Harness>(h: &H) {
    let s = h.store();
    let p = payment("cust-1");
    commit(&*s, insert(&p)).await.unwrap();
    let read = stored_payment(&*s, p.id()).await;
    commit(&*s, changes::payments(vec![Write::update(read.clone())]))
        .await
        .unwrap();
    let stale = commit(&*s, changes::payments(vec![Write::update(read)])).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(stored_payment(&*s, p.id()).await.version, 2);
}

/// Two writers read the same version and write at once: one wins, one gets `Conflict`.
pub async fn two_writers_of_one_payment_exactly_one_wins<H: Harness>(h: &H) {
    let s = h.store();
    let s2 = h.reopen().await;
    for _ in 0..5 {
        let p = payment("cust-1");
        commit(&*s, insert(&p)).await.unwrap();
        let read = stored_payment(&*s, p.id()).await;
        let mut a = read.clone();
        a.value.attach_session(fixtures::session(), now());
        let mut b = read.clone();
        b.value.mark_outcome_unknown(now());
        let (ra, rb) = tokio::join!(
            commit(&*s, changes::payments(vec![Write::update(a.clone())])),
            commit(&*s2, changes::payments(vec![Write::update(b.clone())])),
        );
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{ra:?} {rb:?}");
        assert!(
            [&ra, &rb]
                .iter()
                .any(|r| matches!(r, Err(StoreError::Conflict(_))))
        );
        let stored = stored_payment(&*s, p.id()).await;
        assert_eq!(stored.version, 2);
        assert!(stored.value == a.value || stored.value == b.value);
    }
}

/// A payment is found by the bank session it runs in.
pub async fn payment_is_found_by_its_bank_session<H: Harness>(h: &H) {
    let s = h.store();
    let mut p = payment("cust-1");
    let session = fixtures::session();
    p.attach_session(session.clone(), now());
    commit(&*s, insert(&p)).await.unwrap();
    assert_eq!(s.by_session(&session).await.unwrap().unwrap().value, p);
    assert!(s.by_session(&fixtures::session()).await.unwrap().is_none());
}

/// A customer's payments come newest first, at most `limit`.
pub async fn payments_are_listed_newest_first_within_the_limit<H: Harness>(h: &H) {
    let s = h.store();
    let mut ids = Vec::new();
    for i in 0..4 {
        let p = payment_at("cust-list", now() + Duration::seconds(i));
        commit(&*s, insert(&p)).await.unwrap();
        ids.push(p.id().clone());
    }
    commit(&*s, insert(&payment("someone-else"))).await.unwrap();
    let listed: Vec<_> = PaymentRepository::list_by_customer(&*s, &customer("cust-list"), 3)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id().clone())
        .collect();
    assert_eq!(listed, vec![ids[3].clone(), ids[2].clone(), ids[1].clone()]);
}

/// An unknown id reads as `None`.
pub async fn unknown_payment_is_none<H: Harness>(h: &H) {
    let s = h.store();
    assert!(
        PaymentRepository::get(&*s, &PaymentId::parse("pay_nope").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

/// Reconciliation candidates: pending payments older than the cut-off, and every unknown outcome.
pub async fn reconciliation_finds_only_old_unfinished_payments<H: Harness>(h: &H) {
    let s = h.store();
    let old = payment_at("c", now() - Duration::minutes(10));
    let fresh = payment_at("c", now());
    let mut done = payment_at("c", now() - Duration::minutes(10));
    done.apply(
        BankFact::Succeeded { token: None },
        now() - Duration::minutes(10),
    );
    let mut waiting_for_customer = payment_at("c", now() - Duration::minutes(10));
    waiting_for_customer.apply(
        BankFact::ActionRequired(NextAction::Qr {
            content: "x".into(),
        }),
        now() - Duration::minutes(10),
    );
    let mut unknown = payment_at("c", now() - Duration::minutes(10));
    unknown.apply(
        BankFact::ActionRequired(NextAction::Qr {
            content: "x".into(),
        }),
        now() - Duration::minutes(10),
    );
    unknown.mark_outcome_unknown(now() - Duration::minutes(10));
    let mut fresh_unknown = payment_at("c", now());
    fresh_unknown.mark_outcome_unknown(now());
    for p in [
        &old,
        &fresh,
        &done,
        &waiting_for_customer,
        &unknown,
        &fresh_unknown,
    ] {
        commit(&*s, insert(p)).await.unwrap();
    }
    let found: BTreeSet<_> = s
        .stale_pending(now() - Duration::minutes(1), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id().clone())
        .collect();
    assert_eq!(
        found,
        BTreeSet::from([
            old.id().clone(),
            unknown.id().clone(),
            fresh_unknown.id().clone()
        ])
    );
}
