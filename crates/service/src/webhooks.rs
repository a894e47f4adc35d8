//! Bank webhooks: received (signature verified over the raw bytes, stored
//! durably) and applied later from the inbox, each with its inbox mark.

use domain::{Applied, BankFact, BankSessionId, PaymentId, PaymentStatus};
use ports::{ChangeSet, DecodedWebhook, InboxItem, WebhookError};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracing::{Instrument as _, debug, warn};

use crate::apply::{PaymentChange, Settles};
use crate::work::{BATCH, WorkReport, backoff, group_by_subject, run_each};
use crate::{Service, ServiceError};

/// A stored webhook with what decoding it gave.
struct Received {
    item: InboxItem,
    decoded: Result<DecodedWebhook, WebhookError>,
}

impl Received {
    /// The payment and sessions it names: webhooks sharing any of them are
    /// applied in the order they arrived.
    fn subjects(&self) -> [Option<&str>; 3] {
        match &self.decoded {
            Ok(d) => [
                d.payment_id.as_ref().map(PaymentId::as_str),
                d.session_id.as_ref().map(BankSessionId::as_str),
                d.parent_session_id.as_ref().map(BankSessionId::as_str),
            ],
            Err(WebhookError::UnreadableKnown { session_id, .. }) => {
                [session_id.as_ref().map(BankSessionId::as_str), None, None]
            }
            Err(_) => [None; 3],
        }
    }

    fn same_subject(&self, other: &Self) -> bool {
        let theirs = other.subjects();
        self.subjects()
            .iter()
            .flatten()
            .any(|mine| theirs.iter().flatten().any(|t| t == mine))
    }
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
        let webhook = ports::InboundWebhook {
            dedupe_key: hex::encode(Sha256::digest(body)),
            body: body.to_vec(),
            received_at: self.now(),
        };
        Ok(self.deps.inbox.store(webhook).await?)
    }

    /// Applies the stored webhooks that are due. Webhooks about different
    /// payments are applied side by side (at most [`Service::with_in_flight`]
    /// at a time); those about one payment in the order they arrived. A
    /// webhook for a session we do not know yet is deferred and tried again
    /// (our own answer may still be on its way); an unreadable one is kept
    /// for inspection.
    pub async fn apply_inbox(&self) -> Result<WorkReport, ServiceError> {
        let now = self.deps.wall_clock.now();
        let read: Vec<Received> = self
            .deps
            .inbox
            .pending(now, BATCH)
            .await?
            .into_iter()
            .map(|item| Received {
                decoded: self.deps.webhooks.decode(&item.body),
                item,
            })
            .collect();
        let groups = group_by_subject(read, Received::same_subject);
        run_each(groups, self.in_flight, |received| {
            self.apply_received(received, now)
        })
        .await
    }

    /// Applies one webhook, or defers it with a note; `true` when applied.
    async fn apply_received(
        &self,
        received: Received,
        now: OffsetDateTime,
    ) -> Result<bool, ServiceError> {
        let (id, attempts) = (received.item.id, received.item.attempts);
        let span =
            tracing::info_span!("webhook", inbox_id = id, payment_id = tracing::field::Empty);
        let note = match self.apply_webhook(received).instrument(span).await {
            Ok(true) => return Ok(true),
            Ok(false) => "no payment for this session yet".to_owned(),
            Err(error) => {
                warn!(inbox_id = id, %error, "applying a webhook failed; will retry");
                error.to_string()
            }
        };
        self.deps
            .inbox
            .defer(id, now + backoff(attempts), &note)
            .await?;
        Ok(false)
    }

    /// Applies one stored webhook and marks it applied in the same commit.
    /// `false` when its payment is not known yet.
    async fn apply_webhook(&self, received: Received) -> Result<bool, ServiceError> {
        let item = &received.item;
        let decoded = match received.decoded {
            Ok(decoded) => decoded,
            Err(WebhookError::UnreadableKnown {
                kind,
                session_id: Some(session),
                reason,
            }) => {
                // Never applied as if it said nothing: its payment is asked
                // about at once, and the webhook is marked with that check.
                warn!(inbox_id = item.id, %kind, %reason, "unreadable webhook; its payment is checked with the bank");
                let Some(found) = self.deps.payments.by_session(&session).await? else {
                    return Ok(false);
                };
                let id = found.value.id().clone();
                tracing::Span::current().record("payment_id", id.as_str());
                self.change_read_payment(
                    &id,
                    Some(found),
                    PaymentChange::OutcomeUnknown,
                    Settles::Webhook(item.id),
                )
                .await?;
                self.deps.telemetry.webhook_checked_instead();
                return Ok(true);
            }
            Err(error) => {
                warn!(inbox_id = item.id, %error, "unreadable webhook kept for inspection");
                self.deps.inbox.reject(item.id, &error.to_string()).await?;
                return Ok(true);
            }
        };
        let applied = match decoded.fact {
            None => {
                let done = ChangeSet {
                    inbox_applied: vec![item.id],
                    ..ChangeSet::default()
                };
                self.deps
                    .uow
                    .commit(done, self.deps.wall_clock.now())
                    .await?;
                true
            }
            Some(fact) => self
                .apply_fact(
                    decoded.payment_id.as_ref(),
                    &[
                        decoded.session_id.as_ref(),
                        decoded.parent_session_id.as_ref(),
                    ],
                    PaymentChange::Bank(Some(fact), decoded.details),
                    Some(item.id),
                )
                .await?
                .is_some(),
        };
        if applied {
            debug!(inbox_id = item.id, kind = %decoded.kind, "webhook applied");
        }
        Ok(applied)
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
        self.apply_fact(payment_id, &[session_id], PaymentChange::Fact(fact), None)
            .await
    }

    /// [`Service::apply_bank_fact`], reading the payment once and committing
    /// the inbox mark of `inbox_item` with the fact. The payment is found by
    /// our id, else by the first of `sessions` (the session, then its
    /// parent) that belongs to one.
    async fn apply_fact(
        &self,
        payment_id: Option<&PaymentId>,
        sessions: &[Option<&BankSessionId>],
        change: PaymentChange,
        inbox_item: Option<i64>,
    ) -> Result<Option<Applied<PaymentStatus>>, ServiceError> {
        let mut found = match payment_id {
            Some(id) => self.deps.payments.get(id).await?,
            None => None,
        };
        for session in sessions.iter().flatten() {
            if found.is_some() {
                break;
            }
            found = self.deps.payments.by_session(session).await?;
        }
        let Some(found) = found else { return Ok(None) };
        let id = found.value.id().clone();
        // The webhook's span names the payment from here on.
        tracing::Span::current().record("payment_id", id.as_str());
        let (_, applied) = self
            .change_read_payment(
                &id,
                Some(found),
                change,
                inbox_item.map_or(Settles::Nothing, Settles::Webhook),
            )
            .await?;
        Ok(Some(applied))
    }
}

