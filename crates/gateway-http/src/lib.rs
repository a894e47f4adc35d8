//! # gateway-http
//!
//! [`HttpGateway`] implements the [`PaymentGateway`] port over HTTP with
//! reqwest: every request is signed over the exact bytes sent
//! (`X-PARTNER-SIGN`), carries `X-PARTNER-PROJECT` and, when it changes state,
//! the use case's deterministic `X-PARTNER-IDEMPOTENCY-KEY`.
//!
//! The answer is judged by its envelope, not its HTTP status, and failures map
//! to the port's kinds: refused before sending → `Transient`; a timeout after
//! sending, a 5xx, a broken connection or an unreadable answer →
//! `UnknownOutcome`; an error envelope → `Permanent(code)` (or `Transient` for
//! the bank's "try later" codes, `Conflict` for `session_wrong_state`). An
//! `idempotency_key_already_exists` answer means the request ran before: the
//! gateway looks the session (or token) up instead of failing.
//!
//! Card numbers, CVVs and raw tokens never appear in logs or errors: only the
//! method name, the session id and the outcome are logged.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bank131::dto::Response;
use bank131::requests::{
    AcquiringWidget, RecurrentRequest, RefundRequest, SessionIdRequest, TokenInfoRequest, TokenRef,
    WidgetTokenRequest,
};
use bank131::{IDEMPOTENCY_HEADER, PROJECT_HEADER, SIGN_HEADER, Signer, map, methods};
use domain::{BankCode, BankSessionId, DeclineClass, Money, RecurrentTokenSecret, SessionCommand};
use ports::{
    CreateSession, GatewayError, PaymentGateway, Project, SessionCall, SessionRef, SessionSnapshot,
    StartPayment, TokenInfo, WidgetToken,
};
use serde::Serialize;
use tracing::{debug, warn};

/// Where and how to reach the bank.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// e.g. `https://demo.bank131.ru` (methods are under `/api/v1/`).
    pub base_url: String,
    /// `X-PARTNER-PROJECT` of the main project.
    pub project: String,
    /// `X-PARTNER-PROJECT` of the 3-D Secure project for payments with the
    /// customer present (`BANK131_PROJECT_3DS`); the main one when `None`.
    pub project_3ds: Option<String>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
}

impl GatewayConfig {
    /// The `X-PARTNER-PROJECT` of `project`.
    pub fn project_id(&self, project: Project) -> &str {
        match (project, &self.project_3ds) {
            (Project::CustomerPresent, Some(three_ds)) => three_ds,
            _ => &self.project,
        }
    }

    /// Defaults: 5 s to connect, 30 s per request.
    pub fn new(base_url: impl Into<String>, project: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            project: project.into(),
            project_3ds: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Called after every bank request with the method, how long it took and its
/// outcome: `ok`, `refused` (the bank answered with an error) or `failed`
/// (no answer, or none that could be read). For metrics.
pub type LatencyObserver = Arc<dyn Fn(&str, Duration, &'static str) + Send + Sync>;

/// The Bank 131 API over HTTP.
#[derive(Clone)]
pub struct HttpGateway {
    client: reqwest::Client,
    config: GatewayConfig,
    signer: Arc<Signer>,
    observer: Option<LatencyObserver>,
}

impl std::fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpGateway {
    /// Builds the HTTP client.
    pub fn new(config: GatewayConfig, signer: Arc<Signer>) -> Result<Self, GatewayError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A signed request goes to the configured bank only: a 3xx is an
            // unreadable answer (unknown outcome), never followed elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GatewayError::Transient(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            config,
            signer,
            observer: None,
        })
    }

