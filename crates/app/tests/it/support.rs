//! Starting the real service for a test: a temporary state directory, a fresh
//! database on either store, the in-process sandbox on port 0.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use app::demo::{self, Client};
use app::{Config, Running};
use bank131::Signer;
use serde_json::Value;
use sqlx::{Connection, Executor};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Which store the service runs on.
#[derive(Debug, Clone, Copy)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

pub async fn admin(sql: &str) {
    sqlx::any::install_default_drivers();
    let url = store_postgres::test_server_url();
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url}: {e}; {}",
                store_postgres::START_HINT
            )
        });
    conn.execute(sql).await.unwrap();
}

/// A running service under test.
pub struct TestApp {
    pub client: Client,
    pub first_key: String,
    running: Option<Running>,
    config: Config,
    dir: PathBuf,
    database: Option<String>,
}

impl TestApp {
    pub async fn start(kind: StoreKind) -> Self {
        Self::start_with(kind, |_| {}).await
    }

    /// Starts with a configuration changed by `adjust`.
    pub async fn start_with(kind: StoreKind, adjust: impl FnOnce(&mut Config)) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("recur-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (database_url, database) = match kind {
            StoreKind::Sqlite => (format!("sqlite://{}", dir.join("recur.db").display()), None),
            StoreKind::Postgres => {
                let name = format!("recur_e2e_{}_{n}", std::process::id());
                admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                admin(&format!("CREATE DATABASE {name}")).await;
                (
                    store_postgres::with_database(&store_postgres::test_server_url(), &name),
                    Some(name),
                )
            }
        };
        let mut config = Config::ephemeral(dir.join("state"), database_url);
        // Generous, so that a loaded CI machine never turns a slow answer into
        // an unknown outcome; the timeout test sets its own.
        config.bank_timeout = Duration::from_secs(10);
        adjust(&mut config);
        let running = app::start(config.clone()).await.unwrap();
        let client = Client::of(&running);
        let first_key = running.api_keys[0].clone();
        Self {
            client,
            first_key,
            running: Some(running),
            config,
            dir,
            database,
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// The in-process sandbox bank.
    pub fn sandbox(&self) -> &sandbox::Sandbox {
        self.running().sandbox.as_ref().expect("sandbox mode")
    }

    /// How many times the sandbox's ledger charged `amount` (the customer's
    /// side of every "paid exactly once" check).
    pub fn charges_of_amount(&self, amount: i64) -> usize {
        self.charges(|e| e.amount == amount)
    }

    /// How many times the sandbox's ledger charged our payment `payment`.
    pub fn charges_of_payment(&self, payment: &str) -> usize {
        self.charges(|e| e.partner_payment_id.as_deref() == Some(payment))
    }

    fn charges(&self, which: impl Fn(&sandbox::bank::LedgerEntry) -> bool) -> usize {
        let ledger = self.sandbox().ledger();
        ledger
            .iter()
            .filter(|e| e.kind == "charge" && which(e))
            .count()
    }

    /// The merchant API's base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.running().api_addr)
    }

    /// The API key in use.
    pub fn api_key(&self) -> String {
        self.running().api_keys[0].clone()
    }

    /// The sandbox bank's private key (to sign webhooks in tests).
    pub fn bank_signer(&self) -> Signer {
        let pem =
            std::fs::read_to_string(self.config.state_dir.join("sandbox-keys/bank_private.pem"))
                .unwrap();
        Signer::from_pem(&pem).unwrap()
    }

    /// Every byte the database holds on disk (SQLite: the file and its
    /// write-ahead log) or dumps (`pg_dump` of the PostgreSQL database).
    pub fn database_bytes(&self) -> Vec<u8> {
        match &self.database {
            None => ["recur.db", "recur.db-wal"]
                .iter()
                .flat_map(|f| std::fs::read(self.dir.join(f)).unwrap_or_default())
                .collect(),
            Some(name) => {
                let out = std::process::Command::new("pg_dump")
                    .args(["-h", "127.0.0.1", "-U", "postgres", "-d", name])
                    .output()
                    .expect("pg_dump runs");
                assert!(out.status.success(), "pg_dump: {out:?}");
                out.stdout
            }
        }
    }

