//! Subscriptions: a token charged once per billing period, with dunning on declines.
//!
//! Periods are computed from the anchor (`start_at`), never by adding to the
//! previous period, so month-end dates do not drift: Jan 31 → Feb 28/29 → Mar 31.

use time::{Duration, Month, OffsetDateTime};

use crate::decline::{DeclineClass, Dunning, DunningPolicy};
use crate::machine::{Applied, Ignored, State, Transition, TransitionError};
use crate::{CustomerReference, Money, SubscriptionId, TokenId};

/// The unit of a billing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntervalUnit {
    /// Calendar days (24 h in UTC).
    Day,
    /// Seven days.
    Week,
    /// Calendar months, clamped to the month's last day.
    Month,
}

impl IntervalUnit {
    /// `day`, `week` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// Parses `day`, `week` or `month`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }
}

/// A billing interval: `count` units (1–365 days, 1–52 weeks, 1–12 months).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    unit: IntervalUnit,
    count: u32,
}

/// Why a subscription could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionError {
    /// The interval count is out of range for its unit.
    InvalidInterval,
    /// The amount is zero.
    ZeroAmount,
    /// The charge does not belong to the period/attempt in flight.
    UnexpectedCharge,
    /// The command is not legal in this state.
    Transition(TransitionError),
}

impl std::fmt::Display for SubscriptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidInterval => {
                f.write_str("interval.count must be 1–365 days, 1–52 weeks or 1–12 months")
            }
            Self::ZeroAmount => f.write_str("amount must be greater than zero"),
            Self::UnexpectedCharge => f.write_str("no such charge attempt is in flight"),
            Self::Transition(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SubscriptionError {}

impl Interval {
    /// Builds an interval, refusing counts of zero or more than a year.
    pub fn new(unit: IntervalUnit, count: u32) -> Result<Self, SubscriptionError> {
        let max = match unit {
            IntervalUnit::Day => 365,
            IntervalUnit::Week => 52,
            IntervalUnit::Month => 12,
        };
        if (1..=max).contains(&count) {
            Ok(Self { unit, count })
        } else {
            Err(SubscriptionError::InvalidInterval)
        }
    }

    /// The unit.
    pub fn unit(&self) -> IntervalUnit {
        self.unit
    }

    /// How many units.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The start of period `n` (0-based) of a subscription anchored at `anchor`.
    /// `None` past the year 9999.
    pub fn period_start(&self, anchor: OffsetDateTime, n: u32) -> Option<OffsetDateTime> {
        let steps = i64::from(n) * i64::from(self.count);
        match self.unit {
            IntervalUnit::Day => anchor.checked_add(Duration::days(steps)),
            IntervalUnit::Week => anchor.checked_add(Duration::weeks(steps)),
            IntervalUnit::Month => add_months(anchor, steps),
        }
    }
}

fn add_months(at: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let index = i64::from(at.year()) * 12 + i64::from(u8::from(at.month())) - 1 + months;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = at.day().min(month.length(year));
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(at.replace_date(date))
}

/// One billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// 0-based index from the anchor.
    pub index: u32,
    /// Inclusive start.
    pub start: OffsetDateTime,
    /// Exclusive end (the next period's start).
    pub end: OffsetDateTime,
}

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
    const ALL: &'static [Self] = &[Self::Active, Self::PastDue, Self::Paused, Self::Cancelled];
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

    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
        }
    }
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
}

impl ChargeStatus {
    /// `pending`, `succeeded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
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
}

