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

mod api;
pub mod bank;
pub mod cards;
mod control;
mod customer;
mod keys;
mod pages;
mod webhooks;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use bank131::dto::Response;
use bank131::{Signer, Verifier};
use tracing::warn;

use crate::bank::{Bank, Faults, Outcome, Refusal};
pub use crate::keys::{SandboxKeys, load_or_create, write_private};
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
        let webhooks =
            webhooks::WebhookSender::start(&config.webhook_url, &config.bank_signer, &faults);
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
            // instead of re-serializing its whole state on every call; and a
            // large state, whose save takes long, is saved less often, so
            // that saving never takes more than a twentieth of the time.
            let weak = Arc::downgrade(&sandbox.inner);
            tokio::spawn(async move {
                let mut pause = SAVE_EVERY;
                loop {
                    tokio::time::sleep(pause).await;
                    let Some(inner) = weak.upgrade() else { return };
                    let started = std::time::Instant::now();
                    Sandbox { inner }.flush();
                    pause = SAVE_EVERY.max(started.elapsed() * 20);
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
        let written = keys::write_private_with(path, |file| {
            let mut out = std::io::BufWriter::new(file);
            serde_json::to_writer(&mut out, &*lock(&self.inner.bank))
                .map_err(std::io::Error::other)?;
            std::io::Write::flush(&mut out)
        });
        if let Err(e) = written {
            self.inner.dirty.store(true, Ordering::Release);
            warn!(path = %path.display(), error = %e, "cannot save the sandbox state");
        }
    }

    /// The HTTP routes: the bank API, the customer pages and the control API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/{version}/{*method}", post(api::api))
            .route(
                "/3ds/{session}",
                get(customer::three_ds_page).post(customer::three_ds_page),
            )
            .route("/3ds/{session}/{choice}", post(customer::three_ds_choice))
            .route("/qr/{session}", get(customer::qr_page))
            .route("/qr/{session}/{choice}", post(customer::qr_choice))
            .route("/widget/{token}", get(customer::widget_page))
            .route("/widget/{token}/pay", post(customer::widget_form))
            .route("/widget/{token}/wait", get(customer::widget_wait))
            .route("/sandbox/sessions/{session}", get(control::control_session))
            .route(
                "/sandbox/sessions/{session}/3ds",
                post(control::control_three_ds),
            )
            .route("/sandbox/sessions/{session}/qr", post(control::control_qr))
            .route("/sandbox/widget/{token}/pay", post(control::control_widget))
            .route(
                "/sandbox/tokens/disable",
                post(control::control_disable_token),
            )
            .route("/sandbox/tokens/info", post(control::control_token_info))
            .route("/sandbox/ledger", get(control::control_ledger))
            .route(
                "/sandbox/faults",
                get(control::get_faults).post(control::set_faults),
            )
            .route("/sandbox/webhooks", get(control::control_webhooks))
            .fallback(api::unknown_path)
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

    /// The idempotency keys a client sent a second time, in order.
    pub fn repeated_keys(&self) -> Vec<String> {
        lock(&self.inner.bank).repeated_keys.clone()
    }

    /// Every raw recurrent token the bank issued (for tests that check no
    /// copy of one is stored anywhere in plaintext).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.inner.bank).tokens.keys().cloned().collect()
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
        let faults = {
            let mut faults = lock(&self.inner.faults);
            let lost = hooks
                .iter()
                .filter(|_| api::take(&mut faults.lose_webhooks))
                .count();
            if lost > 0 {
                warn!(lost, "fault: webhooks never delivered");
            }
            (faults.clone(), lost)
        };
        let (faults, lost) = faults;
        let hooks: Vec<_> = hooks.into_iter().skip(lost).collect();
        if let Some(session) = hooks
            .first()
            .and_then(|h| h.session())
            .map(|s| s.id.clone())
        {
            self.inner.webhooks.send(&session, hooks, &faults);
        }
        Ok(response)
    }

    /// Marks the state changed; the saver writes it shortly.
    fn persist(&self, _bank: &Bank) {
        self.inner.dirty.store(true, Ordering::Release);
    }
}
