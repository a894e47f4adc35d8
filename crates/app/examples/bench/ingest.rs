//! Benchmark 4, webhook ingest: signed `payment_finished` webhooks, two in
//! three of them duplicates, at 1, 8 and 32 connections, next to `pgbench`
//! single-row inserts at the same concurrency on the same server.

use std::sync::Arc;

use app::Config;
use app::demo::{self, Client};
use bank131::Signer;

use crate::measure::{Run, drop_postgres_database, load, pgbench_inserts, postgres_database};
use crate::seed;

/// What one ingest run measured.
pub struct IngestRun {
    pub connections: usize,
    pub webhooks: Run,
    /// `pgbench` single-row inserts per second at the same concurrency.
    pub pgbench: Option<f64>,
}

fn payment_finished(session: &str, payment: &str) -> Vec<u8> {
    serde_json::json!({
        "type": "payment_finished",
        "session": {
            "id": session, "status": "accepted",
            "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:01Z",
            "acquiring_payments": [{
                "id": payment, "status": "succeeded",
                "created_at": "2026-12-01T00:00:00Z", "finished_at": "2026-12-01T00:00:01Z",
                "customer": { "reference": "cust-ingest" },
                "payment_details": { "type": "card", "card": { "brand": "visa", "last4": "4242" } },
                "amount_details": { "amount": 100, "currency": "rub" }
            }]
        }
    })
    .to_string()
    .into_bytes()
}

/// `total` webhooks at each of `concurrencies`, on PostgreSQL holding `history` old payments.
pub async fn run(total: usize, concurrencies: &[usize], history: u64) -> Vec<IngestRun> {
    let tag = format!("{}_{history}", std::process::id());
    let dir = std::env::temp_dir().join(format!("recur-bench-ingest-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let name = format!("recur_bench_ingest_{tag}");
    let database = postgres_database(&name).await;
    let config = Config::ephemeral(dir.join("state"), database.clone());
    let pem = config.state_dir.join("sandbox-keys/bank_private.pem");
    let running = app::start(config).await.expect("service");
    let client = Client::of(&running);
    let signer = Signer::from_pem(&std::fs::read_to_string(pem).expect("bank key")).expect("key");
    let token = demo::saved_card_token(&client, "cust-ingest")
        .await
        .expect("token");
    let mut sessions = Vec::new();
    for _ in 0..100 {
        let body = demo::token_payment("cust-ingest", &token, "merchant", 100);
        let (status, created) = client.post("/v1/payments", &body).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().expect("id");
        let paid = client.wait_status(id, "succeeded").await.expect("paid");
        sessions.push(
            paid["bank"]["session_id"]
                .as_str()
                .expect("session")
                .to_owned(),
        );
    }
    if history > 0 {
        seed::history(&database, history).await;
    }
    let url = Arc::new(format!("http://{}/webhooks/bank131", running.api_addr));
    let http = reqwest::Client::new();
    let mut runs = Vec::new();
    for &connections in concurrencies {
        let unique = total.div_ceil(3);
        let signed: Arc<Vec<(Vec<u8>, String)>> = Arc::new(
            (0..unique)
                .map(|u| {
                    let body = payment_finished(
                        &sessions[u % sessions.len()],
                        &format!("pm_{connections}_{u}"),
                    );
                    let signature = signer.sign(&body).expect("sign");
                    (body, signature)
                })
                .collect(),
        );
        let (http, url) = (http.clone(), Arc::clone(&url));
        let webhooks = load(total, connections, move |i| {
            let (http, url, signed) = (http.clone(), Arc::clone(&url), Arc::clone(&signed));
            async move {
                let (body, signature) = &signed[i % signed.len()];
                let answer = http
                    .post(url.as_str())
                    .header("X-PARTNER-SIGN", signature)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("webhook");
                assert_eq!(answer.status(), 200);
            }
        })
        .await;
        runs.push(IngestRun {
            connections,
            webhooks,
            pgbench: pgbench_inserts(&name, u32::try_from(connections).expect("fits")),
        });
    }
    running.stop().await;
    drop_postgres_database(&name).await;
    let _ = std::fs::remove_dir_all(&dir);
    runs
}
