//! Property tests of the domain's state machines: order-independence of bank
//! facts, absorbing terminal states, and period arithmetic.

use domain::*;
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

fn payment(method: PaymentMethod, confirmation: Confirmation) -> Payment {
    Payment::new(
        NewPayment {
            id: PaymentId::parse("pay_prop").unwrap(),
            customer: CustomerReference::parse("lucky").unwrap(),
            amount: Money::new(10_000, Currency::RUB).unwrap(),
            method,
            save_token: true,
            confirmation,
            return_url: Some("https://131.ru".into()),
            description: None,
            metadata: None,
        },
        now(),
    )
    .unwrap()
}

fn token(raw: &str) -> IssuedToken {
    IssuedToken {
        secret: RecurrentTokenSecret::parse(raw).unwrap(),
        created_at: None,
        finished_at: None,
        is_active: true,
    }
}

fn redirect() -> NextAction {
    NextAction::Redirect {
        url: "https://bank131.ru?foo=bar".into(),
        method: "GET".into(),
        params: vec![("MD".into(), "abc75daefnn".into())],
    }
}

fn qr() -> NextAction {
    NextAction::Qr {
        content: "https://qr.nspk.ru/AS1000".into(),
    }
}

fn failure(code: &str) -> BankFact {
    BankFact::Failed(Failure {
        code: ErrorCode::parse(code).unwrap(),
        message: code.into(),
    })
}

fn rub(v: i64) -> Money {
    Money::new(v, Currency::RUB).unwrap()
}

fn token_method() -> PaymentMethod {
    PaymentMethod::Token {
        token_id: TokenId::parse("tok_1").unwrap(),
        initiator: Initiator::Client,
    }
}

/// The bank facts of each seed flow, in the order the bank sends them.
fn seed_flows() -> Vec<(&'static str, PaymentMethod, Confirmation, Vec<BankFact>)> {
    let fps = || PaymentMethod::Fps {
        subscription_service: None,
    };
    vec![
        (
            "000 card CIT with 3-DS",
            token_method(),
            Confirmation::Automatic,
            vec![
                BankFact::ActionRequired(redirect()),
                BankFact::Succeeded {
                    token: Some(token("feda2b21")),
                },
            ],
        ),
        (
            "001 first card payment saving a token",
            PaymentMethod::Card,
            Confirmation::Automatic,
            vec![BankFact::Succeeded {
                token: Some(token("feda2b21")),
            }],
        ),
        (
            "001 MIT with a token",
            PaymentMethod::Token {
                token_id: TokenId::parse("tok_1").unwrap(),
                initiator: Initiator::Merchant,
            },
            Confirmation::Automatic,
            vec![BankFact::Succeeded { token: None }],
        ),
        (
            "002 Smart Glocal two-step, automatic",
            token_method(),
            Confirmation::Automatic,
            vec![
                BankFact::ReadyToConfirm,
                BankFact::ActionRequired(redirect()),
                BankFact::Succeeded {
                    token: Some(token("feda2b21")),
                },
            ],
        ),
        (
            "002 Smart Glocal two-step, manual",
            token_method(),
            Confirmation::Manual,
            vec![
                BankFact::ReadyToConfirm,
                BankFact::ActionRequired(redirect()),
                BankFact::Succeeded { token: None },
            ],
        ),
        (
            "003 FPS QR success",
            fps(),
            Confirmation::Automatic,
            vec![
                BankFact::ReadyToConfirm,
                BankFact::ActionRequired(qr()),
                BankFact::Succeeded {
                    token: Some(token("6a6a29c4")),
                },
            ],
        ),
        (
            "003 FPS QR expired",
            fps(),
            Confirmation::Automatic,
            vec![
                BankFact::ReadyToConfirm,
                BankFact::ActionRequired(qr()),
                failure("qr_expired"),
            ],
        ),
        (
            "widget, automatic, 3-D Secure inside the widget",
            PaymentMethod::Widget {
                recurrent_checkbox: false,
            },
            Confirmation::Automatic,
            vec![
                BankFact::ReadyToConfirm,
                BankFact::ActionRequired(redirect()),
                BankFact::Succeeded {
                    token: Some(token("w1d6e7")),
                },
            ],
        ),
        (
            "widget, manual confirmation",
            PaymentMethod::Widget {
                recurrent_checkbox: true,
            },
            Confirmation::Manual,
            vec![
                BankFact::ReadyToConfirm,
                BankFact::Succeeded { token: None },
            ],
        ),
        (
            "card with capture and refunds",
            PaymentMethod::Card,
            Confirmation::Automatic,
            vec![
                BankFact::ActionRequired(redirect()),
                BankFact::ReadyToCapture,
                BankFact::Succeeded { token: None },
                BankFact::Refunded { total: rub(4_000) },
                BankFact::Refunded { total: rub(10_000) },
            ],
        ),
    ]
}

