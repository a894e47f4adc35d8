//! The HTTP gateway against the sandbox bank over real HTTP (port 0), with
//! signed webhooks checked by a receiving partner, and against a tiny fault
//! server for timeouts, resets, 5xx and garbage answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use bank131::{Bank131Webhooks, Signer, Verifier};
use domain::*;
use gateway_http::{GatewayConfig, HttpGateway};
use ports::{
    CreateSession, DecodedWebhook, GatewayError, Instrument, PaymentGateway, Project, SessionCall,
    SessionRef, SessionSnapshot, StartPayment, WebhookDecoder,
};
use sandbox::bank::Faults;
use sandbox::{Sandbox, SandboxConfig};
use tokio::net::TcpListener;

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The partner side: receives webhooks, checks their signature, keeps them.
#[derive(Clone)]
struct Partner {
    decoder: Arc<Bank131Webhooks>,
    received: Arc<Mutex<Vec<DecodedWebhook>>>,
    refused: Arc<Mutex<u32>>,
}

async fn receive(
    State(partner): State<Partner>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let signature = headers
        .get(bank131::SIGN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if partner.decoder.verify(&body, signature).is_err() {
        *partner.refused.lock().unwrap() += 1;
        return axum::http::StatusCode::UNAUTHORIZED;
    }
    partner
        .received
        .lock()
        .unwrap()
        .push(partner.decoder.decode(&body).unwrap());
    axum::http::StatusCode::OK
}

struct World {
    gateway: HttpGateway,
    sandbox: Sandbox,
    sandbox_url: String,
    partner: Partner,
    signer: Arc<Signer>,
}

impl World {
    async fn new() -> Self {
        let partner_signer = Arc::new(Signer::generate().unwrap());
        let bank_signer = Arc::new(Signer::generate().unwrap());
        let partner = Partner {
            decoder: Arc::new(Bank131Webhooks::new(
                Verifier::from_pems([bank_signer.public_pem().unwrap().as_str()]).unwrap(),
            )),
            received: Arc::default(),
            refused: Arc::default(),
        };
        let partner_url = serve(
            Router::new()
                .route("/webhooks/bank131", post(receive))
                .with_state(partner.clone()),
        )
        .await;
        let sandbox = Sandbox::start(SandboxConfig {
            project: "sandbox".into(),
            partner_keys: Verifier::from_pems([partner_signer.public_pem().unwrap().as_str()])
                .unwrap(),
            bank_signer,
            webhook_url: format!("{partner_url}/webhooks/bank131"),
            state_file: None,
        })
        .unwrap();
        let sandbox_url = serve(sandbox.router()).await;
        let mut config = GatewayConfig::new(&sandbox_url, "sandbox");
        config.request_timeout = Duration::from_secs(2);
        let gateway = HttpGateway::new(config, partner_signer.clone()).unwrap();
        Self {
            gateway,
            sandbox,
            sandbox_url,
            partner,
            signer: partner_signer,
        }
    }

    fn webhooks(&self) -> Vec<DecodedWebhook> {
        self.partner.received.lock().unwrap().clone()
    }

    /// Polls (no sleeps as waits) until `count` webhooks of `session` arrived.
    async fn wait_webhooks(&self, session: &BankSessionId, count: usize) -> Vec<DecodedWebhook> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<_> = self
                .webhooks()
                .into_iter()
                .filter(|w| w.session_id.as_ref() == Some(session))
                .collect();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} webhooks for {session}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let client = reqwest_like::Client;
        client
            .post(&format!("{}{path}", self.sandbox_url), &body)
            .await
    }

    async fn session(&self, payment: &str, customer: &str, amount: Money) -> BankSessionId {
        self.gateway
            .create_session(CreateSession {
                project: Project::Main,
                payment_id: PaymentId::parse(payment).unwrap(),
                amount,
                customer: CustomerReference::parse(customer).unwrap(),
                recurrent: false,
                idempotency_key: format!("{payment}:create"),
            })
            .await
            .unwrap()
            .session_id
    }

    async fn start(
        &self,
        payment: &str,
        session: &BankSessionId,
        instrument: Instrument,
        amount: Money,
        recurrent: bool,
    ) -> Result<SessionSnapshot, GatewayError> {
        self.gateway
            .start_payment(StartPayment {
                project: Project::Main,
                session_id: session.clone(),
                payment_id: PaymentId::parse(payment).unwrap(),
                instrument,
                amount,
                customer: CustomerReference::parse("lucky").unwrap(),
                recurrent,
                return_url: Some("https://shop.example/return".into()),
                idempotency_key: format!("{payment}:start"),
            })
            .await
    }

    /// A card payment through create → start → confirm; returns the session and the issued token.
    async fn card_payment(
        &self,
        payment: &str,
        number: &str,
        recurrent: bool,
    ) -> (BankSessionId, SessionSnapshot) {
        let session = self.session(payment, "lucky", rub(10_000)).await;
        let started = self
            .start(
                payment,
                &session,
                Instrument::Card(card(number)),
                rub(10_000),
                recurrent,
            )
            .await
            .unwrap();
        assert_eq!(started.fact, Some(BankFact::ReadyToConfirm));
        let confirmed = self
            .gateway
            .session_command(SessionCall::new(
                SessionCommand::Confirm,
                session.clone(),
                Project::Main,
                format!("{payment}:confirm"),
            ))
            .await
            .unwrap();
        (session, confirmed)
    }
}

