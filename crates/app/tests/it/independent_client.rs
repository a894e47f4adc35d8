//! `recur sandbox` driven as any Bank 131 client would drive the bank: JSON
//! written by hand in the bank's documented shapes (the seeds' and the
//! official SDK's models), requests signed and webhooks verified with the
//! `openssl` command line. Nothing here goes through recur's own protocol
//! crate, so the sandbox cannot pass by agreeing with recur's assumptions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success() || args[0] == "dgst",
        "openssl {args:?}: {out:?}"
    );
    out
}

/// `X-PARTNER-SIGN` of `body`: RSA-SHA256 by `openssl dgst -sign`, base64.
fn openssl_sign(dir: &Path, key: &Path, body: &[u8]) -> String {
    let (data, sig) = (dir.join("body.json"), dir.join("body.sig"));
    std::fs::write(&data, body).unwrap();
    let out = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        key.to_str().unwrap(),
        "-out",
        sig.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let b64 = openssl(&["base64", "-A", "-in", sig.to_str().unwrap()]);
    String::from_utf8(b64.stdout).unwrap().trim().to_owned()
}

/// Whether `signature` (base64) verifies over `body` with `public` by `openssl dgst -verify`.
fn openssl_verifies(dir: &Path, public: &Path, body: &[u8], signature: &str) -> bool {
    let (data, b64, sig) = (
        dir.join("hook.json"),
        dir.join("hook.b64"),
        dir.join("hook.sig"),
    );
    std::fs::write(&data, body).unwrap();
    std::fs::write(&b64, signature).unwrap();
    openssl(&[
        "base64",
        "-d",
        "-A",
        "-in",
        b64.to_str().unwrap(),
        "-out",
        sig.to_str().unwrap(),
    ]);
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        public.to_str().unwrap(),
        "-signature",
        sig.to_str().unwrap(),
        data.to_str().unwrap(),
    ])
    .status
    .success()
}

async fn receive(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let signature = headers
        .get("x-partner-sign")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received.lock().unwrap().push((signature, body.to_vec()));
    "ok"
}

struct Bank {
    dir: PathBuf,
    url: String,
    partner_key: PathBuf,
    http: reqwest::Client,
}

impl Bank {
    async fn call(&self, path: &str, body: &Value) -> Value {
        let body = body.to_string();
        let signature = openssl_sign(&self.dir, &self.partner_key, body.as_bytes());
        let text = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .header("X-PARTNER-PROJECT", "shop")
            .header("X-PARTNER-SIGN", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}"))
    }
}

