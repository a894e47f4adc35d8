//! Two `recur serve` processes on one Postgres database against one bank
//! (`recur sandbox`, a third process): they share the work through the
//! stores' claims and leases, and every due period is charged exactly once.

use std::time::{Duration, Instant};

use app::demo::{self, Client};
use serde_json::json;

use crate::support::{Process, admin, free_port, json_of, live_serve, standalone_sandbox};

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_charge_every_due_period_exactly_once() {
    let dir = std::env::temp_dir().join(format!("recur-two-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("recur_two_{}", std::process::id());
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    admin(&format!("CREATE DATABASE {name}")).await;
    let database = store_postgres::with_database(&store_postgres::test_server_url(), &name);
    let (bank, api) = (free_port(), [free_port(), free_port()]);
    let _bank = standalone_sandbox(&dir, bank, api[0]).await;
    let bank_url = format!("http://127.0.0.1:{bank}");
    wait_until("the sandbox answers", async || {
        reqwest::get(format!("{bank_url}/sandbox/ledger"))
            .await
            .is_ok()
    })
    .await;

    let token_key = store_sql::crypto::TokenKeys::generate_base64();
    let instances: Vec<Process> = api
        .iter()
        .map(|port| {
            let mut serve = live_serve(&dir, *port, &bank_url, &database, "sk_test_two");
            // One token key for both: they read each other's tokens.
            serve
                .env("RECUR_TOKEN_KEY", &token_key)
                .env("RECUR_LOG_FORMAT", "json");
            Process::spawn(serve)
        })
        .collect();
    let clients: Vec<Client> = api
        .iter()
        .map(|port| {
            Client::new(
                format!("http://127.0.0.1:{port}"),
                "sk_test_two".into(),
                bank_url.clone(),
            )
        })
        .collect();
    for c in &clients {
        wait_until("recur answers", async || c.get("/healthz").await.0 == 200).await;
    }

    // A saved card, then subscriptions due at once, created on both.
    let token = demo::saved_card_token(&clients[0], "cust-two")
        .await
        .unwrap();
    let mut subscriptions = Vec::new();
    for i in 0..60_i64 {
        let body = json!({ "customer": { "reference": "cust-two" }, "token_id": token,
            "amount": { "value": 20_000 + i, "currency": "RUB" }, "interval": { "unit": "month", "count": 1 } });
        let (status, sub) = clients[usize::try_from(i % 2).unwrap()]
            .post("/v1/subscriptions", &body)
            .await;
        assert_eq!(status, 201, "{sub}");
        subscriptions.push(sub["id"].as_str().unwrap().to_owned());
    }
    for (i, id) in subscriptions.iter().enumerate() {
        wait_until("every first period paid", async || {
            let (_, charges) = clients[i % 2]
                .get(&format!("/v1/subscriptions/{id}/charges"))
                .await;
            charges["data"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["status"] == "succeeded"))
        })
        .await;
    }

    // Exactly once: one charge attempt and one charge at the bank per subscription.
    let ledger = json_of(reqwest::Client::new().get(format!("{bank_url}/sandbox/ledger"))).await;
    for (i, id) in subscriptions.iter().enumerate() {
        let amount = 20_000 + i64::try_from(i).unwrap();
        let charged = ledger["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "charge" && e["amount"] == amount)
            .count();
        assert_eq!(charged, 1, "{id} (amount {amount}) charged {charged} times");
        let (_, charges) = clients[0]
            .get(&format!("/v1/subscriptions/{id}/charges"))
            .await;
        assert_eq!(charges["data"].as_array().unwrap().len(), 1, "{charges}");
    }
    // Both instances did some of the work.
    let started: Vec<usize> = instances
        .iter()
        .map(|p| p.lines_with("charge started"))
        .collect();
    assert!(
        started.iter().all(|n| *n > 0),
        "charges started per instance: {started:?}"
    );
    assert_eq!(started.iter().sum::<usize>(), subscriptions.len());
    drop(instances);
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    let _ = std::fs::remove_dir_all(dir);
}
