//! Payments: start, apply bank facts, confirm, cancel, refund.

use domain::{
    Applied, BankFact, BankSessionId, Confirmation, CustomerReference, DeclineClass, Effect,
    ErrorCode, Failure, Ignored, Initiator, IssuedToken, Money, NewPayment, Outcome, Payment,
    PaymentId, PaymentMethod, PaymentStatus, RecurrentToken, State, SubscriptionService, TokenId,
    TokenMethod,
};
use ports::{
    CardData, ChangeSet, CreateSession, GatewayError, Instrument, NewEvent, OutboxCommand,
    StartPayment, StoreError, Subject, Versioned, Write,
};
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use crate::workers::SessionCommand;
use crate::{Service, ServiceError};

/// How the merchant wants the payment paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodRequest {
    /// Card data (sent to the bank, never stored).
    Card(CardData),
    /// The bank's widget.
    Widget,
    /// A saved token.
    Token {
        /// The token.
        token_id: TokenId,
        /// MIT or CIT.
        initiator: Initiator,
    },
    /// SBP payment.
    Fps(Option<SubscriptionService>),
    /// SBP binding.
    FpsBinding(Option<SubscriptionService>),
}

/// `POST /v1/payments`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPaymentCommand {
    /// Who pays.
    pub customer: CustomerReference,
    /// How much.
    pub amount: Money,
    /// How.
    pub method: MethodRequest,
    /// Ask for a recurrent token.
    pub save_token: bool,
    /// Automatic or manual confirmation.
    pub confirmation: Confirmation,
    /// Where the customer returns after 3-D Secure.
    pub return_url: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Opaque merchant metadata (JSON text).
    pub metadata: Option<String>,
}

/// What to do to a stored payment.
#[derive(Debug, Clone)]
pub(crate) enum PaymentChange {
    /// Apply a bank fact.
    Fact(BankFact),
    /// A request's outcome is unknown: keep it pending for reconciliation.
    OutcomeUnknown,
    /// The merchant confirms.
    Confirm,
    /// The merchant cancels.
    Cancel,
}

/// How often a write that lost an optimistic-concurrency race is retried.
pub(crate) const CONFLICT_RETRIES: usize = 5;

