//! Subscriptions: a token charged once per billing period, with dunning on declines.
//!
//! Periods are computed from the anchor (`start_at`), never by adding to the
//! previous period, so month-end dates do not drift: Jan 31 → Feb 28/29 → Mar 31.

use time::OffsetDateTime;

mod error;
mod interval;

pub use error::SubscriptionError;
pub use interval::{Interval, IntervalUnit, Period};

use crate::decline::{DeclineClass, Dunning, DunningPolicy};
use crate::machine::{Applied, Ignored, State, Transition, TransitionError, state_names};
use crate::{CustomerReference, Money, SubscriptionId, TokenId};

/// A subscription's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Charged every period.
    Active,
    /// The current period's charge failed; dunning retries it.
    PastDue,
    /// No charges until resumed.
    Paused,
    /// Ended for good.
    Cancelled,
}

impl State for SubscriptionStatus {
    state_names! {
        Active => "active",
        PastDue => "past_due",
        Paused => "paused",
        Cancelled => "cancelled",
    }
    const MACHINE: &'static str = "Subscription";
    const TRANSITIONS: &'static [Transition<Self>] = &[
        Transition {
            from: Self::Active,
            on: "charge failed",
            to: Self::PastDue,
        },
        Transition {
            from: Self::Active,
            on: "pause",
            to: Self::Paused,
        },
        Transition {
            from: Self::Active,
            on: "cancel",
            to: Self::Cancelled,
        },
        Transition {
            from: Self::PastDue,
            on: "charge succeeded",
            to: Self::Active,
        },
        Transition {
            from: Self::PastDue,
            on: "pause",
            to: Self::Paused,
        },
        Transition {
            from: Self::PastDue,
            on: "cancel",
            to: Self::Cancelled,
        },
        Transition {
            from: Self::Paused,
            on: "resume",
            to: Self::Active,
        },
        Transition {
            from: Self::Paused,
            on: "cancel",
            to: Self::Cancelled,
        },
    ];
}

/// A charge attempt's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChargeStatus {
    /// Sent; outcome not known yet.
    Pending,
    /// Paid.
    Succeeded,
    /// Declined.
    Failed,
    /// Never attempted: the period ended while nothing ran (downtime), and
    /// only the current period is charged.
    Skipped,
}

impl ChargeStatus {
    /// Every status.
    pub const ALL: &'static [Self] = &[Self::Pending, Self::Succeeded, Self::Failed, Self::Skipped];

    /// The status named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    /// `pending`, `succeeded`, `failed` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// The charge a scheduler should start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCharge {
    /// The period being paid.
    pub period: Period,
    /// 1-based attempt number within the period.
    pub attempt: u32,
}

/// Merchant events about a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionEvent {
    /// `subscription.charge_succeeded`
    ChargeSucceeded,
    /// `subscription.charge_failed`
    ChargeFailed,
    /// `subscription.past_due`
    PastDue,
    /// `subscription.cancelled`
    Cancelled,
    /// `subscription.period_skipped`: a period ended unpaid while nothing ran.
    PeriodSkipped,
}

impl SubscriptionEvent {
    /// The event type's name in the merchant feed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChargeSucceeded => "subscription.charge_succeeded",
            Self::ChargeFailed => "subscription.charge_failed",
            Self::PastDue => "subscription.past_due",
            Self::Cancelled => "subscription.cancelled",
            Self::PeriodSkipped => "subscription.period_skipped",
        }
    }
}

/// What the merchant asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// The new subscription's id.
    pub id: SubscriptionId,
    /// Who pays.
    pub customer: CustomerReference,
    /// The token charged.
    pub token_id: TokenId,
    /// How much per period.
    pub amount: Money,
    /// How long a period is.
    pub interval: Interval,
    /// The anchor of all periods. When it is in the past, periods that ended
    /// before the subscription was created are never charged: the first
    /// charge is for the period that contains the creation time.
    pub start_at: OffsetDateTime,
    /// Free text.
    pub description: Option<String>,
    /// The merchant's metadata, opaque to the domain.
    pub metadata: Option<String>,
}

