//! The outbox: claims, leases, retries, one command claimed inline, concurrent claimers, delivery order.

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::*;
use ports::*;
use time::Duration;

use crate::changes::{self, commit};
use crate::fixtures::{confirm, event, now, payment};
use crate::{AllPorts, Harness};

async fn enqueue<S: AllPorts + ?Sized>(s: &S, commands: Vec<OutboxCommand>) {
    commit(s, changes::commands(commands)).await.unwrap();
}

/// What a worker could claim a day from now (every lease run out).
async fn claimable<S: AllPorts + ?Sized>(s: &S) -> Vec<OutboxItem> {
    s.claim(now() + Duration::days(1), 10, Duration::seconds(30))
        .await
        .unwrap()
}

/// Enqueues a confirm of `pay_1` and claims it.
async fn enqueue_and_claim_one<S: AllPorts + ?Sized>(s: &S) -> OutboxItem {
    enqueue(s, vec![confirm("pay_1")]).await;
    s.claim(now(), 10, Duration::seconds(30))
        .await
        .unwrap()
        .remove(0)
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
    let item = enqueue_and_claim_one(&*s).await;
    s.complete(item.id).await.unwrap();
    assert!(
        s.claim(now() + Duration::days(1), 10, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A command carried out leaves the queue with the commit that records its
/// answer, alone or beside the payment it moved; a commit refused keeps it.
pub async fn outbox_command_done_leaves_with_its_answers_commit<H: Harness>(h: &H) {
    let s = h.store();
    let p = payment("c");
    commit(&*s, changes::insert(&p)).await.unwrap();
    // Beside the payment: a stale version refuses the set, the row stays.
    let item = enqueue_and_claim_one(&*s).await;
    let stale = ChangeSet {
        payments: vec![Write {
            value: p.clone(),
            expected_version: Some(7),
        }],
        outbox_done: vec![item.id],
        ..ChangeSet::default()
    };
    assert!(matches!(
        commit(&*s, stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(claimable(&*s).await.len(), 1, "kept");
    let answered = ChangeSet {
        payments: vec![Write {
            value: p.clone(),
            expected_version: Some(1),
        }],
        events: vec![event("payment.succeeded", p.id())],
        outbox_done: vec![item.id],
        ..ChangeSet::default()
    };
    commit(&*s, answered).await.unwrap();
    assert!(claimable(&*s).await.is_empty(), "removed");
    // Alone (the answer moved nothing).
    let item = enqueue_and_claim_one(&*s).await;
    let alone = ChangeSet {
        outbox_done: vec![item.id],
        ..ChangeSet::default()
    };
    commit(&*s, alone).await.unwrap();
    assert!(claimable(&*s).await.is_empty(), "removed");
    assert_eq!(s.backlog().await.unwrap().depth, 0);
}

/// A retried command waits for its `next_attempt_at`.
pub async fn outbox_retry_waits_for_next_attempt_at<H: Harness>(h: &H) {
    let s = h.store();
    let item = enqueue_and_claim_one(&*s).await;
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

/// One queued command is claimed by one caller at a time, due or not:
/// another caller finds it busy until it is completed (then it is not
/// queued) or its lease runs out; a worker's batch claim skips it too.
pub async fn outbox_one_command_is_claimed_by_one_caller<H: Harness>(h: &H) {
    let s = h.store();
    let lease = Duration::seconds(30);
    enqueue(
        &*s,
        vec![
            confirm("pay_1"),
            confirm("pay_2"),
            OutboxCommand::CaptureSession(PaymentId::parse("pay_1").unwrap()),
        ],
    )
    .await;
    let CommandClaim::Claimed(item) = s
        .claim_command(&confirm("pay_1"), now(), lease)
        .await
        .unwrap()
    else {
        panic!("a queued command is claimed");
    };
    assert_eq!((item.command.clone(), item.attempts), (confirm("pay_1"), 1));
    assert_eq!(
        s.claim_command(&confirm("pay_1"), now(), lease)
            .await
            .unwrap(),
        CommandClaim::Busy
    );
    let batch: Vec<_> = s
        .claim(now(), 10, lease)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.command)
        .collect();
    assert!(!batch.contains(&confirm("pay_1")), "{batch:?}");
    assert_eq!(
        s.claim_command(&confirm("pay_2"), now(), lease)
            .await
            .unwrap(),
        CommandClaim::Busy,
        "held by the batch claim"
    );
    let later = now() + Duration::minutes(1);
    assert!(matches!(
        s.claim_command(&confirm("pay_1"), later, lease)
            .await
            .unwrap(),
        CommandClaim::Claimed(OutboxItem { attempts: 2, .. })
    ));
    s.complete(item.id).await.unwrap();
    assert_eq!(
        s.claim_command(&confirm("pay_1"), later, lease)
            .await
            .unwrap(),
        CommandClaim::NotQueued
    );
}

/// The backlog counts the commands waiting and knows when the oldest came.
pub async fn outbox_depth_counts_waiting_commands<H: Harness>(h: &H) {
    let s = h.store();
    assert_eq!(s.backlog().await.unwrap(), Backlog::default());
    enqueue(&*s, vec![confirm("pay_1"), confirm("pay_2")]).await;
    assert_eq!(
        s.backlog().await.unwrap(),
        Backlog {
            depth: 2,
            oldest: Some(now())
        }
    );
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
        commit(&*s, changes::events(vec![e])).await.unwrap();
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