fn card(number: &str) -> Value {
    json!({ "type": "card", "card": { "type": "bank_card", "bank_card": {
        "number": number, "expiration_month": "12", "expiration_year": "30",
        "security_code": "123", "cardholder_name": "IVAN IVANOV" } } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_serves_a_client_that_signs_and_verifies_with_openssl() {
    let dir = std::env::temp_dir().join(format!("recur-openssl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks_addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recur"))
        .arg("sandbox")
        .current_dir(&dir)
        .env("SANDBOX_LISTEN", format!("127.0.0.1:{port}"))
        .env("SANDBOX_PROJECT", "shop")
        .env("SANDBOX_KEYS_DIR", dir.join("keys"))
        .env("SANDBOX_WEBHOOK_URL", format!("http://{hooks_addr}/hooks"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bank = Bank {
        url: format!("http://127.0.0.1:{port}"),
        partner_key: dir.join("keys/partner_private.pem"),
        dir: dir.clone(),
        http: reqwest::Client::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while bank
        .http
        .get(format!("{}/", bank.url))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the sandbox never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An unknown path answers the bank's error envelope, not an empty body.
    let unknown = bank.call("/api/v9/nothing", &json!({})).await;
    assert_eq!(unknown["status"], "error", "{unknown}");

    // Seed 001: a one-step card payment that saves a token (v1).
    let paid = bank
        .call(
            "/api/v1/session/init/payment",
            &json!({
                "payment_details": card("4242424242424242"),
                "amount_details": { "amount": 10000, "currency": "rub" },
                "customer": { "reference": "lucky" },
                "payment_options": { "recurrent": true, "return_url": "https://shop.example" },
                "metadata": { "order": "A-1" },
            }),
        )
        .await;
    assert_eq!(paid["status"], "ok", "{paid}");
    let payment = &paid["session"]["acquiring_payments"][0];
    assert_eq!(payment["status"], "succeeded", "{paid}");
    assert!(
        payment["amounts"].is_object() && payment["refunds"].is_array(),
        "{payment}"
    );
    let token = payment["recurrent"]["token"].as_str().unwrap().to_owned();
    let paid_session = paid["session"]["id"].as_str().unwrap().to_owned();

    // The SDK's default v2 paths: create, start (two-step), confirm.
    let created = bank
        .call(
            "/api/v2/session/create",
            &json!({ "amount_details": { "amount": 5000, "currency": "RUB" },
                     "customer": { "reference": "lucky" } }),
        )
        .await;
    let session = created["session"]["id"].as_str().unwrap().to_owned();
    let started = bank
        .call(
            "/api/v2/session/start/payment",
            &json!({
                "session_id": session,
                "payment_details": { "type": "recurrent", "recurrent": { "token": token } },
                "amount_details": { "amount": 5000, "currency": "RUB" },
                "customer": { "reference": "lucky" },
            }),
        )
        .await;
    assert_eq!(started["status"], "ok", "{started}");
    assert!(
        started["session"]["payment_list"].is_array(),
        "v2 names them payment_list: {started}"
    );
    assert!(started["session"].get("acquiring_payments").is_none());
    let confirmed = bank
        .call("/api/v2/session/confirm", &json!({ "session_id": session }))
        .await;
    assert_eq!(confirmed["session"]["status"], "accepted", "{confirmed}");

    // Token questions in both documented shapes.
    let status = bank
        .call(
            "/api/v1/recurrent/status",
            &json!({ "recurrent": { "token": token } }),
        )
        .await;
    assert_eq!(status["recurrent"]["is_active"], true, "{status}");
    let by_token = bank
        .call(
            "/api/v1/token/info",
            &json!({ "type": "recurrent_token", "recurrent_token": { "token": token } }),
        )
        .await;
    assert_eq!(by_token["info"]["last4"], "4242", "{by_token}");
    let by_card = bank
        .call(
            "/api/v1/token/info",
            &json!({ "type": "card", "card": card("5555555555554444")["card"] }),
        )
        .await;
    assert_eq!(
        (
            by_card["info"]["brand"].as_str(),
            by_card["info"]["last4"].as_str()
        ),
        (Some("mastercard"), Some("4444")),
        "{by_card}"
    );

    // A partial refund, as the SDK's refund model reads it.
    let refunded = bank
        .call(
            "/api/v1/session/refund",
            &json!({ "session_id": paid_session, "amount_details": { "amount": 4000, "currency": "rub" } }),
        )
        .await;
    let refund = &refunded["session"]["acquiring_payments"][0]["refunds"][0];
    assert_eq!(refund["status"], "accepted", "{refunded}");
    assert!(
        refund["created_at"].is_string() && refund["id"].is_string(),
        "{refund}"
    );

    // Every webhook verifies with openssl against the bank's printed key.
    let public = dir.join("keys/bank_public.pem");
    let deadline = Instant::now() + Duration::from_secs(10);
    let kinds = loop {
        let hooks = received.lock().unwrap().clone();
        let kinds: Vec<String> = hooks
            .iter()
            .map(|(_, body)| {
                serde_json::from_slice::<Value>(body).unwrap()["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        if ["payment_finished", "ready_to_confirm", "payment_refunded"]
            .iter()
            .all(|k| kinds.iter().any(|got| got == k))
        {
            for (signature, body) in &hooks {
                assert!(
                    openssl_verifies(&dir, &public, body, signature),
                    "a webhook that openssl does not verify: {}",
                    String::from_utf8_lossy(body)
                );
            }
            break kinds;
        }
        assert!(Instant::now() < deadline, "webhooks so far: {kinds:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!kinds.is_empty());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
