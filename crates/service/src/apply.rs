//! Changing a stored payment: apply a fact or command, and commit the payment
//! with everything it causes (tokens, events, commands, the subscription charge).

use domain::{
    Applied, BankCode, BankDetails, BankFact, BankSessionId, Effect, Failure, Ignored, IssuedToken,
    Outcome, Payment, PaymentId, PaymentMethod, PaymentStatus, RecurrentToken, State, TokenId,
    TokenMethod,
};
use ports::{
    ChangeSet, GatewayError, NewEvent, OutboxCommand, SessionSnapshot, Subject, Versioned, Write,
};
use time::OffsetDateTime;

use crate::retry::Attempt;
use crate::{Service, ServiceError};

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
    /// The bank issued the widget's public token.
    ShowWidget(String),
    /// `session/create` answered: the payment runs in this session.
    AttachSession(BankSessionId),
    /// Fails a payment that was never started in a bank session; ignored
    /// when another path has attached a session since (it carries the payment).
    FailUnstarted(Failure),
    /// What a bank answer or webhook said: a fact, if any, and the details
    /// beside it (the bank's payment id, the card, the fee).
    Bank(Option<BankFact>, BankDetails),
}

impl PaymentChange {
    /// A snapshot's fact and details.
    pub(crate) fn of(snapshot: SessionSnapshot) -> Self {
        Self::Bank(snapshot.fact, snapshot.details)
    }
}

/// The failure a refused request leaves on the payment: the bank's code
/// verbatim when it gave one.
pub(crate) fn failure_of(error: &GatewayError) -> Failure {
    let (code, message) = match error {
        GatewayError::Permanent { code, message } => (code.clone(), message.clone()),
        GatewayError::Conflict(m) => (BankCode::SessionWrongState.code(), m.clone()),
        GatewayError::NotFound => (
            BankCode::InvalidRequest.code(),
            "the bank does not know this session".to_owned(),
        ),
        GatewayError::Transient(m) | GatewayError::UnknownOutcome(m) => {
            (BankCode::ProviderUnavailable.code(), m.clone())
        }
    };
    Failure { code, message }
}

/// The queue row a payment change settles in its own commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settles {
    /// None.
    Nothing,
    /// The inbox webhook it applies (marked applied).
    Webhook(i64),
    /// The outbox command whose answer it records (removed from the queue).
    Command(i64),
}

/// Why a payment ends without a bank call: its token was disabled before it
/// was sent.
pub(crate) fn token_disabled() -> Failure {
    Failure {
        code: BankCode::TokenInactive.code(),
        message: "the token was disabled before the payment was sent".into(),
    }
}

impl Service {
    /// A payment by id, with its version.
    pub(crate) async fn read_payment(
        &self,
        id: &PaymentId,
    ) -> Result<Versioned<Payment>, ServiceError> {
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
        let (stored, applied) = self
            .change_read_payment(id, None, change, Settles::Nothing)
            .await?;
        Ok((stored.value, applied))
    }

