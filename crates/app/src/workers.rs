//! The background loops: the inbox (woken by each webhook), the outbox, the
//! scheduler and reconciliation, each draining its work then sleeping.

use std::sync::Arc;
use std::time::Duration;

use http_api::BoxFuture;
use ports::IdempotencyStore;
use service::Service;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The background loops: inbox (woken by each webhook), outbox, scheduler, reconciliation.
/// The inbox and the outbox look for work every `poll` when idle.
pub(crate) fn workers(
    service: &Service,
    inbox_signal: &Arc<Notify>,
    poll: Duration,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    // Applying a webhook often enqueues a bank command (a ready_to_confirm's
    // confirm): the outbox is woken at once instead of at its next poll.
    let outbox_signal = Arc::new(Notify::new());
    let every = |period: Duration,
                 wake: Option<Arc<Notify>>,
                 then: Option<Arc<Notify>>,
                 job: fn(Service) -> BoxFuture<bool>| {
        let service = service.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                // Drain: keep going while a batch did work.
                while job(service.clone()).await {
                    if let Some(then) = &then {
                        then.notify_one();
                    }
                }
                let wake = wake.clone();
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    () = async move { match wake { Some(w) => w.notified().await, None => std::future::pending().await } } => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        })
    };
    vec![
        every(
            poll,
            Some(inbox_signal.clone()),
            Some(outbox_signal.clone()),
            |s| Box::pin(async move { s.apply_inbox().await.is_ok_and(|r| r.done > 0) }),
        ),
        every(poll, Some(outbox_signal.clone()), None, |s| {
            Box::pin(async move { s.run_outbox().await.is_ok_and(|r| r.done > 0) })
        }),
        every(Duration::from_secs(1), None, None, |s| {
            Box::pin(async move {
                let now = s.now();
                s.run_scheduler(now).await.is_ok_and(|r| r.done > 0)
            })
        }),
        every(Duration::from_secs(2), None, None, |s| {
            Box::pin(async move {
                if let Err(e) = s.reconcile().await {
                    warn!(error = %e, "reconciliation failed");
                }
                false
            })
        }),
    ]
}

/// What is kept only for a while goes, once a minute: handled bank webhooks
/// older than `retention`, idempotency keys past their 24 hours.
pub(crate) fn housekeeping(
    service: &Service,
    idempotency: Arc<dyn IdempotencyStore>,
    retention: time::Duration,
    shutdown: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let service = service.clone();
    let mut shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match service.purge_inbox(retention).await {
                Ok(0) => {}
                Ok(n) => info!(webhooks = n, "purged handled webhooks past their retention"),
                Err(e) => warn!(error = %e, "purging the inbox failed"),
            }
            if let Err(e) = idempotency.purge_expired(service.now()).await {
                warn!(error = %e, "purging idempotency keys failed");
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    })
}
