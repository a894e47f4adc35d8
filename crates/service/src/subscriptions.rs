//! Subscriptions: create, change, and charge each period exactly once.

use std::collections::{HashSet, VecDeque};

use domain::{
    Applied, BankCode, BankFact, ChargeStatus, Confirmation, CustomerReference, DeclineClass,
    Failure, Initiator, Interval, Money, NewPayment, NewSubscription, Payment, PaymentMethod,
    PaymentStatus, Period, RecurrentToken, State, Subscription, SubscriptionError,
    SubscriptionEvent, SubscriptionId, SubscriptionStatus, TokenId,
};
use ports::{
    ChangeSet, ChargeAttempt, Instrument, NewEvent, StoreError, Subject, Versioned, Write,
};
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tracing::{Instrument as _, info, warn};

use crate::retry::Attempt;
use crate::work::{BATCH, WorkReport};
use crate::{Service, ServiceError};

/// `POST /v1/subscriptions`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSubscriptionCommand {
    /// Who pays.
    pub customer: CustomerReference,
    /// The token charged.
    pub token_id: TokenId,
    /// How much per period.
    pub amount: Money,
    /// How long a period is.
    pub interval: Interval,
    /// The first period's start; now when `None`.
    pub start_at: Option<OffsetDateTime>,
    /// Free text.
    pub description: Option<String>,
    /// Opaque merchant metadata.
    pub metadata: Option<String>,
}

/// `POST /v1/subscriptions/{id}`, parsed: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSubscriptionCommand {
    /// A new token (how a past-due subscription whose token died is paid again).
    pub token_id: Option<TokenId>,
    /// A new amount for future charges.
    pub amount: Option<Money>,
    /// New metadata.
    pub metadata: Option<String>,
}

fn state_error(e: SubscriptionError) -> ServiceError {
    match e {
        SubscriptionError::Transition(t) => ServiceError::State(t.to_string()),
        other => ServiceError::invalid(other),
    }
}

impl Service {
    /// Creates a subscription on an active token of the same customer.
    pub async fn create_subscription(
        &self,
        cmd: CreateSubscriptionCommand,
    ) -> Result<Subscription, ServiceError> {
        self.chargeable_token(&cmd.token_id, &cmd.customer).await?;
        let now = self.now();
        let subscription = Subscription::new(
            NewSubscription {
                id: self.deps.ids.subscription_id(),
                customer: cmd.customer,
                token_id: cmd.token_id,
                amount: cmd.amount,
                interval: cmd.interval,
                start_at: cmd.start_at.unwrap_or(now),
                description: cmd.description,
                metadata: cmd.metadata,
            },
            now,
        )
        .map_err(state_error)?;
        let changes = ChangeSet {
            subscriptions: vec![Write::insert(subscription.clone())],
            ..ChangeSet::default()
        };
        self.deps.uow.commit(changes, now).await?;
        Ok(subscription)
    }

    /// A subscription by id.
    pub async fn subscription(&self, id: &SubscriptionId) -> Result<Subscription, ServiceError> {
        Ok(self.read_subscription(id).await?.value)
    }

    async fn read_subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Versioned<Subscription>, ServiceError> {
        self.deps
            .subscriptions
            .get(id)
            .await?
            .ok_or(ServiceError::NotFound("subscription"))
    }

    /// A subscription's charge attempts, oldest first.
    pub async fn subscription_charges(
        &self,
        id: &SubscriptionId,
    ) -> Result<Vec<ChargeAttempt>, ServiceError> {
        self.read_subscription(id).await?;
        Ok(self.deps.subscriptions.charges(id).await?)
    }

    /// Pauses charging.
    pub async fn pause_subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Subscription, ServiceError> {
        self.change_subscription(id, |s, _| s.pause().map(|_| Vec::new()))
            .await
    }

    /// Resumes charging.
    pub async fn resume_subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Subscription, ServiceError> {
        self.change_subscription(id, |s, now| s.resume(now).map(|_| Vec::new()))
            .await
    }

    /// Cancels for good.
    pub async fn cancel_subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Subscription, ServiceError> {
        self.change_subscription(id, |s, _| Ok(s.cancel().1)).await
    }