/// A subscription.
///
/// Seed 003 (SBP recurring) charged monthly through [`crate::Subscription`],
/// with a soft decline retried by the default dunning policy.
///
/// ```
/// use domain::*;
/// use time::macros::datetime;
/// let start = datetime!(2026-01-31 00:00 UTC);
/// let mut sub = Subscription::new(NewSubscription {
///     id: SubscriptionId::parse("sub_1").unwrap(),
///     customer: CustomerReference::parse("user123").unwrap(),
///     token_id: TokenId::parse("tok_1").unwrap(),
///     amount: Money::new(1000, Currency::RUB).unwrap(),
///     interval: Interval::new(IntervalUnit::Month, 1).unwrap(),
///     start_at: start,
///     description: None,
///     metadata: None,
/// }, start).unwrap();
///
/// let due = sub.due_charge(start).unwrap();
/// sub.start_charge(due).unwrap();
/// let (_, events) = sub.charge_failed(0, 1, DeclineClass::SoftDecline, &DunningPolicy::default(), start);
/// assert_eq!(events, vec![SubscriptionEvent::ChargeFailed, SubscriptionEvent::PastDue]);
/// assert_eq!(sub.status(), SubscriptionStatus::PastDue);
///
/// let retry = sub.due_charge(datetime!(2026-02-01 00:00 UTC)).unwrap();
/// assert_eq!(retry.attempt, 2);
/// sub.start_charge(retry).unwrap();
/// sub.charge_succeeded(0, 2);
/// assert_eq!(sub.status(), SubscriptionStatus::Active);
/// // Jan 31 → Feb 28 (clamped) → Mar 31.
/// assert_eq!(sub.next_charge_at(), Some(datetime!(2026-02-28 00:00 UTC)));
/// assert_eq!(sub.period(2).unwrap().start, datetime!(2026-03-31 00:00 UTC));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    p: SubscriptionParts,
}

