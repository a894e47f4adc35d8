//! Drills: the database goes away while payments and webhooks flow, and
//! comes back. recur answers `503` meanwhile, acknowledges no webhook it
//! could not store, and recovers without a restart; nothing is lost and
//! nothing is charged twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use app::demo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::{StoreKind, TestApp, payments_of};

/// A TCP proxy in front of PostgreSQL that can cut every connection and
/// refuse new ones, as a stopped server does.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: &'static str) -> Self {
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
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
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

    fn stop(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restart(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_503_and_everything_recovers_without_a_restart() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
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
        let charged = app
            .sandbox()
            .ledger()
            .iter()
            .filter(|e| e.kind == "charge" && e.amount == amount)
            .count();
        assert_eq!(charged, 1, "{amount} charged {charged} times");
    }
    app.stop().await;
}