/// Applies facts like the service does: a merchant who confirms whenever asked.
fn run(mut p: Payment, facts: &[BankFact]) -> (Payment, usize) {
    let mut tokens_saved = 0;
    for fact in facts {
        let before = p.status();
        let out = p.apply(fact.clone(), now());
        if let Applied::Changed { from, to } = out.applied {
            assert!(
                PaymentStatus::allows(from, to),
                "{from:?} -> {to:?} not in the table"
            );
        }
        if before.is_terminal() {
            assert_eq!(p.status(), before, "terminal state left");
        }
        tokens_saved += out
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::SaveToken(_)))
            .count();
        if p.status() == PaymentStatus::RequiresConfirmation {
            p.confirm(now()).unwrap();
        }
    }
    (p, tokens_saved)
}

/// A payment as the service hands it to the bank: a widget payment shows its
/// widget before any bank fact can exist (the customer needs it to pay).
fn started(method: PaymentMethod, confirmation: Confirmation) -> Payment {
    let widget = matches!(method, PaymentMethod::Widget { .. });
    let mut p = payment(method, confirmation);
    if widget {
        p.show_widget("pt_widget".into(), now());
        assert_eq!(p.status(), PaymentStatus::RequiresAction);
    }
    p
}

/// A flow's facts with duplicates added, then shuffled.
fn shuffled_with_duplicates(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..n, 0..=2 * n).prop_flat_map(move |extra| {
        let mut all: Vec<usize> = (0..n).collect();
        all.extend(extra);
        Just(all).prop_shuffle()
    })
}

proptest! {
    #[test]
    fn every_permutation_and_duplication_of_seed_facts_ends_like_the_ordered_flow(
        flow in 0..seed_flows().len(),
        order in shuffled_with_duplicates(5),
    ) {
        let (name, method, confirmation, facts) = seed_flows().swap_remove(flow);
        let (expected, expected_tokens) = run(started(method.clone(), confirmation), &facts);
        let permuted: Vec<BankFact> = order.iter().filter(|&&i| i < facts.len()).map(|&i| facts[i].clone()).collect();
        let (got, got_tokens) = run(started(method, confirmation), &permuted);
        prop_assert_eq!(got.to_parts(), expected.to_parts(), "flow {}", name);
        prop_assert_eq!(got_tokens, expected_tokens, "flow {}: tokens saved", name);
        prop_assert!(expected.status().is_terminal(), "flow {} must end", name);
    }
}

#[derive(Debug, Clone)]
enum Step {
    Fact(BankFact),
    Confirm,
    Cancel,
    Refund(i64),
    Unknown,
}

fn any_fact() -> impl Strategy<Value = BankFact> {
    prop_oneof![
        Just(BankFact::ReadyToConfirm),
        Just(BankFact::ActionRequired(redirect())),
        Just(BankFact::ActionRequired(qr())),
        Just(BankFact::ReadyToCapture),
        Just(BankFact::Succeeded {
            token: Some(token("tok"))
        }),
        Just(BankFact::Succeeded { token: None }),
        Just(failure("insufficient_funds")),
        Just(failure("something_new")),
        Just(BankFact::CancelConfirmed),
        (0..20_000i64).prop_map(|v| BankFact::Refunded { total: rub(v) }),
    ]
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any_fact().prop_map(Step::Fact),
        1 => Just(Step::Confirm),
        1 => Just(Step::Cancel),
        1 => (0..20_000i64).prop_map(Step::Refund),
        1 => Just(Step::Unknown),
    ]
}

