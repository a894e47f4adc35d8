//! The webhook inbox: deduplication, order, deferral, rejection.

use ports::*;
use time::Duration;

use crate::Harness;
use crate::changes::{self, commit};
use crate::fixtures::{now, webhook};

/// The same dedupe key is stored once.
pub async fn inbox_deduplicates_by_key<H: Harness>(h: &H) {
    let s = h.store();
    assert!(s.store(webhook("a")).await.unwrap());
    assert!(!s.store(webhook("a")).await.unwrap());
    assert_eq!(s.pending(now(), 10).await.unwrap().len(), 1);
}

/// The backlog counts the webhooks not yet applied and knows when the
/// oldest arrived; applied ones leave it.
pub async fn inbox_backlog_counts_what_waits<H: Harness>(h: &H) {
    let s = h.store();
    assert_eq!(s.unapplied().await.unwrap(), Backlog::default());
    let early = InboundWebhook {
        received_at: now() - Duration::minutes(5),
        ..webhook("early")
    };
    s.store(early).await.unwrap();
    s.store(webhook("late")).await.unwrap();
    let backlog = s.unapplied().await.unwrap();
    assert_eq!(
        (backlog.depth, backlog.oldest),
        (2, Some(now() - Duration::minutes(5)))
    );
    let first = s.pending(now(), 1).await.unwrap()[0].id;
    commit(&*s, changes::inbox_applied(vec![first]))
        .await
        .unwrap();
    assert_eq!(
        s.unapplied().await.unwrap(),
        Backlog {
            depth: 1,
            oldest: Some(now())
        }
    );
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
    commit(&*s, changes::inbox_applied(vec![id])).await.unwrap();
    let left = s.pending(now(), 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].id, id);
}

/// A stored webhook body (it carries raw bank tokens) is never in the
/// database in plaintext; handled webhooks older than the retention are
/// deleted, pending ones never.
pub async fn inbox_bodies_are_sealed_at_rest_and_old_handled_ones_purged<H: Harness>(h: &H) {
    let s = h.store();
    let marker = b"raw-token-4f1c9e2a7b";
    let body = [b"{\"recurrent\":{\"token\":\"".as_slice(), marker, b"\"}}"].concat();
    let mut sealed = webhook("sealed");
    sealed.body = body.clone();
    assert!(s.store(sealed).await.unwrap());
    let dump = h.raw_dump().await;
    assert!(
        !dump.windows(marker.len()).any(|w| w == marker),
        "a webhook body is stored in plaintext"
    );
    let pending = s.pending(now(), 10).await.unwrap();
    assert_eq!(pending[0].body, body, "read back exactly");

    for name in ["old-applied", "old-pending"] {
        let received_at = now() - Duration::days(8);
        let stored = s.store(InboundWebhook {
            received_at,
            ..webhook(name)
        });
        assert!(stored.await.unwrap(), "{name} stored");
    }
    let pending_ids = async || -> Vec<i64> {
        let pending = s.pending(now(), 10).await.unwrap();
        pending.iter().map(|i| i.id).collect()
    };
    let ids = pending_ids().await;
    // The sealed one (recent) and the old one are applied; old-pending is not.
    commit(&*s, changes::inbox_applied(vec![ids[0], ids[1]]))
        .await
        .unwrap();
    assert_eq!(
        s.purge(now() - Duration::days(7)).await.unwrap(),
        1,
        "only the old handled one"
    );
    assert_eq!(
        pending_ids().await,
        vec![ids[2]],
        "a pending webhook is never purged"
    );
}
