//! `recur demo`: every seed flow end to end against the sandbox, over real
//! HTTP, through the merchant API. Each flow checks what it sees and fails
//! loudly; the end-to-end tests run the same flows.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Config;

/// A merchant API client (and the sandbox's control API, acting as the customer).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    sandbox: String,
}

/// What the client received: the status and the JSON body.
pub type Received = (u16, Value);

impl Client {
    /// A client of the service at `base` with `key`, and of the sandbox at `sandbox`.
    pub fn new(base: String, key: String, sandbox: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
            key,
            sandbox,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Received {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = response.bytes().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            Err(e) => (
                0,
                json!({ "error": { "code": "transport", "message": e.to_string() } }),
            ),
        }
    }

    /// A client of a running service and its in-process sandbox.
    pub fn of(running: &crate::Running) -> Self {
        Self::new(
            format!("http://{}", running.api_addr),
            running.api_keys[0].clone(),
            running
                .sandbox_addr
                .map(|a| format!("http://{a}"))
                .unwrap_or_default(),
        )
    }

    /// `POST` with the API key.
    pub async fn post(&self, path: &str, body: &Value) -> Received {
        self.post_with(path, body, None).await
    }

    /// `POST` with the API key and an `Idempotency-Key`.
    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Received {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    /// `GET` with the API key.
    pub async fn get(&self, path: &str) -> Received {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.key),
        )
        .await
    }

    /// The sandbox's control API (the customer's actions).
    pub async fn sandbox(&self, path: &str, body: &Value) -> Received {
        let request = self
            .http
            .post(format!("{}{path}", self.sandbox))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        self.send(request).await
    }

    /// Reads from the sandbox's control API (a session as the bank sees it).
    pub async fn sandbox_get(&self, path: &str) -> Received {
        self.send(self.http.get(format!("{}{path}", self.sandbox)))
            .await
    }

    /// Polls a payment until `done` holds (10 s at most).
    pub async fn wait_payment(
        &self,
        id: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, payment) = self.get(&format!("/v1/payments/{id}")).await;
            if done(&payment) {
                return Ok(payment);
            }
            if Instant::now() > deadline {
                return Err(format!("payment {id} stuck at {}", payment["status"]));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls a payment until it has `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> Result<Value, String> {
        self.wait_payment(id, |p| p["status"] == status).await
    }
}

/// `recur sandbox` (run from the binary `recur`) as a process of its own in
/// `dir`: listening on `bank`, keeping its keys in `dir/keys`, sending its
/// webhooks to recur on `api`. Spawn it, then [`wait_for_sandbox`].
pub fn sandbox_command(
    recur: &std::path::Path,
    dir: &std::path::Path,
    bank: u16,
    api: u16,
) -> std::process::Command {
    let mut command = std::process::Command::new(recur);
    command
        .arg("sandbox")
        .current_dir(dir)
        .env("SANDBOX_LISTEN", format!("127.0.0.1:{bank}"))
        .env("SANDBOX_PROJECT", "shop")
        .env("SANDBOX_KEYS_DIR", dir.join("keys"))
        .env(
            "SANDBOX_WEBHOOK_URL",
            format!("http://127.0.0.1:{api}/webhooks/bank131"),
        );
    command
}

/// Waits until the sandbox at `bank_url` answers (20 s at most).
pub async fn wait_for_sandbox(bank_url: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{bank_url}/sandbox/ledger"))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err(format!("the sandbox at {bank_url} never answered"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A card payment body.
pub fn card_payment(customer: &str, number: &str, amount: i64, save_token: bool) -> Value {
    json!({
        "customer": { "reference": customer },
        "amount": { "value": amount, "currency": "RUB" },
        "method": { "type": "card", "card": { "number": number, "expiry_month": "12", "expiry_year": "30", "security_code": "123", "holder_name": "IVAN IVANOV" } },
        "save_token": save_token,
        "return_url": "https://shop.example/return",
        "metadata": { "order": "A-1" },
    })
}

/// A token payment body.
pub fn token_payment(customer: &str, token: &str, initiator: &str, amount: i64) -> Value {
    json!({
        "customer": { "reference": customer },
        "amount": { "value": amount, "currency": "RUB" },
        "method": { "type": "token", "token_id": token, "initiator": initiator },
        "return_url": "https://shop.example/return",
    })
}

fn expect(answer: &Received, status: u16, what: &str) -> Result<Value, String> {
    if answer.0 == status {
        Ok(answer.1.clone())
    } else {
        Err(format!(
            "{what}: expected HTTP {status}, got {} {}",
            answer.0, answer.1
        ))
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// A first card payment that saves a token; returns the token id.
pub async fn saved_card_token(c: &Client, customer: &str) -> Result<String, String> {
    let created = expect(
        &c.post(
            "/v1/payments",
            &card_payment(customer, "4242424242424242", 10_000, true),
        )
        .await,
        201,
        "card payment",
    )?;
    let paid = c
        .wait_payment(&text(&created["id"]), |p| p["token"]["id"].is_string())
        .await?;
    Ok(text(&paid["token"]["id"]))
}

/// Seed 000: a CIT with a saved token passes 3-D Secure and issues a new token.
pub async fn cit_with_3ds(c: &Client) -> Result<String, String> {
    let token = saved_card_token(c, "cust-cit").await?;
    let created = expect(
        &c.post(
            "/v1/payments",
            &token_payment("cust-cit", &token, "client", 5_000),
        )
        .await,
        201,
        "CIT",
    )?;
    let id = text(&created["id"]);
    let waiting = c.wait_status(&id, "requires_action").await?;
    if waiting["next_action"]["type"] != "redirect" {
        return Err(format!(
            "expected a redirect, got {}",
            waiting["next_action"]
        ));
    }
    let session = text(&waiting["bank"]["session_id"]);
    expect(
        &c.sandbox(
            &format!("/sandbox/sessions/{session}/3ds"),
            &json!({ "approve": true }),
        )
        .await,
        200,
        "3-DS approve",
    )?;
    let done = c
        .wait_payment(&id, |p| {
            p["status"] == "succeeded" && p["token"]["id"].is_string()
        })
        .await?;
    if done["token"]["id"] == token {
        return Err("the CIT must issue a new token".into());
    }
    Ok(text(&done["status"]))
}

/// Seed 001: a MIT with a saved token, without the customer.
pub async fn mit_with_token(c: &Client) -> Result<String, String> {
    let token = saved_card_token(c, "cust-mit").await?;
    let created = expect(
        &c.post(
            "/v1/payments",
            &token_payment("cust-mit", &token, "merchant", 99_000),
        )
        .await,
        201,
        "MIT",
    )?;
    Ok(text(
        &c.wait_status(&text(&created["id"]), "succeeded").await?["status"],
    ))
}

/// Seed 001: the widget path issues a public token; the customer pays in the widget.
pub async fn widget(c: &Client) -> Result<String, String> {
    let body = json!({ "customer": { "reference": "cust-widget" }, "amount": { "value": 10_000, "currency": "RUB" }, "method": { "type": "widget" }, "save_token": true });
    let created = expect(&c.post("/v1/payments", &body).await, 201, "widget payment")?;
    if created["next_action"]["type"] != "widget" {
        return Err(format!(
            "expected a widget next_action, got {}",
            created["next_action"]
        ));
    }
    let public = text(&created["next_action"]["public_token"]);
    expect(
        &c.sandbox(
            &format!("/sandbox/widget/{public}/pay"),
            &json!({ "number": "4242424242424242", "save": true }),
        )
        .await,
        200,
        "widget pay",
    )?;
    let done = c
        .wait_payment(&text(&created["id"]), |p| {
            p["status"] == "succeeded" && p["token"]["id"].is_string()
        })
        .await?;
    Ok(text(&done["status"]))
}

/// Seed 001: token refresh, disable, and the next charge refused without a bank call.
pub async fn token_lifecycle(c: &Client) -> Result<String, String> {
    let token = saved_card_token(c, "cust-life").await?;
    let fresh = expect(
        &c.get(&format!("/v1/tokens/{token}?refresh=true")).await,
        200,
        "refresh",
    )?;
    if fresh["status"] != "active" || fresh["last_checked_at"].is_null() {
        return Err(format!("refresh: {fresh}"));
    }
    expect(
        &c.post(&format!("/v1/tokens/{token}/disable"), &json!({}))
            .await,
        202,
        "disable",
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.get(&format!("/v1/tokens/{token}")).await.1["status"] != "disabled" {
        if Instant::now() > deadline {
            return Err("the token never became disabled".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = c
        .post(
            "/v1/payments",
            &token_payment("cust-life", &token, "merchant", 100),
        )
        .await;
    if refused.0 != 422 || refused.1["error"]["code"] != "token_inactive" {
        return Err(format!(
            "a charge on a disabled token must be 422 token_inactive, got {} {}",
            refused.0, refused.1
        ));
    }
    Ok("disabled".into())
}

/// Seed 002: manual confirmation, then confirm.
pub async fn manual_confirm(c: &Client) -> Result<String, String> {
    let token = saved_card_token(c, "cust-manual").await?;
    let mut body = token_payment("cust-manual", &token, "merchant", 10_000);
    body["confirmation"] = json!("manual");
    let created = expect(&c.post("/v1/payments", &body).await, 201, "manual payment")?;
    let id = text(&created["id"]);
    c.wait_status(&id, "requires_confirmation").await?;
    expect(
        &c.post(&format!("/v1/payments/{id}/confirm"), &json!({}))
            .await,
        200,
        "confirm",
    )?;
    Ok(text(&c.wait_status(&id, "succeeded").await?["status"]))
}

/// Seed 002: manual confirmation, then cancel.
pub async fn manual_cancel(c: &Client) -> Result<String, String> {
    let mut body = card_payment("cust-cancel", "4242424242424242", 10_000, false);
    body["confirmation"] = json!("manual");
    let created = expect(&c.post("/v1/payments", &body).await, 201, "manual payment")?;
    let id = text(&created["id"]);
    c.wait_status(&id, "requires_confirmation").await?;
    expect(
        &c.post(&format!("/v1/payments/{id}/cancel"), &json!({}))
            .await,
        200,
        "cancel",
    )?;
    Ok(text(&c.wait_status(&id, "cancelled").await?["status"]))
}

async fn fps(
    c: &Client,
    method: &str,
    customer: &str,
    service: Option<(&str, &str)>,
    pay: bool,
) -> Result<Value, String> {
    let mut body = json!({ "customer": { "reference": customer }, "amount": { "value": 100, "currency": "RUB" }, "method": { "type": method }, "save_token": true });
    if let Some((id, name)) = service {
        body["subscription_service"] = json!({ "id": id, "name": name });
    }
    let created = expect(&c.post("/v1/payments", &body).await, 201, method)?;
    let id = text(&created["id"]);
    let waiting = c.wait_status(&id, "requires_action").await?;
    if waiting["next_action"]["type"] != "qr" {
        return Err(format!(
            "expected a QR code, got {}",
            waiting["next_action"]
        ));
    }
    let session = text(&waiting["bank"]["session_id"]);
    expect(
        &c.sandbox(
            &format!("/sandbox/sessions/{session}/qr"),
            &json!({ "pay": pay }),
        )
        .await,
        200,
        "QR",
    )?;
    c.wait_payment(&id, |p| {
        p["status"] == "succeeded" || p["status"] == "failed"
    })
    .await
}

/// Seed 003: an SBP QR payment that saves a token.
pub async fn fps_paid(c: &Client) -> Result<String, String> {
    let done = fps(c, "fps", "cust-fps", None, true).await?;
    if done["token"]["id"].is_null() {
        return Err("a paid SBP payment with save_token must issue a token".into());
    }
    Ok(text(&done["status"]))
}

/// Seed 003: an SBP QR code that expires.
pub async fn fps_expired(c: &Client) -> Result<String, String> {
    let done = fps(c, "fps", "cust-fps", None, false).await?;
    if done["error"]["code"] != "qr_expired" {
        return Err(format!("expected qr_expired, got {}", done["error"]));
    }
    Ok(format!(
        "{} ({})",
        text(&done["status"]),
        text(&done["error"]["code"])
    ))
}

/// Seed 003: two SBP bindings of one customer for two subscription services are two tokens.
pub async fn fps_bindings(c: &Client) -> Result<String, String> {
    let a = fps(
        c,
        "fps_binding",
        "cust-bind",
        Some(("svc-gym", "Gym")),
        true,
    )
    .await?;
    let b = fps(
        c,
        "fps_binding",
        "cust-bind",
        Some(("svc-pool", "Pool")),
        true,
    )
    .await?;
    if a["token"]["id"].is_null() || a["token"]["id"] == b["token"]["id"] {
        return Err("two bindings must give two tokens".into());
    }
    Ok("2 tokens".into())
}

/// Every declining test card fails with its bank code verbatim.
pub async fn declines(c: &Client) -> Result<String, String> {
    for (card, code) in [
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000002", "declined_by_issuer_bank"),
        ("4000000000000069", "bank_card_expired"),
        ("4000000000000101", "card_number_does_not_exist"),
    ] {
        let created = expect(
            &c.post(
                "/v1/payments",
                &card_payment("cust-decline", card, 1_000, true),
            )
            .await,
            201,
            card,
        )?;
        let done = c.wait_status(&text(&created["id"]), "failed").await?;
        if done["error"]["code"] != code {
            return Err(format!("{card}: expected {code}, got {}", done["error"]));
        }
    }
    Ok("4 failed, codes verbatim".into())
}

/// A monthly subscription charged through the test clock.
pub async fn subscription(c: &Client) -> Result<String, String> {
    let token = saved_card_token(c, "cust-sub").await?;
    let body = json!({ "customer": { "reference": "cust-sub" }, "token_id": token, "amount": { "value": 99_000, "currency": "RUB" }, "interval": { "unit": "month", "count": 1 } });
    let sub = expect(
        &c.post("/v1/subscriptions", &body).await,
        201,
        "subscription",
    )?;
    let id = text(&sub["id"]);
    expect(
        &c.post("/v1/test/clock/advance", &json!({ "seconds": 1 }))
            .await,
        200,
        "advance",
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let charges = c.get(&format!("/v1/subscriptions/{id}/charges")).await.1;
        if charges["data"][0]["status"] == "succeeded" {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the first period was not charged: {charges}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    expect(
        &c.post("/v1/test/clock/advance", &json!({ "seconds": 32 * 86_400 }))
            .await,
        200,
        "advance a month",
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let charges = c.get(&format!("/v1/subscriptions/{id}/charges")).await.1;
        let paid = charges["data"].as_array().map_or(0, |d| {
            d.iter().filter(|c| c["status"] == "succeeded").count()
        });
        if paid == 2 {
            return Ok("2 periods paid".into());
        }
        if Instant::now() > deadline {
            return Err(format!("the second period was not charged: {charges}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A flow's name and function.
pub type Flow = (
    &'static str,
    fn(&Client) -> crate::BoxFuture<Result<String, String>>,
);

macro_rules! flow {
    ($name:literal, $f:ident) => {
        ($name, |c: &Client| {
            let c = c.clone();
            Box::pin(async move { $f(&c).await }) as crate::BoxFuture<Result<String, String>>
        })
    };
}

/// Every demo flow.
pub fn flows() -> Vec<Flow> {
    vec![
        flow!("000 card CIT with 3-D Secure", cit_with_3ds),
        flow!("001 MIT with a saved token", mit_with_token),
        flow!("001 widget saves a token", widget),
        flow!("001 token refresh and disable", token_lifecycle),
        flow!("002 manual confirmation", manual_confirm),
        flow!("002 manual cancel", manual_cancel),
        flow!("003 SBP QR paid", fps_paid),
        flow!("003 SBP QR expired", fps_expired),
        flow!("003 SBP bindings for two services", fps_bindings),
        flow!("declining test cards", declines),
        flow!("monthly subscription", subscription),
    ]
}

/// One flow's outcome.
#[derive(Debug, Clone)]
pub struct FlowResult {
    /// The flow.
    pub name: &'static str,
    /// Its final status, or why it failed.
    pub outcome: Result<String, String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Runs every flow against a running service.
pub async fn run_flows(client: &Client) -> Vec<FlowResult> {
    let mut results = Vec::new();
    for (name, flow) in flows() {
        let started = Instant::now();
        let outcome = flow(client).await;
        results.push(FlowResult {
            name,
            outcome,
            elapsed: started.elapsed(),
        });
    }
    results
}

/// `recur demo`: starts the service on a temporary SQLite file with the
/// sandbox in-process, runs every flow and prints a table.
pub async fn run() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("recur-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = Config::ephemeral(
        dir.join("state"),
        format!("sqlite://{}", dir.join("demo.db").display()),
    );
    let running = crate::start(config).await.map_err(|e| e.to_string())?;
    let client = Client::of(&running);
    let results = run_flows(&client).await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{:<36} {:<8} {:<40} {:>8}",
        "flow", "result", "final status", "time"
    );
    for r in &results {
        let (mark, detail) = match &r.outcome {
            Ok(status) => ("passed", status.clone()),
            Err(why) => ("FAILED", why.clone()),
        };
        println!(
            "{:<36} {:<8} {:<40} {:>6}ms",
            r.name,
            mark,
            detail,
            r.elapsed.as_millis()
        );
    }
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} flow(s) failed"))
    }
}
