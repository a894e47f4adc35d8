//! Reconciliation: payments that waited too long for news are settled with
//! `session/status`, never by sending them again.

use domain::BankFact;
use ports::GatewayError;
use time::Duration;
use tracing::{info, warn};

use crate::apply::{PaymentChange, failure_of};
use crate::work::{BATCH, WorkReport};
use crate::{Service, ServiceError};

/// A payment whose bank session was never recorded is failed after this long.
const ABANDONED_AFTER: Duration = Duration::minutes(10);

impl Service {
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
                report.count(true);
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
                    report.count(true);
                }
                Err(error) => {
                    warn!(payment_id = %id, %error, "session/status failed; will retry");
                    report.count(false);
                }
            }
        }
        Ok(report)
    }
}
