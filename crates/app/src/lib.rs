//! # app
//!
//! The only crate that knows every other: it reads the configuration, builds
//! the adapters, wires them into the use cases (`Arc<dyn Port>`), and runs
//! the HTTP server and the background workers. `main.rs` is the `recur`
//! binary's command line; tests start the same [`start`] in-process.

pub mod config;
pub mod demo;
mod ids;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bank131::{Bank131Webhooks, Signer, Verifier};
use gateway_http::events::HttpEventSink;
use gateway_http::{GatewayConfig, HttpGateway};
pub use http_api::BoxFuture;
use http_api::{ApiState, JsonPresenter, Metrics};
use ports::{EventSink, ManualClock, SystemClock};
use sandbox::{Sandbox, SandboxConfig, SandboxKeys};
use service::{Deps, Service};
use store_sql::SqlStore;
use store_sql::crypto::TokenKeys;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use crate::config::{Bank, Config, ConfigError, LogFormat};

/// Why the service could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn fail<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> StartError + '_ {
    move |e| StartError(format!("{context}: {e}"))
}

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
        let all = futures_join(self.tasks);
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

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Reads a value kept in the state directory, or makes and keeps one.
fn kept(
    state_dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<(String, bool), StartError> {
    let path = state_dir.join(name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok((text.trim().to_owned(), false));
    }
    let value = make();
    sandbox::write_private(&path, value.as_bytes())
        .map_err(|e| StartError(format!("cannot write {}: {e}", path.display())))?;
    Ok((value, true))
}

fn read(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path)
        .map_err(|e| StartError(format!("cannot read {}: {e}", path.display())))
}

/// Opens the store named by `DATABASE_URL`.
pub async fn open_store(url: &str, keys: Arc<TokenKeys>) -> Result<SqlStore, StartError> {
    let store = if url.starts_with("sqlite:") {
        store_sqlite::open(url, keys).await
    } else {
        store_postgres::open(url, keys).await
    };
    store.map_err(|e| StartError(format!("DATABASE_URL: {e}")))
}

/// Applies the migrations of the store named by `url`.
pub async fn migrate(url: &str) -> Result<(), StartError> {
    // Opening migrates; the token keys are not needed to change the schema.
    let store = open_store(url, Arc::new(TokenKeys::ephemeral())).await?;
    store.pool().close().await;
    Ok(())
}

/// The keys of the service's side: token keys, its signer, the bank's verifier.
struct Keys {
    token: Arc<TokenKeys>,
    signer: Arc<Signer>,
    bank: Verifier,
    api_keys: Vec<String>,
    generated_key: bool,
}

fn keys(config: &Config) -> Result<(Keys, Option<SandboxKeys>), StartError> {
    let (token_key, _) = match &config.token_key {
        Some(k) => (k.clone(), false),
        None => kept(&config.state_dir, "token_key", TokenKeys::generate_base64)?,
    };
    let token = Arc::new(
        TokenKeys::from_base64(&token_key, config.token_key_old.as_deref())
            .map_err(|e| StartError(e.0))?,
    );
    let (api_keys, generated_key) = if let Some(keys) = &config.api_keys {
        (keys.clone(), false)
    } else {
        let (key, generated) = kept(&config.state_dir, "api_key", || {
            format!("sk_sandbox_{}", ids::random_hex(16))
        })?;
        (vec![key], generated)
    };
    let (signer, bank, sandbox_keys) = match &config.bank {
        Bank::Sandbox { .. } => {
            let sandbox_keys =
                SandboxKeys::load_or_generate(&config.state_dir.join("sandbox-keys"), None, None)
                    .map_err(|e| StartError(format!("sandbox keys: {e}")))?;
            let partner = sandbox_keys
                .partner_private_key_file
                .clone()
                .ok_or_else(|| StartError("sandbox keys: no partner key was generated".into()))?;
            let signer = Signer::from_pem(&read(&partner)?).map_err(fail("sandbox partner key"))?;
            let bank = Verifier::from_pems([read(&sandbox_keys.bank_public_key_file)?.as_str()])
                .map_err(fail("sandbox bank key"))?;
            (signer, bank, Some(sandbox_keys))
        }
        Bank::Remote {
            private_key_file,
            public_key_files,
            ..
        } => {
            let signer = Signer::from_pem(&read(private_key_file)?)
                .map_err(fail("BANK131_PRIVATE_KEY_FILE"))?;
            let texts = public_key_files
                .iter()
                .map(|p| read(p))
                .collect::<Result<Vec<_>, _>>()?;
            let bank = Verifier::from_pems(texts.iter().map(String::as_str))
                .map_err(fail("BANK131_PUBLIC_KEY_FILE"))?;
            (signer, bank, None)
        }
    };
    Ok((
        Keys {
            token,
            signer: Arc::new(signer),
            bank,
            api_keys,
            generated_key,
        },
        sandbox_keys,
    ))
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

    let (base_url, project, sandbox, sandbox_addr) = match (&config.bank, sandbox_keys) {
        (Bank::Sandbox { listen, explicit }, Some(sandbox_keys)) => {
            let sandbox = Sandbox::start(SandboxConfig {
                project: "sandbox".into(),
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
                "sandbox".to_owned(),
                Some(sandbox),
                Some(addr),
            )
        }
        (
            Bank::Remote {
                base_url, project, ..
            },
            _,
        ) => (base_url.clone(), project.clone(), None, None),
        (Bank::Sandbox { .. }, None) => return Err(StartError("sandbox keys missing".into())),
    };

    let observer_metrics = metrics.clone();
    let mut gateway_config = GatewayConfig::new(base_url, project);
    gateway_config.request_timeout = config.bank_timeout;
    let gateway = HttpGateway::new(gateway_config, keys.signer.clone())
        .map_err(fail("bank gateway"))?
        .with_observer(Arc::new(move |method, took, ok| {
            observer_metrics.gateway(method, took, ok);
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
    });
    let service = if config.test_clock {
        service.with_test_clock(Arc::new(ManualClock::new(OffsetDateTime::now_utc())))
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
    };
    tasks.push(serve(
        api_listener,
        http_api::router(state),
        shutdown_rx.clone(),
    ));
    tasks.extend(workers(&service, &inbox_signal, &shutdown_rx));
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

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            warn!(error = %e, "HTTP server stopped with an error");
        }
    })
}

/// The background loops: inbox (woken by each webhook), outbox, scheduler, reconciliation.
fn workers(
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
                if let Err(e) = s.reconcile(service::RECONCILE_AFTER).await {
                    warn!(error = %e, "reconciliation failed");
                }
                false
            })
        }),
    ]
}
