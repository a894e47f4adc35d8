//! The harness: mockall mocks of every port, the stores backed by one
//! shared map, so that what a commit writes, a later read sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::*;
use ports::*;
use time::OffsetDateTime;

use crate::{Deps, Service, StartPaymentCommand};

#[derive(Default)]
pub(super) struct Db {
    pub(super) payments: HashMap<PaymentId, Versioned<Payment>>,
    pub(super) tokens: HashMap<TokenId, Versioned<RecurrentToken>>,
    pub(super) commits: Vec<ChangeSet>,
    /// Reads by id: payments, tokens.
    pub(super) payment_reads: usize,
    pub(super) token_reads: usize,
}

pub(super) type Shared = Arc<Mutex<Db>>;

pub(super) fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
}

pub(super) fn apply_write<K: std::hash::Hash + Eq, T: Clone>(
    map: &mut HashMap<K, Versioned<T>>,
    key: K,
    w: &Write<T>,
) -> Result<(), StoreError> {
    let current = map.get(&key).map(|v| v.version);
    if current != w.expected_version {
        return Err(StoreError::Conflict("version".into()));
    }
    map.insert(
        key,
        Versioned {
            value: w.value.clone(),
            version: current.unwrap_or(0) + 1,
        },
    );
    Ok(())
}

