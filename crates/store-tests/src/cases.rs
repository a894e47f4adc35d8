//! The conformance cases. Each takes a [`Harness`] over a fresh database.

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::*;
use ports::*;
use time::Duration;

use crate::fixtures::{
    self, charge, customer, event, insert, now, payment, payment_at, subscription, token,
};
use crate::{AllPorts, Harness};

async fn commit<S: AllPorts + ?Sized>(s: &S, changes: ChangeSet) -> Result<(), StoreError> {
    s.commit(changes, now()).await
}

async fn stored_payment<S: AllPorts + ?Sized>(s: &S, id: &PaymentId) -> Versioned<Payment> {
    PaymentRepository::get(s, id)
        .await
        .unwrap()
        .expect("stored")
}

// ---- payments ------------------------------------------------------------------------

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
    commit(
        &*s,
        ChangeSet {
            payments: vec![Write::update(read.clone())],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let stale = commit(
        &*s,
        ChangeSet {
            payments: vec![Write::update(read)],
            ..ChangeSet::default()
        },
    )
    .await;
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
            commit(
                &*s,
                ChangeSet {
                    payments: vec![Write::update(a.clone())],
                    ..ChangeSet::default()
                }
            ),
            commit(
                &*s2,
                ChangeSet {
                    payments: vec![Write::update(b.clone())],
                    ..ChangeSet::default()
                }
            ),
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

// ---- tokens --------------------------------------------------------------------------

/// A token, its raw secret included, survives storage.
pub async fn token_round_trips_with_its_secret<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(
        &*s,
        ChangeSet {
            tokens: vec![Write::insert(t.clone())],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let read = TokenRepository::get(&*s, &t.id).await.unwrap().unwrap();
    assert_eq!(read.value, t);
    assert_eq!(read.value.secret.expose(), fixtures::SECRET);
}

/// The raw rows never contain the token in plaintext.
pub async fn token_secret_is_never_stored_in_plaintext<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(
        &*s,
        ChangeSet {
            tokens: vec![Write::insert(t.clone())],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let dump = h.raw_dump().await;
    assert!(
        dump.windows(t.id.as_str().len())
            .any(|w| w == t.id.as_str().as_bytes()),
        "the dump sees the rows"
    );
    let needle = &fixtures::SECRET.as_bytes()[..16];
    assert!(
        !dump.windows(needle.len()).any(|w| w == needle),
        "plaintext token in the database"
    );
}

/// A customer's tokens, and only theirs.
pub async fn tokens_are_listed_by_customer<H: Harness>(h: &H) {
    let s = h.store();
    let (a, b, other) = (token("cust-t"), token("cust-t"), token("other"));
    commit(
        &*s,
        ChangeSet {
            tokens: vec![
                Write::insert(a.clone()),
                Write::insert(b.clone()),
                Write::insert(other),
            ],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let ids: BTreeSet<_> = TokenRepository::list_by_customer(&*s, &customer("cust-t"))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, BTreeSet::from([a.id, b.id]));
}

/// Token status changes are optimistic-concurrency checked.
pub async fn token_update_is_versioned<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(
        &*s,
        ChangeSet {
            tokens: vec![Write::insert(t.clone())],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let mut read = TokenRepository::get(&*s, &t.id).await.unwrap().unwrap();
    read.value.request_disable();
    commit(
        &*s,
        ChangeSet {
            tokens: vec![Write::update(read.clone())],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        commit(
            &*s,
            ChangeSet {
                tokens: vec![Write::update(read)],
                ..ChangeSet::default()
            }
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        TokenRepository::get(&*s, &t.id)
            .await
            .unwrap()
            .unwrap()
            .value
            .status(),
        TokenStatus::Disabling
    );
}

/// After a key change the old key (as `RECUR_TOKEN_KEY_OLD`) still decrypts, and rotation re-encrypts.
pub async fn old_token_key_still_decrypts_and_rotation_reencrypts<H: Harness>(h: &H) {
    let s = h.store();
    let t = token("cust-1");
    commit(
        &*s,
        ChangeSet {
            tokens: vec![Write::insert(t.clone())],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let old = h.token_key();
    let new = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let rotated = h.reopen_with_keys(new, Some(&old)).await;
    assert_eq!(
        TokenRepository::get(&*rotated, &t.id)
            .await
            .unwrap()
            .unwrap()
            .value
            .secret
            .expose(),
        fixtures::SECRET
    );
    assert_eq!(h.rotate(&rotated).await, 1);
    assert_eq!(h.rotate(&rotated).await, 0, "nothing left on the old key");
    let only_new = h.reopen_with_keys(new, None).await;
    assert_eq!(
        TokenRepository::get(&*only_new, &t.id)
            .await
            .unwrap()
            .unwrap()
            .value,
        t
    );
}

// ---- subscriptions ---------------------------------------------------------------------

/// A subscription survives storage.
pub async fn subscription_round_trips<H: Harness>(h: &H) {
    let s = h.store();
    let mut sub = subscription(now());
    sub.start_charge(sub.due_charge(now()).unwrap()).unwrap();
    commit(
        &*s,
        ChangeSet {
            subscriptions: vec![Write::insert(sub.clone())],
            ..ChangeSet::default()
        },
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
    commit(
        &*s,
        ChangeSet {
            subscriptions: writes,
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
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
    commit(
        &*s,
        ChangeSet {
            charges: vec![first],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
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
    commit(
        &*s,
        ChangeSet {
            charges: vec![a.clone(), b.clone()],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    a.status = ChargeStatus::Succeeded;
    commit(
        &*s,
        ChangeSet {
            charges: vec![a],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    b.status = ChargeStatus::Succeeded;
    let second = commit(
        &*s,
        ChangeSet {
            charges: vec![b],
            ..ChangeSet::default()
        },
    )
    .await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    let next_period = charge(&sub, 1, 1, ChargeStatus::Succeeded);
    commit(
        &*s,
        ChangeSet {
            charges: vec![next_period],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
}

/// A charge's outcome is written over its pending row.
pub async fn charge_outcome_updates_in_place<H: Harness>(h: &H) {
    let s = h.store();
    let sub = subscription(now());
    let mut c = charge(&sub, 0, 1, ChargeStatus::Pending);
    commit(
        &*s,
        ChangeSet {
            charges: vec![c.clone()],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    c.status = ChargeStatus::Failed;
    commit(
        &*s,
        ChangeSet {
            charges: vec![c.clone()],
            ..ChangeSet::default()
        },
    )
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
    commit(
        &*s,
        ChangeSet {
            charges: rows.clone(),
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
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
    commit(
        &*s,
        ChangeSet {
            charges: vec![c.clone()],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.charge_by_payment(&c.payment_id).await.unwrap(), Some(c));
    assert_eq!(
        s.charge_by_payment(&PaymentId::parse("pay_none").unwrap())
            .await
            .unwrap(),
        None
    );
}

// ---- idempotency -----------------------------------------------------------------------

/// A new key starts.
pub async fn idempotency_first_use_starts<H: Harness>(h: &H) {
    let s = h.store();
    assert_eq!(
        s.begin("k1", "fp", now()).await.unwrap(),
        IdempotencyBegin::Started
    );
}

/// The same key and request: in flight while running, then the stored response.
pub async fn idempotency_same_request_is_in_flight_then_replayed<H: Harness>(h: &H) {
    let s = h.store();
    s.begin("k1", "fp", now()).await.unwrap();
    assert_eq!(
        s.begin("k1", "fp", now()).await.unwrap(),
        IdempotencyBegin::InFlight
    );
    let response = StoredResponse {
        status: 201,
        body: br#"{"id":"pay_1"}"#.to_vec(),
    };
    s.finish("k1", response.clone()).await.unwrap();
    assert_eq!(
        s.begin("k1", "fp", now() + Duration::hours(23))
            .await
            .unwrap(),
        IdempotencyBegin::Replay(response)
    );
}

/// Runs a request with `key` to completion (a `201 {}` answer).
async fn answered<S: AllPorts + ?Sized>(s: &S, key: &str, fingerprint: &str) {
    assert_eq!(
        s.begin(key, fingerprint, now()).await.unwrap(),
        IdempotencyBegin::Started
    );
    s.finish(
        key,
        StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
        },
    )
    .await
    .unwrap();
}

/// The same key with another request is a mismatch.
pub async fn idempotency_other_request_with_the_key_is_a_mismatch<H: Harness>(h: &H) {
    let s = h.store();
    answered(&*s, "k1", "fp").await;
    assert_eq!(
        s.begin("k1", "other", now()).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
}

/// After 24 hours a key is forgotten.
pub async fn idempotency_keys_expire_after_24_hours<H: Harness>(h: &H) {
    let s = h.store();
    answered(&*s, "k1", "fp").await;
    assert_eq!(
        s.begin(
            "k1",
            "other",
            now() + IDEMPOTENCY_TTL + Duration::seconds(1)
        )
        .await
        .unwrap(),
        IdempotencyBegin::Started
    );
}

/// A released key can be used again.
pub async fn idempotency_release_frees_the_key<H: Harness>(h: &H) {
    let s = h.store();
    s.begin("k1", "fp", now()).await.unwrap();
    s.release("k1").await.unwrap();
    assert_eq!(
        s.begin("k1", "fp2", now()).await.unwrap(),
        IdempotencyBegin::Started
    );
}

/// Concurrent duplicates: exactly one starts.
pub async fn idempotency_concurrent_duplicates_start_once<H: Harness>(h: &H) {
    let s = h.store();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.begin("k-race", "fp", now()).await.unwrap() })
        })
        .collect();
    let mut started = 0;
    for t in tasks {
        if t.await.unwrap() == IdempotencyBegin::Started {
            started += 1;
        }
    }
    assert_eq!(started, 1);
}

// ---- inbox -----------------------------------------------------------------------------

fn webhook(key: &str) -> InboundWebhook {
    InboundWebhook {
        dedupe_key: key.into(),
        body: format!(r#"{{"type":"{key}"}}"#).into_bytes(),
        received_at: now(),
    }
}

/// The same dedupe key is stored once.
pub async fn inbox_deduplicates_by_key<H: Harness>(h: &H) {
    let s = h.store();
    assert!(s.store(webhook("a")).await.unwrap());
    assert!(!s.store(webhook("a")).await.unwrap());
    assert_eq!(s.pending(now(), 10).await.unwrap().len(), 1);
}

/// Pending webhooks come oldest first, with their exact bytes, due at once.
pub async fn inbox_pending_is_oldest_first_and_due_at_once<H: Harness>(h: &H) {
    let s = h.store();
    for k in ["a", "b", "c"] {
        s.store(webhook(k)).await.unwrap();
    }
    let pending = s.pending(now(), 2).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].body, webhook("a").body);
    assert!(pending[0].id < pending[1].id);
    assert_eq!(
        s.pending(now() - Duration::days(365), 10)
            .await
            .unwrap()
            .len(),
        3,
        "due at once, whatever the clock says"
    );
}

/// A deferred webhook waits until its time, counting attempts.
pub async fn inbox_deferred_webhook_waits_until_due<H: Harness>(h: &H) {
    let s = h.store();
    s.store(webhook("a")).await.unwrap();
    let id = s.pending(now(), 10).await.unwrap()[0].id;
    s.defer(id, now() + Duration::seconds(30), "unknown session")
        .await
        .unwrap();
    assert!(s.pending(now(), 10).await.unwrap().is_empty());
    let later = s.pending(now() + Duration::seconds(30), 10).await.unwrap();
    assert_eq!(later[0].attempts, 1);
}

/// A rejected webhook stays stored but is never pending again.
pub async fn inbox_rejected_webhook_is_kept_but_not_pending<H: Harness>(h: &H) {
    let s = h.store();
    s.store(webhook("a")).await.unwrap();
    let id = s.pending(now(), 10).await.unwrap()[0].id;
    s.reject(id, "unparsable").await.unwrap();
    assert!(
        s.pending(now() + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!s.store(webhook("a")).await.unwrap(), "still deduplicated");
}

/// Marking a webhook applied in a change set takes it out of the pending list.
pub async fn inbox_applied_in_a_change_set_is_no_longer_pending<H: Harness>(h: &H) {
    let s = h.store();
    s.store(webhook("a")).await.unwrap();
    s.store(webhook("b")).await.unwrap();
    let id = s.pending(now(), 10).await.unwrap()[0].id;
    commit(
        &*s,
        ChangeSet {
            inbox_applied: vec![id],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let left = s.pending(now(), 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].id, id);
}

// ---- outbox ----------------------------------------------------------------------------

fn confirm(p: &str) -> OutboxCommand {
    OutboxCommand::ConfirmSession(PaymentId::parse(p).unwrap())
}

async fn enqueue<S: AllPorts + ?Sized>(s: &S, commands: Vec<OutboxCommand>) {
    commit(
        s,
        ChangeSet {
            outbox: commands,
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
}

/// A command enqueued with a change set is claimed, in order, with its attempt
/// count, at once (even by a clock that is behind the commit's).
pub async fn outbox_command_enqueued_in_a_change_set_is_claimed<H: Harness>(h: &H) {
    let s = h.store();
    let commands = vec![
        confirm("pay_1"),
        OutboxCommand::DisableToken(TokenId::parse("tok_1").unwrap()),
        OutboxCommand::CaptureSession(PaymentId::parse("pay_2").unwrap()),
    ];
    enqueue(&*s, commands.clone()).await;
    let claimed = s
        .claim(now() - Duration::days(365), 10, Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|i| i.command.clone())
            .collect::<Vec<_>>(),
        commands
    );
    assert!(claimed.iter().all(|i| i.attempts == 1));
}

/// A claimed command is not claimed again until its lease runs out.
pub async fn outbox_claimed_command_is_leased<H: Harness>(h: &H) {
    let s = h.store();
    enqueue(&*s, vec![confirm("pay_1")]).await;
    assert_eq!(
        s.claim(now(), 10, Duration::seconds(30))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.claim(now() + Duration::seconds(29), 10, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );
    let again = s
        .claim(now() + Duration::seconds(31), 10, Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(again[0].attempts, 2, "a worker that died is replaced");
}

/// A completed command is gone.
pub async fn outbox_completed_command_is_gone<H: Harness>(h: &H) {
    let s = h.store();
    enqueue(&*s, vec![confirm("pay_1")]).await;
    let item = s
        .claim(now(), 10, Duration::seconds(30))
        .await
        .unwrap()
        .remove(0);
    s.complete(item.id).await.unwrap();
    assert!(
        s.claim(now() + Duration::days(1), 10, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A retried command waits for its `next_attempt_at`.
pub async fn outbox_retry_waits_for_next_attempt_at<H: Harness>(h: &H) {
    let s = h.store();
    enqueue(&*s, vec![confirm("pay_1")]).await;
    let item = s
        .claim(now(), 10, Duration::seconds(30))
        .await
        .unwrap()
        .remove(0);
    s.retry(item.id, now() + Duration::minutes(5), "bank unavailable")
        .await
        .unwrap();
    assert!(
        s.claim(now() + Duration::minutes(4), 10, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim(now() + Duration::minutes(5), 10, Duration::seconds(30))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A command carried out elsewhere is discarded; others stay.
pub async fn outbox_discarded_command_is_not_claimed<H: Harness>(h: &H) {
    let s = h.store();
    enqueue(
        &*s,
        vec![
            confirm("pay_1"),
            confirm("pay_2"),
            OutboxCommand::CaptureSession(PaymentId::parse("pay_1").unwrap()),
        ],
    )
    .await;
    s.discard(&confirm("pay_1")).await.unwrap();
    let left: Vec<_> = s
        .claim(now(), 10, Duration::seconds(30))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.command)
        .collect();
    assert_eq!(
        left,
        vec![
            confirm("pay_2"),
            OutboxCommand::CaptureSession(PaymentId::parse("pay_1").unwrap())
        ]
    );
}

/// Depth counts the commands waiting.
pub async fn outbox_depth_counts_waiting_commands<H: Harness>(h: &H) {
    let s = h.store();
    assert_eq!(s.depth().await.unwrap(), 0);
    enqueue(&*s, vec![confirm("pay_1"), confirm("pay_2")]).await;
    assert_eq!(s.depth().await.unwrap(), 2);
}

/// Two workers claiming at once never get the same row.
pub async fn outbox_concurrent_claimers_never_share_a_row<H: Harness>(h: &H) {
    let s = h.store();
    let commands: Vec<_> = (0..60).map(|i| confirm(&format!("pay_{i}"))).collect();
    enqueue(&*s, commands).await;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let s: Arc<H::Store> = s.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = match s.claim(now(), 5, Duration::seconds(60)).await {
                        Ok(batch) => batch,
                        Err(StoreError::Transient(_)) => continue,
                        Err(e) => panic!("{e}"),
                    };
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|i| i.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), 60, "every row claimed");
    assert_eq!(unique.len(), 60, "no row claimed twice");
}

/// An object's event deliveries go out in feed order: a later one waits while
/// an earlier one is still undelivered; other objects' events do not wait.
pub async fn event_deliveries_of_one_object_keep_feed_order<H: Harness>(h: &H) {
    let s = h.reopen_delivering_events().await;
    let (p, q) = (payment("c"), payment("c"));
    for e in [
        event("payment.requires_action", p.id()),
        event("payment.succeeded", p.id()),
        event("payment.succeeded", q.id()),
    ] {
        commit(
            &*s,
            ChangeSet {
                events: vec![e],
                ..ChangeSet::default()
            },
        )
        .await
        .unwrap();
    }
    let feed = s.after(None, 10).await.unwrap();
    let delivery = |i: usize| OutboxCommand::DeliverEvent(feed[i].id.clone());
    let first = s.claim(now(), 10, Duration::seconds(30)).await.unwrap();
    assert_eq!(
        first.iter().map(|i| i.command.clone()).collect::<Vec<_>>(),
        vec![delivery(0), delivery(2)]
    );
    s.retry(first[0].id, now(), "merchant down").await.unwrap();
    let again = s.claim(now(), 10, Duration::seconds(30)).await.unwrap();
    assert_eq!(
        again.iter().map(|i| i.command.clone()).collect::<Vec<_>>(),
        vec![delivery(0)],
        "the second still waits"
    );
    s.complete(again[0].id).await.unwrap();
    let next = s.claim(now(), 10, Duration::seconds(30)).await.unwrap();
    assert_eq!(
        next.iter().map(|i| i.command.clone()).collect::<Vec<_>>(),
        vec![delivery(1)]
    );
}

// ---- events ----------------------------------------------------------------------------

/// The feed pages in order with no gap and no repeat.
pub async fn event_feed_pages_gap_free_in_order<H: Harness>(h: &H) {
    let s = h.store();
    let p = payment("c");
    for kind in [
        "payment.requires_action",
        "payment.succeeded",
        "token.created",
        "payment.refunded",
        "subscription.charge_succeeded",
    ] {
        commit(
            &*s,
            ChangeSet {
                events: vec![event(kind, p.id())],
                ..ChangeSet::default()
            },
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.after(cursor.clone(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|e| e.id.clone());
        seen.extend(page);
    }
    let kinds: Vec<_> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "payment.requires_action",
            "payment.succeeded",
            "token.created",
            "payment.refunded",
            "subscription.charge_succeeded"
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(seen[0].subject_id, p.id().as_str());
    assert_eq!(seen[0].created_at, now());
}

/// An event is found by its id; a cursor from elsewhere is an error, not an empty page.
pub async fn event_is_found_by_id_and_foreign_cursors_are_refused<H: Harness>(h: &H) {
    let s = h.store();
    let p = payment("c");
    commit(
        &*s,
        ChangeSet {
            events: vec![event("payment.succeeded", p.id())],
            ..ChangeSet::default()
        },
    )
    .await
    .unwrap();
    let first = s.after(None, 1).await.unwrap().remove(0);
    assert_eq!(EventLog::get(&*s, &first.id).await.unwrap(), Some(first));
    assert!(
        s.after(Some(EventId::parse("evt_notanumber").unwrap()), 1)
            .await
            .is_err()
    );
}

/// Many writers append at once; a reader paging meanwhile and after sees every event once, in order.
pub async fn concurrent_event_appends_leave_no_gap<H: Harness>(h: &H) {
    let s = h.store();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let s: Arc<H::Store> = s.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    let p = payment("c");
                    let changes = ChangeSet {
                        events: vec![event("payment.succeeded", p.id())],
                        payments: vec![Write::insert(p)],
                        ..ChangeSet::default()
                    };
                    loop {
                        match s.commit(changes.clone(), now()).await {
                            Ok(()) => break,
                            Err(StoreError::Transient(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    let mut seen: Vec<Event> = Vec::new();
    let mut cursor = None;
    let mut finished = false;
    while !finished {
        finished = writers.iter().all(tokio::task::JoinHandle::is_finished);
        let page = s.after(cursor.clone(), 7).await.unwrap();
        if let Some(last) = page.last() {
            cursor = Some(last.id.clone());
            finished = false;
        }
        seen.extend(page);
    }
    for w in writers {
        w.await.unwrap();
    }
    seen.extend(s.after(cursor, 1000).await.unwrap());
    assert_eq!(seen.len(), 60, "every event seen exactly once");
    assert!(
        seen.windows(2).all(|w| w[0].id < w[1].id),
        "in order, no repeat"
    );
}

// ---- unit of work ----------------------------------------------------------------------

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
    assert_eq!(s.depth().await.unwrap(), 0);
}

/// An empty change set succeeds and writes nothing.
pub async fn empty_change_set_is_a_no_op<H: Harness>(h: &H) {
    let s = h.store();
    commit(&*s, ChangeSet::default()).await.unwrap();
    assert!(s.after(None, 10).await.unwrap().is_empty());
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
        },
    )
    .await
    .unwrap();
    s.store(webhook("w")).await.unwrap();
    s.begin("k", "fp", now()).await.unwrap();
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
    assert_eq!(r.depth().await.unwrap(), 1);
    assert_eq!(r.pending(now(), 10).await.unwrap().len(), 1);
    assert_eq!(
        r.begin("k", "fp", now()).await.unwrap(),
        IdempotencyBegin::InFlight
    );
}
