//! Use-case tests against mockall mocks. The stores are mocks backed by one
//! shared map, so that what a commit writes, a later read sees.

mod harness;

use std::sync::{Arc, Mutex};

use domain::*;
use ports::*;

use crate::{Service, ServiceError};
use harness::{Harness, now, snapshot, token_payment};

#[tokio::test]
async fn payment_with_an_inactive_token_is_refused_without_any_bank_call() {
    // The gateway mock has no expectations: any call would panic.
    let (service, db) = Harness::new().with_token(false).service();
    let result = service
        .start_payment(token_payment(Initiator::Merchant))
        .await;
    assert_eq!(result.unwrap_err(), ServiceError::TokenInactive);
    assert!(db.lock().unwrap().commits.is_empty(), "nothing stored");
}

#[tokio::test]
async fn payment_with_a_token_being_disabled_is_refused_too() {
    let (service, db) = Harness::new().with_token(true).service();
    {
        let mut db = db.lock().unwrap();
        let t = db
            .tokens
            .get_mut(&TokenId::parse("tok_1").unwrap())
            .unwrap();
        t.value.request_disable();
    }
    let result = service
        .start_payment(token_payment(Initiator::Merchant))
        .await;
    assert_eq!(result.unwrap_err(), ServiceError::TokenInactive);
}

#[tokio::test]
async fn unknown_outcome_stays_pending_and_is_reconciled_never_resent() {
    let mut h = Harness::new().with_token(true).session_opens_once();
    h.gateway
        .expect_start_payment()
        .times(1)
        .returning(|_| Err(GatewayError::UnknownOutcome("timeout after sending".into())));
    h.gateway
        .expect_session_status()
        .times(1)
        .returning(|_| Ok(snapshot("ps_1", Some(BankFact::Succeeded { token: None }))));
    let (service, _db) = h.service();

    let payment = service
        .start_payment(token_payment(Initiator::Merchant))
        .await
        .unwrap();
    assert_eq!(payment.status(), PaymentStatus::Pending);
    assert!(payment.outcome_unknown());

    service.reconcile().await.unwrap();
    let payment = service.payment(payment.id()).await.unwrap();
    assert_eq!(payment.status(), PaymentStatus::Succeeded);
    // times(1) on start_payment: it was never sent again.
}

#[tokio::test]
async fn a_declined_payment_keeps_the_bank_code_verbatim() {
    let mut h = Harness::new().with_token(true);
    h.gateway
        .expect_create_session()
        .returning(|_| Ok(snapshot("ps_1", None)));
    h.gateway.expect_start_payment().returning(|_| {
        Err(GatewayError::Permanent {
            code: ErrorCode::parse("insufficient_funds").unwrap(),
            message: "no money".into(),
        })
    });
    let (service, _) = h.service();
    let payment = service
        .start_payment(token_payment(Initiator::Merchant))
        .await
        .unwrap();
    assert_eq!(payment.status(), PaymentStatus::Failed);
    assert_eq!(
        payment.failure().unwrap().code.as_str(),
        "insufficient_funds"
    );
}

#[tokio::test]
async fn duplicate_payment_finished_creates_no_second_token_and_no_second_event() {
    let mut h = Harness::new().with_token(true);
    h.gateway
        .expect_create_session()
        .returning(|_| Ok(snapshot("ps_1", None)));
    h.gateway.expect_start_payment().returning(|_| {
        Ok(snapshot(
            "ps_1",
            Some(BankFact::ActionRequired(NextAction::Redirect {
                url: "https://bank.example/3ds".into(),
                method: "POST".into(),
                params: vec![],
            })),
        ))
    });
    let (service, db) = h.service();
    let payment = service
        .start_payment(token_payment(Initiator::Client))
        .await
        .unwrap();
    assert_eq!(payment.status(), PaymentStatus::RequiresAction);

    let finished = BankFact::Succeeded {
        token: Some(IssuedToken {
            secret: RecurrentTokenSecret::parse("feda2b2106a2e874").unwrap(),
            created_at: None,
            finished_at: None,
            is_active: true,
        }),
    };
    let session = BankSessionId::parse("ps_1").unwrap();
    let first = service
        .apply_bank_fact(None, Some(&session), finished.clone())
        .await
        .unwrap();
    let second = service
        .apply_bank_fact(None, Some(&session), finished)
        .await
        .unwrap();
    assert!(first.unwrap().is_changed());
    assert_eq!(second, Some(Applied::Ignored(Ignored::Terminal)));

    let db = db.lock().unwrap();
    let new_tokens: usize = db
        .commits
        .iter()
        .map(|c| {
            c.tokens
                .iter()
                .filter(|t| t.expected_version.is_none())
                .count()
        })
        .sum();
    let succeeded: usize = db
        .commits
        .iter()
        .flat_map(|c| &c.events)
        .filter(|e| e.kind == "payment.succeeded")
        .count();
    let created: usize = db
        .commits
        .iter()
        .flat_map(|c| &c.events)
        .filter(|e| e.kind == "token.created")
        .count();
    assert_eq!((new_tokens, succeeded, created), (1, 1, 1));
    let stored = &db.payments[payment.id()].value;
    assert!(stored.token_id().is_some());
}