impl SubscriptionEvent {
    /// The event type's name in the merchant feed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChargeSucceeded => "subscription.charge_succeeded",
            Self::ChargeFailed => "subscription.charge_failed",
            Self::PastDue => "subscription.past_due",
            Self::Cancelled => "subscription.cancelled",
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
    /// Start of the first period (and the anchor of all others).
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
    id: SubscriptionId,
    customer: CustomerReference,
    token_id: TokenId,
    amount: Money,
    interval: Interval,
    anchor: OffsetDateTime,
    description: Option<String>,
    metadata: Option<String>,
    status: SubscriptionStatus,
    period_index: u32,
    attempts_in_period: u32,
    in_flight: Option<u32>,
    failed_attempts: u32,
    next_charge_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

/// A subscription's stored parts, for stores to write and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SubscriptionParts {
    pub new: NewSubscription,
    pub status: SubscriptionStatus,
    pub period_index: u32,
    pub attempts_in_period: u32,
    pub in_flight: Option<u32>,
    pub failed_attempts: u32,
    pub next_charge_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl Subscription {
    /// Creates an active subscription whose first charge is due at `start_at`.
    pub fn new(new: NewSubscription, now: OffsetDateTime) -> Result<Self, SubscriptionError> {
        if new.amount.is_zero() {
            return Err(SubscriptionError::ZeroAmount);
        }
        Ok(Self {
            next_charge_at: Some(new.start_at),
            anchor: new.start_at,
            id: new.id,
            customer: new.customer,
            token_id: new.token_id,
            amount: new.amount,
            interval: new.interval,
            description: new.description,
            metadata: new.metadata,
            status: SubscriptionStatus::Active,
            period_index: 0,
            attempts_in_period: 0,
            in_flight: None,
            failed_attempts: 0,
            created_at: now,
        })
    }

    /// Rebuilds a subscription from storage.
    pub fn restore(p: SubscriptionParts) -> Self {
        Self {
            anchor: p.new.start_at,
            id: p.new.id,
            customer: p.new.customer,
            token_id: p.new.token_id,
            amount: p.new.amount,
            interval: p.new.interval,
            description: p.new.description,
            metadata: p.new.metadata,
            status: p.status,
            period_index: p.period_index,
            attempts_in_period: p.attempts_in_period,
            in_flight: p.in_flight,
            failed_attempts: p.failed_attempts,
            next_charge_at: p.next_charge_at,
            created_at: p.created_at,
        }
    }

    /// Splits it into stored parts.
    pub fn to_parts(&self) -> SubscriptionParts {
        SubscriptionParts {
            new: NewSubscription {
                id: self.id.clone(),
                customer: self.customer.clone(),
                token_id: self.token_id.clone(),
                amount: self.amount,
                interval: self.interval,
                start_at: self.anchor,
                description: self.description.clone(),
                metadata: self.metadata.clone(),
            },
            status: self.status,
            period_index: self.period_index,
            attempts_in_period: self.attempts_in_period,
            in_flight: self.in_flight,
            failed_attempts: self.failed_attempts,
            next_charge_at: self.next_charge_at,
            created_at: self.created_at,
        }
    }

    /// Period `index` of this subscription.
    pub fn period(&self, index: u32) -> Option<Period> {
        let start = self.interval.period_start(self.anchor, index)?;
        let end = self
            .interval
            .period_start(self.anchor, index.checked_add(1)?)?;
        Some(Period { index, start, end })
    }

    /// The period being paid (or next to be paid).
    pub fn current_period(&self) -> Option<Period> {
        self.period(self.period_index)
    }

    /// The charge to start at `now`, if one is due and none is in flight.
    pub fn due_charge(&self, now: OffsetDateTime) -> Option<DueCharge> {
        let chargeable = matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        let due = self.next_charge_at.is_some_and(|at| at <= now);
        if !chargeable || !due || self.in_flight.is_some() {
            return None;
        }
        Some(DueCharge {
            period: self.current_period()?,
            attempt: self.attempts_in_period + 1,
        })
    }

    /// Records that `charge` was started (its payment created). Until its
    /// outcome is recorded no other charge is due.
    pub fn start_charge(&mut self, charge: DueCharge) -> Result<(), SubscriptionError> {
        if charge.period.index != self.period_index
            || charge.attempt != self.attempts_in_period + 1
            || self.in_flight.is_some()
        {
            return Err(SubscriptionError::UnexpectedCharge);
        }
        self.attempts_in_period = charge.attempt;
        self.in_flight = Some(charge.attempt);
        Ok(())
    }

    fn check_in_flight(&self, period_index: u32, attempt: u32) -> Result<(), Ignored> {
        if period_index < self.period_index
            || (period_index == self.period_index && self.in_flight != Some(attempt))
        {
            return Err(Ignored::Duplicate);
        }
        if period_index > self.period_index {
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
        let from = self.status;
        self.in_flight = None;
        self.period_index += 1;
        self.attempts_in_period = 0;
        self.failed_attempts = 0;
        if self.status == SubscriptionStatus::PastDue {
            self.status = SubscriptionStatus::Active;
        }
        if self.status != SubscriptionStatus::Cancelled {
            self.next_charge_at = self.current_period().map(|p| p.start);
        }
        (
            Applied::Changed {
                from,
                to: self.status,
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
        let from = self.status;
        self.in_flight = None;
        self.failed_attempts += 1;
        let mut events = vec![SubscriptionEvent::ChargeFailed];
        if self.status == SubscriptionStatus::Active {
            self.status = SubscriptionStatus::PastDue;
            events.push(SubscriptionEvent::PastDue);
        }
        if matches!(self.status, SubscriptionStatus::PastDue) {
            self.next_charge_at = match policy.next(class, self.failed_attempts, now) {
                Dunning::RetryAt(at) => Some(at),
                Dunning::GiveUp => None,
            };
        }
        (
            Applied::Changed {
                from,
                to: self.status,
            },
            events,
        )
    }

    /// Pauses charging.
    pub fn pause(&mut self) -> Result<Applied<SubscriptionStatus>, SubscriptionError> {
        match self.status {
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
        match self.status {
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                Ok(Applied::Ignored(Ignored::Duplicate))
            }
            SubscriptionStatus::Cancelled => Err(self.refuse("resume")),
            SubscriptionStatus::Paused => {
                if self.in_flight.is_none() {
                    while self.current_period().is_some_and(|p| p.end <= now) {
                        self.period_index += 1;
                        self.attempts_in_period = 0;
                    }
                    self.failed_attempts = 0;
                    self.next_charge_at = self.current_period().map(|p| p.start.max(now));
                }
                Ok(self.move_to(SubscriptionStatus::Active))
            }
        }
    }

    /// Cancels for good. A charge already in flight still records its outcome.
    pub fn cancel(&mut self) -> (Applied<SubscriptionStatus>, Vec<SubscriptionEvent>) {
        if self.status == SubscriptionStatus::Cancelled {
            return (Applied::Ignored(Ignored::Duplicate), Vec::new());
        }
        self.next_charge_at = None;
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
        if self.status == SubscriptionStatus::Cancelled {
            return Err(self.refuse("change the token of"));
        }
        self.token_id = token_id;
        if self.status == SubscriptionStatus::PastDue && self.in_flight.is_none() {
            self.next_charge_at = Some(now);
        }
        Ok(())
    }

    /// Replaces the merchant's metadata.
    pub fn set_metadata(&mut self, metadata: Option<String>) {
        self.metadata = metadata;
    }

    /// The merchant's metadata (opaque).
    pub fn metadata(&self) -> Option<&str> {
        self.metadata.as_deref()
    }

    /// Changes the amount of future charges.
    pub fn change_amount(&mut self, amount: Money) -> Result<(), SubscriptionError> {
        if amount.is_zero() {
            return Err(SubscriptionError::ZeroAmount);
        }
        if self.status == SubscriptionStatus::Cancelled {
            return Err(self.refuse("change the amount of"));
        }
        self.amount = amount;
        Ok(())
    }

    fn refuse(&self, command: &'static str) -> SubscriptionError {
        SubscriptionError::Transition(TransitionError::new(self.status, command))
    }

    fn move_to(&mut self, to: SubscriptionStatus) -> Applied<SubscriptionStatus> {
        let from = self.status;
        debug_assert!(SubscriptionStatus::allows(from, to));
        self.status = to;
        Applied::Changed { from, to }
    }

    /// The id.
    pub fn id(&self) -> &SubscriptionId {
        &self.id
    }
    /// The customer.
    pub fn customer(&self) -> &CustomerReference {
        &self.customer
    }
    /// The token charged.
    pub fn token_id(&self) -> &TokenId {
        &self.token_id
    }
    /// The amount per period.
    pub fn amount(&self) -> Money {
        self.amount
    }
    /// The interval.
    pub fn interval(&self) -> Interval {
        self.interval
    }
    /// The anchor (`start_at`).
    pub fn anchor(&self) -> OffsetDateTime {
        self.anchor
    }
    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The status.
    pub fn status(&self) -> SubscriptionStatus {
        self.status
    }
    /// Failed attempts since the last success.
    pub fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }
    /// When the next charge is due (`None`: nothing scheduled).
    pub fn next_charge_at(&self) -> Option<OffsetDateTime> {
        self.next_charge_at
    }
    /// The attempt in flight, if any.
    pub fn in_flight(&self) -> Option<u32> {
        self.in_flight
    }
    /// When it was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
}
