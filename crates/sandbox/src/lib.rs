//! # sandbox
//!
//! A stateful emulator of the Bank 131 acquiring API, so that recur (or any
//! Bank 131 client, such as the bank's official SDK) can run offline:
//!
//! - `POST /api/v1/<method>` for every method recur uses; `X-PARTNER-PROJECT`
//!   and `X-PARTNER-SIGN` are checked (bad or missing → `authentication_error`,
//!   nothing done) and `X-PARTNER-IDEMPOTENCY-KEY` is honoured;
//! - signed webhooks to the partner, retried with growing intervals until 200;
//! - the customer's pages: `/3ds/{session}`, `/qr/{session}`, `/widget/{token}`;
//! - test cards ([`cards::TEST_CARDS`]) and injectable faults ([`bank::Faults`]);
//! - a control API under `/sandbox/` to act as the customer, disable tokens,
//!   inject faults and read the ledger of what was charged.
#![deny(missing_docs)]

pub mod bank;
pub mod cards;
mod pages;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response as HttpResponse};
use axum::routing::{get, post};
use bank131::dto::{
    PaymentDetails, PaymentRequest, RecurrentRequest, RefundRequest, Response, SessionIdRequest,
    TokenInfoRequest, WidgetTokenRequest,
};
use bank131::{IDEMPOTENCY_HEADER, PROJECT_HEADER, SIGN_HEADER, Signer, Verifier, methods};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::bank::{Bank, Faults, Outcome, Refusal};
use crate::cards::Behavior;
pub use crate::webhooks::DeliveryStats;

/// How the sandbox is set up.
#[derive(Debug)]
pub struct SandboxConfig {
    /// The accepted `X-PARTNER-PROJECT`.
    pub project: String,
    /// The partner's public key(s).
    pub partner_keys: Verifier,
    /// The sandbox bank's own key, for signing webhooks.
    pub bank_signer: Arc<Signer>,
    /// Where webhooks go (`http://` only).
    pub webhook_url: String,
    /// Where the bank's state is kept across restarts (`None`: memory only).
    pub state_file: Option<PathBuf>,
}

/// A running sandbox bank: cheap to clone, shared state.
#[derive(Clone, Debug)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    bank: Mutex<Bank>,
    faults: Arc<Mutex<Faults>>,
    webhooks: webhooks::WebhookSender,
    /// The state changed since it was last written.
    dirty: AtomicBool,
}