#[tokio::test]
async fn a_webhook_for_an_unknown_session_reports_not_found_so_it_can_be_deferred() {
    let (service, _) = Harness::new().service();
    let session = BankSessionId::parse("ps_unknown").unwrap();
    let result = service
        .apply_bank_fact(None, Some(&session), BankFact::ReadyToConfirm)
        .await
        .unwrap();
    assert_eq!(result, None);
}

#[tokio::test]
async fn a_session_create_that_does_not_answer_is_resumed_and_charged_once() {
    let mut h = Harness::new().with_token(true);
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    h.gateway.expect_create_session().returning(move |request| {
        let mut seen = seen.lock().unwrap();
        seen.push(request.idempotency_key.clone());
        if seen.len() == 1 {
            Err(GatewayError::Transient("connection refused".into()))
        } else {
            Ok(snapshot("ps_2", None))
        }
    });
    h.gateway
        .expect_start_payment()
        .times(1)
        .returning(|_| Ok(snapshot("ps_2", Some(BankFact::Succeeded { token: None }))));
    let (service, _db) = h.service();
    let payment = service
        .start_payment(token_payment(Initiator::Merchant))
        .await
        .unwrap();
    assert_eq!(
        payment.status(),
        PaymentStatus::Pending,
        "not failed: our trouble"
    );
    assert!(payment.outcome_unknown(), "due for resumption at once");

    service.reconcile().await.unwrap();
    let payment = service.payment(payment.id()).await.unwrap();
    assert_eq!(payment.status(), PaymentStatus::Succeeded);
    let keys = keys.lock().unwrap();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "a new session/create idempotency key");
}

#[tokio::test]
async fn a_session_create_the_bank_refuses_fails_the_payment() {
    let mut h = Harness::new().with_token(true);
    h.gateway.expect_create_session().returning(|_| {
        Err(GatewayError::Permanent {
            code: ErrorCode::parse("invalid_request").unwrap(),
            message: "bad amount".into(),
        })
    });
    let (service, db) = h.service();
    assert!(
        service
            .start_payment(token_payment(Initiator::Merchant))
            .await
            .is_err()
    );
    let db = db.lock().unwrap();
    let stored = db.payments.values().next().unwrap();
    assert_eq!(stored.value.status(), PaymentStatus::Failed);
}

#[tokio::test]
async fn a_webhook_for_an_unknown_session_is_kept_and_applied_once_the_session_appears() {
    let mut h = Harness::new().with_token(true);
    h.gateway
        .expect_create_session()
        .returning(|_| Ok(snapshot("ps_late", None)));
    h.gateway
        .expect_start_payment()
        .returning(|_| Err(GatewayError::UnknownOutcome("lost".into())));
    let (mut service, db) = h.service();

    let item = InboxItem {
        id: 7,
        body: b"{}".to_vec(),
        received_at: now(),
        attempts: 0,
    };
    let mut inbox = MockWebhookInbox::new();
    let pending = item.clone();
    inbox
        .expect_pending()
        .returning(move |_, _| Ok(vec![pending.clone()]));
    inbox.expect_defer().times(1).returning(|id, _, _| {
        assert_eq!(id, 7);
        Ok(())
    });
    let mut decoder = MockWebhookDecoder::new();
    decoder.expect_decode().returning(|_| {
        Ok(DecodedWebhook {
            kind: "payment_finished".into(),
            session_id: Some(BankSessionId::parse("ps_late").unwrap()),
            payment_id: None,
            parent_session_id: None,
            fact: Some(BankFact::Succeeded { token: None }),
            details: BankDetails::default(),
        })
    });
    let mut deps = service.deps.clone();
    deps.inbox = Arc::new(inbox);
    deps.webhooks = Arc::new(decoder);
    service = Service::new(deps);

    // The webhook overtook our own answer: nothing knows session ps_late yet.
    let first = service.apply_inbox().await.unwrap();
    assert_eq!(
        (first.done, first.deferred),
        (0, 1),
        "kept for later, not dropped"
    );

    // Our payment records its session; the same stored webhook now applies.
    service
        .start_payment(token_payment(Initiator::Merchant))
        .await
        .unwrap();
    let second = service.apply_inbox().await.unwrap();
    assert_eq!(second.done, 1);
    let db = db.lock().unwrap();
    let payment = db.payments.values().next().unwrap();
    assert_eq!(payment.value.status(), PaymentStatus::Succeeded);
    assert!(
        db.commits.iter().any(|c| c.inbox_applied == vec![7]),
        "marked applied"
    );
}

