//! Session commands (confirm, capture, cancel): sent inline when a payment
//! asks for one, and by the outbox, which retries every queued command.

use domain::{BankFact, Payment, PaymentId, SessionCommand};
use ports::{GatewayError, OutboxCommand, Project};
use time::Duration;
use tracing::{debug, info, warn};

use crate::apply::PaymentChange;
use crate::work::{BATCH, WorkReport, backoff};
use crate::{Service, ServiceError};

/// How long a claimed outbox command is ours before another worker may take it.
const LEASE: Duration = Duration::seconds(30);

/// The outbox command that queues a session command.
fn queued(id: &PaymentId, command: SessionCommand) -> OutboxCommand {
    match command {
        SessionCommand::Confirm => OutboxCommand::ConfirmSession(id.clone()),
        SessionCommand::Capture => OutboxCommand::CaptureSession(id.clone()),
        SessionCommand::Cancel => OutboxCommand::CancelSession(id.clone()),
    }
}

impl Service {
    /// Sends at once the session command a payment is waiting for, so that
    /// the answer already shows what comes next (the 3-D Secure redirect, the
    /// QR code). The outbox holds the same command and retries it if this
    /// attempt fails; a command that went through is a no-op there.
    pub(crate) async fn follow_up(&self, mut payment: Payment) -> Result<Payment, ServiceError> {
        // At most confirm, then capture (a held card), then nothing.
        for _ in 0..3 {
            let Some(command) = payment.pending_session_command() else {
                return Ok(payment);
            };
            let id = payment.id().clone();
            if let Err(error) = self.session_command(&id, command).await {
                warn!(payment_id = %id, %error, "inline session command failed; the outbox retries it");
                return Ok(payment);
            }
            if let Err(error) = self.deps.outbox.discard(&queued(&id, command)).await {
                // Harmless: the outbox runs it again and finds nothing to do.
                debug!(payment_id = %id, %error, "could not discard a command already carried out");
            }
            payment = self.payment(&id).await?;
        }
        Ok(payment)
    }

    /// Runs the due outbox commands (confirm, cancel, capture, disable token,
    /// deliver event). A failed command is retried with backoff, across restarts.
    pub async fn run_outbox(&self) -> Result<WorkReport, ServiceError> {
        let now = self.deps.wall_clock.now();
        let mut report = WorkReport::default();
        for item in self.deps.outbox.claim(now, BATCH, LEASE).await? {
            match self.execute(&item.command).await {
                Ok(()) => self.deps.outbox.complete(item.id).await?,
                Err(error) => {
                    warn!(command = ?item.command, attempts = item.attempts, %error, "outbox command failed; will retry");
                    let at = now + backoff(item.attempts);
                    self.deps
                        .outbox
                        .retry(item.id, at, &error.to_string())
                        .await?;
                    report.count(false);
                    continue;
                }
            }
            report.count(true);
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
            OutboxCommand::DisableToken(id) => self.disable_token_at_bank(id).await,
            OutboxCommand::DeliverEvent(id) => self.deliver_event(id).await,
        }
    }

    /// Sends a session command if the payment still waits for it (a command
    /// that the inline path already sent is a no-op when the outbox runs it).
    async fn session_command(
        &self,
        id: &PaymentId,
        command: SessionCommand,
    ) -> Result<(), ServiceError> {
        let read = self.read_payment(id).await?;
        let (Some(session), true) = (
            read.value.session_id().cloned(),
            read.value.pending_session_command() == Some(command),
        ) else {
            return Ok(());
        };
        let gateway = &self.deps.gateway;
        let project = Project::for_method(read.value.method());
        let result = match command {
            SessionCommand::Confirm => {
                gateway
                    .confirm(session, project, format!("{id}:confirm"))
                    .await
            }
            SessionCommand::Cancel => {
                gateway
                    .cancel(session, project, format!("{id}:cancel"))
                    .await
            }
            SessionCommand::Capture => {
                gateway
                    .capture(session, project, format!("{id}:capture"))
                    .await
            }
        };
        let change = match result {
            Ok(snapshot) => {
                let fact = match (command, snapshot.fact) {
                    (SessionCommand::Cancel, None | Some(BankFact::ReadyToConfirm)) => {
                        Some(BankFact::CancelConfirmed)
                    }
                    (_, fact) => fact,
                };
                Some(PaymentChange::Bank(fact, snapshot.details))
            }
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
        if let Some(change) = change {
            self.change_read_payment(id, Some(read), change, None)
                .await?;
        }
        Ok(())
    }
}
