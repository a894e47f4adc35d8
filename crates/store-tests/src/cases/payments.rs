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
    let page = |after: Option<&PaymentId>, limit| {
        let s = s.clone();
        let after = after.cloned();
        async move {
            PaymentRepository::list_by_customer(&*s, &customer("cust-list"), Page { after, limit })
                .await
                .unwrap()
                .iter()
                .map(|p| p.id().clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        page(None, 3).await,
        vec![ids[3].clone(), ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        page(Some(&ids[2]), 3).await,
        vec![ids[1].clone(), ids[0].clone()],
        "the page after a cursor"
    );
    assert!(page(Some(&ids[0]), 3).await.is_empty(), "past the end");
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

/// Checks are due by each payment's own schedule: an unknown outcome at
/// once, a payment the bank works on after 30 s, one waiting for the
/// customer after 15 min, a finished one never; a check without news
/// pushes the next one later and counts, and news resets both.
pub async fn payments_are_due_for_a_check_by_their_own_schedule<H: Harness>(h: &H) {
    let s = h.store();
    let ago = |minutes| now() - Duration::minutes(minutes);
    let old = payment_at("c", ago(10));
    let fresh = payment_at("c", now());
    let mut done = payment_at("c", ago(10));
    done.apply(BankFact::Succeeded { token: None }, ago(10));
    let qr = || NextAction::Qr {
        content: "x".into(),
    };
    let mut waiting_for_customer = payment_at("c", ago(10));
    waiting_for_customer.apply(BankFact::ActionRequired(qr()), ago(10));
    let mut long_waiting = payment_at("c", ago(20));
    long_waiting.apply(BankFact::ActionRequired(qr()), ago(20));
    let mut unknown = payment_at("c", ago(10));
    unknown.apply(BankFact::ActionRequired(qr()), ago(10));
    unknown.mark_outcome_unknown(ago(10));
    let mut fresh_unknown = payment_at("c", now());
    fresh_unknown.mark_outcome_unknown(now());
    for p in [
        &old,
        &fresh,
        &done,
        &waiting_for_customer,
        &long_waiting,
        &unknown,
        &fresh_unknown,
    ] {
        commit(&*s, insert(p)).await.unwrap();
    }
    let due = |at| {
        let s = s.clone();
        async move {
            s.due_for_check(at, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.payment.id().clone(), d.checks))
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        due(now()).await,
        BTreeSet::from([
            (old.id().clone(), 0),
            (long_waiting.id().clone(), 0),
            (unknown.id().clone(), 0),
            (fresh_unknown.id().clone(), 0),
        ])
    );
    s.checked(old.id(), now() + Duration::minutes(5))
        .await
        .unwrap();
    let later = due(now() + Duration::minutes(6)).await;
    assert!(later.contains(&(old.id().clone(), 1)), "{later:?}");
    assert!(later.contains(&(waiting_for_customer.id().clone(), 0)));
    assert!(
        !due(now()).await.iter().any(|(id, _)| id == old.id()),
        "pushed later"
    );
    let mut read = stored_payment(&*s, old.id()).await;
    read.value.apply(BankFact::ActionRequired(qr()), now());
    commit(&*s, changes::payments(vec![Write::update(read)]))
        .await
        .unwrap();
    let after_news = due(now() + Duration::minutes(16)).await;
    assert!(
        after_news.contains(&(old.id().clone(), 0)),
        "news resets the count: {after_news:?}"
    );
    assert!(
        !due(now() + Duration::days(365))
            .await
            .iter()
            .any(|(id, _)| id == done.id())
    );
}

/// Payments are counted by status, statuses with none left out.
pub async fn payments_are_counted_by_status<H: Harness>(h: &H) {
    let s = h.store();
    assert_eq!(s.count_by_status().await.unwrap(), vec![]);
    let succeeded = fixtures::rich_payment();
    assert_eq!(succeeded.status(), PaymentStatus::Succeeded);
    let pending = [payment("cust-count"), payment("cust-count")];
    for p in pending.iter().chain([&succeeded]) {
        commit(&*s, changes::insert(p)).await.unwrap();
    }
    let mut counts = s.count_by_status().await.unwrap();
    counts.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        counts,
        vec![(PaymentStatus::Pending, 2), (PaymentStatus::Succeeded, 1)]
    );
}

/// A payment update that rests on a token being chargeable writes only
/// while the token is active, alone or with other writes; a change set whose
/// guard has no payment update to ride on is checked all the same. Refused,
/// it writes nothing.
pub async fn a_token_guarded_write_lands_only_while_the_token_is_active<H: Harness>(h: &H) {
    let s = h.store();
    let t = fixtures::token("cust-1");
    commit(&*s, changes::tokens(vec![Write::insert(t.clone())]))
        .await
        .unwrap();
    let p = payment("cust-1");
    commit(&*s, insert(&p)).await.unwrap();
    let guarded = |mut changes: ChangeSet, token: &TokenId| {
        changes.chargeable_token = Some(token.clone());
        changes
    };
    let update =
        || async { changes::payments(vec![Write::update(stored_payment(&*s, p.id()).await)]) };
    let with_event = || async {
        let mut changes = update().await;
        changes
            .events
            .push(fixtures::event("payment.updated", p.id()));
        changes
    };
    // Active: the update lands, alone and beside an event.
    commit(&*s, guarded(update().await, &t.id)).await.unwrap();
    commit(&*s, guarded(with_event().await, &t.id))
        .await
        .unwrap();
    assert_eq!(stored_payment(&*s, p.id()).await.version, 3);
    let events_before = s.after(None, 100).await.unwrap().len();

    let mut disabled = TokenRepository::get(&*s, &t.id).await.unwrap().unwrap();
    disabled.value.request_disable();
    commit(&*s, changes::tokens(vec![Write::update(disabled)]))
        .await
        .unwrap();
    let unknown = TokenId::parse("tok_nobody").unwrap();
    for token in [&t.id, &unknown] {
        let alone = commit(&*s, guarded(update().await, token)).await;
        assert!(matches!(alone, Err(StoreError::Conflict(_))), "{alone:?}");
        let beside = commit(&*s, guarded(with_event().await, token)).await;
        assert!(matches!(beside, Err(StoreError::Conflict(_))), "{beside:?}");
        let fresh = payment("cust-1");
        let no_update = commit(&*s, guarded(insert(&fresh), token)).await;
        assert!(
            matches!(no_update, Err(StoreError::Conflict(_))),
            "{no_update:?}"
        );
        assert!(
            PaymentRepository::get(&*s, fresh.id())
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        stored_payment(&*s, p.id()).await.version,
        3,
        "nothing written"
    );
    assert_eq!(s.after(None, 100).await.unwrap().len(), events_before);
}
