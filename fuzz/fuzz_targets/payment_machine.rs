//! The payment machine fed any sequence of bank facts and merchant commands:
//! never a panic, never a move the transition table does not list, never a
//! way out of a terminal state, never more refunded than paid, never more
//! than one token saved.
#![no_main]

use domain::{
    BankCode, BankFact, Confirmation, Currency, CustomerReference, Effect, Failure, IssuedToken,
    Money, NewPayment, NextAction, Payment, PaymentId, PaymentMethod, PaymentStatus,
    RecurrentTokenSecret, State,
};
use libfuzzer_sys::fuzz_target;
use time::{Duration, OffsetDateTime};

fn fact(byte: u8, amount: i64) -> BankFact {
    match byte % 10 {
        0 => BankFact::ReadyToConfirm,
        1 => BankFact::ActionRequired(NextAction::Redirect {
            url: "https://bank.example/3ds".into(),
            method: "POST".into(),
            params: vec![("MD".into(), "x".into())],
        }),
        2 => BankFact::ActionRequired(NextAction::Qr {
            content: "https://qr.nspk.ru/AS1".into(),
        }),
        3 => BankFact::ReadyToCapture,
        4 => BankFact::Succeeded {
            token: Some(IssuedToken {
                secret: RecurrentTokenSecret::parse("fuzz-token").expect("valid"),
                created_at: None,
                finished_at: None,
                is_active: true,
            }),
        },
        5 => BankFact::Succeeded { token: None },
        6 => BankFact::Failed(Failure {
            code: BankCode::InsufficientFunds.code(),
            message: "declined".into(),
        }),
        7 => BankFact::CancelConfirmed,
        _ => BankFact::Refunded {
            total: Money::new(amount, Currency::RUB).expect("non-negative"),
        },
    }
}

fuzz_target!(|input: (bool, Vec<(u8, u16)>)| {
    let (manual, steps) = input;
    let start = OffsetDateTime::UNIX_EPOCH;
    let mut p = Payment::new(
        NewPayment {
            id: PaymentId::parse("pay_fuzz").expect("valid"),
            customer: CustomerReference::parse("fuzz").expect("valid"),
            amount: Money::new(10_000, Currency::RUB).expect("valid"),
            method: PaymentMethod::Card,
            save_token: true,
            confirmation: if manual {
                Confirmation::Manual
            } else {
                Confirmation::Automatic
            },
            return_url: None,
            description: None,
            metadata: None,
        },
        start,
    )
    .expect("a valid payment");
    let mut terminal: Option<PaymentStatus> = None;
    let mut tokens = 0;
    for (i, (op, value)) in steps.into_iter().take(64).enumerate() {
        let now = start + Duration::seconds(i64::try_from(i).unwrap_or(0));
        let before = p.status();
        let amount = i64::from(value);
        match op % 14 {
            10 => {
                let _ = p.confirm(now);
            }
            11 => {
                let _ = p.cancel(now);
            }
            12 => {
                let _ = p.check_refund(Money::new(amount, Currency::RUB).expect("non-negative"));
            }
            13 => p.mark_outcome_unknown(now),
            f => {
                let outcome = p.apply(fact(f, amount), now);
                tokens += outcome
                    .effects
                    .iter()
                    .filter(|e| matches!(e, Effect::SaveToken(_)))
                    .count();
            }
        }
        assert!(
            PaymentStatus::allows(before, p.status()),
            "{before:?} -> {:?}",
            p.status()
        );
        if let Some(t) = terminal {
            assert_eq!(p.status(), t, "left the terminal state {t:?}");
        }
        if p.status().is_terminal() {
            terminal = Some(p.status());
        }
        assert!(
            p.refunded().minor() <= p.amount().minor(),
            "refunded more than paid"
        );
    }
    assert!(tokens <= 1, "{tokens} tokens saved by one payment");
});
