//! The subscription machine fed any sequence of clock moves, charge starts,
//! successes, declines, pauses, resumes and cancels: only table moves, each
//! period paid at most once (a repeated success report is ignored), and a
//! cancelled subscription stays cancelled.
#![no_main]

use domain::{
    Currency, CustomerReference, DeclineClass, DunningPolicy, Interval, IntervalUnit, Money,
    NewSubscription, State, Subscription, SubscriptionId, SubscriptionStatus, TokenId,
};
use libfuzzer_sys::fuzz_target;
use time::{Duration, OffsetDateTime};

fuzz_target!(|input: (u8, Vec<(u8, u8)>)| {
    let (unit, ops) = input;
    let unit = [IntervalUnit::Day, IntervalUnit::Week, IntervalUnit::Month][usize::from(unit % 3)];
    let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let mut subscription = Subscription::new(
        NewSubscription {
            id: SubscriptionId::parse("sub_fuzz").expect("valid"),
            customer: CustomerReference::parse("fuzz").expect("valid"),
            token_id: TokenId::parse("tok_fuzz").expect("valid"),
            amount: Money::new(99_000, Currency::RUB).expect("valid"),
            interval: Interval::new(unit, 1).expect("valid"),
            start_at: start,
            description: None,
            metadata: None,
        },
        start,
    )
    .expect("a valid subscription");
    let policy = DunningPolicy::default();
    let mut clock = start;
    let mut paid = std::collections::BTreeSet::new();
    let mut cancelled = false;
    for (op, days) in ops.into_iter().take(64) {
        let before = subscription.status();
        match op % 7 {
            0 => clock += Duration::days(i64::from(days)),
            1 => {
                if let Some(due) = subscription.due_charge(clock) {
                    subscription.start_charge(due).expect("a due charge starts");
                }
            }
            2 => {
                if let (Some(attempt), Some(period)) =
                    (subscription.in_flight(), subscription.billing_period())
                {
                    let (applied, _) = subscription.charge_succeeded(period.index, attempt);
                    if applied.is_changed() {
                        assert!(
                            paid.insert(period.index),
                            "period {} paid twice",
                            period.index
                        );
                    }
                    assert!(
                        !subscription
                            .charge_succeeded(period.index, attempt)
                            .0
                            .is_changed()
                    );
                }
            }
            3 => {
                if let (Some(attempt), Some(period)) =
                    (subscription.in_flight(), subscription.billing_period())
                {
                    subscription.charge_failed(
                        period.index,
                        attempt,
                        DeclineClass::SoftDecline,
                        &policy,
                        clock,
                    );
                }
            }
            4 => {
                let _ = subscription.pause();
            }
            5 => {
                let _ = subscription.resume(clock);
            }
            _ => {
                subscription.cancel();
            }
        }
        assert!(
            SubscriptionStatus::allows(before, subscription.status()),
            "{before:?} -> {:?}",
            subscription.status()
        );
        if cancelled {
            assert_eq!(subscription.status(), SubscriptionStatus::Cancelled);
        }
        cancelled |= subscription.status() == SubscriptionStatus::Cancelled;
    }
});
