//! Drills: the database goes away while payments and webhooks flow, and
//! comes back. recur answers `503` meanwhile, acknowledges no webhook it
//! could not store, and recovers without a restart; nothing is lost and
//! nothing is charged twice.

use std::time::{Duration, Instant};

use app::demo;
use serde_json::{Value, json};

use crate::support::{Proxy, StoreKind, TestApp, payments_of};

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_503_and_everything_recovers_without_a_restart() {
    let proxy = Proxy::start("127.0.0.1:5432".into()).await;
    let port = proxy.port;
    let app = TestApp::start_with(StoreKind::Postgres, move |config| {
        config.database_url = config
            .database_url
            .replace("127.0.0.1:5432", &format!("127.0.0.1:{port}"));
    })
    .await;
    let c = &app.client;
    let token = demo::saved_card_token(c, "cust-outage").await.unwrap();
    let charge = |amount: i64| {
        json!({ "customer": { "reference": "cust-outage" }, "amount": { "value": amount, "currency": "RUB" },
            "method": { "type": "token", "token_id": token } })
    };
    let (status, before) = c.post("/v1/payments", &charge(30_001)).await;
    assert_eq!(status, 201, "{before}");

    proxy.stop();
    let started = Instant::now();
    let key = Some("outage-1");
    let (status, refused) = c.post_with("/v1/payments", &charge(30_002), key).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{refused}"
    );
    assert_eq!(status_of(&format!("{}/readyz", app.base())).await, 503);
    // A signed webhook the store cannot keep is not acknowledged: the bank
    // sends it again later.
    let body = br#"{"type":"payment_finished","session":{"id":"ps_outage","status":"accepted"}}"#;
    let webhook = reqwest::Client::new()
        .post(format!("{}/webhooks/bank131", app.base()))
        .header("X-PARTNER-SIGN", app.bank_signer().sign(body).unwrap())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(webhook.status().is_server_error(), "{}", webhook.status());
    // The rest of the outage: 30 s in all.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(started.elapsed())).await;
    proxy.restart();

    // The same request again: it creates its payment now, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        let (status, answer) = c.post_with("/v1/payments", &charge(30_002), key).await;
        if status == 201 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(created["id"].is_string(), "{created}");
    assert_eq!(status_of(&format!("{}/readyz", app.base())).await, 200);
    // Everything settles: both charges succeeded, each charged once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let payments: Vec<Value> = payments_of(c, "cust-outage").await;
        let settled = payments.len() == 3 && payments.iter().all(|p| p["status"] == "succeeded");
        if settled {
            break;
        }
        assert!(Instant::now() < deadline, "not settled: {payments:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for amount in [30_001, 30_002] {
        let charged = app.charges_of_amount(amount);
        assert_eq!(charged, 1, "{amount} charged {charged} times");
    }
    app.stop().await;
}