proptest! {
    #[test]
    fn no_step_sequence_panics_leaves_a_terminal_state_or_breaks_the_table(
        steps in proptest::collection::vec(any_step(), 0..25),
        manual in any::<bool>(),
    ) {
        let confirmation = if manual { Confirmation::Manual } else { Confirmation::Automatic };
        let mut p = payment(PaymentMethod::Card, confirmation);
        let mut terminal: Option<PaymentStatus> = None;
        let mut tokens = 0;
        for step in steps {
            let before = p.status();
            match step {
                Step::Fact(f) => {
                    let out = p.apply(f, now());
                    tokens += out.effects.iter().filter(|e| matches!(e, Effect::SaveToken(_))).count();
                }
                Step::Confirm => { let _ = p.confirm(now()); }
                Step::Cancel => { let _ = p.cancel(now()); }
                Step::Refund(v) => { let _ = p.check_refund(rub(v)); }
                Step::Unknown => p.mark_outcome_unknown(now()),
            }
            prop_assert!(PaymentStatus::allows(before, p.status()), "{:?} -> {:?}", before, p.status());
            if let Some(t) = terminal { prop_assert_eq!(p.status(), t); }
            if p.status().is_terminal() { terminal = Some(p.status()); }
            prop_assert!(p.refunded().minor() <= p.amount().minor());
        }
        prop_assert!(tokens <= 1, "at most one token per payment");
    }

    #[test]
    fn a_disabled_token_is_never_active_again(ops in proptest::collection::vec(0..4u8, 0..20)) {
        let mut t = RecurrentToken::issued(
            TokenId::parse("tok_1").unwrap(), CustomerReference::parse("c").unwrap(),
            &token("x"), TokenMethod::Card, PaymentId::parse("pay_1").unwrap(), now());
        let mut disabled = false;
        for op in ops {
            let before = t.status();
            match op {
                0 => { t.request_disable(); }
                1 => { let _ = t.disable_confirmed(); }
                2 => { t.observe_info(true, None, now()); }
                _ => { t.observe_info(false, None, now()); }
            }
            prop_assert!(TokenStatus::allows(before, t.status()));
            if disabled { prop_assert_eq!(t.status(), TokenStatus::Disabled); }
            disabled |= t.status() == TokenStatus::Disabled;
            prop_assert_eq!(t.can_charge(), t.status() == TokenStatus::Active);
        }
    }
}

fn subscription(unit: IntervalUnit, count: u32, start: OffsetDateTime) -> Subscription {
    subscription_created_at(unit, count, start, start)
}

fn subscription_created_at(
    unit: IntervalUnit,
    count: u32,
    start: OffsetDateTime,
    created: OffsetDateTime,
) -> Subscription {
    Subscription::new(
        NewSubscription {
            id: SubscriptionId::parse("sub_1").unwrap(),
            customer: CustomerReference::parse("c").unwrap(),
            token_id: TokenId::parse("tok_1").unwrap(),
            amount: rub(99_000),
            interval: Interval::new(unit, count).unwrap(),
            start_at: start,
            description: None,
            metadata: None,
        },
        created,
    )
    .unwrap()
}

fn any_unit() -> impl Strategy<Value = IntervalUnit> {
    prop_oneof![
        Just(IntervalUnit::Day),
        Just(IntervalUnit::Week),
        Just(IntervalUnit::Month)
    ]
}