    /// Closes the service's database pool (as if the database went away).
    pub async fn close_database(&self) {
        self.running().store.pool().close().await;
    }

    /// Stops the service and starts it again on the same database and state directory.
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let running = app::start(self.config.clone()).await.unwrap();
        self.client = Client::of(&running);
        self.running = Some(running);
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        if let Some(name) = &self.database {
            admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A merchant endpoint collecting `(Recur-Signature, body)` of each event POSTed to it.
pub async fn event_receiver() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let (url, received, _) = failing_event_receiver(0).await;
    (url, received)
}

/// Like [`event_receiver`], but the first `failures` requests answer 500.
/// Also returns how many requests it has answered (refused ones included).
pub async fn failing_event_receiver(
    failures: usize,
) -> (String, Arc<Mutex<Vec<(String, String)>>>, Arc<AtomicU64>) {
    let receiver = refusing_event_receiver(failures, Refusal::ServerError).await;
    (receiver.url, receiver.received, receiver.requests)
}

/// How a merchant's event endpoint refuses its first deliveries.
#[derive(Clone, Copy)]
pub enum Refusal {
    /// `500`.
    ServerError,
    /// `307` to `/elsewhere`, which would accept (and counts in `followed`).
    Redirect,
}

/// A merchant's event endpoint that refuses the first `failures` deliveries.
pub struct EventReceiver {
    pub url: String,
    /// (Recur-Signature, body) of each accepted delivery.
    pub received: Arc<Mutex<Vec<(String, String)>>>,
    /// Requests to `/events`, refused ones included.
    pub requests: Arc<AtomicU64>,
    /// Requests that followed a redirect to `/elsewhere`.
    pub followed: Arc<AtomicU64>,
}

pub async fn refusing_event_receiver(failures: usize, refusal: Refusal) -> EventReceiver {
    use axum::response::IntoResponse;
    use axum::routing::post;
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let store = received.clone();
    let refused = Arc::new(AtomicU64::new(0));
    let requests = refused.clone();
    let followed = Arc::new(AtomicU64::new(0));
    let elsewhere = followed.clone();
    let router = axum::Router::new()
        .route(
            "/events",
            post(move |headers: axum::http::HeaderMap, body: String| {
                let store = store.clone();
                let refused = refused.clone();
                async move {
                    if refused.fetch_add(1, Ordering::Relaxed) < failures as u64 {
                        return match refusal {
                            Refusal::ServerError => {
                                axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                            }
                            Refusal::Redirect => (
                                axum::http::StatusCode::TEMPORARY_REDIRECT,
                                [(axum::http::header::LOCATION, "/elsewhere")],
                            )
                                .into_response(),
                        };
                    }
                    let signature = headers
                        .get("recur-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    store.lock().unwrap().push((signature, body));
                    axum::http::StatusCode::OK.into_response()
                }
            }),
        )
        .route(
            "/elsewhere",
            post(move || {
                elsewhere.fetch_add(1, Ordering::Relaxed);
                async { axum::http::StatusCode::OK }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    EventReceiver {
        url,
        received,
        requests,
        followed,
    }
}

/// Everything every test of this binary logs, from the first capture on.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once) a global subscriber at DEBUG that writes into a buffer.
pub fn capture_logs() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter("debug,sqlx=warn,hyper=warn,hyper_util=warn,reqwest=warn,h2=warn")
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
            captured
        })
        .clone()
}

pub async fn events(c: &Client) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let (_, page) = c.get(&format!("/v1/events?limit=7{after}")).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if let Some(last) = data.last() {
            after = format!("&after={}", last["id"].as_str().unwrap());
        }
        all.extend(data);
        if page["has_more"] != true {
            return all;
        }
    }
}