/// The bank unreachable for a minute: `recur serve` (live mode) reaches
/// `recur sandbox` through a proxy that refuses every connection meanwhile.
/// A payment made then is pending (its outcome unknown, never failed), and
/// once the bank is back reconciliation resumes it: paid, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_unreachable_for_a_minute_leaves_payments_pending_then_reconciled() {
    use crate::support::{Process, free_port, json_of, live_serve, standalone_sandbox};

    let dir = std::env::temp_dir().join(format!("recur-bank-down-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (bank, api) = (free_port(), free_port());
    let _bank = standalone_sandbox(&dir, bank, api).await;
    let ledger_url = format!("http://127.0.0.1:{bank}/sandbox/ledger");
    let deadline = Instant::now() + Duration::from_secs(20);
    let proxy = Proxy::start(format!("127.0.0.1:{bank}")).await;
    let serve = live_serve(
        &dir,
        api,
        &format!("http://127.0.0.1:{}", proxy.port),
        &format!("sqlite://{}", dir.join("recur.db").display()),
        "sk_test_bank_down",
    );
    let _recur = Process::spawn(serve);
    let c = demo::Client::new(
        format!("http://127.0.0.1:{api}"),
        "sk_test_bank_down".into(),
        format!("http://127.0.0.1:{bank}"),
    );
    while c.get("/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "recur never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = demo::saved_card_token(&c, "cust-bank-down").await.unwrap();

    proxy.stop();
    let started = Instant::now();
    let (status, during) = c
        .post(
            "/v1/payments",
            &json!({ "customer": { "reference": "cust-bank-down" }, "amount": { "value": 40_001, "currency": "RUB" },
                "method": { "type": "token", "token_id": token } }),
        )
        .await;
    assert_eq!(status, 201, "{during}");
    assert_eq!(
        during["status"], "pending",
        "never failed for the bank's outage: {during}"
    );
    let id = during["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(started.elapsed())).await;
    let (_, still) = c.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(still["status"], "pending", "{still}");
    proxy.restart();

    // Reconciliation resumes it (its next check comes at most a minute later).
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let (_, now) = c.get(&format!("/v1/payments/{id}")).await;
        if now["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "never reconciled: {now}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ledger = json_of(reqwest::Client::new().get(&ledger_url)).await;
    let charged = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "charge" && e["amount"] == 40_001)
        .count();
    assert_eq!(charged, 1, "charged {charged} times");
    let _ = std::fs::remove_dir_all(dir);
}

/// The disk full under SQLite: `recur serve` runs with a 512 KiB file-size
/// limit (`ulimit -f` counts 512-byte blocks in sh; `SIGXFSZ` ignored, so a
/// write past it fails as on a full disk) and payments with large metadata
/// fill the database until one is refused: a clear `503` in the envelope;
/// every payment answered `201` is still there, while recur runs and after,
/// and the file passes SQLite's integrity check. (Before the fix, a failed
/// commit left SQLite's one connection in a transaction that never
/// committed, and every later "commit" was lost with it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_sqlite_is_a_clear_error_and_loses_no_payment() {
    use sqlx::{Connection, Row};

    use crate::support::{Process, free_port, live_serve, standalone_sandbox};

    let dir = std::env::temp_dir().join(format!("recur-disk-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (bank, api) = (free_port(), free_port());
    let _bank = standalone_sandbox(&dir, bank, api).await;
    let database = format!("sqlite://{}", dir.join("recur.db").display());
    let serve = live_serve(
        &dir,
        api,
        &format!("http://127.0.0.1:{bank}"),
        &database,
        "sk_test_disk_full",
    );
    let mut limited = std::process::Command::new("sh");
    limited
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 1024; exec \"$0\" serve",
            env!("CARGO_BIN_EXE_recur"),
        ])
        .current_dir(&dir);
    for (name, value) in serve.get_envs() {
        if let Some(value) = value {
            limited.env(name, value);
        }
    }
    let recur = Process::spawn(limited);
    let c = demo::Client::new(
        format!("http://127.0.0.1:{api}"),
        "sk_test_disk_full".into(),
        format!("http://127.0.0.1:{bank}"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get("/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "recur never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A saved card (which may already meet the full disk), then payments
    // of about 25 KiB each until one is refused.
    let card = demo::card_payment("cust-disk", "4242424242424242", 10_000, true);
    let (status, first) = c.post("/v1/payments", &card).await;
    let mut acknowledged = Vec::new();
    let mut refused = None;
    if status == 201 {
        acknowledged.push(first["id"].as_str().unwrap().to_owned());
        let metadata: serde_json::Map<String, Value> = (0..50)
            .map(|i| (format!("k{i}"), json!("x".repeat(500))))
            .collect();
        for amount in 100..400 {
            let mut body = demo::card_payment("cust-disk", "4242424242424242", amount, false);
            body["metadata"] = Value::Object(metadata.clone());
            let (status, answer) = c.post("/v1/payments", &body).await;
            if status != 201 {
                refused = Some((status, answer));
                break;
            }
            acknowledged.push(answer["id"].as_str().unwrap().to_owned());
        }
    } else {
        refused = Some((status, first));
    }
    let (status, answer) = refused.expect("the file-size limit never bit");
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]["code"]
            .as_str()
            .is_some_and(|code| code.starts_with("store_")),
        "{answer}"
    );
    for id in &acknowledged {
        let (status, _) = c.get(&format!("/v1/payments/{id}")).await;
        assert_eq!(status, 200, "{id} was answered 201 and is gone");
    }
    drop(recur);
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&database).await.unwrap();
    let check: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(check, "ok");
    for id in &acknowledged {
        let stored = sqlx::query("SELECT id FROM payments WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut db)
            .await
            .unwrap();
        assert!(stored.is_some(), "{id} was answered 201 but is not stored");
    }
    let _ = std::fs::remove_dir_all(dir);
}