/// How often a changed state is written to the state file.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Why the sandbox could not start.
#[derive(Debug)]
pub struct SandboxError(pub String);

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SandboxError {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sandbox {
    /// Starts the sandbox (and its webhook sender; needs a Tokio runtime),
    /// loading the state file if there is one.
    pub fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let bank = match &config.state_file {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| SandboxError(format!("cannot read {}: {e}", path.display())))?;
                serde_json::from_str(&text).map_err(|e| {
                    SandboxError(format!("{} is not a sandbox state: {e}", path.display()))
                })?
            }
            _ => Bank::default(),
        };
        let faults = Arc::new(Mutex::new(Faults::default()));
        let webhooks = webhooks::WebhookSender::start(
            config.webhook_url.clone(),
            config.bank_signer.clone(),
            faults.clone(),
        );
        let sandbox = Self {
            inner: Arc::new(Inner {
                config,
                bank: Mutex::new(bank),
                faults,
                webhooks,
                dirty: AtomicBool::new(false),
            }),
        };
        if sandbox.inner.config.state_file.is_some() {
            // Writes are batched: a busy sandbox saves at most every SAVE_EVERY,
            // instead of re-serializing its whole state on every call.
            let weak = Arc::downgrade(&sandbox.inner);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SAVE_EVERY).await;
                    let Some(inner) = weak.upgrade() else { return };
                    Sandbox { inner }.flush();
                }
            });
        }
        Ok(sandbox)
    }

    /// Writes the state file now if anything changed (the owner calls this
    /// before stopping; otherwise changes are written every 200 ms).
    pub fn flush(&self) {
        let Some(path) = &self.inner.config.state_file else {
            return;
        };
        if !self.inner.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let bytes = serde_json::to_vec(&*lock(&self.inner.bank)).unwrap_or_default();
        if let Err(e) = write_private(path, &bytes) {
            self.inner.dirty.store(true, Ordering::Release);
            warn!(path = %path.display(), error = %e, "cannot save the sandbox state");
        }
    }

    /// The HTTP routes: the bank API, the customer pages and the control API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/{*method}", post(api))
            .route("/3ds/{session}", get(three_ds_page).post(three_ds_page))
            .route("/3ds/{session}/{choice}", post(three_ds_choice))
            .route("/qr/{session}", get(qr_page))
            .route("/qr/{session}/{choice}", post(qr_choice))
            .route("/widget/{token}", get(widget_page))
            .route("/widget/{token}/pay", post(widget_form))
            .route("/sandbox/sessions/{session}", get(control_session))
            .route("/sandbox/sessions/{session}/3ds", post(control_three_ds))
            .route("/sandbox/sessions/{session}/qr", post(control_qr))
            .route("/sandbox/widget/{token}/pay", post(control_widget))
            .route("/sandbox/tokens/disable", post(control_disable_token))
            .route("/sandbox/tokens/info", post(control_token_info))
            .route("/sandbox/ledger", get(control_ledger))
            .route("/sandbox/faults", get(get_faults).post(set_faults))
            .route("/sandbox/webhooks", get(control_webhooks))
            .with_state(self.clone())
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.inner.bank).decline_next = faults.decline_next.iter().cloned().collect();
        *lock(&self.inner.faults) = faults;
    }

    /// The ledger: every charge, refund and binding.
    pub fn ledger(&self) -> Vec<bank::LedgerEntry> {
        lock(&self.inner.bank).ledger.clone()
    }

    /// Webhook delivery counters.
    pub fn webhook_stats(&self) -> DeliveryStats {
        self.inner.webhooks.stats()
    }

    /// Runs `f` on the bank, persists, and sends the webhooks it produced.
    fn act(&self, f: impl FnOnce(&mut Bank) -> Outcome) -> Result<Response, Refusal> {
        let (response, hooks) = {
            let mut bank = lock(&self.inner.bank);
            let (response, hooks) = f(&mut bank)?;
            self.persist(&bank);
            (response, hooks)
        };
        if let Some(session) = hooks
            .first()
            .and_then(|h| h.session())
            .map(|s| s.id.clone())
        {
            let faults = lock(&self.inner.faults).clone();
            self.inner.webhooks.send(&session, hooks, &faults);
        }
        Ok(response)
    }

    /// Marks the state changed; the saver writes it shortly.
    fn persist(&self, _bank: &Bank) {
        self.inner.dirty.store(true, Ordering::Release);
    }
}

/// Writes a file readable by its owner only, atomically (temp file + rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(tmp, path)
}

fn envelope(status: StatusCode, response: &Response) -> HttpResponse {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(response).unwrap_or_default(),
    )
        .into_response()
}

fn refusal(r: &Refusal) -> HttpResponse {
    let status = if r.code == "authentication_error" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    envelope(status, &Response::error(r.code, &r.description))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal {
        code: "invalid_request",
        description: format!("cannot read the request: {e}"),
    })
}

fn hang_ms(faults: &Faults) -> u64 {
    if faults.hang_ms == 0 {
        3000
    } else {
        faults.hang_ms
    }
}

/// Takes one from a fault counter.
fn take(counter: &mut u32) -> bool {
    let fire = *counter > 0;
    if fire {
        *counter -= 1;
    }
    fire
}

