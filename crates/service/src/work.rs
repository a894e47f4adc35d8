//! What background steps share: the batch size, the backoff, the report.

use time::Duration;

/// What one batch of background work did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkReport {
    /// Items finished.
    pub done: usize,
    /// Items put back to try again later.
    pub deferred: usize,
}

impl WorkReport {
    /// Counts one item finished or deferred.
    pub(crate) fn count(&mut self, finished: bool) {
        if finished {
            self.done += 1;
        } else {
            self.deferred += 1;
        }
    }
}

/// How many items one background step takes at a time.
pub(crate) const BATCH: u32 = 50;

/// Exponential backoff from one second, capped at ten minutes.
pub(crate) fn backoff(attempts: u32) -> Duration {
    Duration::seconds(1_i64 << attempts.min(10)).min(Duration::minutes(10))
}