#[cfg(test)]
mod tests {
    use domain::{BankDetails, BankSessionId, PaymentId};
    use ports::{DecodedWebhook, InboxItem, WebhookError};

    use super::Received;

    fn received(payment: Option<&str>, session: Option<&str>, parent: Option<&str>) -> Received {
        Received {
            item: InboxItem {
                id: 1,
                body: Vec::new(),
                received_at: time::OffsetDateTime::UNIX_EPOCH,
                attempts: 0,
            },
            decoded: Ok(DecodedWebhook {
                kind: "payment_finished".into(),
                session_id: session.map(|s| BankSessionId::parse(s).unwrap()),
                payment_id: payment.map(|p| PaymentId::parse(p).unwrap()),
                parent_session_id: parent.map(|s| BankSessionId::parse(s).unwrap()),
                fact: None,
                details: BankDetails::default(),
            }),
        }
    }

    #[test]
    fn webhooks_naming_one_payment_or_session_are_applied_in_order() {
        let a = received(Some("pay_a"), Some("ps_a"), None);
        assert!(a.same_subject(&received(Some("pay_a"), None, None)));
        assert!(a.same_subject(&received(None, Some("ps_a"), None)));
        // A child session's webhook names its parent (seed 003).
        assert!(a.same_subject(&received(None, Some("ps_child"), Some("ps_a"))));
        assert!(!a.same_subject(&received(Some("pay_b"), Some("ps_b"), None)));
        assert!(!a.same_subject(&received(None, None, None)));
        let mut unreadable = received(None, None, None);
        unreadable.decoded = Err(WebhookError::UnreadableKnown {
            kind: "payment_finished".into(),
            session_id: Some(BankSessionId::parse("ps_a").unwrap()),
            reason: "no amount".into(),
        });
        assert!(
            a.same_subject(&unreadable),
            "checked after what came before"
        );
        unreadable.decoded = Err(WebhookError::Unparsable("not JSON".into()));
        assert!(!a.same_subject(&unreadable), "about nothing: on its own");
    }
}