impl Service {
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.deps.clock.now()
    }

    /// Starts a payment of any method. The payment is stored before the bank
    /// is called, the session is created (and stored) before money can move,
    /// and our payment id travels in the session's metadata, so every unknown
    /// outcome stays resolvable.
    pub async fn start_payment(&self, cmd: StartPaymentCommand) -> Result<Payment, ServiceError> {
        let (method, instrument) = match cmd.method {
            MethodRequest::Card(card) => (PaymentMethod::Card, Some(Instrument::Card(card))),
            MethodRequest::Widget => (PaymentMethod::Widget, None),
            MethodRequest::Token {
                token_id,
                initiator,
            } => {
                let token = self.chargeable_token(&token_id, &cmd.customer).await?;
                (
                    PaymentMethod::Token {
                        token_id,
                        initiator,
                    },
                    Some(Instrument::Token {
                        secret: token.secret,
                        initiator,
                    }),
                )
            }
            MethodRequest::Fps(service) => (
                PaymentMethod::Fps {
                    subscription_service: service.clone(),
                },
                Some(Instrument::Fps(service)),
            ),
            MethodRequest::FpsBinding(service) => (
                PaymentMethod::FpsBinding {
                    subscription_service: service.clone(),
                },
                Some(Instrument::FpsBinding(service)),
            ),
        };
        let payment = Payment::new(
            NewPayment {
                id: self.deps.ids.payment_id(),
                customer: cmd.customer,
                amount: cmd.amount,
                method,
                save_token: cmd.save_token,
                confirmation: cmd.confirmation,
                return_url: cmd.return_url,
                description: cmd.description,
                metadata: cmd.metadata,
            },
            self.now(),
        )
        .map_err(ServiceError::invalid)?;
        self.run_payment(payment, instrument, ChangeSet::default())
            .await
    }

    /// A token that exists, belongs to `customer` and can be charged. No bank call.
    pub(crate) async fn chargeable_token(
        &self,
        token_id: &TokenId,
        customer: &CustomerReference,
    ) -> Result<RecurrentToken, ServiceError> {
        let token = self
            .deps
            .tokens
            .get(token_id)
            .await?
            .ok_or(ServiceError::NotFound("token"))?
            .value;
        if token.customer != *customer {
            return Err(ServiceError::Invalid(
                "the token belongs to another customer".into(),
            ));
        }
        if !token.can_charge() {
            return Err(ServiceError::TokenInactive);
        }
        Ok(token)
    }

    /// Stores `payment` (with `with`), creates its bank session and starts it.
    pub(crate) async fn run_payment(
        &self,
        mut payment: Payment,
        instrument: Option<Instrument>,
        mut with: ChangeSet,
    ) -> Result<Payment, ServiceError> {
        let id = payment.id().clone();
        with.payments.push(Write::insert(payment.clone()));
        self.deps.uow.commit(with, self.now()).await?;

        let created = self
            .deps
            .gateway
            .create_session(CreateSession {
                payment_id: id.clone(),
                amount: payment.amount(),
                customer: payment.customer().clone(),
                recurrent: payment.save_token(),
                idempotency_key: format!("{id}:create"),
            })
            .await;
        let session_id = match created {
            Ok(snapshot) => snapshot.session_id,
            Err(error) => {
                // No session means no money could move: the payment failed.
                warn!(payment_id = %id, %error, "session/create failed");
                self.change_payment(
                    &id,
                    PaymentChange::Fact(BankFact::Failed(failure_of(&error))),
                )
                .await?;
                return Err(error.into());
            }
        };
        payment.attach_session(session_id.clone(), self.now());
        let changes = ChangeSet {
            payments: vec![Write {
                value: payment.clone(),
                expected_version: Some(1),
            }],
            ..ChangeSet::default()
        };
        self.deps.uow.commit(changes, self.now()).await?;

        let change = match instrument {
            None => match self
                .deps
                .gateway
                .widget_token(session_id, payment.save_token())
                .await
            {
                Ok(widget) => {
                    PaymentChange::Fact(BankFact::ActionRequired(domain::NextAction::Widget {
                        public_token: widget.public_token,
                    }))
                }
                Err(error) => gateway_failure(&id, error),
            },
            Some(instrument) => {
                let started = self
                    .deps
                    .gateway
                    .start_payment(StartPayment {
                        session_id,
                        payment_id: id.clone(),
                        instrument,
                        amount: payment.amount(),
                        customer: payment.customer().clone(),
                        recurrent: payment.save_token(),
                        return_url: payment.return_url().map(str::to_owned),
                        idempotency_key: format!("{id}:start"),
                    })
                    .await;
                match started {
                    Ok(snapshot) => match snapshot.fact {
                        Some(fact) => PaymentChange::Fact(fact),
                        None => return self.payment(&id).await,
                    },
                    Err(error) => gateway_failure(&id, error),
                }
            }
        };
        let (payment, _) = self.change_payment(&id, change).await?;
        self.follow_up(payment).await
    }

    /// Sends at once the session command a payment is waiting for, so that
    /// the answer already shows what comes next (the 3-D Secure redirect, the
    /// QR code). The outbox holds the same command and retries it if this
    /// attempt fails; a command that went through is a no-op there.
    async fn follow_up(&self, mut payment: Payment) -> Result<Payment, ServiceError> {
        // At most confirm, then capture (a held card), then nothing.
        for _ in 0..3 {
            let id = payment.id().clone();
            let (command, queued) = if payment.awaits_bank_confirmation() {
                (
                    SessionCommand::Confirm,
                    OutboxCommand::ConfirmSession(id.clone()),
                )
            } else if payment.awaits_capture() {
                (
                    SessionCommand::Capture,
                    OutboxCommand::CaptureSession(id.clone()),
                )
            } else if payment.cancel_requested() && !payment.status().is_terminal() {
                (
                    SessionCommand::Cancel,
                    OutboxCommand::CancelSession(id.clone()),
                )
            } else {
                return Ok(payment);
            };
            if let Err(error) = self.session_command(&id, command).await {
                warn!(payment_id = %id, %error, "inline session command failed; the outbox retries it");
                return Ok(payment);
            }
            if let Err(error) = self.deps.outbox.discard(&queued).await {
                // Harmless: the outbox runs it again and finds nothing to do.
                debug!(payment_id = %id, %error, "could not discard a command already carried out");
            }
            payment = self.payment(&id).await?;
        }
        Ok(payment)
    }

    /// A payment by id.
    pub async fn payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        Ok(self.read_payment(id).await?.value)
    }

    async fn read_payment(&self, id: &PaymentId) -> Result<Versioned<Payment>, ServiceError> {
        self.deps
            .payments
            .get(id)
            .await?
            .ok_or(ServiceError::NotFound("payment"))
    }

    /// Applies a change to a stored payment, re-reading and retrying when a
    /// concurrent writer (a webhook overtaking our own answer) got there first.
    /// Ignored facts write nothing.
    pub(crate) async fn change_payment(
        &self,
        id: &PaymentId,
        change: PaymentChange,
    ) -> Result<(Payment, Applied<PaymentStatus>), ServiceError> {
        for _ in 0..CONFLICT_RETRIES {
            let read = self.read_payment(id).await?;
            let mut payment = read.value;
            let now = self.now();
            let outcome = match change.clone() {
                PaymentChange::Fact(fact) => payment.apply(fact, now),
                PaymentChange::OutcomeUnknown => {
                    if payment.status().is_terminal() || payment.outcome_unknown() {
                        return Ok((payment, Applied::Ignored(Ignored::Duplicate)));
                    }
                    payment.mark_outcome_unknown(now);
                    Outcome {
                        applied: Applied::Changed {
                            from: payment.status(),
                            to: payment.status(),
                        },
                        effects: Vec::new(),
                    }
                }
                PaymentChange::Confirm => payment
                    .confirm(now)
                    .map_err(|e| ServiceError::State(e.to_string()))?,
                PaymentChange::Cancel => payment
                    .cancel(now)
                    .map_err(|e| ServiceError::State(e.to_string()))?,
            };
            let applied = outcome.applied.clone();
            if !applied.is_changed() {
                return Ok((payment, applied));
            }
            let changes = self
                .changes_for(&mut payment, Some(read.version), outcome, now)
                .await?;
            match self.deps.uow.commit(changes, now).await {
                Ok(()) => return Ok((payment, applied)),
                Err(StoreError::Conflict(why)) => {
                    info!(payment_id = %id, %why, "concurrent update, retrying");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Store(StoreError::Conflict(format!(
            "payment {id} kept changing"
        ))))
    }

    /// Applies a fact about a bank session, found by our payment id (from the
    /// session's metadata) or by the session id. `None` when no payment is
    /// known yet (the bank can be faster than our own answer).
    pub async fn apply_bank_fact(
        &self,
        payment_id: Option<&PaymentId>,
        session_id: Option<&BankSessionId>,
        fact: BankFact,
    ) -> Result<Option<Applied<PaymentStatus>>, ServiceError> {
        let found = match (payment_id, session_id) {
            (Some(id), _) => self.deps.payments.get(id).await?,
            (None, Some(session)) => self.deps.payments.by_session(session).await?,
            (None, None) => None,
        };
        let Some(found) = found else { return Ok(None) };
        let (_, applied) = self
            .change_payment(found.value.id(), PaymentChange::Fact(fact))
            .await?;
        Ok(Some(applied))
    }

    /// The merchant confirms a payment in `requires_confirmation`.
    pub async fn confirm_payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        let (payment, _) = self.change_payment(id, PaymentChange::Confirm).await?;
        self.follow_up(payment).await
    }

    /// The merchant cancels a payment in `requires_confirmation`.
    pub async fn cancel_payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        let (payment, _) = self.change_payment(id, PaymentChange::Cancel).await?;
        self.follow_up(payment).await
    }

    /// Refunds a succeeded payment, fully when `amount` is `None`.
    pub async fn refund_payment(
        &self,
        id: &PaymentId,
        amount: Option<Money>,
    ) -> Result<Payment, ServiceError> {
        let payment = self.payment(id).await?;
        let left = payment
            .amount()
            .checked_sub(payment.refunded())
            .map_err(ServiceError::invalid)?;
        let amount = amount.unwrap_or(left);
        payment.check_refund(amount).map_err(|e| match e {
            domain::PaymentError::Transition(t) => ServiceError::State(t.to_string()),
            other => ServiceError::invalid(other),
        })?;
        let session = payment
            .session_id()
            .cloned()
            .ok_or(ServiceError::NotFound("bank session"))?;
        // The key names the refunded total it starts from: the same request
        // twice is one refund at the bank.
        let key = format!(
            "{id}:refund:{}:{}",
            payment.refunded().minor(),
            amount.minor()
        );
        let snapshot = self.deps.gateway.refund(session, Some(amount), key).await?;
        match snapshot.fact {
            Some(fact @ BankFact::Refunded { .. }) => {
                Ok(self.change_payment(id, PaymentChange::Fact(fact)).await?.0)
            }
            _ => self.payment(id).await,
        }
    }

    /// A customer's payments, newest first.
    pub async fn list_payments(
        &self,
        customer: &CustomerReference,
    ) -> Result<Vec<Payment>, ServiceError> {
        Ok(self.deps.payments.list_by_customer(customer, 100).await?)
    }

    /// Turns a payment's outcome into the writes of one commit: the payment,
    /// new tokens, events, outbox commands and the subscription charge it settles.
    async fn changes_for(
        &self,
        payment: &mut Payment,
        version: Option<i64>,
        outcome: Outcome,
        now: OffsetDateTime,
    ) -> Result<ChangeSet, ServiceError> {
        let mut changes = ChangeSet::default();
        let mut notify = Vec::new();
        let id = payment.id().clone();
        for effect in outcome.effects {
            match effect {
                Effect::ConfirmSession => changes
                    .outbox
                    .push(OutboxCommand::ConfirmSession(id.clone())),
                Effect::CancelSession => changes
                    .outbox
                    .push(OutboxCommand::CancelSession(id.clone())),
                Effect::CaptureSession => changes
                    .outbox
                    .push(OutboxCommand::CaptureSession(id.clone())),
                Effect::SaveToken(issued) => {
                    let token = self.new_token(payment, &issued, now).await?;
                    payment.attach_token(token.id.clone());
                    changes.events.push(NewEvent {
                        kind: "token.created",
                        subject: Subject::Token(token.id.clone()),
                        data: self.deps.presenter.token(&token),
                    });
                    changes.tokens.push(Write::insert(token));
                }
                Effect::Notify(event) => notify.push(event),
            }
        }
        if payment.status().is_terminal() {
            self.settle_charge(payment, now, &mut changes).await?;
            self.retire_dead_token(payment, now, &mut changes).await?;
        }
        for event in notify {
            changes.events.push(NewEvent {
                kind: event.as_str(),
                subject: Subject::Payment(id.clone()),
                data: self.deps.presenter.payment(payment),
            });
        }
        changes.payments.push(Write {
            value: payment.clone(),
            expected_version: version,
        });
        Ok(changes)
    }

    /// The bank refused a token as deactivated: it is never charged again.
    async fn retire_dead_token(
        &self,
        payment: &Payment,
        now: OffsetDateTime,
        changes: &mut ChangeSet,
    ) -> Result<(), ServiceError> {
        let (PaymentMethod::Token { token_id, .. }, Some(failure)) =
            (payment.method(), payment.failure())
        else {
            return Ok(());
        };
        if failure.code.as_str() != "binding_is_deactivated" {
            return Ok(());
        }
        let Some(mut read) = self.deps.tokens.get(token_id).await? else {
            return Ok(());
        };
        if read.value.observe_info(false, None, now).is_changed() {
            changes.events.push(NewEvent {
                kind: "token.disabled",
                subject: Subject::Token(token_id.clone()),
                data: self.deps.presenter.token(&read.value),
            });
            changes.tokens.push(Write::update(read));
        }
        Ok(())
    }

    async fn new_token(
        &self,
        payment: &Payment,
        issued: &IssuedToken,
        now: OffsetDateTime,
    ) -> Result<RecurrentToken, ServiceError> {
        let (method, service) = match payment.method() {
            PaymentMethod::Card | PaymentMethod::Widget => (TokenMethod::Card, None),
            PaymentMethod::Fps {
                subscription_service,
            }
            | PaymentMethod::FpsBinding {
                subscription_service,
            } => (
                TokenMethod::Fps,
                subscription_service.as_ref().map(|s| s.id().to_owned()),
            ),
            PaymentMethod::Token { token_id, .. } => {
                let source = self.deps.tokens.get(token_id).await?;
                (source.map_or(TokenMethod::Card, |t| t.value.method), None)
            }
        };
        let mut token = RecurrentToken::issued(
            self.deps.ids.token_id(),
            payment.customer().clone(),
            issued,
            method,
            payment.id().clone(),
            now,
        );
        token.subscription_service_id = service;
        Ok(token)
    }
}

