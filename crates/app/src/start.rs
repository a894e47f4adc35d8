//! Start-up and shut-down: the store, the bank (or the in-process sandbox),
//! the HTTP servers and the workers, wired together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bank131::Bank131Webhooks;
use events_http::HttpEventSink;
use gateway_http::{GatewayConfig, HttpGateway};
use http_api::BoxFuture;
use http_api::{ApiState, JsonPresenter, Metrics};
use ports::{EventSink, ManualClock, SystemClock, TestClockStore};
use sandbox::{Sandbox, SandboxConfig};
use service::{Deps, Service};
use store_sql::SqlStore;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{Bank, Config};
use crate::keys::keys;
use crate::server::serve;
use crate::store::{open_store, redact};
use crate::workers::{housekeeping, workers};
use crate::{StartError, fail, ids};

/// A running service.
#[derive(Debug)]
pub struct Running {
    /// Where the merchant API listens.
    pub api_addr: SocketAddr,
    /// Where the in-process sandbox listens (sandbox mode).
    pub sandbox_addr: Option<SocketAddr>,
    /// The in-process sandbox (sandbox mode), for tests and the demo.
    pub sandbox: Option<Sandbox>,
    /// The accepted API keys (generated ones included).
    pub api_keys: Vec<String>,
    /// Whether the API key was generated on this start.
    pub generated_key: bool,
    /// The store.
    pub store: Arc<SqlStore>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight work finish, and waits at most 10 s.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let all = join_in_order(self.tasks);
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            warn!("shutdown took longer than 10 s; exiting anyway");
        }
        if let Some(sandbox) = &self.sandbox {
            sandbox.flush();
        }
        self.store.pool().close().await;
    }
}

async fn join_in_order(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Starts the service: store, bank (or in-process sandbox), HTTP server, workers.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let (keys, sandbox_keys) = keys(&config)?;
    let metrics = Arc::new(Metrics::default());
    let store = Arc::new(
        open_store(&config.database_url, keys.token.clone())
            .await?
            .delivering_events(config.events.is_some()),
    );
    let api_listener = TcpListener::bind(config.listen)
        .await
        .map_err(fail("RECUR_LISTEN"))?;
    let api_addr = api_listener.local_addr().map_err(fail("RECUR_LISTEN"))?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let (base_url, (project, project_3ds), sandbox, sandbox_addr) = match (
        &config.bank,
        sandbox_keys,
    ) {
        (Bank::Sandbox { listen, explicit }, Some(sandbox_keys)) => {
            let sandbox = Sandbox::start(SandboxConfig {
                // Two projects, as the bank may issue: every end-to-end run
                // checks that each session stays on the project that made it.
                project: "sandbox,sandbox-3ds".into(),
                partner_keys: sandbox_keys.partner_keys,
                bank_signer: sandbox_keys.bank_signer,
                webhook_url: format!("http://{api_addr}/webhooks/bank131"),
                state_file: Some(config.state_dir.join("sandbox-state.json")),
            })
            .map_err(fail("sandbox"))?;
            let listener = match TcpListener::bind(listen).await {
                Ok(listener) => listener,
                // Another sandbox holds the default port: take a free one.
                Err(e) if !explicit && e.kind() == std::io::ErrorKind::AddrInUse => {
                    warn!(%listen, "the sandbox's default port is taken; using a free port (set SANDBOX_LISTEN to choose)");
                    TcpListener::bind((listen.ip(), 0))
                        .await
                        .map_err(fail("SANDBOX_LISTEN"))?
                }
                Err(e) => return Err(fail("SANDBOX_LISTEN")(e)),
            };
            let addr = listener.local_addr().map_err(fail("SANDBOX_LISTEN"))?;
            tasks.push(serve(listener, sandbox.router(), shutdown_rx.clone()));
            (
                format!("http://{addr}"),
                ("sandbox".to_owned(), Some("sandbox-3ds".to_owned())),
                Some(sandbox),
                Some(addr),
            )
        }
        (
            Bank::Remote {
                base_url,
                project,
                project_3ds,
                ..
            },
            _,
        ) => (
            base_url.clone(),
            (project.clone(), project_3ds.clone()),
            None,
            None,
        ),
        (Bank::Sandbox { .. }, None) => return Err(StartError("sandbox keys missing".into())),
    };

    let observer_metrics = metrics.clone();
    let mut gateway_config = GatewayConfig::new(base_url, project);
    gateway_config.project_3ds = project_3ds;
    gateway_config.request_timeout = config.bank_timeout;
    let gateway = HttpGateway::new(gateway_config, keys.signer.clone())
        .map_err(fail("bank gateway"))?
        .with_observer(Arc::new(move |method, took, outcome| {
            observer_metrics.bank_call(method, outcome, took);
        }));
    let event_sink = match &config.events {
        Some((url, secret)) => {
            let render = Arc::new(|e: &ports::Event| http_api::wire::event_body(e));
            Some(
                Arc::new(HttpEventSink::new(url.clone(), secret, render).map_err(StartError)?)
                    as Arc<dyn EventSink>,
            )
        }
        None => None,
    };
    let service = Service::new(Deps {
        gateway: Arc::new(gateway),
        webhooks: Arc::new(Bank131Webhooks::new(keys.bank)),
        uow: store.clone(),
        payments: store.clone(),
        tokens: store.clone(),
        subscriptions: store.clone(),
        inbox: store.clone(),
        outbox: store.clone(),
        events: store.clone(),
        event_sink,
        clock: Arc::new(SystemClock),
        wall_clock: Arc::new(SystemClock),
        ids: Arc::new(ids::RandomIds),
        presenter: Arc::new(JsonPresenter),
        dunning: domain::DunningPolicy::default(),
        telemetry: metrics.clone(),
    })
    .with_in_flight(config.worker_in_flight);
    let service = if config.test_clock {
        // The kept time, so that a restart never moves the test clock back.
        let kept = TestClockStore::load(&*store)
            .await
            .map_err(fail("the test clock's kept time"))?;
        let start = kept.unwrap_or_else(OffsetDateTime::now_utc);
        service.with_test_clock(Arc::new(ManualClock::new(start)), store.clone())
    } else {
        service
    };

    let inbox_signal = Arc::new(Notify::new());
    let ready_store = store.clone();
    let state = ApiState {
        service: service.clone(),
        api_keys: Arc::new(keys.api_keys.clone()),
        metrics,
        inbox_signal: inbox_signal.clone(),
        idempotency: store.clone(),
        ready: Arc::new(move || {
            let store = ready_store.clone();
            Box::pin(async move { store.ping().await.is_ok() }) as BoxFuture<bool>
        }),
        // A payment request makes at most four bank calls, each cut off at
        // the bank timeout: the request's own timeout only catches a hang.
        request_timeout: config.bank_timeout * 4 + std::time::Duration::from_secs(10),
    };
    tasks.push(serve(
        api_listener,
        http_api::router(state),
        shutdown_rx.clone(),
    ));
    tasks.extend(workers(
        &service,
        &inbox_signal,
        config.worker_poll,
        &shutdown_rx,
    ));
    tasks.push(housekeeping(
        &service,
        store.clone(),
        config.inbox_retention,
        &shutdown_rx,
    ));
    info!(%api_addr, sandbox = ?sandbox_addr, database = %redact(&config.database_url), "recur is running");
    Ok(Running {
        api_addr,
        sandbox_addr,
        sandbox,
        api_keys: keys.api_keys,
        generated_key: keys.generated_key,
        store,
        shutdown,
        tasks,
    })
}