pub(super) struct Harness {
    pub(super) db: Shared,
    pub(super) gateway: MockPaymentGateway,
    /// Whether a session command's outbox row is there to claim (the
    /// stores' behaviour); else claims find none.
    pub(super) queued_commands: bool,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self {
            db: Shared::default(),
            gateway: MockPaymentGateway::new(),
            queued_commands: false,
        }
    }

    /// `session/create` answers session `ps_1`, once.
    pub(super) fn session_opens_once(mut self) -> Self {
        self.gateway
            .expect_create_session()
            .times(1)
            .returning(|_| Ok(snapshot("ps_1", None)));
        self
    }

    pub(super) fn with_queued_commands(mut self) -> Self {
        self.queued_commands = true;
        self
    }

    pub(super) fn with_token(self, active: bool) -> Self {
        let issued = IssuedToken {
            secret: RecurrentTokenSecret::parse("e9876f32bcd947f7").unwrap(),
            created_at: None,
            finished_at: None,
            is_active: active,
        };
        let token = RecurrentToken::issued(
            TokenId::parse("tok_1").unwrap(),
            CustomerReference::parse("lucky").unwrap(),
            &issued,
            TokenMethod::Card,
            PaymentId::parse("pay_0").unwrap(),
            now(),
        );
        self.db.lock().unwrap().tokens.insert(
            token.id.clone(),
            Versioned {
                value: token,
                version: 1,
            },
        );
        self
    }

    pub(super) fn service(self) -> (Service, Shared) {
        let db = self.db.clone();
        let mut uow = MockUnitOfWork::new();
        let d = db.clone();
        uow.expect_commit().returning(move |changes, _| {
            let mut db = d.lock().unwrap();
            let mut next_payments = db.payments.clone();
            let mut next_tokens = db.tokens.clone();
            if let Some(token) = &changes.chargeable_token
                && !db.tokens.get(token).is_some_and(|t| t.value.can_charge())
            {
                return Err(StoreError::Conflict("token no longer chargeable".into()));
            }
            for w in &changes.payments {
                apply_write(&mut next_payments, w.value.id().clone(), w)?;
            }
            for w in &changes.tokens {
                apply_write(&mut next_tokens, w.value.id.clone(), w)?;
            }
            db.payments = next_payments;
            db.tokens = next_tokens;
            db.commits.push(changes);
            Ok(())
        });
        let mut payments = MockPaymentRepository::new();
        let d = db.clone();
        payments.expect_get().returning(move |id| {
            let mut db = d.lock().unwrap();
            db.payment_reads += 1;
            Ok(db.payments.get(id).cloned())
        });
        let d = db.clone();
        payments.expect_by_session().returning(move |s| {
            Ok(d.lock()
                .unwrap()
                .payments
                .values()
                .find(|p| p.value.session_id() == Some(s))
                .cloned())
        });
        let d = db.clone();
        payments.expect_due_for_check().returning(move |at, _| {
            Ok(d.lock()
                .unwrap()
                .payments
                .values()
                .filter(|p| p.value.next_check_at().is_some_and(|due| due <= at))
                .map(|p| DueCheck {
                    payment: p.value.clone(),
                    checks: 0,
                })
                .collect())
        });
        payments.expect_checked().returning(|_, _| Ok(()));
        let mut tokens = MockTokenRepository::new();
        let d = db.clone();
        tokens.expect_get().returning(move |id| {
            let mut db = d.lock().unwrap();
            db.token_reads += 1;
            Ok(db.tokens.get(id).cloned())
        });
        let d = db.clone();
        tokens.expect_by_secret().returning(move |secret| {
            Ok(d.lock()
                .unwrap()
                .tokens
                .values()
                .find(|t| t.value.secret == *secret)
                .cloned())
        });
        let mut subscriptions = MockSubscriptionRepository::new();
        subscriptions
            .expect_charge_by_payment()
            .returning(|_| Ok(None));
        let mut ids = MockIdGenerator::new();
        let counter = Arc::new(Mutex::new(0));
        let c = counter.clone();
        ids.expect_payment_id().returning(move || {
            *c.lock().unwrap() += 1;
            PaymentId::parse(&format!("pay_{}", c.lock().unwrap())).unwrap()
        });
        ids.expect_token_id().returning(move || {
            *counter.lock().unwrap() += 1;
            TokenId::parse(&format!("tok_new{}", counter.lock().unwrap())).unwrap()
        });
        let mut outbox = MockOutbox::new();
        if self.queued_commands {
            outbox.expect_claim_command().returning(|command, _, _| {
                Ok(CommandClaim::Claimed(OutboxItem {
                    id: 1,
                    command: command.clone(),
                    attempts: 1,
                }))
            });
            // A command's row leaves with the commit of its answer, never alone.
            outbox.expect_complete().never();
        } else {
            outbox
                .expect_claim_command()
                .returning(|_, _, _| Ok(CommandClaim::NotQueued));
        }
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        let mut wall_clock = MockClock::new();
        wall_clock.expect_now().returning(now);
        let mut presenter = MockPresenter::new();
        presenter
            .expect_payment()
            .returning(|p| format!("{{\"id\":\"{}\"}}", p.id()));
        presenter
            .expect_token()
            .returning(|t| format!("{{\"id\":\"{}\"}}", t.id));
        presenter
            .expect_subscription()
            .returning(|s, _| format!("{{\"id\":\"{}\"}}", s.id()));
        let deps = Deps {
            gateway: Arc::new(self.gateway),
            webhooks: Arc::new(MockWebhookDecoder::new()),
            uow: Arc::new(uow),
            payments: Arc::new(payments),
            tokens: Arc::new(tokens),
            subscriptions: Arc::new(subscriptions),
            inbox: Arc::new(MockWebhookInbox::new()),
            outbox: Arc::new(outbox),
            events: Arc::new(MockEventLog::new()),
            event_sink: None,
            clock: Arc::new(clock),
            wall_clock: Arc::new(wall_clock),
            ids: Arc::new(ids),
            presenter: Arc::new(presenter),
            dunning: DunningPolicy::default(),
            telemetry: Arc::new(NoTelemetry),
        };
        (Service::new(deps), db)
    }
}

pub(super) fn token_payment(initiator: Initiator) -> StartPaymentCommand {
    StartPaymentCommand {
        customer: CustomerReference::parse("lucky").unwrap(),
        amount: Money::new(10_000, Currency::RUB).unwrap(),
        method: PaymentMethod::Token {
            token_id: TokenId::parse("tok_1").unwrap(),
            initiator,
        },
        card: None,
        save_token: false,
        confirmation: Confirmation::Automatic,
        return_url: Some("https://shop.example/return".into()),
        description: None,
        metadata: None,
        idempotency: None,
    }
}

pub(super) fn snapshot(session: &str, fact: Option<BankFact>) -> SessionSnapshot {
    SessionSnapshot {
        session_id: BankSessionId::parse(session).unwrap(),
        status: SessionStatus::InProgress,
        payment_status: None,
        payment_id: None,
        fact,
        details: BankDetails::default(),
    }
}