    /// Changes the token, amount or metadata.
    pub async fn update_subscription(
        &self,
        id: &SubscriptionId,
        cmd: UpdateSubscriptionCommand,
    ) -> Result<Subscription, ServiceError> {
        if let Some(token_id) = &cmd.token_id {
            let current = self.subscription(id).await?;
            self.chargeable_token(token_id, current.customer()).await?;
        }
        self.change_subscription(id, move |s, now| {
            if let Some(token_id) = cmd.token_id.clone() {
                s.replace_token(token_id, now)?;
            }
            if let Some(amount) = cmd.amount {
                s.change_amount(amount)?;
            }
            if let Some(metadata) = cmd.metadata.clone() {
                s.set_metadata(Some(metadata));
            }
            Ok(Vec::new())
        })
        .await
    }

    async fn change_subscription<F>(
        &self,
        id: &SubscriptionId,
        change: F,
    ) -> Result<Subscription, ServiceError>
    where
        F: Fn(
                &mut Subscription,
                OffsetDateTime,
            ) -> Result<Vec<SubscriptionEvent>, SubscriptionError>
            + Send
            + Sync,
    {
        let change = &change;
        self.retry_on_conflict(&format!("subscription {id}"), |_, now| {
            Box::pin(async move {
                let read = self.read_subscription(id).await?;
                let mut subscription = read.value.clone();
                let events = change(&mut subscription, now).map_err(state_error)?;
                if subscription == read.value {
                    return Ok(Attempt::Unchanged(subscription));
                }
                let changes = ChangeSet {
                    events: self.subscription_events(&subscription, &events, now),
                    subscriptions: vec![Write {
                        value: subscription.clone(),
                        expected_version: Some(read.version),
                    }],
                    ..ChangeSet::default()
                };
                Ok(Attempt::Commit(changes, subscription))
            })
        })
        .await
    }

    fn subscription_events(
        &self,
        subscription: &Subscription,
        events: &[SubscriptionEvent],
        now: OffsetDateTime,
    ) -> Vec<NewEvent> {
        events
            .iter()
            .map(|e| NewEvent {
                kind: e.as_str(),
                subject: Subject::Subscription(subscription.id().clone()),
                data: self.deps.presenter.subscription(subscription, now),
            })
            .collect()
    }

    /// Starts every subscription charge that is due at `now`. Each attempt is
    /// claimed by inserting its (subscription, period, attempt) row together
    /// with its payment; a uniqueness conflict means another worker has it.
    /// Charges run side by side as their own tasks, [`Service::with_in_flight`]
    /// at a time, with no pause between batches: the next due subscriptions
    /// are read when the queue runs dry. Reports how many charges were started.
    pub async fn run_scheduler(&self, now: OffsetDateTime) -> Result<WorkReport, ServiceError> {
        // Each subscription is tried at most once a pass: one that could not
        // start stays due, and waits for the next pass.
        let mut tried: HashSet<SubscriptionId> = HashSet::new();
        let mut queue: VecDeque<Versioned<Subscription>> = VecDeque::new();
        // Tasks, not futures polled here: a charge holding a pooled
        // connection must go on while this loop waits for the next batch.
        let mut running = JoinSet::new();
        let mut report = WorkReport::default();
        let mut more = true;
        // A failed read ends the pass only once the charges in flight are
        // done: dropped, their tasks would be cut off between bank calls.
        let mut failed = None;
        loop {
            while running.len() < self.in_flight {
                if queue.is_empty() && more {
                    // Those in flight here or in another pass of this process
                    // (the test clock's, the worker's) are due too: read past them.
                    let limit = BATCH + u32::try_from(self.charging.count()).unwrap_or(u32::MAX);
                    match self.deps.subscriptions.due(now, limit).await {
                        Ok(due) => queue.extend(
                            due.into_iter()
                                .filter(|read| tried.insert(read.value.id().clone())),
                        ),
                        Err(error) => failed = Some(error),
                    }
                    more = !queue.is_empty();
                }
                let Some(read) = queue.pop_front() else { break };
                // Another pass of this process is charging it: not a race to lose.
                let Some(claim) = self.charging.claim(read.value.id()) else {
                    continue;
                };
                let service = self.clone();
                running.spawn(async move {
                    let started = service.charge_due(read, now).await;
                    drop(claim);
                    started
                });
            }
            match running.join_next().await {
                Some(Ok(true)) => report.count(true),
                Some(Ok(false)) => {}
                Some(Err(panicked)) => {
                    warn!(error = %panicked, "a subscription charge task failed");
                }
                None => return failed.map_or(Ok(report), |e| Err(e.into())),
            }
        }
    }