#[tokio::test]
async fn a_payment_whose_session_was_never_created_goes_on_and_a_card_one_fails_having_moved_nothing()
 {
    let mut h = Harness::new().with_token(true);
    h.gateway
        .expect_create_session()
        .times(1)
        .returning(|_| Ok(snapshot("ps_resumed", None)));
    h.gateway.expect_start_payment().times(1).returning(|_| {
        Ok(snapshot(
            "ps_resumed",
            Some(BankFact::Succeeded { token: None }),
        ))
    });
    let (service, db) = h.service();
    // Both were stored, then the process died before session/create.
    let stored = |id: &str, method: PaymentMethod| {
        let p = Payment::new(
            NewPayment {
                id: PaymentId::parse(id).unwrap(),
                customer: CustomerReference::parse("lucky").unwrap(),
                amount: Money::new(100, Currency::RUB).unwrap(),
                method,
                save_token: false,
                confirmation: Confirmation::Automatic,
                return_url: None,
                description: None,
                metadata: None,
            },
            now() - time::Duration::minutes(1),
        )
        .unwrap();
        db.lock().unwrap().payments.insert(
            p.id().clone(),
            Versioned {
                value: p.clone(),
                version: 1,
            },
        );
        p.id().clone()
    };
    let token = stored(
        "pay_token",
        PaymentMethod::Token {
            token_id: TokenId::parse("tok_1").unwrap(),
            initiator: Initiator::Merchant,
        },
    );
    let card = stored("pay_card", PaymentMethod::Card);
    service.reconcile().await.unwrap();
    let db = db.lock().unwrap();
    assert_eq!(
        db.payments[&token].value.status(),
        PaymentStatus::Succeeded,
        "resumed with a new session, never failed"
    );
    let failed = &db.payments[&card].value;
    assert_eq!(
        failed.status(),
        PaymentStatus::Failed,
        "card data is not kept to resume"
    );
    assert_eq!(
        failed.failure().unwrap().code.as_str(),
        "provider_unavailable"
    );
}