/// A few lines of HTTP for the control API, without another HTTP client crate:
/// the gateway's own reqwest is not exported, so tests speak through axum's hyper.
mod reqwest_like {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct Client;

    impl Client {
        pub async fn post(&self, url: &str, body: &serde_json::Value) -> serde_json::Value {
            let rest = url.strip_prefix("http://").unwrap();
            let (host, path) = rest.split_once('/').unwrap();
            let body = body.to_string();
            let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
            let request = format!(
                "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            let (_, body) = answer.split_once("\r\n\r\n").unwrap();
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
        }
    }
}

fn rub(v: i64) -> Money {
    Money::new(v, Currency::RUB).unwrap()
}

fn card(number: &str) -> CardData {
    CardData::new(number, "12", "30", "123", Some("IVAN IVANOV".into())).unwrap()
}

fn issued_token(fact: Option<&BankFact>) -> RecurrentTokenSecret {
    match fact {
        Some(BankFact::Succeeded { token: Some(t) }) => t.secret.clone(),
        other => panic!("expected a success with a token, got {other:?}"),
    }
}

#[tokio::test]
async fn seed_001_first_card_payment_issues_a_token_and_a_signed_webhook() {
    let w = World::new().await;
    let (session, confirmed) = w.card_payment("pay_first", "4242424242424242", true).await;
    let token = issued_token(confirmed.fact.as_ref());
    let hooks = w.wait_webhooks(&session, 2).await;
    assert_eq!(hooks[0].kind, "ready_to_confirm");
    assert_eq!(hooks[1].kind, "payment_finished");
    assert_eq!(
        hooks[1].payment_id.as_ref().map(PaymentId::as_str),
        Some("pay_first"),
        "our id comes back in metadata"
    );
    assert_eq!(issued_token(hooks[1].fact.as_ref()), token);
    assert_eq!(
        *w.partner.refused.lock().unwrap(),
        0,
        "every webhook verified"
    );
}

#[tokio::test]
async fn seed_001_mit_with_a_token_succeeds_without_the_customer() {
    let w = World::new().await;
    let (_, first) = w.card_payment("pay_a", "4242424242424242", true).await;
    let token = issued_token(first.fact.as_ref());
    let session = w.session("pay_mit", "lucky", rub(5_000)).await;
    let started = w
        .start(
            "pay_mit",
            &session,
            Instrument::Token {
                secret: token.clone(),
                initiator: Initiator::Merchant,
            },
            rub(5_000),
            false,
        )
        .await
        .unwrap();
    assert_eq!(started.fact, Some(BankFact::ReadyToConfirm));
    let done = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session.clone(),
            Project::Main,
            "pay_mit:confirm".into(),
        ))
        .await
        .unwrap();
    // The charge reports the charged token back (recur keeps one tok_ for it).
    assert!(
        matches!(&done.fact, Some(BankFact::Succeeded { token: Some(t) }) if t.secret == token),
        "{:?}",
        done.fact
    );
    let charged: Vec<_> = w
        .sandbox
        .ledger()
        .into_iter()
        .filter(|e| e.token.as_deref() == Some(token.expose()))
        .collect();
    assert_eq!(charged.len(), 1, "the ledger shows one charge on the token");
    assert_eq!(charged[0].amount, 5_000);
}

