//! Session commands (confirm, capture, cancel): sent inline when a payment
//! asks for one, and by the outbox, which retries every queued command.

use domain::{BankFact, Payment, PaymentId, SessionCommand};
use ports::{
    CommandClaim, GatewayError, OutboxCommand, OutboxItem, Project, SessionCall, Versioned,
};
use time::Duration;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::apply::{PaymentChange, Settles};
use crate::work::{BATCH, WorkReport, backoff, group_by_subject, run_each};
use crate::{Service, ServiceError};

/// How long a claimed outbox command is ours before another worker may take it.
const LEASE: Duration = Duration::seconds(30);

/// How long a request waits for a session command a worker is sending.
const INLINE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether two commands are about the same payment or token (and so must run
/// in order). Event deliveries are ordered by the claim itself.
fn same_subject(a: &OutboxCommand, b: &OutboxCommand) -> bool {
    use OutboxCommand::{CancelSession, CaptureSession, ConfirmSession, DisableToken};
    let payment = |c: &OutboxCommand| match c {
        ConfirmSession(id) | CancelSession(id) | CaptureSession(id) => Some(id.clone()),
        _ => None,
    };
    match (a, b) {
        (DisableToken(x), DisableToken(y)) => x == y,
        _ => payment(a).is_some() && payment(a) == payment(b),
    }
}

/// A span naming a command's subject (`payment_id`, `token_id` or
/// `event_id`), so that every line logged while it runs, the bank
/// gateway's included, says what it is about.
fn subject_span(command: &OutboxCommand) -> tracing::Span {
    match command {
        OutboxCommand::ConfirmSession(id)
        | OutboxCommand::CancelSession(id)
        | OutboxCommand::CaptureSession(id) => info_span!("outbox", payment_id = %id),
        OutboxCommand::DisableToken(id) => info_span!("outbox", token_id = %id),
        OutboxCommand::DeliverEvent(id) => info_span!("outbox", event_id = %id),
    }
}

/// The outbox command that queues a session command.
fn queued(id: &PaymentId, command: SessionCommand) -> OutboxCommand {
    match command {
        SessionCommand::Confirm => OutboxCommand::ConfirmSession(id.clone()),
        SessionCommand::Capture => OutboxCommand::CaptureSession(id.clone()),
        SessionCommand::Cancel => OutboxCommand::CancelSession(id.clone()),
    }
}

/// The idempotency key of a payment's session command: one per payment and
/// command, so a resend is the same request to the bank.
pub(crate) fn command_key(id: &PaymentId, command: SessionCommand) -> String {
    let name = match command {
        SessionCommand::Confirm => "confirm",
        SessionCommand::Capture => "capture",
        SessionCommand::Cancel => "cancel",
    };
    format!("{id}:{name}")
}

impl Service {
    /// Sends at once the session command a payment is waiting for, so that
    /// the answer already shows what comes next (the 3-D Secure redirect, the
    /// QR code). The command's outbox row is claimed first, so that exactly
    /// one sender carries it out: when a worker holds it already (a
    /// `ready_to_confirm` webhook overtook this answer), the request waits for
    /// the payment to move on instead of sending it a second time; when this
    /// attempt fails, the outbox retries it.
    ///
    /// `payment` is as this request stored it, with its version: the command
    /// is decided on it without reading it again (a payment waiting for a
    /// command changes only by that command, whose outbox row is ours once
    /// claimed; should it have moved anyway, the bank's idempotency key makes
    /// the resend harmless and the versioned write after it re-reads).
    pub(crate) async fn follow_up(
        &self,
        mut payment: Versioned<Payment>,
    ) -> Result<Payment, ServiceError> {
        // At most confirm, then capture (a held card), then nothing.
        for _ in 0..3 {
            let Some(command) = payment.value.pending_session_command() else {
                return Ok(payment.value);
            };
            let id = payment.value.id().clone();
            let now = self.deps.wall_clock.now();
            payment = match self
                .deps
                .outbox
                .claim_command(&queued(&id, command), now, LEASE)
                .await?
            {
                CommandClaim::Claimed(item) => {
                    let sent =
                        self.session_command(&id, command, Some(payment.clone()), Some(item.id));
                    let (outcome, next) = match sent.await {
                        Ok((stored, removed)) => (Ok(removed), Some(stored)),
                        Err(error) => (Err(error), None),
                    };
                    if let Err(error) = self.record_outcome(&item, outcome, now).await {
                        // Harmless: the lease runs out and a worker carries
                        // it out again (a no-op if it went through).
                        debug!(payment_id = %id, %error, "could not record the command's outcome");
                    }
                    match next {
                        Some(next) => next,
                        None => return Ok(payment.value),
                    }
                }
                CommandClaim::Busy => {
                    debug!(payment_id = %id, ?command, "a worker is sending it; waiting for the payment to move");
                    return self.moved_on(&id, command).await;
                }
                // Carried out already (its row is gone): read where it stands.
                CommandClaim::NotQueued => self.session_command(&id, command, None, None).await?.0,
            };
        }
        Ok(payment.value)
    }

    /// The payment once it no longer waits for `command`, or as it is after
    /// [`INLINE_WAIT`] (the answer then shows it pending; the merchant is told
    /// the rest by events).
    async fn moved_on(
        &self,
        id: &PaymentId,
        command: SessionCommand,
    ) -> Result<Payment, ServiceError> {
        let deadline = tokio::time::Instant::now() + INLINE_WAIT;
        loop {
            let payment = self.payment(id).await?;
            if payment.pending_session_command() != Some(command)
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(payment);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Runs the due outbox commands (confirm, cancel, capture, disable token,
    /// deliver event). Commands of different payments, tokens and events run
    /// concurrently (at most [`Service::with_in_flight`] at a time); the commands of
    /// one payment or token run one after the other, in queue order. A failed
    /// command is retried with backoff, across restarts.
    pub async fn run_outbox(&self) -> Result<WorkReport, ServiceError> {
        let now = self.deps.wall_clock.now();
        let claimed = self.deps.outbox.claim(now, BATCH, LEASE).await?;
        let groups = group_by_subject(claimed, |a, b| same_subject(&a.command, &b.command));
        run_each(groups, self.in_flight, |item| self.run_command(item, now)).await
    }

    /// Runs one claimed command and records how it went; `true` when done.
    async fn run_command(
        &self,
        item: OutboxItem,
        now: time::OffsetDateTime,
    ) -> Result<bool, ServiceError> {
        let outcome = self
            .execute(&item)
            .instrument(subject_span(&item.command))
            .await;
        self.record_outcome(&item, outcome, now).await
    }

    /// Records how a claimed command went, whoever carried it out (a worker,
    /// or the request that started its payment): done, it leaves the outbox
    /// (unless the commit that recorded its answer `removed` it already);
    /// failed, it is tried again after its backoff. `true` when done.
    async fn record_outcome(
        &self,
        item: &OutboxItem,
        outcome: Result<bool, ServiceError>,
        now: time::OffsetDateTime,
    ) -> Result<bool, ServiceError> {
        match outcome {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.deps.outbox.complete(item.id).await?;
                Ok(true)
            }
            Err(error) => {
                subject_span(&item.command).in_scope(|| warn!(command = ?item.command, attempts = item.attempts, %error, "outbox command failed; will retry"));
                let at = now + backoff(item.attempts);
                self.deps
                    .outbox
                    .retry(item.id, at, &error.to_string())
                    .await?;
                Ok(false)
            }
        }
    }

    /// Carries out a claimed command; `true` when its row left the outbox
    /// with the commit that recorded its answer.
    async fn execute(&self, item: &OutboxItem) -> Result<bool, ServiceError> {
        let (id, session_command) = match &item.command {
            OutboxCommand::ConfirmSession(id) => (id, SessionCommand::Confirm),
            OutboxCommand::CancelSession(id) => (id, SessionCommand::Cancel),
            OutboxCommand::CaptureSession(id) => (id, SessionCommand::Capture),
            OutboxCommand::DisableToken(id) => {
                return self.disable_token_at_bank(id).await.map(|()| false);
            }
            OutboxCommand::DeliverEvent(id) => {
                return self.deliver_event(id).await.map(|()| false);
            }
        };
        self.session_command(id, session_command, None, Some(item.id))
            .await
            .map(|(_, removed)| removed)
    }

    /// Sends a session command if the payment still waits for it (a command
    /// that the inline path already sent is a no-op when the outbox runs it),
    /// and returns the payment as stored afterwards. The payment is read
    /// unless the caller passes it as stored (`known`). The answer's commit removes
    /// the command's outbox `row` too (one commit for both): the `bool` says
    /// whether it did.
    async fn session_command(
        &self,
        id: &PaymentId,
        command: SessionCommand,
        known: Option<Versioned<Payment>>,
        row: Option<i64>,
    ) -> Result<(Versioned<Payment>, bool), ServiceError> {
        let read = match known {
            Some(known) => known,
            None => self.read_payment(id).await?,
        };
        let (Some(session), true) = (
            read.value.session_id().cloned(),
            read.value.pending_session_command() == Some(command),
        ) else {
            return Ok((read, false));
        };
        let gateway = &self.deps.gateway;
        let project = Project::for_method(read.value.method());
        let call = SessionCall::new(command, session, project, command_key(id, command));
        let result = gateway.session_command(call).await;
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
        let Some(change) = change else {
            return Ok((read, false));
        };
        let settles = row.map_or(Settles::Nothing, Settles::Command);
        let (stored, _) = self
            .change_read_payment(id, Some(read), change, settles)
            .await?;
        Ok((stored, row.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use domain::{EventId, PaymentId, TokenId};
    use ports::OutboxCommand::{CancelSession, ConfirmSession, DeliverEvent, DisableToken};

    use super::same_subject;

    #[test]
    fn one_payments_or_tokens_commands_run_in_order_and_others_side_by_side() {
        let (p1, p2) = (
            PaymentId::parse("pay_1").unwrap(),
            PaymentId::parse("pay_2").unwrap(),
        );
        let t1 = TokenId::parse("tok_1").unwrap();
        assert!(same_subject(
            &ConfirmSession(p1.clone()),
            &CancelSession(p1.clone())
        ));
        assert!(!same_subject(
            &ConfirmSession(p1.clone()),
            &ConfirmSession(p2)
        ));
        assert!(same_subject(
            &DisableToken(t1.clone()),
            &DisableToken(t1.clone())
        ));
        assert!(!same_subject(&DisableToken(t1), &ConfirmSession(p1)));
        let e = EventId::parse("evt_1").unwrap();
        assert!(
            !same_subject(&DeliverEvent(e.clone()), &DeliverEvent(e)),
            "the claim orders events"
        );
    }
}
