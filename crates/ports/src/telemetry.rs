//! What the use cases report for operators' metrics. An implementation
//! counts and never fails; outcomes are a closed set of short names, so
//! metric labels stay bounded.

/// Counts what background work and webhooks came to.
pub trait Telemetry: Send + Sync {
    /// A reconciliation check (`session/status`) of an unfinished payment:
    /// `news` (it moved), `nothing` (still the same), `failed` (the check itself failed).
    fn reconciliation_check(&self, outcome: &'static str);
    /// A subscription charge came to an end or was started: `started`,
    /// `paid`, `declined` (a retry follows), `gave_up` (dunning is over),
    /// `skipped` (a period missed while recur was down).
    fn subscription_charge(&self, outcome: &'static str);
    /// A merchant event delivery: `delivered` or `failed` (it is retried).
    fn event_delivery(&self, outcome: &'static str);
    /// A signed webhook of a known type could not be read, so its payment was
    /// checked with the bank instead.
    fn webhook_checked_instead(&self);
}

/// Telemetry that counts nothing, for tests and tools.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {
    fn reconciliation_check(&self, _: &'static str) {}
    fn subscription_charge(&self, _: &'static str) {}
    fn event_delivery(&self, _: &'static str) {}
    fn webhook_checked_instead(&self) {}
}