proptest! {
    #[test]
    fn periods_never_skip_or_repeat_over_ten_years(
        unit in any_unit(),
        count in 1u32..=12,
        start_secs in 0i64..4_102_444_800, // 1970 .. 2100
    ) {
        let anchor = OffsetDateTime::from_unix_timestamp(start_secs).unwrap();
        let interval = Interval::new(unit, count).unwrap();
        let horizon = anchor + Duration::days(3653);
        let mut n = 0;
        let mut prev = interval.period_start(anchor, 0).unwrap();
        prop_assert_eq!(prev, anchor);
        while prev < horizon {
            n += 1;
            let next = interval.period_start(anchor, n).unwrap();
            prop_assert!(next > prev, "period {} does not move forward", n);
            prop_assert_eq!(next.time(), anchor.time());
            match unit {
                IntervalUnit::Day => prop_assert_eq!(next - prev, Duration::days(i64::from(count))),
                IntervalUnit::Week => prop_assert_eq!(next - prev, Duration::weeks(i64::from(count))),
                IntervalUnit::Month => {
                    let idx = |d: OffsetDateTime| i64::from(d.year()) * 12 + i64::from(u8::from(d.month()));
                    prop_assert_eq!(idx(next) - idx(prev), i64::from(count), "a month skipped or repeated");
                    prop_assert_eq!(next.day(), anchor.day().min(next.month().length(next.year())));
                }
            }
            prev = next;
        }
    }

    #[test]
    fn each_period_is_paid_at_most_once_and_cancelled_is_final(
        ops in proptest::collection::vec(0..7u8, 0..40),
    ) {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut sub = subscription(IntervalUnit::Month, 1, start);
        let mut clock = start;
        let mut paid = std::collections::BTreeSet::new();
        let mut cancelled = false;
        let policy = DunningPolicy::default();
        for op in ops {
            let before = sub.status();
            match op {
                0 => clock += Duration::days(3),
                1 => if let Some(due) = sub.due_charge(clock) { sub.start_charge(due).unwrap(); },
                2 => if let (Some(a), Some(p)) = (sub.in_flight(), sub.billing_period()) {
                    let (applied, _) = sub.charge_succeeded(p.index, a);
                    if applied.is_changed() { prop_assert!(paid.insert(p.index), "period {} paid twice", p.index); }
                    // A duplicate report is ignored.
                    prop_assert!(!sub.charge_succeeded(p.index, a).0.is_changed());
                },
                3 => if let (Some(a), Some(p)) = (sub.in_flight(), sub.billing_period()) {
                    sub.charge_failed(p.index, a, DeclineClass::SoftDecline, &policy, clock);
                },
                4 => { let _ = sub.pause(); }
                5 => { let _ = sub.resume(clock); }
                _ => { sub.cancel(); }
            }
            prop_assert!(SubscriptionStatus::allows(before, sub.status()), "{:?} -> {:?}", before, sub.status());
            if cancelled { prop_assert_eq!(sub.status(), SubscriptionStatus::Cancelled); }
            cancelled |= sub.status() == SubscriptionStatus::Cancelled;
        }
    }
}

/// What the scheduler does with a run at `clock`, as the service does it.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Paid,
    Declined,
    /// The process died between the claim and the bank: the charge stays in
    /// flight until reconciliation settles it at a later run.
    Crashed,
}

proptest! {
    #[test]
    fn backdated_anchors_downtime_and_crashes_never_bill_time_that_is_over(
        unit in any_unit(),
        count in 1u32..=3,
        backdated_days in 0i64..400,
        runs in proptest::collection::vec((0i64..90 * 24, 0..3u8), 1..40),
    ) {
        let created = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let anchor = created - Duration::days(backdated_days);
        let mut sub = subscription_created_at(unit, count, anchor, created);
        let first = sub.interval().index_at(anchor, created).unwrap();
        prop_assert_eq!(sub.current_period(created).unwrap().index, first);
        let policy = DunningPolicy::default();
        let mut clock = created;
        let mut paid = std::collections::BTreeSet::new();
        let mut settled = std::collections::BTreeSet::new();
        let mut crashed: Option<(u32, u32)> = None;
        for (gap_hours, outcome) in runs {
            // A gap is the service being down (or idle) for that long.
            clock += Duration::hours(gap_hours);
            if let Some((period, attempt)) = crashed.take() {
                sub.charge_succeeded(period, attempt);
                prop_assert!(paid.insert(period), "period {} paid twice", period);
            }
            for skipped in sub.skip_missed(clock) {
                prop_assert!(skipped.end <= clock);
                prop_assert!(skipped.index >= first, "a period before creation is never listed");
                prop_assert!(settled.insert(skipped.index), "period {} skipped after it was charged", skipped.index);
            }
            let Some(due) = sub.due_charge(clock) else { continue };
            prop_assert!(due.period.index >= first, "a period that ended before creation is never charged");
            if due.attempt == 1 {
                prop_assert!(due.period.start <= clock && clock < due.period.end,
                    "a first attempt is for the period the customer is in: {:?} at {}", due.period, clock);
            }
            sub.start_charge(due).unwrap();
            settled.insert(due.period.index);
            match [Outcome::Paid, Outcome::Declined, Outcome::Crashed][usize::from(outcome)] {
                Outcome::Paid => {
                    sub.charge_succeeded(due.period.index, due.attempt);
                    prop_assert!(paid.insert(due.period.index), "period {} paid twice", due.period.index);
                    let current = sub.current_period(clock).unwrap();
                    if clock < due.period.end {
                        // Paid in time: the customer is in the paid period, not the next one.
                        prop_assert_eq!(current, due.period);
                        prop_assert_eq!(sub.next_charge_at(), Some(due.period.end));
                    }
                }
                Outcome::Declined => {
                    sub.charge_failed(due.period.index, due.attempt, DeclineClass::SoftDecline, &policy, clock);
                }
                Outcome::Crashed => crashed = Some((due.period.index, due.attempt)),
            }
        }
    }
}

