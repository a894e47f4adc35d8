//! The HTTP server of both listeners (the merchant API with the webhook
//! receiver, and the in-process sandbox), hardened against hostile clients
//! with hyper's own parts: a header read timeout (which also ends idle
//! keep-alive connections), a cap on open connections, and a deadline for
//! in-flight requests at shutdown; and tower-http's request timeout.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tower_http::timeout::TimeoutLayer;
use tracing::warn;

/// How long a client may take to send a request's headers, and how long an
/// idle keep-alive connection stays open waiting for the next request.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Open connections at most; more wait in the listen backlog. Slow clients
/// are cut off by the header read timeout long before they exhaust it.
pub(crate) const MAX_CONNECTIONS: usize = 4_096;

/// The longest any request of either listener may run (`503` then): a
/// backstop under the merchant API's own, tighter timeouts, and the sandbox's
/// only one.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How long shutdown waits for requests in flight.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Serves `router` on `listener` until `shutdown` turns true, then lets
/// requests in flight finish for at most eight seconds.
pub fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let router = router.layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        REQUEST_TIMEOUT,
    ));
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let graceful = GracefulShutdown::new();
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = stopped(&mut shutdown) => break,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: breathe, go on.
                        warn!(%error, "could not accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stopped(&mut shutdown) => break,
            };
            let service = TowerToHyperService::new(router.clone());
            let connection =
                graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                // A client that vanishes or times out is its own business.
                let _ = connection.await;
                drop(slot);
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            warn!("requests still running at shutdown were cut off");
        }
    })
}

/// Resolves once `shutdown` says stop.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