    /// Reports each request's latency to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: LatencyObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    async fn call<T: Serialize + Sync>(
        &self,
        project: Project,
        method: &str,
        body: &T,
        idempotency_key: Option<&str>,
    ) -> Result<Response, GatewayError> {
        let started = Instant::now();
        let result = self.send(project, method, body, idempotency_key).await;
        if let Some(observe) = &self.observer {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(
                    GatewayError::Permanent { .. }
                    | GatewayError::Conflict(_)
                    | GatewayError::NotFound,
                ) => "refused",
                Err(_) => "failed",
            };
            observe(method, started.elapsed(), outcome);
        }
        match &result {
            Ok(_) => debug!(
                method,
                elapsed_ms = started.elapsed().as_millis(),
                "bank call ok"
            ),
            Err(error) => {
                warn!(method, elapsed_ms = started.elapsed().as_millis(), %error, "bank call failed");
            }
        }
        result
    }

    async fn send<T: Serialize + Sync>(
        &self,
        project: Project,
        method: &str,
        body: &T,
        idempotency_key: Option<&str>,
    ) -> Result<Response, GatewayError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| GatewayError::Transient(format!("cannot encode {method}: {e}")))?;
        let signature = self
            .signer
            .sign(&bytes)
            .map_err(|e| GatewayError::Transient(e.to_string()))?;
        let mut request = self
            .client
            .post(format!("{}/api/v1/{method}", self.config.base_url))
            .header("Content-Type", "application/json")
            .header(PROJECT_HEADER, self.config.project_id(project))
            .header(SIGN_HEADER, signature);
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        let response = request
            .body(bytes)
            .send()
            .await
            .map_err(|e| classify_send_error(method, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            GatewayError::UnknownOutcome(format!(
                "{method}: the answer broke off: {}",
                without_url(&e)
            ))
        })?;
        let Ok(envelope) = serde_json::from_slice::<Response>(&body) else {
            return Err(GatewayError::UnknownOutcome(format!(
                "{method}: unreadable answer (HTTP {status})"
            )));
        };
        match envelope.status.as_str() {
            "ok" => Ok(envelope),
            "error" => Err(classify_error(method, &envelope)),
            other => Err(GatewayError::UnknownOutcome(format!(
                "{method}: unknown envelope status {other:?}"
            ))),
        }
    }

    async fn session_call<T: Serialize + Sync>(
        &self,
        project: Project,
        method: &str,
        body: &T,
        session_id: Option<&BankSessionId>,
        idempotency_key: Option<&str>,
    ) -> Result<SessionSnapshot, GatewayError> {
        match self.call(project, method, body, idempotency_key).await {
            Ok(response) => snapshot(method, &response),
            Err(GatewayError::Permanent { code, .. })
                if BankCode::IdempotencyKeyAlreadyExists.is(&code) =>
            {
                // The same request ran before: its result is the session's state now.
                match session_id {
                    Some(id) => {
                        self.session_status(SessionRef::new(id.clone(), project))
                            .await
                    }
                    None => Err(GatewayError::Conflict(format!(
                        "{method} already done with this idempotency key"
                    ))),
                }
            }
            Err(e) => Err(e),
        }
    }
}

fn snapshot(method: &str, response: &Response) -> Result<SessionSnapshot, GatewayError> {
    let session = response.session.as_ref().ok_or_else(|| {
        GatewayError::UnknownOutcome(format!("{method}: no session in the answer"))
    })?;
    // A refund's answer is read like the payment_refunded webhook: the fact is the refunded total.
    let kind = (method == methods::SESSION_REFUND).then_some("payment_refunded");
    map::snapshot(session, kind).map_err(|e| GatewayError::UnknownOutcome(format!("{method}: {e}")))
}

/// reqwest errors name the URL; ours never need it, and it never carries secrets,
/// but the message is kept short and uniform.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<bank>");
    }
    text
}

fn classify_send_error(method: &str, error: &reqwest::Error) -> GatewayError {
    let text = without_url(error);
    if error.is_connect() || error.is_builder() {
        GatewayError::Transient(format!("{method}: not sent: {text}"))
    } else if error.is_timeout() {
        GatewayError::UnknownOutcome(format!("{method}: timed out after sending: {text}"))
    } else {
        GatewayError::UnknownOutcome(format!("{method}: {text}"))
    }
}

fn classify_error(method: &str, envelope: &Response) -> GatewayError {
    let failure = map::failure(envelope.error.as_ref(), BankCode::InternalError);
    let message = format!("{method}: {}", failure.message);
    match BankCode::parse(failure.code.as_str()) {
        Some(BankCode::SessionWrongState) => GatewayError::Conflict(message),
        // Not a retry: the same key already ran; the caller reads the result.
        Some(BankCode::IdempotencyKeyAlreadyExists) => GatewayError::Permanent {
            code: failure.code,
            message,
        },
        _ if DeclineClass::of(&failure.code) == DeclineClass::RetryLater => {
            GatewayError::Transient(format!("{} ({message})", failure.code))
        }
        _ => GatewayError::Permanent {
            code: failure.code,
            message,
        },
    }
}

fn session_body(session_id: &BankSessionId) -> SessionIdRequest {
    SessionIdRequest {
        session_id: session_id.as_str().to_owned(),
    }
}