/// What a failed bank call means for the payment.
fn gateway_failure(id: &PaymentId, error: GatewayError) -> PaymentChange {
    match error {
        GatewayError::UnknownOutcome(reason) => {
            warn!(payment_id = %id, %reason, "outcome unknown; left pending for reconciliation");
            PaymentChange::OutcomeUnknown
        }
        other => {
            info!(payment_id = %id, error = %other, "the bank refused the payment");
            PaymentChange::Fact(BankFact::Failed(failure_of(&other)))
        }
    }
}

/// The failure a refused request leaves on the payment: the bank's code
/// verbatim when it gave one.
pub(crate) fn failure_of(error: &GatewayError) -> Failure {
    let (code, message) = match error {
        GatewayError::Permanent { code, message } => (code.as_str(), message.clone()),
        GatewayError::Conflict(m) => ("session_wrong_state", m.clone()),
        GatewayError::NotFound => (
            "invalid_request",
            "the bank does not know this session".to_owned(),
        ),
        GatewayError::Transient(m) | GatewayError::UnknownOutcome(m) => {
            ("provider_unavailable", m.clone())
        }
    };
    Failure {
        code: ErrorCode::parse(code)
            .unwrap_or_else(|_| ErrorCode::parse("provider_error").expect("valid code")),
        message,
    }
}

/// The decline class of a finished payment that did not succeed.
pub(crate) fn decline_class(payment: &Payment) -> DeclineClass {
    match payment.failure() {
        Some(failure) => DeclineClass::of(&failure.code),
        None => DeclineClass::Cancelled,
    }
}