#[test]
fn a_backdated_anchor_bills_the_period_of_today_once() {
    let created = time::macros::datetime!(2026-03-15 12:00 UTC);
    let anchor = created - Duration::days(30);
    let mut sub = subscription_created_at(IntervalUnit::Day, 1, anchor, created);
    let due = sub
        .due_charge(created)
        .expect("the current period is due at once");
    assert_eq!(due.period.index, 30);
    assert_eq!(due.period.start, anchor + Duration::days(30));
    sub.start_charge(due).unwrap();
    sub.charge_succeeded(30, 1);
    assert_eq!(sub.due_charge(created), None, "nothing else is due today");
    assert_eq!(sub.current_period(created).unwrap().index, 30);
    assert_eq!(sub.next_charge_at(), Some(anchor + Duration::days(31)));
}

#[test]
fn periods_that_ended_while_nothing_ran_are_skipped_not_billed() {
    let start = time::macros::datetime!(2026-01-01 00:00 UTC);
    let mut sub = subscription(IntervalUnit::Day, 1, start);
    assert_eq!(
        sub.current_period(start - Duration::days(5)).unwrap().index,
        0,
        "before it starts: the first period"
    );
    sub.start_charge(sub.due_charge(start).unwrap()).unwrap();
    sub.charge_succeeded(0, 1);
    assert_eq!(
        sub.current_period(start + Duration::hours(23))
            .unwrap()
            .index,
        0,
        "paid period 0 is current until it ends"
    );
    let back = start + Duration::days(4) + Duration::hours(1);
    let skipped: Vec<u32> = sub.skip_missed(back).iter().map(|p| p.index).collect();
    assert_eq!(skipped, vec![1, 2, 3]);
    let due = sub.due_charge(back).unwrap();
    assert_eq!((due.period.index, due.attempt), (4, 1));
    assert!(sub.skip_missed(back).is_empty(), "skipping is idempotent");
}

#[test]
fn a_period_in_dunning_is_retried_not_skipped() {
    let start = time::macros::datetime!(2026-01-01 00:00 UTC);
    let mut sub = subscription(IntervalUnit::Day, 1, start);
    sub.start_charge(sub.due_charge(start).unwrap()).unwrap();
    sub.charge_failed(
        0,
        1,
        DeclineClass::SoftDecline,
        &DunningPolicy::default(),
        start,
    );
    let later = start + Duration::days(10);
    assert!(sub.skip_missed(later).is_empty());
    let retry = sub.due_charge(later).unwrap();
    assert_eq!((retry.period.index, retry.attempt), (0, 2));
    assert_eq!(
        sub.current_period(later).unwrap().index,
        0,
        "the period being dunned"
    );
}

#[test]
fn index_at_finds_the_period_that_contains_a_moment() {
    let anchor = time::macros::datetime!(2024-01-31 09:30 UTC);
    let monthly = Interval::new(IntervalUnit::Month, 1).unwrap();
    for n in 0..30 {
        let start = monthly.period_start(anchor, n).unwrap();
        assert_eq!(monthly.index_at(anchor, start), Some(n));
        assert_eq!(
            monthly.index_at(anchor, start - Duration::seconds(1)),
            Some(n.saturating_sub(1))
        );
    }
    assert_eq!(
        monthly.index_at(anchor, anchor - Duration::days(400)),
        Some(0)
    );
}

#[test]
fn month_end_anchor_clamps_and_recovers() {
    let anchor = time::macros::datetime!(2024-01-31 09:30 UTC);
    let i = Interval::new(IntervalUnit::Month, 1).unwrap();
    let days: Vec<_> = (0..4)
        .map(|n| i.period_start(anchor, n).unwrap().date().to_string())
        .collect();
    assert_eq!(
        days,
        ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]
    );
}