/// A raw token as the bank's requests carry it (never logged).
fn token_ref(token: &RecurrentTokenSecret) -> TokenRef {
    TokenRef {
        token: token.expose().to_owned(),
    }
}

fn token_info_of(method: &str, response: &Response) -> Result<TokenInfo, GatewayError> {
    response.token_info().map(map::token_info).ok_or_else(|| {
        GatewayError::UnknownOutcome(format!("{method}: no token info in the answer"))
    })
}

#[async_trait]
impl PaymentGateway for HttpGateway {
    async fn create_session(
        &self,
        request: CreateSession,
    ) -> Result<SessionSnapshot, GatewayError> {
        let body = map::create_session_request(&request);
        self.session_call(
            request.project,
            methods::SESSION_CREATE,
            &body,
            None,
            Some(&request.idempotency_key),
        )
        .await
    }

    async fn start_payment(&self, request: StartPayment) -> Result<SessionSnapshot, GatewayError> {
        let body = map::payment_request(&request);
        self.session_call(
            request.project,
            methods::SESSION_START_PAYMENT,
            &body,
            Some(&request.session_id),
            Some(&request.idempotency_key),
        )
        .await
    }

    async fn session_command(&self, call: SessionCall) -> Result<SessionSnapshot, GatewayError> {
        let SessionCall {
            command,
            session_id,
            project,
            idempotency_key,
        } = call;
        let method = match command {
            SessionCommand::Confirm => methods::SESSION_CONFIRM,
            SessionCommand::Cancel => methods::SESSION_CANCEL,
            SessionCommand::Capture => methods::SESSION_CAPTURE,
        };
        self.session_call(
            project,
            method,
            &session_body(&session_id),
            Some(&session_id),
            Some(&idempotency_key),
        )
        .await
    }

    async fn refund(
        &self,
        session: SessionRef,
        amount: Option<Money>,
        idempotency_key: String,
    ) -> Result<SessionSnapshot, GatewayError> {
        let body = RefundRequest {
            session_id: session.session_id.as_str().to_owned(),
            amount_details: amount.map(map::amount),
        };
        self.session_call(
            session.project,
            methods::SESSION_REFUND,
            &body,
            Some(&session.session_id),
            Some(&idempotency_key),
        )
        .await
    }

    async fn session_status(&self, session: SessionRef) -> Result<SessionSnapshot, GatewayError> {
        let response = self
            .call(
                session.project,
                methods::SESSION_STATUS,
                &session_body(&session.session_id),
                None,
            )
            .await?;
        snapshot(methods::SESSION_STATUS, &response)
    }

    async fn widget_token(
        &self,
        session: SessionRef,
        show_recurrent_checkbox: bool,
    ) -> Result<WidgetToken, GatewayError> {
        let body = WidgetTokenRequest {
            acquiring_widget: AcquiringWidget {
                session_id: session.session_id.as_str().to_owned(),
                show_recurrent_checkbox: Some(show_recurrent_checkbox),
            },
        };
        let response = self
            .call(session.project, methods::TOKEN, &body, None)
            .await?;
        let public_token = response.public_token.ok_or_else(|| {
            GatewayError::UnknownOutcome("token: no public_token in the answer".into())
        })?;
        Ok(WidgetToken {
            public_token,
            expires_at: None,
        })
    }

    async fn token_info(&self, token: RecurrentTokenSecret) -> Result<TokenInfo, GatewayError> {
        let body = TokenInfoRequest {
            kind: "recurrent_token".into(),
            recurrent_token: token_ref(&token),
        };
        // Tokens are the main project's: merchant-initiated charges run there.
        let response = self
            .call(Project::Main, methods::TOKEN_INFO, &body, None)
            .await?;
        token_info_of(methods::TOKEN_INFO, &response)
    }

    async fn disable_token(
        &self,
        token: RecurrentTokenSecret,
        idempotency_key: String,
    ) -> Result<TokenInfo, GatewayError> {
        let body = RecurrentRequest {
            recurrent: token_ref(&token),
        };
        match self
            .call(
                Project::Main,
                methods::RECURRENT_DISABLE,
                &body,
                Some(&idempotency_key),
            )
            .await
        {
            Ok(response) => token_info_of(methods::RECURRENT_DISABLE, &response),
            Err(GatewayError::Permanent { code, .. })
                if BankCode::IdempotencyKeyAlreadyExists.is(&code) =>
            {
                self.token_info(token).await
            }
            Err(e) => Err(e),
        }
    }
}
