//! The event feed: gap-free paging, lookups, concurrent appends.

use std::sync::Arc;

use domain::*;
use ports::*;

use crate::Harness;
use crate::changes::{self, commit};
use crate::fixtures::{event, now, payment};

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
        commit(&*s, changes::events(vec![event(kind, p.id())]))
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
        changes::events(vec![event("payment.succeeded", p.id())]),
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