#[test]
fn interval_counts_outside_a_year_are_refused() {
    assert!(Interval::new(IntervalUnit::Month, 0).is_err());
    assert!(Interval::new(IntervalUnit::Month, 13).is_err());
    assert!(Interval::new(IntervalUnit::Week, 53).is_err());
    assert!(Interval::new(IntervalUnit::Day, 366).is_err());
}

#[test]
fn manual_cancel_ends_cancelled_not_failed() {
    let mut p = payment(token_method(), Confirmation::Manual);
    p.apply(BankFact::ReadyToConfirm, now());
    assert_eq!(
        p.cancel(now()).unwrap().effects,
        vec![Effect::CancelSession]
    );
    assert!(p.confirm(now()).is_err(), "no confirm after cancel");
    p.apply(failure("session_cancelled_by_partner"), now());
    assert_eq!(p.status(), PaymentStatus::Cancelled);
}

#[test]
fn confirm_and_cancel_are_refused_outside_requires_confirmation() {
    let mut p = payment(PaymentMethod::Card, Confirmation::Manual);
    assert!(p.confirm(now()).is_err());
    assert!(p.cancel(now()).is_err());
}

#[test]
fn refunds_are_limited_to_what_was_paid() {
    let mut p = payment(PaymentMethod::Card, Confirmation::Automatic);
    assert!(p.check_refund(rub(1)).is_err(), "not paid yet");
    p.apply(BankFact::Succeeded { token: None }, now());
    assert!(p.check_refund(rub(10_000)).is_ok());
    p.apply(BankFact::Refunded { total: rub(6_000) }, now());
    assert_eq!(
        p.check_refund(rub(4_001)),
        Err(PaymentError::RefundTooLarge)
    );
    assert_eq!(
        p.check_refund(Money::new(1, Currency::USD).unwrap()),
        Err(PaymentError::CurrencyMismatch)
    );
    assert!(p.check_refund(rub(4_000)).is_ok());
    assert!(
        !p.apply(BankFact::Refunded { total: rub(6_000) }, now())
            .applied
            .is_changed()
    );
    p.apply(BankFact::Refunded { total: rub(10_000) }, now());
    let refused = p.check_refund(rub(1)).unwrap_err();
    assert_eq!(refused, PaymentError::AlreadyRefunded);
    assert_eq!(refused.code(), "already_refunded");
}

#[test]
fn fps_needs_roubles_and_cit_needs_a_return_url() {
    let mut new = NewPayment {
        id: PaymentId::parse("pay_1").unwrap(),
        customer: CustomerReference::parse("c").unwrap(),
        amount: Money::new(100, Currency::USD).unwrap(),
        method: PaymentMethod::FpsBinding {
            subscription_service: None,
        },
        save_token: true,
        confirmation: Confirmation::Automatic,
        return_url: None,
        description: None,
        metadata: None,
    };
    assert_eq!(
        Payment::new(new.clone(), now()).unwrap_err(),
        PaymentError::FpsNeedsRub
    );
    new.amount = rub(100);
    new.method = token_method();
    assert_eq!(
        Payment::new(new, now()).unwrap_err(),
        PaymentError::ReturnUrlRequired
    );
}

#[test]
fn past_due_subscription_with_a_new_token_is_due_at_once() {
    let start = now();
    let mut sub = subscription(IntervalUnit::Month, 1, start);
    sub.start_charge(sub.due_charge(start).unwrap()).unwrap();
    sub.charge_failed(
        0,
        1,
        DeclineClass::HardDecline,
        &DunningPolicy::default(),
        start,
    );
    assert_eq!(sub.status(), SubscriptionStatus::PastDue);
    assert_eq!(sub.next_charge_at(), None, "hard declines are not retried");
    let later = start + Duration::days(10);
    sub.replace_token(TokenId::parse("tok_2").unwrap(), later)
        .unwrap();
    let due = sub.due_charge(later).unwrap();
    assert_eq!((due.period.index, due.attempt), (0, 2));
}

#[test]
fn resume_skips_periods_that_ended_while_paused() {
    let start = now();
    let mut sub = subscription(IntervalUnit::Week, 1, start);
    sub.pause().unwrap();
    let later = start + Duration::days(22);
    sub.resume(later).unwrap();
    let due = sub.due_charge(later).unwrap();
    assert_eq!(due.period.index, 3);
    assert!(due.period.start <= later && later < due.period.end);
}

