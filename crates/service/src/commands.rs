//! The background steps the app runs in a loop: the webhook inbox, the
//! outbox, reconciliation of unknown outcomes, and the subscription scheduler.
//! Each step does one bounded batch and reports what it did.

use domain::{BankFact, PaymentId, State, TokenStatus};
use ports::{ChangeSet, GatewayError, InboundWebhook, OutboxCommand};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use tracing::{debug, info, warn};

use crate::payments::{PaymentChange, failure_of};
use crate::{Service, ServiceError};

/// What one batch of background work did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkReport {
    /// Items finished.
    pub done: usize,
    /// Items put back to try again later.
    pub deferred: usize,
}

const BATCH: u32 = 50;

/// A payment whose bank session was never recorded is failed after this long.
const ABANDONED_AFTER: Duration = Duration::minutes(10);

/// Exponential backoff from one second, capped at ten minutes.
pub(crate) fn backoff(attempts: u32) -> Duration {
    Duration::seconds(1_i64 << attempts.min(10)).min(Duration::minutes(10))
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum SessionCommand {
    Confirm,
    Cancel,
    Capture,
}

impl Service {
    /// `POST /webhooks/bank131`: verifies the signature over the raw bytes,
    /// then stores the body durably. Returns `false` for a duplicate.
    /// Parsing and effects come later ([`Service::apply_inbox`]).
    pub async fn receive_webhook(
        &self,
        body: &[u8],
        signature: &str,
    ) -> Result<bool, ServiceError> {
        self.deps
            .webhooks
            .verify(body, signature)
            .map_err(|_| ServiceError::Unauthorized)?;
        let webhook = InboundWebhook {
            dedupe_key: hex::encode(Sha256::digest(body)),
            body: body.to_vec(),
            received_at: self.now(),
        };
        Ok(self.deps.inbox.store(webhook).await?)
    }

    /// Applies the stored webhooks that are due. A webhook for a session we
    /// do not know yet is deferred and tried again (our own answer may still
    /// be on its way); an unreadable one is kept for inspection.
    pub async fn apply_inbox(&self) -> Result<WorkReport, ServiceError> {
        let now = self.deps.wall_clock.now();
        let mut report = WorkReport::default();
        for item in self.deps.inbox.pending(now, BATCH).await? {
            let decoded = match self.deps.webhooks.decode(&item.body) {
                Ok(decoded) => decoded,
                Err(error) => {
                    warn!(inbox_id = item.id, %error, "unreadable webhook kept for inspection");
                    self.deps.inbox.reject(item.id, &error.to_string()).await?;
                    report.done += 1;
                    continue;
                }
            };
            let applied = match decoded.fact {
                None => Ok(Some(())),
                Some(fact) => self
                    .apply_bank_fact(
                        decoded.payment_id.as_ref(),
                        decoded.session_id.as_ref(),
                        fact,
                    )
                    .await
                    .map(|found| found.map(|_| ())),
            };
            match applied {
                Ok(Some(())) => {
                    debug!(inbox_id = item.id, kind = %decoded.kind, "webhook applied");
                    let done = ChangeSet {
                        inbox_applied: vec![item.id],
                        ..ChangeSet::default()
                    };
                    self.deps.uow.commit(done, now).await?;
                    report.done += 1;
                }
                Ok(None) => {
                    let until = now + backoff(item.attempts);
                    self.deps
                        .inbox
                        .defer(item.id, until, "no payment for this session yet")
                        .await?;
                    report.deferred += 1;
                }
                Err(error) => {
                    warn!(inbox_id = item.id, %error, "applying a webhook failed; will retry");
                    self.deps
                        .inbox
                        .defer(item.id, now + backoff(item.attempts), &error.to_string())
                        .await?;
                    report.deferred += 1;
                }
            }
        }
        Ok(report)
    }

    /// Runs the due outbox commands (confirm, cancel, capture, disable token,
    /// deliver event). A failed command is retried with backoff, across restarts.
    pub async fn run_outbox(&self) -> Result<WorkReport, ServiceError> {
        let now = self.deps.wall_clock.now();
        let mut report = WorkReport::default();
        for item in self
            .deps
            .outbox
            .claim(now, BATCH, Duration::seconds(30))
            .await?
        {
            match self.execute(&item.command).await {
                Ok(()) => {
                    self.deps.outbox.complete(item.id).await?;
                    report.done += 1;
                }
                Err(error) => {
                    warn!(command = ?item.command, attempts = item.attempts, %error, "outbox command failed; will retry");
                    self.deps
                        .outbox
                        .retry(item.id, now + backoff(item.attempts), &error.to_string())
                        .await?;
                    report.deferred += 1;
                }
            }
        }
        Ok(report)
    }

    async fn execute(&self, command: &OutboxCommand) -> Result<(), ServiceError> {
        match command {
            OutboxCommand::ConfirmSession(id) => {
                self.session_command(id, SessionCommand::Confirm).await
            }
            OutboxCommand::CancelSession(id) => {
                self.session_command(id, SessionCommand::Cancel).await
            }
            OutboxCommand::CaptureSession(id) => {
                self.session_command(id, SessionCommand::Capture).await
            }
            OutboxCommand::DisableToken(id) => {
                let token = self.token(id, false).await?;
                if token.status() != TokenStatus::Disabling {
                    return Ok(());
                }
                let info = self
                    .deps
                    .gateway
                    .disable_token(token.secret.clone(), format!("{id}:disable"))
                    .await?;
                if info.is_active {
                    return Err(ServiceError::State(
                        "the bank still reports the token active".into(),
                    ));
                }
                self.token_disable_confirmed(id).await.map(|_| ())
            }
            OutboxCommand::DeliverEvent(id) => {
                let Some(sink) = &self.deps.event_sink else {
                    return Ok(());
                };
                let event = self
                    .deps
                    .events
                    .get(id)
                    .await?
                    .ok_or(ServiceError::NotFound("event"))?;
                sink.deliver(&event)
                    .await
                    .map_err(|why| ServiceError::Gateway(GatewayError::Transient(why)))
            }
        }
    }

    /// Sends a session command if the payment still needs it (a command
    /// that the inline path already sent is a no-op when the outbox runs it).
    pub(crate) async fn session_command(
        &self,
        id: &PaymentId,
        command: SessionCommand,
    ) -> Result<(), ServiceError> {
        let payment = self.payment(id).await?;
        let Some(session) = payment.session_id().cloned() else {
            return Ok(());
        };
        let needed = match command {
            SessionCommand::Confirm => payment.awaits_bank_confirmation(),
            SessionCommand::Capture => payment.awaits_capture(),
            SessionCommand::Cancel => payment.cancel_requested() && !payment.status().is_terminal(),
        };
        if !needed {
            return Ok(());
        }
        let gateway = &self.deps.gateway;
        let result = match command {
            SessionCommand::Confirm => gateway.confirm(session, format!("{id}:confirm")).await,
            SessionCommand::Cancel => gateway.cancel(session, format!("{id}:cancel")).await,
            SessionCommand::Capture => gateway.capture(session, format!("{id}:capture")).await,
        };
        let fact = match result {
            Ok(snapshot) => match (command, snapshot.fact) {
                (SessionCommand::Cancel, None | Some(BankFact::ReadyToConfirm)) => {
                    Some(BankFact::CancelConfirmed)
                }
                (_, fact) => fact,
            },
            Err(
                error @ (GatewayError::Permanent { .. }
                | GatewayError::Conflict(_)
                | GatewayError::NotFound),
            ) => {
                // The bank moved on without us; webhooks or reconciliation tell where to.
                info!(payment_id = %id, ?command, %error, "the bank refused a session command");
                None
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(fact) = fact {
            self.change_payment(id, PaymentChange::Fact(fact)).await?;
        }
        Ok(())
    }

    /// Asks the bank (`session/status`) about payments that have waited longer
    /// than `older_than` for news: unknown outcomes end as the bank says,
    /// never by sending the payment again.
    pub async fn reconcile(&self, older_than: Duration) -> Result<WorkReport, ServiceError> {
        let now = self.now();
        let mut report = WorkReport::default();
        for payment in self
            .deps
            .payments
            .stale_pending(now - older_than, BATCH)
            .await?
        {
            let id = payment.id().clone();
            let Some(session) = payment.session_id().cloned() else {
                // Stored but the session was never created: no money can have
                // moved. Wait long enough that a slow session/create is not
                // still on its way, then fail it.
                if payment.updated_at() > now - ABANDONED_AFTER {
                    continue;
                }
                let failure = failure_of(&GatewayError::Transient(
                    "the bank session was never created".into(),
                ));
                self.change_payment(&id, PaymentChange::Fact(BankFact::Failed(failure)))
                    .await?;
                report.done += 1;
                continue;
            };
            match self.deps.gateway.session_status(session).await {
                Ok(snapshot) => {
                    if let Some(fact) = snapshot.fact {
                        let (_, applied) =
                            self.change_payment(&id, PaymentChange::Fact(fact)).await?;
                        if applied.is_changed() {
                            info!(payment_id = %id, "reconciled with session/status");
                        }
                    }
                    report.done += 1;
                }
                Err(error) => {
                    warn!(payment_id = %id, %error, "session/status failed; will retry");
                    report.deferred += 1;
                }
            }
        }
        Ok(report)
    }

    /// Runs the jobs due at `now`: subscription charges.
    pub async fn run_scheduler(&self, now: OffsetDateTime) -> Result<WorkReport, ServiceError> {
        let done = self.charge_due_subscriptions(now).await?;
        Ok(WorkReport { done, deferred: 0 })
    }
}