    /// [`Service::change_payment`] starting from a payment already read
    /// (re-read only after a conflict), and settling the queue row that
    /// brought the change (a webhook applied, a command carried out) in the
    /// same commit, whether the change moved the payment or not. Returns
    /// the payment as stored now, with its version, so that the next step
    /// need not read it again.
    pub(crate) async fn change_read_payment<'a>(
        &'a self,
        id: &'a PaymentId,
        mut first: Option<Versioned<Payment>>,
        change: PaymentChange,
        settles: Settles,
    ) -> Result<(Versioned<Payment>, Applied<PaymentStatus>), ServiceError> {
        self.retry_on_conflict(&format!("payment {id}"), |number, now| {
            let read = first.take();
            let change = change.clone();
            Box::pin(async move {
                let read = match read {
                    Some(read) => read,
                    None => self.read_payment(id).await?,
                };
                let (change, guard) = self.token_guard(change, &read.value, number > 0).await?;
                let mut payment = read.value;
                let version = read.version;
                let outcome = apply(&mut payment, change, now)?;
                let applied = outcome.applied.clone();
                let mut changes = if applied.is_changed() {
                    self.changes_for(&mut payment, Some(read.version), outcome, now)
                        .await?
                } else {
                    ChangeSet::default()
                };
                match settles {
                    Settles::Nothing => {}
                    Settles::Webhook(id) => changes.inbox_applied.push(id),
                    Settles::Command(id) => changes.outbox_done.push(id),
                }
                // A write of the payment takes its version one up (the port's rule).
                let written = changes.payments.iter().any(|w| w.value.id() == id);
                if written {
                    changes.chargeable_token = guard;
                }
                let stored = |value| Versioned {
                    value,
                    version: version + i64::from(written),
                };
                Ok(if changes.is_empty() {
                    Attempt::Unchanged((stored(payment), applied))
                } else {
                    Attempt::Commit(changes, (stored(payment), applied))
                })
            })
        })
        .await
    }

    /// What a change must be checked against when written: a token payment's
    /// new session is recorded only while its token can be charged (the next
    /// step sends the payment with it). The write checks that itself, with no
    /// read; only after a conflict, which may be that very check, is the
    /// token read, and one disabled since ends the payment unsent.
    async fn token_guard(
        &self,
        change: PaymentChange,
        payment: &Payment,
        after_conflict: bool,
    ) -> Result<(PaymentChange, Option<TokenId>), ServiceError> {
        let (PaymentChange::AttachSession(_), PaymentMethod::Token { token_id, .. }) =
            (&change, payment.method())
        else {
            return Ok((change, None));
        };
        if after_conflict {
            let token = self.deps.tokens.get(token_id).await?;
            if !token.is_some_and(|t| t.value.can_charge()) {
                return Ok((PaymentChange::FailUnstarted(token_disabled()), None));
            }
        }
        Ok((change, Some(token_id.clone())))
    }

    /// Turns a payment's outcome into the writes of one commit: the payment,
    /// new tokens, events, outbox commands and the subscription charge it settles.
    pub(crate) async fn changes_for(
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
                    // The bank may hand back a token recur already holds (the
                    // charged one, echoed): one bank token is one tok_.
                    if let Some(known) = self.deps.tokens.by_secret(&issued.secret).await? {
                        payment.attach_token(known.value.id.clone());
                        continue;
                    }
                    let token = self.new_token(payment, &issued, now).await?;
                    payment.attach_token(token.id.clone());
                    changes
                        .events
                        .push(self.token_event("token.created", &token));
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

    /// The bank refused a token as dead (deactivated binding, expired or
    /// unknown card): it is never charged again.
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
        if !BankCode::parse(failure.code.as_str()).is_some_and(BankCode::kills_token) {
            return Ok(());
        }
        let Some(mut read) = self.deps.tokens.get(token_id).await? else {
            return Ok(());
        };
        if read.value.observe_info(false, None, now).is_changed() {
            changes
                .events
                .push(self.token_event("token.disabled", &read.value));
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
            PaymentMethod::Card | PaymentMethod::Widget { .. } => (TokenMethod::Card, None),
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
        token.card.clone_from(&payment.bank_details().card);
        Ok(token)
    }

    /// A merchant event about a token.
    pub(crate) fn token_event(&self, kind: &'static str, token: &RecurrentToken) -> NewEvent {
        NewEvent {
            kind,
            subject: Subject::Token(token.id.clone()),
            data: self.deps.presenter.token(token),
        }
    }
}

/// Applies one change to a payment in memory.
fn apply(
    payment: &mut Payment,
    change: PaymentChange,
    now: OffsetDateTime,
) -> Result<Outcome, ServiceError> {
    Ok(match change {
        PaymentChange::Fact(fact) => payment.apply(fact, now),
        PaymentChange::OutcomeUnknown => {
            if payment.status().is_terminal() || payment.outcome_unknown() {
                return Ok(Outcome {
                    applied: Applied::Ignored(Ignored::Duplicate),
                    effects: Vec::new(),
                });
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
        PaymentChange::ShowWidget(public_token) => payment.show_widget(public_token, now),
        PaymentChange::FailUnstarted(failure) => {
            if payment.session_id().is_some() {
                Outcome {
                    applied: Applied::Ignored(Ignored::Stale),
                    effects: Vec::new(),
                }
            } else {
                payment.apply(BankFact::Failed(failure), now)
            }
        }
        PaymentChange::AttachSession(session) => Outcome {
            applied: payment.attach_session(session, now),
            effects: Vec::new(),
        },
        PaymentChange::Bank(fact, details) => {
            let learnt = payment.observe_bank_details(details, now);
            let outcome = match fact {
                Some(fact) => payment.apply(fact, now),
                None => Outcome {
                    applied: Applied::Ignored(Ignored::Duplicate),
                    effects: Vec::new(),
                },
            };
            if learnt && !outcome.applied.is_changed() {
                Outcome {
                    applied: Applied::Changed {
                        from: payment.status(),
                        to: payment.status(),
                    },
                    effects: Vec::new(),
                }
            } else {
                outcome
            }
        }
    })
}
