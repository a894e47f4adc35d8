//! Subscriptions and their charge attempts: due, once per period, outcomes.

use domain::*;
use ports::*;
use time::Duration;

use crate::Harness;
use crate::changes::{self, commit};
use crate::fixtures::{charge, now, payment, subscription};

/// A subscription survives storage.
pub async fn subscription_round_trips<H: Harness>(h: &H) {
    let s = h.store();
    let mut sub = subscription(now());
    sub.start_charge(sub.due_charge(now()).unwrap()).unwrap();
    commit(
        &*s,
        changes::subscriptions(vec![Write::insert(sub.clone())]),
    )
    .await
    .unwrap();
    assert_eq!(
        SubscriptionRepository::get(&*s, sub.id())
            .await
            .unwrap()
            .unwrap()
            .value,
        sub
    );
}

/// `due` returns active and past-due subscriptions whose next charge time has come, soonest first.
pub async fn due_subscriptions_are_the_chargeable_ones_whose_time_came<H: Harness>(h: &H) {
    let s = h.store();
    let early = subscription(now() - Duration::days(2));
    let late = subscription(now() - Duration::days(1));
    let future = subscription(now() + Duration::days(1));
    let mut paused = subscription(now() - Duration::days(3));
    paused.pause().unwrap();
    let mut cancelled = subscription(now() - Duration::days(3));
    cancelled.cancel();
    let writes = [&early, &late, &future, &paused, &cancelled]
        .map(|x| Write::insert(x.clone()))
        .to_vec();
    commit(&*s, changes::subscriptions(writes)).await.unwrap();
    let due: Vec<_> = s
        .due(now(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.value.id().clone())
        .collect();
    assert_eq!(due, vec![early.id().clone(), late.id().clone()]);
}

/// A (subscription, period, attempt) row is inserted once; a second insert rolls its change set back.
pub async fn each_subscription_period_attempt_exists_once<H: Harness>(h: &H) {
    let s = h.store();
    let sub = subscription(now());
    let first = charge(&sub, 0, 1, ChargeStatus::Pending);
    commit(&*s, changes::charges(vec![first])).await.unwrap();
    let p = payment("cust-sub");
    let twin = charge(&sub, 0, 1, ChargeStatus::Pending);
    let again = commit(
        &*s,
        ChangeSet {
            charges: vec![twin],
            payments: vec![Write::insert(p.clone())],
            ..ChangeSet::default()
        },
    )
    .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert!(
        PaymentRepository::get(&*s, p.id()).await.unwrap().is_none(),
        "the whole change set rolled back"
    );
    assert_eq!(s.charges(sub.id()).await.unwrap().len(), 1);
}

/// Two attempts of one period cannot both succeed.
pub async fn a_period_has_at_most_one_successful_charge<H: Harness>(h: &H) {
    let s = h.store();
    let sub = subscription(now());
    let mut a = charge(&sub, 0, 1, ChargeStatus::Pending);
    let mut b = charge(&sub, 0, 2, ChargeStatus::Pending);
    commit(&*s, changes::charges(vec![a.clone(), b.clone()]))
        .await
        .unwrap();
    a.status = ChargeStatus::Succeeded;
    commit(&*s, changes::charges(vec![a])).await.unwrap();
    b.status = ChargeStatus::Succeeded;
    let second = commit(&*s, changes::charges(vec![b])).await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    let next_period = charge(&sub, 1, 1, ChargeStatus::Succeeded);
    commit(&*s, changes::charges(vec![next_period]))
        .await
        .unwrap();
}

/// A charge's outcome is written over its pending row.
pub async fn charge_outcome_updates_in_place<H: Harness>(h: &H) {
    let s = h.store();
    let sub = subscription(now());
    let mut c = charge(&sub, 0, 1, ChargeStatus::Pending);
    commit(&*s, changes::charges(vec![c.clone()]))
        .await
        .unwrap();
    c.status = ChargeStatus::Failed;
    commit(&*s, changes::charges(vec![c.clone()]))
        .await
        .unwrap();
    assert_eq!(s.charges(sub.id()).await.unwrap(), vec![c]);
}

/// Charges come in (period, attempt) order.
pub async fn charges_are_listed_in_period_and_attempt_order<H: Harness>(h: &H) {
    let s = h.store();
    let sub = subscription(now());
    let rows = vec![
        charge(&sub, 1, 1, ChargeStatus::Pending),
        charge(&sub, 0, 2, ChargeStatus::Succeeded),
        charge(&sub, 0, 1, ChargeStatus::Failed),
    ];
    commit(&*s, changes::charges(rows.clone())).await.unwrap();
    let listed: Vec<_> = s
        .charges(sub.id())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.period_index, c.attempt))
        .collect();
    assert_eq!(listed, vec![(0, 1), (0, 2), (1, 1)]);
}

/// The charge a payment carries is found by the payment.
pub async fn charge_is_found_by_its_payment<H: Harness>(h: &H) {
    let s = h.store();
    let sub = subscription(now());
    let c = charge(&sub, 3, 2, ChargeStatus::Pending);
    commit(&*s, changes::charges(vec![c.clone()]))
        .await
        .unwrap();
    let paid_by = c.payment_id.clone().unwrap();
    assert_eq!(s.charge_by_payment(&paid_by).await.unwrap(), Some(c));
    assert_eq!(
        s.charge_by_payment(&PaymentId::parse("pay_none").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// Skipped periods are charges without a payment: several of them are
/// stored side by side and listed in period order.
pub async fn skipped_periods_are_charges_without_a_payment<H: Harness>(h: &H) {
    let s = h.store();
    let sub = subscription(now());
    let skipped = |index| {
        let mut c = charge(&sub, index, 0, ChargeStatus::Skipped);
        c.payment_id = None;
        c
    };
    let paid = charge(&sub, 2, 1, ChargeStatus::Pending);
    commit(
        &*s,
        changes::charges(vec![skipped(0), skipped(1), paid.clone()]),
    )
    .await
    .unwrap();
    assert_eq!(
        s.charges(sub.id()).await.unwrap(),
        vec![skipped(0), skipped(1), paid],
    );
    let again = commit(&*s, changes::charges(vec![skipped(1)])).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "a period is skipped once: {again:?}"
    );
}