/// A subscription's stored parts, for stores to write and read back.
/// [`Subscription::restore`] trusts them: only a store that wrote them should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionParts {
    /// What the merchant asked for.
    pub new: NewSubscription,
    /// The status.
    pub status: SubscriptionStatus,
    /// The period being paid (0-based).
    pub period_index: u32,
    /// Attempts made for that period.
    pub attempts_in_period: u32,
    /// The attempt whose outcome is awaited, if any.
    pub in_flight: Option<u32>,
    /// Consecutive failed attempts.
    pub failed_attempts: u32,
    /// When the next charge is due.
    pub next_charge_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl Subscription {
    /// Creates an active subscription. Its first charge is due at `start_at`
    /// or, for a backdated anchor, now, for the period that contains now.
    pub fn new(new: NewSubscription, now: OffsetDateTime) -> Result<Self, SubscriptionError> {
        if new.amount.is_zero() {
            return Err(SubscriptionError::ZeroAmount);
        }
        let period_index = new
            .interval
            .index_at(new.start_at, now)
            .ok_or(SubscriptionError::InvalidInterval)?;
        Ok(Self {
            p: SubscriptionParts {
                next_charge_at: Some(new.start_at.max(now)),
                new,
                status: SubscriptionStatus::Active,
                period_index,
                attempts_in_period: 0,
                in_flight: None,
                failed_attempts: 0,
                created_at: now,
            },
        })
    }

    /// Rebuilds a subscription from storage.
    pub fn restore(parts: SubscriptionParts) -> Self {
        Self { p: parts }
    }

    /// Splits it into stored parts.
    pub fn to_parts(&self) -> SubscriptionParts {
        self.p.clone()
    }

    /// Period `index` of this subscription.
    pub fn period(&self, index: u32) -> Option<Period> {
        let (interval, anchor) = (self.p.new.interval, self.p.new.start_at);
        let start = interval.period_start(anchor, index)?;
        let end = interval.period_start(anchor, index.checked_add(1)?)?;
        Some(Period { index, start, end })
    }

    /// The period being paid, or next to be paid.
    pub fn billing_period(&self) -> Option<Period> {
        self.period(self.p.period_index)
    }

    /// The period the customer is in at `now`: the first period before it
    /// starts; once period N is paid, period N until it ends; while a period
    /// is being paid (or dunned), that period.
    pub fn current_period(&self, now: OffsetDateTime) -> Option<Period> {
        let (interval, anchor) = (self.p.new.interval, self.p.new.start_at);
        let at = interval.index_at(anchor, now)?;
        self.period(at.min(self.p.period_index))
    }

    /// Periods that ended unattempted before `now` (the service was not
    /// running) are skipped, so that only the current period is charged and
    /// a customer is never billed back to back for time that is over.
    /// Returns the skipped periods; a period being dunned is never skipped.
    pub fn skip_missed(&mut self, now: OffsetDateTime) -> Vec<Period> {
        if self.p.status != SubscriptionStatus::Active
            || self.p.in_flight.is_some()
            || self.p.attempts_in_period > 0
        {
            return Vec::new();
        }
        let skipped = self.pass_ended_periods(now);
        if !skipped.is_empty() {
            self.charge_current_period_from(now);
        }
        skipped
    }

    /// Moves billing past every period that ended by `now` (none of them is
    /// charged); returns them.
    fn pass_ended_periods(&mut self, now: OffsetDateTime) -> Vec<Period> {
        let mut passed = Vec::new();
        while let Some(period) = self.billing_period().filter(|p| p.end <= now) {
            passed.push(period);
            self.p.period_index += 1;
            self.p.attempts_in_period = 0;
        }
        passed
    }

    /// The period being billed is due at its start, or at `now` if it began.
    fn charge_current_period_from(&mut self, now: OffsetDateTime) {
        self.p.next_charge_at = self.billing_period().map(|p| p.start.max(now));
    }

    /// The charge to start at `now`, if one is due and none is in flight.
    pub fn due_charge(&self, now: OffsetDateTime) -> Option<DueCharge> {
        let chargeable = matches!(
            self.p.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        let due = self.p.next_charge_at.is_some_and(|at| at <= now);
        if !chargeable || !due || self.p.in_flight.is_some() {
            return None;
        }
        Some(DueCharge {
            period: self.billing_period()?,
            attempt: self.p.attempts_in_period + 1,
        })
    }

    /// Records that `charge` was started (its payment created). Until its
    /// outcome is recorded no other charge is due.
    pub fn start_charge(&mut self, charge: DueCharge) -> Result<(), SubscriptionError> {
        if charge.period.index != self.p.period_index
            || charge.attempt != self.p.attempts_in_period + 1
            || self.p.in_flight.is_some()
        {
            return Err(SubscriptionError::UnexpectedCharge);
        }
        self.p.attempts_in_period = charge.attempt;
        self.p.in_flight = Some(charge.attempt);
        Ok(())
    }

    fn check_in_flight(&self, period_index: u32, attempt: u32) -> Result<(), Ignored> {
        if period_index < self.p.period_index
            || (period_index == self.p.period_index && self.p.in_flight != Some(attempt))
        {
            return Err(Ignored::Duplicate);
        }
        if period_index > self.p.period_index {
            return Err(Ignored::Stale);
        }
        Ok(())
    }

    /// The charge of `attempt` for period `period_index` succeeded: the period
    /// is paid and the next one is scheduled. A repeated report is ignored.
    pub fn charge_succeeded(
        &mut self,
        period_index: u32,
        attempt: u32,
    ) -> (Applied<SubscriptionStatus>, Vec<SubscriptionEvent>) {
        if let Err(why) = self.check_in_flight(period_index, attempt) {
            return (Applied::Ignored(why), Vec::new());
        }
        let from = self.p.status;
        self.p.in_flight = None;
        self.p.period_index += 1;
        self.p.attempts_in_period = 0;
        self.p.failed_attempts = 0;
        if self.p.status == SubscriptionStatus::PastDue {
            self.p.status = SubscriptionStatus::Active;
        }
        if self.p.status != SubscriptionStatus::Cancelled {
            self.p.next_charge_at = self.billing_period().map(|p| p.start);
        }
        (
            Applied::Changed {
                from,
                to: self.p.status,
            },
            vec![SubscriptionEvent::ChargeSucceeded],
        )
    }

    /// The charge failed with a decline of `class`: the subscription is past
    /// due and the dunning policy decides when (or whether) to retry.
    pub fn charge_failed(
        &mut self,
        period_index: u32,
        attempt: u32,
        class: DeclineClass,
        policy: &DunningPolicy,
        now: OffsetDateTime,
    ) -> (Applied<SubscriptionStatus>, Vec<SubscriptionEvent>) {
        if let Err(why) = self.check_in_flight(period_index, attempt) {
            return (Applied::Ignored(why), Vec::new());
        }
        let from = self.p.status;
        self.p.in_flight = None;
        self.p.failed_attempts += 1;
        let mut events = vec![SubscriptionEvent::ChargeFailed];
        if self.p.status == SubscriptionStatus::Active {
            self.p.status = SubscriptionStatus::PastDue;
            events.push(SubscriptionEvent::PastDue);
        }
        if matches!(self.p.status, SubscriptionStatus::PastDue) {
            self.p.next_charge_at = match policy.next(class, self.p.failed_attempts, now) {
                Dunning::RetryAt(at) => Some(at),
                Dunning::GiveUp => None,
            };
        }
        (
            Applied::Changed {
                from,
                to: self.p.status,
            },
            events,
        )
    }

    /// Pauses charging.
    pub fn pause(&mut self) -> Result<Applied<SubscriptionStatus>, SubscriptionError> {
        match self.p.status {
            SubscriptionStatus::Paused => Ok(Applied::Ignored(Ignored::Duplicate)),
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                Ok(self.move_to(SubscriptionStatus::Paused))
            }
            SubscriptionStatus::Cancelled => Err(self.refuse("pause")),
        }
    }

    /// Resumes charging at `now`. Periods that ended while paused are not
    /// billed: billing restarts with the period that contains `now`.
    pub fn resume(
        &mut self,
        now: OffsetDateTime,
    ) -> Result<Applied<SubscriptionStatus>, SubscriptionError> {
        match self.p.status {
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                Ok(Applied::Ignored(Ignored::Duplicate))
            }
            SubscriptionStatus::Cancelled => Err(self.refuse("resume")),
            SubscriptionStatus::Paused => {
                if self.p.in_flight.is_none() {
                    // Periods that ended while paused are not billed.
                    self.pass_ended_periods(now);
                    self.p.failed_attempts = 0;
                    self.charge_current_period_from(now);
                }
                Ok(self.move_to(SubscriptionStatus::Active))
            }
        }
    }

    /// Cancels for good. A charge already in flight still records its outcome.
    pub fn cancel(&mut self) -> (Applied<SubscriptionStatus>, Vec<SubscriptionEvent>) {
        if self.p.status == SubscriptionStatus::Cancelled {
            return (Applied::Ignored(Ignored::Duplicate), Vec::new());
        }
        self.p.next_charge_at = None;
        (
            self.move_to(SubscriptionStatus::Cancelled),
            vec![SubscriptionEvent::Cancelled],
        )
    }

    /// Replaces the token (how a past-due subscription whose token died gets
    /// paid again: the retry is due at once).
    pub fn replace_token(
        &mut self,
        token_id: TokenId,
        now: OffsetDateTime,
    ) -> Result<(), SubscriptionError> {
        if self.p.status == SubscriptionStatus::Cancelled {
            return Err(self.refuse("change the token of"));
        }
        self.p.new.token_id = token_id;
        if self.p.status == SubscriptionStatus::PastDue && self.p.in_flight.is_none() {
            self.p.next_charge_at = Some(now);
        }
        Ok(())
    }

    /// Replaces the merchant's metadata.
    pub fn set_metadata(&mut self, metadata: Option<String>) {
        self.p.new.metadata = metadata;
    }

    /// The merchant's metadata (opaque).
    pub fn metadata(&self) -> Option<&str> {
        self.p.new.metadata.as_deref()
    }

    /// Changes the amount of future charges.
    pub fn change_amount(&mut self, amount: Money) -> Result<(), SubscriptionError> {
        if amount.is_zero() {
            return Err(SubscriptionError::ZeroAmount);
        }
        if self.p.status == SubscriptionStatus::Cancelled {
            return Err(self.refuse("change the amount of"));
        }
        self.p.new.amount = amount;
        Ok(())
    }

    fn refuse(&self, command: &'static str) -> SubscriptionError {
        SubscriptionError::Transition(TransitionError::new(self.p.status, command))
    }

    fn move_to(&mut self, to: SubscriptionStatus) -> Applied<SubscriptionStatus> {
        let from = self.p.status;
        debug_assert!(SubscriptionStatus::allows(from, to));
        self.p.status = to;
        Applied::Changed { from, to }
    }

    /// The id.
    pub fn id(&self) -> &SubscriptionId {
        &self.p.new.id
    }
    /// The customer.
    pub fn customer(&self) -> &CustomerReference {
        &self.p.new.customer
    }
    /// The token charged.
    pub fn token_id(&self) -> &TokenId {
        &self.p.new.token_id
    }
    /// The amount per period.
    pub fn amount(&self) -> Money {
        self.p.new.amount
    }
    /// The interval.
    pub fn interval(&self) -> Interval {
        self.p.new.interval
    }
    /// The anchor (`start_at`).
    pub fn anchor(&self) -> OffsetDateTime {
        self.p.new.start_at
    }
    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.p.new.description.as_deref()
    }
    /// The status.
    pub fn status(&self) -> SubscriptionStatus {
        self.p.status
    }
    /// Failed attempts since the last success.
    pub fn failed_attempts(&self) -> u32 {
        self.p.failed_attempts
    }
    /// When the next charge is due (`None`: nothing scheduled).
    pub fn next_charge_at(&self) -> Option<OffsetDateTime> {
        self.p.next_charge_at
    }
    /// The attempt in flight, if any.
    pub fn in_flight(&self) -> Option<u32> {
        self.p.in_flight
    }
    /// When it was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.p.created_at
    }
}
