//! Billing intervals and periods, computed from the anchor (`start_at`)
//! and never by adding to the previous period, so month-end dates do not
//! drift: Jan 31 → Feb 28/29 → Mar 31.

use time::{Duration, Month, OffsetDateTime};

use super::error::SubscriptionError;

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

    /// The index of the period that contains `at` (0 before the anchor).
    /// `None` past the year 9999.
    pub fn index_at(&self, anchor: OffsetDateTime, at: OffsetDateTime) -> Option<u32> {
        if at < anchor {
            return Some(0);
        }
        let unit_estimate = match self.unit {
            IntervalUnit::Day => (at - anchor).whole_days(),
            IntervalUnit::Week => (at - anchor).whole_weeks(),
            IntervalUnit::Month => {
                (i64::from(at.year()) - i64::from(anchor.year())) * 12
                    + i64::from(u8::from(at.month()))
                    - i64::from(u8::from(anchor.month()))
            }
        };
        let mut index = u32::try_from(unit_estimate / i64::from(self.count)).ok()?;
        // The estimate is off by at most one either way (month lengths, clamping).
        while index > 0 && self.period_start(anchor, index)? > at {
            index -= 1;
        }
        while self.period_start(anchor, index.checked_add(1)?)? <= at {
            index += 1;
        }
        Some(index)
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
