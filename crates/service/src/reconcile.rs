//! Reconciliation: every unfinished payment without news is settled with
//! `session/status` on its own schedule (`Payment::next_check_at`, then
//! backing off), never by sending it again.

use domain::{
    BankCode, BankFact, Failure, Payment, PaymentMethod, PaymentStatus, SessionCommand,
    SessionStatus, State,
};
use ports::{DueCheck, GatewayError, Project, SessionCall, SessionRef};
use time::Duration;
use tracing::{Instrument, info, warn};

use crate::apply::PaymentChange;
use crate::commands::command_key;
use crate::work::{BATCH, WorkReport, run_each};
use crate::{Service, ServiceError};

/// How long the bank's widget public token works (its documented 24 hours).
const WIDGET_TOKEN_LIFETIME: Duration = Duration::hours(24);

/// What one check found.
enum Found {
    /// The payment moved (or ended): its schedule starts again.
    News,
    /// Nothing new: ask again later.
    Nothing,
}

impl Service {
    /// Checks every unfinished payment whose check is due at business time
    /// now: unknown outcomes at once, payments the bank works on after 30 s,
    /// payments waiting for the customer or the merchant after 15 minutes,
    /// each then backing off. A session the bank no longer knows, or a widget
    /// that expired unused (its session cancelled at the bank), ends the
    /// payment `cancelled` with the reason. Payments are checked side by
    /// side, at most [`Service::with_in_flight`] at a time.
    pub async fn reconcile(&self) -> Result<WorkReport, ServiceError> {
        let now = self.now();
        let due = self.deps.payments.due_for_check(now, BATCH).await?;
        // One check a payment: checks run side by side, with no order to keep.
        let groups = due.into_iter().map(|check| vec![check]).collect();
        run_each(groups, self.in_flight, |due| self.reconcile_one(due, now)).await
    }

    /// Checks one payment, and schedules its next check when nothing moved;
    /// `false` when the bank could not be asked.
    async fn reconcile_one(
        &self,
        DueCheck { payment, checks }: DueCheck,
        now: time::OffsetDateTime,
    ) -> Result<bool, ServiceError> {
        let id = payment.id().clone();
        let span = tracing::info_span!("reconcile", payment_id = %id);
        match self.check(&payment, checks).instrument(span).await {
            Ok(Found::News) => {
                self.deps.telemetry.reconciliation_check("news");
                Ok(true)
            }
            Ok(Found::Nothing) => {
                self.deps.telemetry.reconciliation_check("nothing");
                self.deps
                    .payments
                    .checked(&id, payment.recheck_at(checks, now))
                    .await?;
                Ok(true)
            }
            Err(error) => {
                self.deps.telemetry.reconciliation_check("failed");
                warn!(payment_id = %id, %error, "session/status failed; will retry");
                self.deps
                    .payments
                    .checked(&id, payment.recheck_at(checks, now))
                    .await?;
                Ok(false)
            }
        }
    }

    /// Asks the bank about one payment and applies what it says.
    async fn check(&self, payment: &Payment, checks: u32) -> Result<Found, ServiceError> {
        let id = payment.id();
        let now = self.now();
        let Some(session) = payment.session_id().cloned() else {
            // Stored, but its bank session was never created (the process
            // died, or session/create did not answer): nothing can have moved
            // money. It goes on with a new session: never failed for our own
            // trouble, never a new dunning attempt.
            let resumed = self.resume(payment, checks + 1).await?;
            let moved = resumed.session_id().is_some() || resumed.status().is_terminal();
            return Ok(if moved { Found::News } else { Found::Nothing });
        };
        let project = Project::for_method(payment.method());
        let snapshot = match self
            .deps
            .gateway
            .session_status(SessionRef::new(session.clone(), project))
            .await
        {
            Ok(snapshot) => snapshot,
            Err(GatewayError::NotFound) => {
                let reason = abandoned(
                    BankCode::SessionCancelled,
                    "the bank does not know this session",
                );
                return self.settle(payment, PaymentChange::Fact(reason)).await;
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(fact) = snapshot.fact {
            return self
                .settle(payment, PaymentChange::Bank(Some(fact), snapshot.details))
                .await;
        }
        let never_started = payment.status() == PaymentStatus::Pending
            && snapshot.status == SessionStatus::Created
            && snapshot.payment_status.is_none()
            && !matches!(payment.method(), PaymentMethod::Widget { .. });
        if never_started {
            // Its start was refused (a provider error) or lost before the
            // bank executed it: nothing moved, so it starts again.
            let restarted = self.restart(payment, session, checks + 1).await?;
            let moved = restarted.acquiring_status().is_some() || restarted.status().is_terminal();
            return Ok(if moved { Found::News } else { Found::Nothing });
        }
        let widget_expired = matches!(payment.method(), PaymentMethod::Widget { .. })
            && payment.status() == PaymentStatus::RequiresAction
            && snapshot.status == SessionStatus::Created
            && payment.created_at() + WIDGET_TOKEN_LIFETIME <= now;
        if widget_expired {
            // The customer never paid and can no longer: close the session at
            // the bank, and end the payment once the bank confirms.
            match self
                .deps
                .gateway
                .session_command(SessionCall::new(
                    SessionCommand::Cancel,
                    session,
                    project,
                    command_key(id, SessionCommand::Cancel),
                ))
                .await
            {
                // Conflict: the bank has nothing left to cancel either.
                Ok(_) | Err(GatewayError::Conflict(_)) => {}
                Err(error) => return Err(error.into()),
            }
            let reason = abandoned(
                BankCode::SessionCancelledByPartner,
                "the widget expired unused",
            );
            return self.settle(payment, PaymentChange::Fact(reason)).await;
        }
        Ok(Found::Nothing)
    }

    async fn settle(
        &self,
        payment: &Payment,
        change: PaymentChange,
    ) -> Result<Found, ServiceError> {
        let (_, applied) = self.change_payment(payment.id(), change).await?;
        if applied.is_changed() {
            info!(payment_id = %payment.id(), "reconciled with session/status");
            Ok(Found::News)
        } else {
            Ok(Found::Nothing)
        }
    }
}

fn abandoned(code: BankCode, message: &str) -> BankFact {
    BankFact::Abandoned(Failure {
        code: code.code(),
        message: message.to_owned(),
    })
}
