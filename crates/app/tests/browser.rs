//! In headless Chromium (driven over WebDriver by chromedriver): the customer
//! opens the 3-D Secure redirect of a CIT as the merchant's page would (a
//! POST form with the `params`), clicks Approve, lands on `return_url`, and
//! the payment is `succeeded`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; run with
//! `cargo test -p app --features browser-tests --test browser` (CI does).

#[path = "it/support.rs"]
#[allow(dead_code)] // shared with the end-to-end tests, which use all of it
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::demo;
use base64::Engine as _;
use serde_json::{Value, json};
use support::{StoreKind, TestApp};

struct Driver {
    process: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
    }
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is required: apt-get install chromium chromium-driver");
        let driver = Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while driver
            .call(reqwest::Method::GET, "/status", None)
            .await
            .pointer("/value/ready")
            != Some(&Value::Bool(true))
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        match request.send().await {
            Ok(r) => {
                serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        }
    }
}

async fn return_page() -> String {
    let router = axum::Router::new().route(
        "/return",
        axum::routing::get(|| async { "welcome back" }).post(|| async { "welcome back" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/return", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_approves_3ds_in_chromium_and_the_payment_succeeds() {
    let app = TestApp::start(StoreKind::Sqlite).await;
    let return_url = return_page().await;
    let token = demo::saved_card_token(&app.client, "cust-browser")
        .await
        .unwrap();
    let mut body = demo::token_payment("cust-browser", &token, "client", 4_200);
    body["return_url"] = json!(return_url);
    let (status, created) = app.client.post("/v1/payments", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let payment = app.client.wait_status(id, "requires_action").await.unwrap();
    let action = &payment["next_action"];
    assert_eq!(action["type"], "redirect");

    // The merchant's page: a form that posts the params to the redirect URL.
    let inputs: Vec<String> = action["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=hidden name='{k}' value='{}'>",
                v.as_str().unwrap()
            )
        })
        .collect();
    let inputs = inputs.concat();
    let page = format!(
        "<html><body><form id=f method='{}' action='{}'>{inputs}</form><script>document.getElementById('f').submit()</script></body></html>",
        action["method"].as_str().unwrap(),
        action["url"].as_str().unwrap()
    );
    let dir = std::env::temp_dir().join(format!("recur-chromium-{}", std::process::id()));
    let driver = Driver::start().await;
    let session = driver
        .call(
            reqwest::Method::POST,
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", dir.display())],
            } } } })),
        )
        .await;
    let sid = session
        .pointer("/value/sessionId")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no browser session: {session}"))
        .to_owned();
    let page_url = format!(
        "data:text/html;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(page.as_bytes())
    );
    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{sid}/url"),
            Some(json!({ "url": page_url })),
        )
        .await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let element = loop {
        let found = driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{sid}/element"),
                Some(json!({ "using": "css selector", "value": "#approve" })),
            )
            .await;
        if let Some(e) = found["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
        {
            break e.to_owned();
        }
        assert!(Instant::now() < deadline, "no Approve button: {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    driver
        .call(
            reqwest::Method::POST,
            &format!("/session/{sid}/element/{element}/click"),
            Some(json!({})),
        )
        .await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = driver
            .call(reqwest::Method::GET, &format!("/session/{sid}/url"), None)
            .await;
        if url["value"].as_str() == Some(return_url.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never landed on return_url: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
        .call(reqwest::Method::DELETE, &format!("/session/{sid}"), None)
        .await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);

    let done = app.client.wait_status(id, "succeeded").await.unwrap();
    assert!(done["token"]["id"].is_string(), "a new token was issued");
    app.stop().await;
}