#[tokio::test]
async fn seed_000_cit_with_a_token_redirects_to_3ds_and_issues_a_new_token() {
    let w = World::new().await;
    let (_, first) = w.card_payment("pay_a", "4242424242424242", true).await;
    let token = issued_token(first.fact.as_ref());
    let session = w.session("pay_cit", "lucky", rub(10_000)).await;
    w.start(
        "pay_cit",
        &session,
        Instrument::Token {
            secret: token,
            initiator: Initiator::Client,
        },
        rub(10_000),
        false,
    )
    .await
    .unwrap();
    let confirmed = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session.clone(),
            Project::Main,
            "pay_cit:confirm".into(),
        ))
        .await
        .unwrap();
    let Some(BankFact::ActionRequired(NextAction::Redirect {
        url,
        method,
        params,
    })) = confirmed.fact
    else {
        panic!("expected a 3-DS redirect, got {:?}", confirmed.fact)
    };
    assert!(url.starts_with(&w.sandbox_url) && url.contains("/3ds/"));
    assert_eq!(method, "POST");
    assert!(params.iter().any(|(k, _)| k == "PaReq"));
    w.control(
        &format!("/sandbox/sessions/{session}/3ds"),
        serde_json::json!({"approve": true}),
    )
    .await;
    let hooks = w.wait_webhooks(&session, 3).await;
    let kinds: Vec<_> = hooks.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ready_to_confirm", "action_required", "payment_finished"]
    );
    issued_token(hooks[2].fact.as_ref());
}

#[tokio::test]
async fn seed_000_failed_3ds_ends_with_3ds_error() {
    let w = World::new().await;
    let session = w.session("pay_3ds", "lucky", rub(10_000)).await;
    w.start(
        "pay_3ds",
        &session,
        Instrument::Card(card("4000000000003063")),
        rub(10_000),
        true,
    )
    .await
    .unwrap();
    w.gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session.clone(),
            Project::Main,
            "pay_3ds:confirm".into(),
        ))
        .await
        .unwrap();
    w.control(
        &format!("/sandbox/sessions/{session}/3ds"),
        serde_json::json!({"approve": true}),
    )
    .await;
    let status = w
        .gateway
        .session_status(SessionRef::new(session, Project::Main))
        .await
        .unwrap();
    assert!(
        matches!(status.fact, Some(BankFact::Failed(ref f)) if f.code.as_str() == "3DS_error"),
        "{:?}",
        status.fact
    );
}

#[tokio::test]
async fn declining_test_cards_fail_with_their_code_verbatim() {
    let w = World::new().await;
    for (i, (number, code)) in [
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000002", "declined_by_issuer_bank"),
        ("4000000000000069", "bank_card_expired"),
        ("4000000000000101", "card_number_does_not_exist"),
    ]
    .into_iter()
    .enumerate()
    {
        let (_, done) = w.card_payment(&format!("pay_d{i}"), number, true).await;
        assert!(
            matches!(done.fact, Some(BankFact::Failed(ref f)) if f.code.as_str() == code),
            "{number}: {:?}",
            done.fact
        );
    }
}

#[tokio::test]
async fn seed_001_a_widget_payment_waits_for_confirm_then_pays_with_the_ticked_token() {
    let w = World::new().await;
    let session = w.session("pay_w", "lucky", rub(10_000)).await;
    let widget = w
        .gateway
        .widget_token(SessionRef::new(session.clone(), Project::Main), true)
        .await
        .unwrap();
    assert!(widget.public_token.starts_with("pt_"));
    let paid = w
        .control(
            &format!("/sandbox/widget/{}/pay", widget.public_token),
            serde_json::json!({"number": "4242424242424242", "save": true}),
        )
        .await;
    // As at the bank: the card entered in the widget leads to ready_to_confirm.
    assert_eq!(paid["session"]["status"], "in_progress", "{paid}");
    assert_eq!(paid["session"]["next_action"], "confirm");
    let confirmed = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session,
            Project::Main,
            "pay_w:confirm".into(),
        ))
        .await
        .unwrap();
    match confirmed.fact {
        Some(BankFact::Succeeded { token: Some(_) }) => {}
        other => panic!("expected success with the ticked token, got {other:?}"),
    }

    let unticked = w.session("pay_w2", "lucky", rub(10_000)).await;
    let widget = w
        .gateway
        .widget_token(SessionRef::new(unticked.clone(), Project::Main), false)
        .await
        .unwrap();
    w.control(
        &format!("/sandbox/widget/{}/pay", widget.public_token),
        // No box was shown: a "save" cannot have been ticked.
        serde_json::json!({"number": "4242424242424242", "save": true}),
    )
    .await;
    let confirmed = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            unticked,
            Project::Main,
            "pay_w2:confirm".into(),
        ))
        .await
        .unwrap();
    assert_eq!(confirmed.fact, Some(BankFact::Succeeded { token: None }));
}