#[tokio::test]
async fn card_data_goes_with_card_payments_only_and_nothing_reaches_the_bank_otherwise() {
    // No gateway expectation: a refused command calls nothing.
    let (service, db) = Harness::new().with_token(true).service();
    let card = CardData::new("4242424242424242", "12", "30", "123", None).unwrap();
    let mut with_card = token_payment(Initiator::Merchant);
    with_card.card = Some(card);
    assert!(matches!(
        service.start_payment(with_card).await,
        Err(ServiceError::Invalid(_))
    ));
    let mut card_without_data = token_payment(Initiator::Merchant);
    card_without_data.method = PaymentMethod::Card;
    assert!(matches!(
        service.start_payment(card_without_data).await,
        Err(ServiceError::Invalid(_))
    ));
    assert!(db.lock().unwrap().payments.is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_failure_reported_on_a_child_session_ends_the_parents_payment() {
    let mut h = Harness::new().with_token(true);
    h.gateway
        .expect_create_session()
        .returning(|_| Ok(snapshot("ps_parent", None)));
    h.gateway
        .expect_start_payment()
        .returning(|_| Err(GatewayError::UnknownOutcome("lost".into())));
    let (mut service, db) = h.service();
    let payment = service
        .start_payment(token_payment(Initiator::Merchant))
        .await
        .unwrap();

    let mut inbox = MockWebhookInbox::new();
    inbox.expect_pending().returning(|_, _| {
        Ok(vec![InboxItem {
            id: 9,
            body: b"{}".to_vec(),
            received_at: now(),
            attempts: 0,
        }])
    });
    let mut decoder = MockWebhookDecoder::new();
    decoder.expect_decode().returning(|_| {
        // Seed 003: the expired QR is reported on a child session whose
        // payment names the parent in its metadata, not our payment id.
        Ok(DecodedWebhook {
            kind: "payment_finished".into(),
            session_id: Some(BankSessionId::parse("ps_child").unwrap()),
            payment_id: None,
            parent_session_id: Some(BankSessionId::parse("ps_parent").unwrap()),
            fact: Some(BankFact::Failed(Failure {
                code: ErrorCode::parse("qr_expired").unwrap(),
                message: "QR expired".into(),
            })),
            details: BankDetails::default(),
        })
    });
    let mut deps = service.deps.clone();
    deps.inbox = Arc::new(inbox);
    deps.webhooks = Arc::new(decoder);
    service = Service::new(deps);

    let report = service.apply_inbox().await.unwrap();
    assert_eq!(
        (report.done, report.deferred),
        (1, 0),
        "matched, not deferred forever"
    );
    let db = db.lock().unwrap();
    let stored = &db.payments[payment.id()].value;
    assert_eq!(stored.status(), PaymentStatus::Failed);
    assert_eq!(stored.failure().unwrap().code.as_str(), "qr_expired");
}

#[tokio::test]
async fn a_token_disabled_while_the_session_was_created_is_never_charged() {
    let mut h = Harness::new().with_token(true);
    let db = h.db.clone();
    h.gateway.expect_create_session().returning(move |_| {
        // The merchant disables the token while session/create is on its way.
        let mut db = db.lock().unwrap();
        let token = db
            .tokens
            .get_mut(&TokenId::parse("tok_1").unwrap())
            .unwrap();
        token.value.request_disable();
        token.version += 1;
        Ok(snapshot("ps_1", None))
    });
    h.gateway.expect_start_payment().times(0);
    let (service, _db) = h.service();
    let payment = service
        .start_payment(token_payment(Initiator::Merchant))
        .await
        .unwrap();
    assert_eq!(payment.status(), PaymentStatus::Failed);
    assert_eq!(payment.failure().unwrap().code.as_str(), "token_inactive");
}

/// A merchant-initiated charge takes one step per bank answer, and each
/// step reads what it needs once: the token when the payment is checked
/// (the session's attach re-checks it in its write), the payment never (each
/// step starts from what the last one stored); one commit per step, the
/// confirm's outbox row leaving in the commit of its answer.
#[tokio::test]
async fn a_charge_reads_its_token_once_and_its_payment_never() {
    let mut h = Harness::new()
        .with_token(true)
        .with_queued_commands()
        .session_opens_once();
    h.gateway
        .expect_start_payment()
        .times(1)
        .returning(|_| Ok(snapshot("ps_1", Some(BankFact::ReadyToConfirm))));
    h.gateway
        .expect_session_command()
        .times(1)
        .returning(|call| {
            assert_eq!(call.command, SessionCommand::Confirm);
            Ok(snapshot("ps_1", Some(BankFact::Succeeded { token: None })))
        });
    let (service, db) = h.service();
    let payment = service
        .start_payment(token_payment(Initiator::Merchant))
        .await
        .unwrap();
    assert_eq!(payment.status(), PaymentStatus::Succeeded);
    let db = db.lock().unwrap();
    assert_eq!(db.token_reads, 1, "the token is read once");
    assert_eq!(db.payment_reads, 0, "the payment is never read back");
    // Stored; its session attached (token checked); started; confirmed.
    assert_eq!(db.commits.len(), 4, "{:#?}", db.commits);
    assert_eq!(
        db.commits[1].chargeable_token,
        Some(TokenId::parse("tok_1").unwrap()),
        "the attach carries the token check"
    );
    assert_eq!(
        db.commits[3].outbox_done,
        vec![1],
        "the confirm leaves the outbox with its answer"
    );
    assert_eq!(
        db.payments[payment.id()].value.status(),
        PaymentStatus::Succeeded
    );
}
