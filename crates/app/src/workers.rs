//! The background loops: the inbox (woken by each webhook), the outbox, the
//! scheduler and reconciliation, each draining its work then sleeping.

use std::sync::Arc;
use std::time::Duration;

use http_api::BoxFuture;
use service::Service;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::warn;

/// The background loops: inbox (woken by each webhook), outbox, scheduler, reconciliation.
pub(crate) fn workers(
    service: &Service,
    inbox_signal: &Arc<Notify>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let every = |period: Duration,
                 wake: Option<Arc<Notify>>,
                 job: fn(Service) -> BoxFuture<bool>| {
        let service = service.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                // Drain: keep going while a batch did work.
                while job(service.clone()).await {}
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
        every(Duration::from_millis(50), Some(inbox_signal.clone()), |s| {
            Box::pin(async move { s.apply_inbox().await.is_ok_and(|r| r.done > 0) })
        }),
        every(Duration::from_millis(50), None, |s| {
            Box::pin(async move { s.run_outbox().await.is_ok_and(|r| r.done > 0) })
        }),
        every(Duration::from_secs(1), None, |s| {
            Box::pin(async move {
                let now = s.now();
                s.run_scheduler(now).await.is_ok_and(|r| r.done > 0)
            })
        }),
        every(Duration::from_secs(2), None, |s| {
            Box::pin(async move {
                if let Err(e) = s.reconcile().await {
                    warn!(error = %e, "reconciliation failed");
                }
                false
            })
        }),
    ]
}