#[tokio::test]
async fn seed_002_manual_cancel_ends_the_session() {
    let w = World::new().await;
    let session = w
        .session("pay_c", "lucky", Money::new(10_000, Currency::USD).unwrap())
        .await;
    w.start(
        "pay_c",
        &session,
        Instrument::Card(card("4242424242424242")),
        Money::new(10_000, Currency::USD).unwrap(),
        false,
    )
    .await
    .unwrap();
    let cancelled = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Cancel,
            session.clone(),
            Project::Main,
            "pay_c:cancel".into(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(cancelled.fact, Some(BankFact::Failed(ref f)) if f.code.as_str() == "session_cancelled_by_partner")
    );
    let again = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session,
            Project::Main,
            "pay_c:confirm".into(),
        ))
        .await;
    assert!(matches!(again, Err(GatewayError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn seed_003_fps_qr_paid_issues_a_token_and_expired_fails() {
    let w = World::new().await;
    let service = SubscriptionService::new("54f731a9", "subscription2").unwrap();
    for (payment, pay, binding) in [
        ("pay_qr1", true, false),
        ("pay_qr2", false, false),
        ("pay_bind", true, true),
    ] {
        let session = w.session(payment, "lucky", rub(1_000)).await;
        let instrument = if binding {
            Instrument::FpsBinding(Some(service.clone()))
        } else {
            Instrument::Fps(Some(service.clone()))
        };
        w.start(payment, &session, instrument, rub(1_000), true)
            .await
            .unwrap();
        let confirmed = w
            .gateway
            .session_command(SessionCall::new(
                SessionCommand::Confirm,
                session.clone(),
                Project::Main,
                format!("{payment}:confirm"),
            ))
            .await
            .unwrap();
        assert!(
            matches!(
                confirmed.fact,
                Some(BankFact::ActionRequired(NextAction::Qr { .. }))
            ),
            "{:?}",
            confirmed.fact
        );
        w.control(
            &format!("/sandbox/sessions/{session}/qr"),
            serde_json::json!({"pay": pay}),
        )
        .await;
        let status = w
            .gateway
            .session_status(SessionRef::new(session, Project::Main))
            .await
            .unwrap();
        if pay {
            issued_token(status.fact.as_ref());
        } else {
            assert!(
                matches!(status.fact, Some(BankFact::Failed(ref f)) if f.code.as_str() == "qr_expired")
            );
        }
    }
    let binding = w
        .sandbox
        .ledger()
        .into_iter()
        .find(|e| e.kind == "binding")
        .unwrap();
    assert_eq!(binding.amount, 0, "a binding charges nothing");
}

#[tokio::test]
async fn seed_001_token_info_and_disable() {
    let w = World::new().await;
    let (_, first) = w.card_payment("pay_t", "4242424242424242", true).await;
    let token = issued_token(first.fact.as_ref());
    assert!(w.gateway.token_info(token.clone()).await.unwrap().is_active);
    let disabled = w
        .gateway
        .disable_token(token.clone(), "tok:disable".into())
        .await
        .unwrap();
    assert!(!disabled.is_active);
    // Asked again with the same key: the bank refuses the key, the gateway asks token/info.
    assert!(
        !w.gateway
            .disable_token(token.clone(), "tok:disable".into())
            .await
            .unwrap()
            .is_active
    );
    let session = w.session("pay_after", "lucky", rub(100)).await;
    w.start(
        "pay_after",
        &session,
        Instrument::Token {
            secret: token,
            initiator: Initiator::Merchant,
        },
        rub(100),
        false,
    )
    .await
    .unwrap();
    let done = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session,
            Project::Main,
            "pay_after:confirm".into(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(done.fact, Some(BankFact::Failed(ref f)) if f.code.as_str() == "binding_is_deactivated")
    );
}

#[tokio::test]
async fn a_token_can_die_after_its_first_charge() {
    let w = World::new().await;
    let (_, first) = w.card_payment("pay_dies", "4000000000000341", true).await;
    let token = issued_token(first.fact.as_ref());
    let session = w.session("pay_m1", "lucky", rub(100)).await;
    w.start(
        "pay_m1",
        &session,
        Instrument::Token {
            secret: token.clone(),
            initiator: Initiator::Merchant,
        },
        rub(100),
        false,
    )
    .await
    .unwrap();
    w.gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session,
            Project::Main,
            "pay_m1:confirm".into(),
        ))
        .await
        .unwrap();
    assert!(!w.gateway.token_info(token).await.unwrap().is_active);
}

#[tokio::test]
async fn held_funds_are_captured() {
    let w = World::new().await;
    let (session, confirmed) = w.card_payment("pay_hold", "4000000000000077", false).await;
    assert_eq!(confirmed.fact, Some(BankFact::ReadyToCapture));
    let captured = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Capture,
            session,
            Project::Main,
            "pay_hold:capture".into(),
        ))
        .await
        .unwrap();
    assert_eq!(captured.fact, Some(BankFact::Succeeded { token: None }));
}

