//! Benchmark 3, the merchant API at 32 connections: `POST /v1/payments` (a
//! merchant-initiated charge, a new `Idempotency-Key` each) and
//! `GET /v1/payments/{id}`, next to `GET /healthz` of the same process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use app::Config;
use app::demo::{self, Client};

use crate::measure::{Run, drop_postgres_database, load, postgres_database, rss_mib};
use crate::seed;

/// Which store a run used.
#[derive(Clone, Copy)]
pub enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    /// `sqlite` or `postgres`, as a part names it.
    pub fn named(name: &str) -> Self {
        match name {
            "sqlite" => Self::Sqlite,
            "postgres" => Self::Postgres,
            other => panic!("unknown store {other}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// What one API run measured.
pub struct ApiRun {
    pub create: Run,
    pub read: Run,
    pub health: Run,
    /// The process's resident memory after start-up and one payment, in MiB.
    pub idle_rss_mib: f64,
    /// RSA signatures made per POST (recur's bank calls and the in-process
    /// sandbox's answers and webhooks), counted.
    pub signatures_per_create: f64,
}

/// `creates` MIT payments, then `creates * 2` reads and health checks, each
/// over `connections`, on a fresh database holding `history` old payments.
pub async fn run(store: Store, history: u64, creates: usize, connections: usize) -> ApiRun {
    let tag = format!("{}_{history}", std::process::id());
    let dir = std::env::temp_dir().join(format!("recur-bench-api-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let name = format!("recur_bench_api_{tag}");
    let database = match store {
        Store::Sqlite => format!("sqlite://{}", dir.join("bench.db").display()),
        Store::Postgres => postgres_database(&name).await,
    };
    let running = app::start(Config::ephemeral(dir.join("state"), database.clone()))
        .await
        .expect("service");
    let client = Client::of(&running);
    let token = demo::saved_card_token(&client, "cust-api")
        .await
        .expect("token");
    if history > 0 {
        seed::history(&database, history).await;
    }
    let idle_rss_mib = rss_mib();
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(creates)));
    let keys = Arc::new(AtomicU64::new(0));
    let signatures = bank131::signatures_made();
    let create = {
        let (client, ids) = (client.clone(), Arc::clone(&ids));
        load(creates, connections, move |_| {
            let (client, ids, token) = (client.clone(), Arc::clone(&ids), token.clone());
            let key = format!("bench-{}", keys.fetch_add(1, Ordering::Relaxed));
            async move {
                let body = demo::token_payment("cust-api", &token, "merchant", 100);
                let (status, created) = client.post_with("/v1/payments", &body, Some(&key)).await;
                assert_eq!(status, 201, "{created}");
                let id = created["id"].as_str().expect("id").to_owned();
                ids.lock().expect("ids").push(id);
            }
        })
        .await
    };
    // Let the last payments' webhooks land before counting signatures.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    #[allow(clippy::cast_precision_loss)]
    let signatures_per_create =
        (bank131::signatures_made() - signatures) as f64 / create.latencies.len() as f64;
    let ids: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *ids.lock().expect("ids")));
    let read = {
        let client = client.clone();
        load(creates * 2, connections, move |i| {
            let (client, ids) = (client.clone(), Arc::clone(&ids));
            async move {
                let (status, body) = client
                    .get(&format!("/v1/payments/{}", ids[i % ids.len()]))
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        })
        .await
    };
    let health = {
        let client = client.clone();
        load(creates * 2, connections, move |_| {
            let client = client.clone();
            async move {
                let (status, body) = client.get("/healthz").await;
                assert_eq!(status, 200, "{body}");
            }
        })
        .await
    };
    running.stop().await;
    if let Store::Postgres = store {
        drop_postgres_database(&name).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    ApiRun {
        create,
        read,
        health,
        idle_rss_mib,
        signatures_per_create,
    }
}