async fn api(
    State(sandbox): State<Sandbox>,
    UrlPath(method): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let (fail_5xx, hang, drop) = {
        let mut f = lock(&sandbox.inner.faults);
        (
            take(&mut f.api_5xx),
            take(&mut f.api_timeouts).then(|| hang_ms(&f)),
            take(&mut f.drop_responses).then(|| hang_ms(&f)),
        )
    };
    if fail_5xx {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html("<html><body>502 Bad Gateway</body></html>"),
        )
            .into_response();
    }
    if let Some(ms) = hang {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return (StatusCode::GATEWAY_TIMEOUT, "upstream timed out").into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let config = &sandbox.inner.config;
    if header(PROJECT_HEADER) != config.project
        || !config.partner_keys.verify(&body, &header(SIGN_HEADER))
    {
        warn!(%method, "refused: bad project or signature");
        return refusal(&Refusal {
            code: "authentication_error",
            description: "bad X-PARTNER-PROJECT or X-PARTNER-SIGN".into(),
        });
    }
    let base_url = format!("http://{}", header("host"));
    let key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (result, lost) = dispatch(&sandbox, &method, &body, &base_url, key.as_deref());
    info!(%method, ok = result.is_ok(), "sandbox API call");
    if let Some(ms) = drop.or(lost.then(|| hang_ms(&lock(&sandbox.inner.faults)))) {
        // Executed, but the answer never arrives in time.
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match result {
        Ok(response) => envelope(StatusCode::OK, &response),
        Err(r) => refusal(&r),
    }
}

/// Runs one API method. The flag says the answer must be lost (test card `…5126`).
fn dispatch(
    sandbox: &Sandbox,
    method: &str,
    body: &[u8],
    base_url: &str,
    key: Option<&str>,
) -> (Result<Response, Refusal>, bool) {
    let read_only = matches!(
        method,
        methods::SESSION_STATUS | methods::TOKEN_INFO | methods::RECURRENT_STATUS
    );
    let claim = |bank: &mut Bank| {
        if read_only {
            Ok(())
        } else {
            bank.claim_key(key)
        }
    };
    let mut lost = false;
    let result = match method {
        methods::SESSION_CREATE => parse::<Value>(body).and_then(|v| {
            sandbox.act(|b| {
                claim(b)?;
                b.create_session(&v, base_url)
            })
        }),
        methods::SESSION_START_PAYMENT | methods::SESSION_INIT_PAYMENT => {
            parse::<PaymentRequest>(body).and_then(|request| {
                lost = matches!(&request.payment_details, PaymentDetails::Card { card } if card
                .bank_card
                .as_ref()
                .is_some_and(|c| cards::behavior(&c.number) == Ok(Behavior::DropResponse)));
                let two_step = method == methods::SESSION_START_PAYMENT;
                sandbox.act(|b| {
                    claim(b)?;
                    b.start_payment(&request, two_step, base_url)
                })
            })
        }
        methods::SESSION_CONFIRM
        | methods::SESSION_CANCEL
        | methods::SESSION_CAPTURE
        | methods::SESSION_STATUS => parse::<SessionIdRequest>(body).and_then(|r| {
            sandbox.act(|b| {
                claim(b)?;
                match method {
                    methods::SESSION_CONFIRM => b.confirm(&r.session_id),
                    methods::SESSION_CANCEL => b.cancel(&r.session_id),
                    methods::SESSION_CAPTURE => b.capture(&r.session_id),
                    _ => b.status(&r.session_id),
                }
            })
        }),
        methods::SESSION_REFUND => parse::<RefundRequest>(body).and_then(|r| {
            sandbox.act(|b| {
                claim(b)?;
                b.refund(&r.session_id, r.amount_details)
            })
        }),
        methods::TOKEN => parse::<WidgetTokenRequest>(body).and_then(|r| {
            let checkbox = r.acquiring_widget.show_recurrent_checkbox.unwrap_or(false);
            sandbox.act(|b| {
                claim(b)?;
                b.widget_token(&r.acquiring_widget.session_id, checkbox)
            })
        }),
        methods::TOKEN_INFO => parse::<TokenInfoRequest>(body).and_then(|r| {
            let info = lock(&sandbox.inner.bank).token_info(&r.recurrent_token.token)?;
            Ok(Response {
                info: Some(info),
                ..Response::ok()
            })
        }),
        methods::RECURRENT_STATUS => parse::<RecurrentRequest>(body).and_then(|r| {
            let info = lock(&sandbox.inner.bank).token_info(&r.recurrent.token)?;
            Ok(Response {
                recurrent: Some(info),
                ..Response::ok()
            })
        }),
        methods::RECURRENT_DISABLE => parse::<RecurrentRequest>(body).and_then(|r| {
            let mut bank = lock(&sandbox.inner.bank);
            claim(&mut bank)?;
            let info = bank.disable_token(&r.recurrent.token)?;
            sandbox.persist(&bank);
            Ok(Response {
                recurrent: Some(info),
                ..Response::ok()
            })
        }),
        other => Err(Refusal {
            code: "invalid_request",
            description: format!("unknown method {other}"),
        }),
    };
    (result, lost)
}

// ---- customer pages -------------------------------------------------------------

fn session_amount(sandbox: &Sandbox, session_id: &str) -> Option<String> {
    let bank = lock(&sandbox.inner.bank);
    let payment = bank.sessions.get(session_id)?.payment.as_ref()?;
    let amount = payment.view.amount_details.as_ref()?;
    Some(format!(
        "{}.{:02} {}",
        amount.amount / 100,
        amount.amount % 100,
        amount.currency.to_uppercase()
    ))
}

fn return_url(sandbox: &Sandbox, session_id: &str) -> Option<String> {
    let bank = lock(&sandbox.inner.bank);
    let payment = bank.sessions.get(session_id)?.payment.as_ref()?;
    payment.view.payment_options.as_ref()?.return_url.clone()
}

async fn three_ds_page(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
) -> HttpResponse {
    match session_amount(&sandbox, &session) {
        Some(amount) => Html(pages::three_ds(&session, &amount)).into_response(),
        None => (StatusCode::NOT_FOUND, Html(pages::done("Unknown payment"))).into_response(),
    }
}

fn after_customer(
    sandbox: &Sandbox,
    session: &str,
    result: Result<Response, Refusal>,
) -> HttpResponse {
    match (result, return_url(sandbox, session)) {
        (Ok(_), Some(url)) => Redirect::to(&url).into_response(),
        (Ok(response), None) => {
            let status = response.session.map(|s| s.status).unwrap_or_default();
            Html(pages::done(&format!("Payment {status}"))).into_response()
        }
        (Err(r), _) => (StatusCode::CONFLICT, Html(pages::done(&r.description))).into_response(),
    }
}

async fn three_ds_choice(
    State(sandbox): State<Sandbox>,
    UrlPath((session, choice)): UrlPath<(String, String)>,
) -> HttpResponse {
    let result = sandbox.act(|b| b.three_ds(&session, choice == "approve"));
    after_customer(&sandbox, &session, result)
}

async fn qr_page(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
) -> HttpResponse {
    let deeplink = {
        let bank = lock(&sandbox.inner.bank);
        bank.sessions
            .get(&session)
            .and_then(|s| s.payment.as_ref())
            .and_then(|p| p.view.customer_interaction.as_ref())
            .and_then(|i| i.inform.as_ref())
            .and_then(|i| i.qr.as_ref())
            .map(|q| q.content.clone())
    };
    match deeplink {
        Some(link) => Html(pages::qr(&session, &link)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(pages::done("No QR code to pay")),
        )
            .into_response(),
    }
}

async fn qr_choice(
    State(sandbox): State<Sandbox>,
    UrlPath((session, choice)): UrlPath<(String, String)>,
) -> HttpResponse {
    let result = sandbox.act(|b| b.qr(&session, choice == "pay"));
    after_customer(&sandbox, &session, result)
}

async fn widget_page(
    State(sandbox): State<Sandbox>,
    UrlPath(token): UrlPath<String>,
) -> HttpResponse {
    let widget = lock(&sandbox.inner.bank).widgets.get(&token).cloned();
    match widget {
        Some(w) => Html(pages::widget(&token, w.show_recurrent_checkbox)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(pages::done("Unknown widget token")),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct WidgetPay {
    number: String,
    #[serde(default)]
    save: Option<String>,
    #[serde(default)]
    customer: Option<String>,
}

async fn widget_form(
    State(sandbox): State<Sandbox>,
    UrlPath(token): UrlPath<String>,
    Form(form): Form<WidgetPay>,
) -> HttpResponse {
    let save = form.save.as_deref() == Some("true");
    let result =
        sandbox.act(|b| b.widget_pay(&token, &form.number, save, form.customer.as_deref()));
    let session = result
        .as_ref()
        .ok()
        .and_then(|r| r.session.as_ref())
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let redirect = result
        .as_ref()
        .ok()
        .and_then(|r| r.session.as_ref())
        .and_then(|s| s.payment())
        .and_then(|p| {
            p.customer_interaction
                .as_ref()?
                .redirect
                .as_ref()
                .map(|r| r.url.clone())
        });
    match redirect {
        Some(url) => Redirect::to(&url).into_response(),
        None => after_customer(&sandbox, &session, result),
    }
}

// ---- control API ----------------------------------------------------------------

fn control(result: Result<Response, Refusal>) -> HttpResponse {
    match result {
        Ok(response) => envelope(StatusCode::OK, &response),
        Err(r) => envelope(
            StatusCode::CONFLICT,
            &Response::error(r.code, &r.description),
        ),
    }
}

async fn control_session(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
) -> HttpResponse {
    control(lock(&sandbox.inner.bank).status(&session).map(|(r, _)| r))
}

#[derive(Debug, Deserialize)]
struct Approve {
    approve: bool,
}

async fn control_three_ds(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
    axum::Json(a): axum::Json<Approve>,
) -> HttpResponse {
    control(sandbox.act(|b| b.three_ds(&session, a.approve)))
}

#[derive(Debug, Deserialize)]
struct PayQr {
    pay: bool,
}

async fn control_qr(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
    axum::Json(p): axum::Json<PayQr>,
) -> HttpResponse {
    control(sandbox.act(|b| b.qr(&session, p.pay)))
}

#[derive(Debug, Deserialize)]
struct ControlWidget {
    number: String,
    #[serde(default)]
    save: bool,
    #[serde(default)]
    customer: Option<String>,
}

async fn control_widget(
    State(sandbox): State<Sandbox>,
    UrlPath(token): UrlPath<String>,
    axum::Json(w): axum::Json<ControlWidget>,
) -> HttpResponse {
    control(sandbox.act(|b| b.widget_pay(&token, &w.number, w.save, w.customer.as_deref())))
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    token: String,
}

async fn control_disable_token(
    State(sandbox): State<Sandbox>,
    axum::Json(t): axum::Json<TokenBody>,
) -> HttpResponse {
    let mut bank = lock(&sandbox.inner.bank);
    let result = bank.disable_token(&t.token).map(|info| Response {
        recurrent: Some(info),
        ..Response::ok()
    });
    sandbox.persist(&bank);
    control(result)
}

async fn control_token_info(
    State(sandbox): State<Sandbox>,
    axum::Json(t): axum::Json<TokenBody>,
) -> HttpResponse {
    control(
        lock(&sandbox.inner.bank)
            .token_info(&t.token)
            .map(|info| Response {
                info: Some(info),
                ..Response::ok()
            }),
    )
}

async fn control_ledger(State(sandbox): State<Sandbox>) -> HttpResponse {
    axum::Json(json!({ "data": sandbox.ledger() })).into_response()
}

async fn get_faults(State(sandbox): State<Sandbox>) -> HttpResponse {
    axum::Json(lock(&sandbox.inner.faults).clone()).into_response()
}

async fn set_faults(
    State(sandbox): State<Sandbox>,
    axum::Json(faults): axum::Json<Faults>,
) -> HttpResponse {
    sandbox.set_faults(faults.clone());
    axum::Json(faults).into_response()
}

async fn control_webhooks(State(sandbox): State<Sandbox>) -> HttpResponse {
    axum::Json(sandbox.webhook_stats()).into_response()
}

/// Keys the sandbox works with: the partner's public key(s) it accepts and
/// its own signing key, generated into `dir` when no file is given.
#[derive(Debug)]
pub struct SandboxKeys {
    /// Verifies the partner's requests.
    pub partner_keys: Verifier,
    /// Signs webhooks.
    pub bank_signer: Arc<Signer>,
    /// Where the partner's private key was generated (when it was).
    pub partner_private_key_file: Option<PathBuf>,
    /// The bank's public key file (for the partner to verify webhooks).
    pub bank_public_key_file: PathBuf,
}

impl SandboxKeys {
    /// Loads the given key files, or generates missing keys into `dir`
    /// (kept there, so a restart uses the same keys).
    pub fn load_or_generate(
        dir: &Path,
        partner_public_key_file: Option<&Path>,
        bank_private_key_file: Option<&Path>,
    ) -> Result<Self, SandboxError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| SandboxError(format!("cannot read {}: {e}", p.display())))
        };
        let key_err = |e: bank131::KeyError| SandboxError(e.0);
        let (partner_keys, partner_private_key_file) = if let Some(file) = partner_public_key_file {
            (
                Verifier::from_pems([read(file)?.as_str()]).map_err(key_err)?,
                None,
            )
        } else {
            let private = dir.join("partner_private.pem");
            let signer = load_or_create(&private, &dir.join("partner_public.pem"))?;
            (
                Verifier::from_pems([signer.public_pem().map_err(key_err)?.as_str()])
                    .map_err(key_err)?,
                Some(private),
            )
        };
        let (bank_signer, bank_public_key_file) = if let Some(file) = bank_private_key_file {
            let signer = Signer::from_pem(&read(file)?).map_err(key_err)?;
            let public = file.with_extension("pub.pem");
            write_private(&public, signer.public_pem().map_err(key_err)?.as_bytes())
                .map_err(|e| SandboxError(format!("cannot write {}: {e}", public.display())))?;
            (signer, public)
        } else {
            let public = dir.join("bank_public.pem");
            (
                load_or_create(&dir.join("bank_private.pem"), &public)?,
                public,
            )
        };
        Ok(Self {
            partner_keys,
            bank_signer: Arc::new(bank_signer),
            partner_private_key_file,
            bank_public_key_file,
        })
    }
}

/// Reads a private key, or generates one and writes both halves.
pub fn load_or_create(private: &Path, public: &Path) -> Result<Signer, SandboxError> {
    if private.exists() {
        let text = std::fs::read_to_string(private)
            .map_err(|e| SandboxError(format!("cannot read {}: {e}", private.display())))?;
        return Signer::from_pem(&text)
            .map_err(|e| SandboxError(format!("{}: {e}", private.display())));
    }
    let signer = Signer::generate().map_err(|e| SandboxError(e.0))?;
    let write = |path: &Path, text: String| {
        write_private(path, text.as_bytes())
            .map_err(|e| SandboxError(format!("cannot write {}: {e}", path.display())))
    };
    write(
        private,
        signer.private_pem().map_err(|e| SandboxError(e.0))?,
    )?;
    write(public, signer.public_pem().map_err(|e| SandboxError(e.0))?)?;
    Ok(signer)
}