#[tokio::test]
async fn refunds_report_the_refunded_total() {
    let w = World::new().await;
    let (session, _) = w.card_payment("pay_r", "4242424242424242", false).await;
    w.gateway
        .refund(
            SessionRef::new(session.clone(), Project::Main),
            Some(rub(4_000)),
            "r1".into(),
        )
        .await
        .unwrap();
    let hooks = w.wait_webhooks(&session, 3).await;
    assert_eq!(hooks[2].kind, "payment_refunded");
    assert_eq!(
        hooks[2].fact,
        Some(BankFact::Refunded { total: rub(4_000) })
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_reads_the_session_instead_of_failing() {
    let w = World::new().await;
    let (session, first) = w.card_payment("pay_i", "4242424242424242", false).await;
    let again = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session,
            Project::Main,
            "pay_i:confirm".into(),
        ))
        .await
        .unwrap();
    assert_eq!(again.fact, first.fact);
    assert_eq!(w.sandbox.ledger().len(), 1, "charged once");
}

#[tokio::test]
async fn a_wrong_signature_is_refused_with_authentication_error_and_nothing_done() {
    let w = World::new().await;
    let stranger = Arc::new(Signer::generate().unwrap());
    let gateway =
        HttpGateway::new(GatewayConfig::new(&w.sandbox_url, "sandbox"), stranger).unwrap();
    let result = gateway
        .create_session(CreateSession {
            project: Project::Main,
            payment_id: PaymentId::parse("pay_x").unwrap(),
            amount: rub(1),
            customer: CustomerReference::parse("c").unwrap(),
            recurrent: false,
            idempotency_key: "x".into(),
        })
        .await;
    assert!(
        matches!(result, Err(GatewayError::Permanent { ref code, .. }) if code.as_str() == "authentication_error"),
        "{result:?}"
    );
    let wrong_project = HttpGateway::new(
        GatewayConfig::new(&w.sandbox_url, "other"),
        w.signer.clone(),
    )
    .unwrap();
    assert!(
        wrong_project
            .session_status(SessionRef::new(
                BankSessionId::parse("ps_1").unwrap(),
                Project::Main
            ))
            .await
            .is_err()
    );
}

// ---- faults -----------------------------------------------------------------------

#[tokio::test]
async fn duplicated_and_reordered_webhooks_are_all_delivered_and_signed() {
    let w = World::new().await;
    w.sandbox.set_faults(Faults {
        duplicate_webhooks: 2,
        reverse_webhooks: true,
        ..Faults::default()
    });
    let (session, _) = w.card_payment("pay_dup", "4242424242424242", false).await;
    let hooks = w.wait_webhooks(&session, 6).await;
    assert_eq!(hooks[0].kind, "payment_finished", "newest first");
    assert_eq!(
        hooks
            .iter()
            .filter(|h| h.kind == "ready_to_confirm")
            .count(),
        3
    );
}

#[tokio::test]
async fn delayed_and_failing_deliveries_are_retried_until_they_arrive() {
    let w = World::new().await;
    w.sandbox.set_faults(Faults {
        webhook_delay_ms: 50,
        fail_webhook_deliveries: 3,
        ..Faults::default()
    });
    let (session, _) = w.card_payment("pay_retry", "4242424242424242", false).await;
    let hooks = w.wait_webhooks(&session, 2).await;
    assert_eq!(hooks.len(), 2);
    assert!(w.sandbox.webhook_stats().failed_attempts >= 3);
}

#[tokio::test]
async fn api_5xx_is_an_unknown_outcome_and_nothing_was_done() {
    let w = World::new().await;
    w.sandbox.set_faults(Faults {
        api_5xx: 1,
        ..Faults::default()
    });
    let request = CreateSession {
        project: Project::Main,
        payment_id: PaymentId::parse("pay_5").unwrap(),
        amount: rub(100),
        customer: CustomerReference::parse("lucky").unwrap(),
        recurrent: false,
        idempotency_key: "pay_5:create".into(),
    };
    let result = w.gateway.create_session(request.clone()).await;
    assert!(
        matches!(result, Err(GatewayError::UnknownOutcome(_))),
        "{result:?}"
    );
    // Nothing was executed: the same idempotency key is still fresh.
    let created = w.gateway.create_session(request).await.unwrap();
    assert_eq!(created.status, SessionStatus::Created);
}