    /// Starts one due charge; `false` (logged) when it could not start.
    async fn charge_due(&self, read: Versioned<Subscription>, now: OffsetDateTime) -> bool {
        let subscription_id = read.value.id().clone();
        let span = tracing::info_span!(
            "charge",
            %subscription_id,
            payment_id = tracing::field::Empty
        );
        match self.start_charge(read, now).instrument(span).await {
            Ok(started) => started,
            Err(error) => {
                warn!(%subscription_id, %error, "could not start a subscription charge");
                false
            }
        }
    }

    async fn start_charge(
        &self,
        read: Versioned<Subscription>,
        now: OffsetDateTime,
    ) -> Result<bool, ServiceError> {
        let mut subscription = read.value;
        let skipped = subscription.skip_missed(now);
        let Some(due) = subscription.due_charge(now) else {
            return self
                .commit_skipped(subscription, read.version, &skipped, now)
                .await;
        };
        subscription.start_charge(due).map_err(state_error)?;
        let payment = Payment::new(
            NewPayment {
                id: self.deps.ids.payment_id(),
                customer: subscription.customer().clone(),
                amount: subscription.amount(),
                method: PaymentMethod::Token {
                    token_id: subscription.token_id().clone(),
                    initiator: Initiator::Merchant,
                },
                save_token: false,
                confirmation: Confirmation::Automatic,
                return_url: None,
                description: subscription.description().map(str::to_owned),
                metadata: None,
            },
            now,
        )
        .map_err(ServiceError::invalid)?;
        tracing::Span::current().record("payment_id", payment.id().as_str());
        let charge = ChargeAttempt {
            subscription_id: subscription.id().clone(),
            period_index: due.period.index,
            period_start: due.period.start,
            attempt: due.attempt,
            payment_id: Some(payment.id().clone()),
            status: ChargeStatus::Pending,
        };
        // The charge first: settling a dead token's attempt edits `charges[0]`.
        let mut charges = vec![charge];
        charges.extend(skipped_charges(subscription.id(), &skipped));
        let with = ChangeSet {
            subscriptions: vec![Write {
                value: subscription.clone(),
                expected_version: Some(read.version),
            }],
            charges,
            events: self.skipped_events(&subscription, &skipped, now),
            ..ChangeSet::default()
        };
        let token = self
            .deps
            .tokens
            .get(subscription.token_id())
            .await?
            .map(|t| t.value);
        let Some(token) = token.filter(RecurrentToken::can_charge) else {
            // The token died: the attempt fails without a bank call.
            let mut payment = payment;
            payment.apply(
                BankFact::Failed(Failure {
                    code: BankCode::TokenInactive.code(),
                    message: "the subscription's token is not active".into(),
                }),
                now,
            );
            let mut with = with;
            let settled =
                self.settle_charge_in(&payment, &mut subscription, &mut with.charges[0], now);
            with.events.extend(settled);
            with.subscriptions[0].value = subscription;
            with.payments.push(Write::insert(payment));
            return match self.deps.uow.commit(with, now).await {
                Ok(()) => Ok(true),
                Err(StoreError::Conflict(_)) => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let instrument = Instrument::Token {
            secret: token.secret,
            initiator: Initiator::Merchant,
        };
        match self.run_payment(payment, Some(instrument), with).await {
            Ok(p) => {
                self.deps.telemetry.subscription_charge("started");
                info!(subscription_id = %subscription.id(), payment_id = %p.id(), status = p.status().as_str(), "charge started");
                Ok(true)
            }
            Err(ServiceError::Store(StoreError::Conflict(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records periods skipped while nothing ran, when no charge is due after
    /// all (the subscription changed since it was read as due).
    async fn commit_skipped(
        &self,
        subscription: Subscription,
        version: i64,
        skipped: &[Period],
        now: OffsetDateTime,
    ) -> Result<bool, ServiceError> {
        if skipped.is_empty() {
            return Ok(false);
        }
        let changes = ChangeSet {
            charges: skipped_charges(subscription.id(), skipped),
            events: self.skipped_events(&subscription, skipped, now),
            subscriptions: vec![Write {
                value: subscription,
                expected_version: Some(version),
            }],
            ..ChangeSet::default()
        };
        match self.deps.uow.commit(changes, now).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn skipped_events(
        &self,
        subscription: &Subscription,
        skipped: &[Period],
        now: OffsetDateTime,
    ) -> Vec<NewEvent> {
        let events = vec![SubscriptionEvent::PeriodSkipped; skipped.len()];
        for _ in skipped {
            self.deps.telemetry.subscription_charge("skipped");
        }
        if !skipped.is_empty() {
            warn!(subscription_id = %subscription.id(), periods = skipped.len(), "periods ended unpaid while nothing ran; skipped");
        }
        self.subscription_events(subscription, &events, now)
    }

    /// When a payment that carries a subscription charge finishes, records the
    /// outcome on the charge and the subscription in the same commit.
    pub(crate) async fn settle_charge(
        &self,
        payment: &Payment,
        now: OffsetDateTime,
        changes: &mut ChangeSet,
    ) -> Result<(), ServiceError> {
        let Some(charge) = self
            .deps
            .subscriptions
            .charge_by_payment(payment.id())
            .await?
        else {
            return Ok(());
        };
        if charge.status != ChargeStatus::Pending {
            return Ok(());
        }
        let Some(read) = self.deps.subscriptions.get(&charge.subscription_id).await? else {
            return Ok(());
        };
        let mut write = Write::update(read);
        let mut charge = charge;
        let events = self.settle_charge_in(payment, &mut write.value, &mut charge, now);
        changes.events.extend(events);
        changes.subscriptions.push(write);
        changes.charges.push(charge);
        Ok(())
    }

    /// Applies a finished payment to its subscription and charge; returns the events.
    fn settle_charge_in(
        &self,
        payment: &Payment,
        subscription: &mut Subscription,
        charge: &mut ChargeAttempt,
        now: OffsetDateTime,
    ) -> Vec<NewEvent> {
        let (applied, new_events) = if payment.status() == PaymentStatus::Succeeded {
            charge.status = ChargeStatus::Succeeded;
            subscription.charge_succeeded(charge.period_index, charge.attempt)
        } else {
            charge.status = ChargeStatus::Failed;
            let class = payment
                .failure()
                .map_or(DeclineClass::Cancelled, |f| DeclineClass::of(&f.code));
            subscription.charge_failed(
                charge.period_index,
                charge.attempt,
                class,
                &self.deps.dunning,
                now,
            )
        };
        match applied {
            Applied::Ignored(why) => {
                warn!(subscription_id = %subscription.id(), ?why, "charge outcome did not match the subscription");
            }
            // Counted as settled; a settlement retried after a write conflict counts again.
            Applied::Changed { .. } => self.deps.telemetry.subscription_charge(
                match (charge.status, subscription.status()) {
                    (ChargeStatus::Succeeded, _) => "paid",
                    (_, SubscriptionStatus::PastDue) => "declined",
                    _ => "gave_up",
                },
            ),
        }
        self.subscription_events(subscription, &new_events, now)
    }
}

/// The charge rows of skipped periods: no attempt, no payment.
fn skipped_charges(id: &SubscriptionId, skipped: &[Period]) -> Vec<ChargeAttempt> {
    skipped
        .iter()
        .map(|period| ChargeAttempt {
            subscription_id: id.clone(),
            period_index: period.index,
            period_start: period.start,
            attempt: 0,
            payment_id: None,
            status: ChargeStatus::Skipped,
        })
        .collect()
}