/// A customer's payments, newest first.
pub async fn payments_of(c: &Client, customer: &str) -> Vec<Value> {
    let (_, page) = c
        .get(&format!("/v1/payments?customer_reference={customer}"))
        .await;
    page["data"].as_array().cloned().unwrap_or_default()
}

pub fn count(events: &[Value], kind: &str, object: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == kind && e["data"]["id"] == object)
        .count()
}

pub async fn wait_charges(c: &Client, sub: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, charges) = c.get(&format!("/v1/subscriptions/{sub}/charges")).await;
        let data = charges["data"].as_array().cloned().unwrap_or_default();
        if data.len() >= count && data.iter().all(|c| c["status"] != "pending") {
            return data;
        }
        assert!(Instant::now() < deadline, "{charges}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a subscription still has no charge attempt once the jobs ran.
pub async fn wait_charges_none(c: &Client, sub: &str) -> bool {
    c.get(&format!("/v1/subscriptions/{sub}/charges")).await.1["data"]
        .as_array()
        .is_some_and(Vec::is_empty)
}

/// Runs the demo flows whose names start with one of `flows`, on a fresh app.
pub async fn flows(kind: StoreKind, flows: &[&str]) {
    let app = TestApp::start(kind).await;
    for (name, flow) in demo::flows()
        .into_iter()
        .filter(|(name, _)| flows.iter().any(|f| name.starts_with(f)))
    {
        flow(&app.client)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    app.stop().await;
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The JSON answer of a request (`Null` when the body is not JSON).
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let text = request.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A child process and every line it wrote to stderr so far.
pub struct Process {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn spawn(mut command: std::process::Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, stderr }
    }

    pub fn lines_with(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of a server (PostgreSQL, the bank) that can cut
/// every connection and refuse new ones, as a stopped server does.
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0_u64);
        let (is_down, cuts) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let (mut cut, target) = (cuts.subscribe(), target.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target.as_str()).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, down, cut }
    }

    pub fn stop(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restart(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// `recur sandbox` as a process of its own in `dir`, listening on `bank` and
/// sending its webhooks to recur on `api`; returned once it answers.
pub async fn standalone_sandbox(dir: &std::path::Path, bank: u16, api: u16) -> Process {
    let recur = std::path::Path::new(env!("CARGO_BIN_EXE_recur"));
    let process = Process::spawn(demo::sandbox_command(recur, dir, bank, api));
    demo::wait_for_sandbox(&format!("http://127.0.0.1:{bank}"))
        .await
        .unwrap();
    process
}

/// `recur serve` in live mode in `dir`, on `api`, against the bank at
/// `bank_url` with the keys [`standalone_sandbox`] wrote, storing in
/// `database`, accepting the API key `api_key`.
pub fn live_serve(
    dir: &std::path::Path,
    api: u16,
    bank_url: &str,
    database: &str,
    api_key: &str,
) -> std::process::Command {
    let keys = dir.join("keys");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_recur"));
    command
        .arg("serve")
        .current_dir(dir)
        .env("RECUR_LISTEN", format!("127.0.0.1:{api}"))
        .env("DATABASE_URL", database)
        .env("BANK131_BASE_URL", bank_url)
        .env("BANK131_PROJECT", "shop")
        .env("BANK131_PRIVATE_KEY_FILE", keys.join("partner_private.pem"))
        .env("BANK131_PUBLIC_KEY_FILE", keys.join("bank_public.pem"))
        .env("RECUR_API_KEYS", api_key)
        .env(
            "RECUR_TOKEN_KEY",
            store_sql::crypto::TokenKeys::generate_base64(),
        );
    command
}

/// A saved card for `customer`, then a token payment of `amount` started by
/// `initiator` (`merchant` or `client`): the new payment's id.
pub async fn token_payment_with_a_saved_card(
    c: &Client,
    customer: &str,
    initiator: &str,
    amount: i64,
) -> String {
    let token = demo::saved_card_token(c, customer).await.unwrap();
    let body = demo::token_payment(customer, &token, initiator, amount);
    let (status, created) = c.post("/v1/payments", &body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}