#[tokio::test]
async fn api_timeouts_and_lost_answers_are_unknown_outcomes_resolved_by_session_status() {
    let w = World::new().await;
    let session = w.session("pay_lost", "lucky", rub(10_000)).await;
    w.start(
        "pay_lost",
        &session,
        Instrument::Card(card("4242424242424242")),
        rub(10_000),
        false,
    )
    .await
    .unwrap();
    w.sandbox.set_faults(Faults {
        drop_responses: 1,
        hang_ms: 3_500,
        ..Faults::default()
    });
    let lost = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session.clone(),
            Project::Main,
            "pay_lost:confirm".into(),
        ))
        .await;
    assert!(
        matches!(lost, Err(GatewayError::UnknownOutcome(_))),
        "{lost:?}"
    );
    let status = w
        .gateway
        .session_status(SessionRef::new(session, Project::Main))
        .await
        .unwrap();
    assert_eq!(
        status.fact,
        Some(BankFact::Succeeded { token: None }),
        "it executed"
    );
    assert_eq!(w.sandbox.ledger().len(), 1, "charged once");

    w.sandbox.set_faults(Faults {
        api_timeouts: 1,
        hang_ms: 3_500,
        ..Faults::default()
    });
    let timed_out = w
        .gateway
        .session_status(SessionRef::new(
            BankSessionId::parse("ps_1").unwrap(),
            Project::Main,
        ))
        .await;
    assert!(
        matches!(timed_out, Err(GatewayError::UnknownOutcome(_))),
        "{timed_out:?}"
    );
}

#[tokio::test]
async fn the_lost_answer_test_card_executes_and_times_out() {
    let w = World::new().await;
    w.sandbox.set_faults(Faults {
        hang_ms: 3_500,
        ..Faults::default()
    });
    let session = w.session("pay_5126", "lucky", rub(10_000)).await;
    let sent = w
        .gateway
        .start_payment(StartPayment {
            project: Project::Main,
            session_id: session.clone(),
            payment_id: PaymentId::parse("pay_5126").unwrap(),
            instrument: Instrument::Card(card("4000000000005126")),
            amount: rub(10_000),
            customer: CustomerReference::parse("lucky").unwrap(),
            recurrent: false,
            return_url: None,
            idempotency_key: "pay_5126:start".into(),
        })
        .await;
    assert!(
        matches!(sent, Err(GatewayError::UnknownOutcome(_))),
        "{sent:?}"
    );
    assert_eq!(
        w.gateway
            .session_status(SessionRef::new(session, Project::Main))
            .await
            .unwrap()
            .fact,
        Some(BankFact::ReadyToConfirm)
    );
}

// ---- the tiny fault server ------------------------------------------------------

async fn fault_server() -> String {
    let router = Router::new()
        .route(
            "/garbage/api/v1/session/status",
            post(|| async { "this is not json" }),
        )
        .route(
            "/html500/api/v1/session/status",
            post(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "<html>oops</html>",
                )
            }),
        )
        .route(
            "/slow/api/v1/session/status",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "{}"
            }),
        )
        .route(
            "/error/api/v1/session/status",
            post(|| async {
                r#"{"status":"error","error":{"code":"internal_error","description":"try later"}}"#
            }),
        )
        .route(
            "/elsewhere/api/v1/session/status",
            post(|| async { r#"{"status":"ok","session":{"id":"ps_1","status":"accepted"}}"# }),
        )
        .route(
            "/redirect/api/v1/session/status",
            post(|| async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    // Followed, this would read as a valid, accepted session.
                    [("location", "/elsewhere/api/v1/session/status")],
                    "",
                )
            }),
        )
        .route(
            "/wrong/api/v1/session/confirm",
            post(|| async {
                r#"{"status":"error","error":{"code":"session_wrong_state","description":"no"}}"#
            }),
        );
    serve(router).await
}

fn gateway_at(base: &str) -> HttpGateway {
    let mut config = GatewayConfig::new(base, "p");
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    HttpGateway::new(
        config,
        Arc::new(
            Signer::from_pem(include_str!(
                "../../../bank131/tests/fixtures/keys/partner_pkcs8.pem"
            ))
            .unwrap(),
        ),
    )
    .unwrap()
}

fn ps() -> BankSessionId {
    BankSessionId::parse("ps_1").unwrap()
}

