//! Aggregates to store.

use std::sync::atomic::{AtomicU64, Ordering};

use domain::*;
use ports::{ChargeAttempt, InboundWebhook, NewEvent, OutboxCommand, Subject};
use time::{Duration, OffsetDateTime};

/// A fixed "now" (2026-11-24T10:00:00Z) that tests move explicitly.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_514_400).expect("valid time")
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A unique suffix.
pub fn unique() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A customer reference.
pub fn customer(name: &str) -> CustomerReference {
    CustomerReference::parse(name).expect("valid reference")
}

/// Roubles.
pub fn rub(v: i64) -> Money {
    Money::new(v, Currency::RUB).expect("valid amount")
}

/// A new pending card payment created at `at`.
pub fn payment_at(customer_ref: &str, at: OffsetDateTime) -> Payment {
    Payment::new(
        NewPayment {
            id: PaymentId::parse(&format!("pay_{}", unique())).expect("valid id"),
            customer: customer(customer_ref),
            amount: rub(10_000),
            method: PaymentMethod::Card,
            save_token: true,
            confirmation: Confirmation::Automatic,
            return_url: Some("https://shop.example/return".into()),
            description: Some("first month".into()),
            metadata: Some(r#"{"order":"A-1"}"#.into()),
        },
        at,
    )
    .expect("valid payment")
}

/// A pending card payment.
pub fn payment(customer_ref: &str) -> Payment {
    payment_at(customer_ref, now())
}

/// A payment with every optional field set: a session, a redirect, a token, refunds.
pub fn rich_payment() -> Payment {
    let mut p = Payment::new(
        NewPayment {
            id: PaymentId::parse(&format!("pay_{}", unique())).expect("valid id"),
            customer: customer("cust-rich"),
            amount: rub(99_000),
            method: PaymentMethod::FpsBinding {
                subscription_service: Some(
                    SubscriptionService::new("svc-1", "Gym").expect("valid"),
                ),
            },
            save_token: true,
            confirmation: Confirmation::Manual,
            return_url: None,
            description: None,
            metadata: None,
        },
        now(),
    )
    .expect("valid payment");
    p.attach_session(session(), now());
    p.apply(BankFact::ReadyToConfirm, now());
    p.confirm(now()).expect("confirmable");
    p.apply(
        BankFact::ActionRequired(NextAction::Redirect {
            url: "https://bank.example/3ds".into(),
            method: "POST".into(),
            params: vec![("PaReq".into(), "x".into()), ("MD".into(), "y".into())],
        }),
        now(),
    );
    p.apply(
        BankFact::Succeeded { token: None },
        now() + Duration::seconds(5),
    );
    p.attach_token(TokenId::parse("tok_rich").expect("valid"));
    p.apply(
        BankFact::Refunded { total: rub(1_000) },
        now() + Duration::seconds(9),
    );
    p
}

/// A fresh bank session id.
pub fn session() -> BankSessionId {
    BankSessionId::parse(&format!("ps_{}", unique())).expect("valid id")
}

/// The raw token every fixture token carries.
pub const SECRET: &str = "feda2b2106a2e8747bbdc4c9f53c7f5f6ab845ffa1b7cc68ca839720af99b3d1";

/// An active card token.
pub fn token(customer_ref: &str) -> RecurrentToken {
    token_with(customer_ref, &format!("{SECRET}{:08}", unique()))
}

/// A token of `customer_ref` holding the raw bank token `secret`.
pub fn token_with(customer_ref: &str, secret: &str) -> RecurrentToken {
    let issued = IssuedToken {
        secret: RecurrentTokenSecret::parse(secret).expect("valid"),
        created_at: None,
        finished_at: Some(now() + Duration::days(3650)),
        is_active: true,
    };
    let mut t = RecurrentToken::issued(
        TokenId::parse(&format!("tok_{}", unique())).expect("valid id"),
        customer(customer_ref),
        &issued,
        TokenMethod::Fps,
        PaymentId::parse("pay_source").expect("valid id"),
        now(),
    );
    t.subscription_service_id = Some("svc-1".into());
    t.last_checked_at = Some(now());
    t
}

/// A monthly subscription starting at `start`.
pub fn subscription(start: OffsetDateTime) -> Subscription {
    Subscription::new(
        NewSubscription {
            id: SubscriptionId::parse(&format!("sub_{}", unique())).expect("valid id"),
            customer: customer("cust-sub"),
            token_id: TokenId::parse("tok_1").expect("valid id"),
            amount: rub(99_000),
            interval: Interval::new(IntervalUnit::Month, 1).expect("valid interval"),
            start_at: start,
            description: Some("Gym".into()),
            metadata: Some("{}".into()),
        },
        now(),
    )
    .expect("valid subscription")
}

/// A charge attempt row.
pub fn charge(
    sub: &Subscription,
    period: u32,
    attempt: u32,
    status: ChargeStatus,
) -> ChargeAttempt {
    ChargeAttempt {
        subscription_id: sub.id().clone(),
        period_index: period,
        period_start: sub.period(period).expect("in range").start,
        attempt,
        payment_id: Some(PaymentId::parse(&format!("pay_{}", unique())).expect("valid id")),
        status,
    }
}

/// An event about a payment.
pub fn event(kind: &'static str, subject: &PaymentId) -> NewEvent {
    NewEvent {
        kind,
        subject: Subject::Payment(subject.clone()),
        data: format!(r#"{{"id":"{subject}"}}"#),
    }
}

/// A stored webhook with dedupe key `key`.
pub fn webhook(key: &str) -> InboundWebhook {
    InboundWebhook {
        dedupe_key: key.into(),
        body: format!(r#"{{"type":"{key}"}}"#).into_bytes(),
        received_at: now(),
    }
}

/// A confirm command for payment `p`.
pub fn confirm(p: &str) -> OutboxCommand {
    OutboxCommand::ConfirmSession(PaymentId::parse(p).unwrap())
}