#[test]
fn transition_tables_are_exported_for_every_machine() {
    let names: Vec<_> = all_tables().iter().map(|t| t.machine).collect();
    assert_eq!(
        names,
        [
            "BankSession",
            "AcquiringPayment",
            "Payment",
            "RecurrentToken",
            "Subscription"
        ]
    );
    for table in all_tables() {
        for (from, _, to) in &table.transitions {
            assert!(table.states.contains(from) && table.states.contains(to));
        }
    }
}

#[test]
fn a_widget_payment_is_confirmed_after_the_widget_and_keeps_it_through_3ds() {
    let widget = PaymentMethod::Widget {
        recurrent_checkbox: false,
    };
    let mut p = payment(widget.clone(), Confirmation::Automatic);
    p.show_widget("pt_1".into(), now());
    assert_eq!(p.status(), PaymentStatus::RequiresAction);
    let out = p.apply(BankFact::ReadyToConfirm, now());
    assert_eq!(
        out.effects,
        vec![Effect::ConfirmSession],
        "confirmed, not dropped as stale"
    );
    assert_eq!(p.status(), PaymentStatus::Pending);
    let out = p.apply(BankFact::ActionRequired(redirect()), now());
    assert_eq!(out.applied, Applied::Ignored(Ignored::NotForThisFlow));
    assert_eq!(
        p.next_action(),
        None,
        "no redirect the merchant must not follow"
    );

    let mut manual = payment(widget, Confirmation::Manual);
    manual.show_widget("pt_2".into(), now());
    manual.apply(BankFact::ReadyToConfirm, now());
    assert_eq!(manual.status(), PaymentStatus::RequiresConfirmation);
    assert_eq!(
        manual.confirm(now()).unwrap().effects,
        vec![Effect::ConfirmSession]
    );
    assert!(
        manual.show_widget("pt_2".into(), now()).applied
            != Applied::Changed {
                from: PaymentStatus::Pending,
                to: PaymentStatus::RequiresAction
            },
        "a late widget answer never moves a payment back"
    );
}

#[test]
fn a_token_the_bank_disabled_ends_when_it_was_disabled_not_in_2000() {
    let issued = token("t");
    let mut t = RecurrentToken::issued(
        TokenId::parse("tok_1").unwrap(),
        CustomerReference::parse("c").unwrap(),
        &issued,
        TokenMethod::Card,
        PaymentId::parse("pay_1").unwrap(),
        now(),
    );
    let placeholder = time::macros::datetime!(2000-01-01 00:00 +3);
    let later = now() + time::Duration::days(3);
    t.observe_info(false, Some(placeholder), later);
    assert_eq!(t.status(), TokenStatus::Disabled);
    assert_eq!(t.finished_at, Some(later));
    t.observe_info(false, Some(placeholder), later + time::Duration::days(1));
    assert_eq!(t.finished_at, Some(later), "the first disable time stays");
}

#[test]
fn the_pending_session_command_is_asked_of_the_payment() {
    let session = BankSessionId::parse("ps_1").unwrap();
    // Automatic: after ready_to_confirm the confirm is pending, until the bank moves on.
    let mut p = payment(token_method(), Confirmation::Automatic);
    p.apply(BankFact::ReadyToConfirm, now());
    assert_eq!(p.pending_session_command(), None, "no session yet");
    p.attach_session(session.clone(), now());
    assert_eq!(p.pending_session_command(), Some(SessionCommand::Confirm));
    p.apply(BankFact::ActionRequired(redirect()), now());
    assert_eq!(
        p.pending_session_command(),
        None,
        "the confirm went through"
    );
    // Manual: nothing until the merchant decides; then their cancel is pending.
    let mut m = payment(token_method(), Confirmation::Manual);
    m.attach_session(session, now());
    m.apply(BankFact::ReadyToConfirm, now());
    assert_eq!(m.pending_session_command(), None);
    m.cancel(now()).unwrap();
    assert_eq!(m.pending_session_command(), Some(SessionCommand::Cancel));
    m.apply(failure("session_cancelled_by_partner"), now());
    assert_eq!(m.pending_session_command(), None, "finished");
}