#[tokio::test]
async fn garbage_5xx_timeouts_and_redirects_are_unknown_outcomes() {
    let base = fault_server().await;
    // A redirect is not followed: the signed request never goes elsewhere.
    for path in ["garbage", "html500", "slow", "redirect"] {
        let result = gateway_at(&format!("{base}/{path}"))
            .session_status(SessionRef::new(ps(), Project::Main))
            .await;
        assert!(
            matches!(result, Err(GatewayError::UnknownOutcome(_))),
            "{path}: {result:?}"
        );
    }
}

#[tokio::test]
async fn error_envelopes_map_to_transient_or_conflict_by_code() {
    let base = fault_server().await;
    let result = gateway_at(&format!("{base}/error"))
        .session_status(SessionRef::new(ps(), Project::Main))
        .await;
    assert!(
        matches!(result, Err(GatewayError::Transient(_))),
        "{result:?}"
    );
    let result = gateway_at(&format!("{base}/wrong"))
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            ps(),
            Project::Main,
            "k".into(),
        ))
        .await;
    assert!(
        matches!(result, Err(GatewayError::Conflict(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_a_reset_is_unknown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let result = gateway_at(&format!("http://{closed}"))
        .session_status(SessionRef::new(ps(), Project::Main))
        .await;
    assert!(
        matches!(result, Err(GatewayError::Transient(_))),
        "{result:?}"
    );

    let resetter = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = resetter.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = resetter.accept().await else {
                return;
            };
            let mut buf = [0u8; 64];
            let _ = stream.readable().await;
            let _ = stream.try_read(&mut buf);
            drop(stream);
        }
    });
    let result = gateway_at(&format!("http://{addr}"))
        .session_status(SessionRef::new(ps(), Project::Main))
        .await;
    assert!(
        matches!(result, Err(GatewayError::UnknownOutcome(_))),
        "{result:?}"
    );
}

// ---- no card data in logs ----------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn card_numbers_and_cvv_never_reach_the_logs_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let w = World::new().await;
    let session = w.session("pay_log", "lucky", rub(10_000)).await;
    w.start(
        "pay_log",
        &session,
        Instrument::Card(card("4000000000009995")),
        rub(10_000),
        true,
    )
    .await
    .unwrap();
    let declined = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            session,
            Project::Main,
            "pay_log:confirm".into(),
        ))
        .await
        .unwrap();
    assert!(matches!(declined.fact, Some(BankFact::Failed(_))));
    // A refused start (bad card number) must not echo the card either.
    let session = w.session("pay_log2", "lucky", rub(10_000)).await;
    let refused = w
        .start(
            "pay_log2",
            &session,
            Instrument::Card(card("4000000000009996")),
            rub(10_000),
            true,
        )
        .await;
    let error = format!("{refused:?}");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("session/start/payment"),
        "the capture works: {logs}"
    );
    // The card numbers, and the CVV's field name: request bodies are never logged.
    for secret in ["4000000000009995", "4000000000009996", "security_code"] {
        assert!(!logs.contains(secret), "{secret} in logs");
        assert!(!error.contains(secret), "{secret} in error");
    }
}

// ---- the customer's pages ------------------------------------------------------

