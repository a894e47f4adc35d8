//! Benchmark 2, an external bank: `recur sandbox` as a separate process, so
//! every `ready_to_confirm` arrives as a webhook and its confirm goes through
//! the outbox. Customer-initiated token payments: the bank sends
//! `ready_to_confirm` when the payment starts (before the merchant API
//! answers), recur confirms, and only then does the bank ask for 3-D Secure
//! (`action_required`). Each confirm is timed from the API's answer to the
//! payment showing `requires_action`: an upper bound (it also holds the
//! `action_required` webhook and a 20 ms poll).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::Config;
use app::config::Bank;
use app::demo::{self, Client};
use serde_json::json;

use crate::measure::{
    drop_postgres_database, peak_rss_mib, percentile_ms, postgres_database, reset_peak_rss,
};

/// What the external-bank run measured.
pub struct External {
    pub payments: usize,
    pub clients: usize,
    /// From the first payment created to the last one confirmed.
    pub took: Duration,
    /// Created to confirmed (`requires_action`), per payment, sorted.
    pub confirm_latencies: Vec<Duration>,
    /// Sessions the bank charged more than once.
    pub double_charges: usize,
    pub peak_rss_mib: f64,
}

impl External {
    #[allow(clippy::cast_precision_loss)]
    pub fn confirms_per_second(&self) -> f64 {
        self.payments as f64 / self.took.as_secs_f64()
    }

    pub fn over(&self, limit: Duration) -> usize {
        self.confirm_latencies
            .iter()
            .filter(|l| **l > limit)
            .count()
    }

    pub fn ms(&self, per_mille: usize) -> f64 {
        percentile_ms(&self.confirm_latencies, per_mille)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The `recur` binary next to this benchmark's (`target/release/recur`).
fn recur_binary() -> std::path::PathBuf {
    let me = std::env::current_exe().expect("own path");
    let release = me
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target dir");
    release.join("recur")
}

/// `payments` 3-D Secure payments created by `clients` clients.
pub async fn run(payments: usize, clients: usize) -> External {
    let dir = std::env::temp_dir().join(format!("recur-bench-external-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (bank, api) = (free_port(), free_port());
    let mut sandbox = demo::sandbox_command(&recur_binary(), &dir, bank, api)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("recur sandbox (build it: cargo build --release -p app)");
    let bank_url = format!("http://127.0.0.1:{bank}");
    demo::wait_for_sandbox(&bank_url)
        .await
        .expect("the sandbox");
    let name = format!("recur_bench_external_{}", std::process::id());
    let database = postgres_database(&name).await;
    let mut config = Config::ephemeral(dir.join("state"), database);
    config.listen = ([127, 0, 0, 1], api).into();
    config.test_clock = false;
    config.api_keys = Some(vec!["bench-key".into()]);
    config.token_key = Some(store_sql::crypto::TokenKeys::generate_base64());
    config.bank = Bank::Remote {
        base_url: bank_url.clone(),
        project: "shop".into(),
        project_3ds: None,
        private_key_file: dir.join("keys/partner_private.pem"),
        public_key_files: vec![dir.join("keys/bank_public.pem")],
    };
    let running = app::start(config).await.expect("service");
    let client = Client::new(
        format!("http://127.0.0.1:{api}"),
        "bench-key".into(),
        bank_url,
    );
    let token = demo::saved_card_token(&client, "cust-3ds")
        .await
        .expect("token");
    let confirmed: Arc<Mutex<Vec<Duration>>> = Arc::default();
    reset_peak_rss();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (client, token, confirmed) =
                (client.clone(), token.clone(), Arc::clone(&confirmed));
            tokio::spawn(async move {
                for _ in (c..payments).step_by(clients) {
                    let body = demo::token_payment("cust-3ds", &token, "client", 5_000);
                    let (status, created) = client.post("/v1/payments", &body).await;
                    assert_eq!(status, 201, "{created}");
                    let id = created["id"].as_str().expect("id").to_owned();
                    let answered = Instant::now();
                    let waiting = client
                        .wait_status(&id, "requires_action")
                        .await
                        .expect("3-D Secure");
                    confirmed.lock().expect("list").push(answered.elapsed());
                    let session = waiting["bank"]["session_id"].as_str().expect("session");
                    let (status, answer) = client
                        .sandbox(
                            &format!("/sandbox/sessions/{session}/3ds"),
                            &json!({ "approve": true }),
                        )
                        .await;
                    assert_eq!(status, 200, "{answer}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    let took = started.elapsed();
    let charged = |ledger: &serde_json::Value| -> Vec<String> {
        ledger["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["kind"] == "charge" && e["amount"] == 5_000)
            .filter_map(|e| Some(e["session_id"].as_str()?.to_owned()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let charges = loop {
        let (_, ledger) = client.sandbox_get("/sandbox/ledger").await;
        let charges = charged(&ledger);
        if charges.len() >= payments || Instant::now() > deadline {
            break charges;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let peak = peak_rss_mib();
    assert!(
        charges.len() >= payments,
        "every 3-D Secure payment charged"
    );
    let mut sessions = charges.clone();
    sessions.sort();
    sessions.dedup();
    let mut confirm_latencies = confirmed.lock().expect("list").clone();
    confirm_latencies.sort();
    running.stop().await;
    drop_postgres_database(&name).await;
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let _ = std::fs::remove_dir_all(&dir);
    External {
        payments,
        clients,
        took,
        confirm_latencies,
        double_charges: charges.len() - sessions.len(),
        peak_rss_mib: peak,
    }
}