#[tokio::test]
async fn the_customer_pages_show_the_qr_code_the_widget_form_and_send_3ds_back() {
    let w = World::new().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let qr_session = w.session("pay_qrpage", "lucky", rub(1_000)).await;
    w.start(
        "pay_qrpage",
        &qr_session,
        Instrument::Fps(None),
        rub(1_000),
        true,
    )
    .await
    .unwrap();
    let confirmed = w
        .gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            qr_session.clone(),
            Project::Main,
            "pay_qrpage:confirm".into(),
        ))
        .await
        .unwrap();
    let Some(BankFact::ActionRequired(NextAction::Qr { content })) = confirmed.fact else {
        panic!("{:?}", confirmed.fact)
    };
    let page = http
        .get(format!("{}/qr/{qr_session}", w.sandbox_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<svg") && page.contains(&content.replace('&', "&amp;")),
        "the QR code of the deeplink"
    );
    assert!(page.contains("id=\"pay\"") && page.contains("id=\"expire\""));

    let widget_session = w.session("pay_widgetpage", "lucky", rub(1_000)).await;
    let widget = w
        .gateway
        .widget_token(SessionRef::new(widget_session, Project::Main), true)
        .await
        .unwrap();
    let page = http
        .get(format!("{}/widget/{}", w.sandbox_url, widget.public_token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("name=\"number\"") && page.contains("I agree to recurring payments"),
        "{page}"
    );

    let three_ds = w.session("pay_3dspage", "lucky", rub(1_000)).await;
    w.start(
        "pay_3dspage",
        &three_ds,
        Instrument::Card(card("4000000000003220")),
        rub(1_000),
        true,
    )
    .await
    .unwrap();
    w.gateway
        .session_command(SessionCall::new(
            SessionCommand::Confirm,
            three_ds.clone(),
            Project::Main,
            "pay_3dspage:confirm".into(),
        ))
        .await
        .unwrap();
    let page = http
        .get(format!("{}/3ds/{three_ds}", w.sandbox_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"approve\"") && page.contains("10.00 RUB"),
        "{page}"
    );
    let declined = http
        .post(format!("{}/3ds/{three_ds}/decline", w.sandbox_url))
        .send()
        .await
        .unwrap();
    assert!(declined.status().is_redirection());
    assert_eq!(
        declined.headers()["location"],
        "https://shop.example/return",
        "back to return_url"
    );
    let status = w
        .gateway
        .session_status(SessionRef::new(three_ds, Project::Main))
        .await
        .unwrap();
    assert!(matches!(status.fact, Some(BankFact::Failed(ref f)) if f.code.as_str() == "3DS_error"));
}

#[tokio::test]
async fn customer_present_payments_run_on_the_3ds_project_and_each_session_stays_on_its_own() {
    let partner_signer = Arc::new(Signer::generate().unwrap());
    let sandbox = Sandbox::start(SandboxConfig {
        project: "main-project, three-ds-project".into(),
        partner_keys: Verifier::from_pems([partner_signer.public_pem().unwrap().as_str()]).unwrap(),
        bank_signer: Arc::new(Signer::generate().unwrap()),
        webhook_url: "http://127.0.0.1:9/webhooks/bank131".into(),
        state_file: None,
    })
    .unwrap();
    let url = serve(sandbox.router()).await;
    let mut config = GatewayConfig::new(&url, "main-project");
    config.project_3ds = Some("three-ds-project".into());
    let gateway = HttpGateway::new(config, partner_signer.clone()).unwrap();
    let pay = |project: Project, id: &'static str, instrument: Instrument| {
        let gateway = gateway.clone();
        async move {
            let session = gateway
                .create_session(CreateSession {
                    project,
                    payment_id: PaymentId::parse(id).unwrap(),
                    amount: rub(1_000),
                    customer: CustomerReference::parse("lucky").unwrap(),
                    recurrent: true,
                    idempotency_key: format!("{id}:create"),
                })
                .await
                .unwrap()
                .session_id;
            gateway
                .start_payment(StartPayment {
                    project,
                    session_id: session.clone(),
                    payment_id: PaymentId::parse(id).unwrap(),
                    instrument,
                    amount: rub(1_000),
                    customer: CustomerReference::parse("lucky").unwrap(),
                    recurrent: true,
                    return_url: Some("https://shop.example/return".into()),
                    idempotency_key: format!("{id}:start"),
                })
                .await
                .unwrap();
            let done = gateway
                .session_command(SessionCall::new(
                    SessionCommand::Confirm,
                    session.clone(),
                    project,
                    format!("{id}:confirm"),
                ))
                .await
                .unwrap();
            (session, done)
        }
    };
    let (card_session, done) = pay(
        Project::for_method(&PaymentMethod::Card),
        "pay_card",
        Instrument::Card(card("4242424242424242")),
    )
    .await;
    let secret = issued_token(done.fact.as_ref());
    let mit = PaymentMethod::Token {
        token_id: TokenId::parse("tok_1").unwrap(),
        initiator: Initiator::Merchant,
    };
    let (mit_session, _) = pay(
        Project::for_method(&mit),
        "pay_mit",
        Instrument::Token {
            secret,
            initiator: Initiator::Merchant,
        },
    )
    .await;
    let project_of = |session: &BankSessionId| {
        sandbox
            .ledger()
            .into_iter()
            .find(|e| e.session_id == session.as_str())
            .map(|e| e.project)
    };
    assert_eq!(
        project_of(&card_session).as_deref(),
        Some("three-ds-project")
    );
    assert_eq!(project_of(&mit_session).as_deref(), Some("main-project"));
    // A session answers only the project that created it.
    let wrong = gateway
        .session_status(SessionRef::new(card_session, Project::Main))
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, GatewayError::Permanent { code, .. } if code.as_str() == "authorization_error"),
        "{wrong:?}"
    );
}
