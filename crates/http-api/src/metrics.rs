//! What operators scrape at `/metrics`, through `prometheus-client`: request
//! and bank-call latency histograms, counters of outcomes, and gauges read
//! from the stores at scrape time. Every label value comes from a closed
//! set (matched route templates, known methods, named outcomes), so the
//! number of series stays bounded whatever clients send.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use service::OperationalSnapshot;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BankCallLabels {
    method: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: &'static str,
}

type Latency = Family<RequestLabels, Histogram, fn() -> Histogram>;
type BankLatency = Family<BankCallLabels, Histogram, fn() -> Histogram>;
type Seconds = Gauge<f64, AtomicU64>;

/// 1 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The service's metrics and the registry they are exposed from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Latency,
    bank_calls: BankLatency,
    webhooks: Family<Outcome, Counter>,
    reconciliation: Family<Outcome, Counter>,
    charges: Family<Outcome, Counter>,
    deliveries: Family<Outcome, Counter>,
    checked_instead: Counter,
    depth: Family<QueueLabel, Gauge>,
    oldest: Family<QueueLabel, Seconds>,
    payments: Family<StatusLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("recur");
        let requests = Latency::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Merchant API, webhook and operations requests by route, method and status",
            Unit::Seconds,
            requests.clone(),
        );
        let bank_calls = BankLatency::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "bank_request_duration",
            "Bank API calls by method and outcome (ok, refused, failed)",
            Unit::Seconds,
            bank_calls.clone(),
        );
        let metrics = Self {
            registry,
            requests,
            bank_calls,
            webhooks: Family::default(),
            reconciliation: Family::default(),
            charges: Family::default(),
            deliveries: Family::default(),
            checked_instead: Counter::default(),
            depth: Family::default(),
            oldest: Family::default(),
            payments: Family::default(),
        };
        metrics.register_the_rest()
    }
}

impl Metrics {
    fn register_the_rest(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "webhooks",
            "Bank webhooks by outcome (stored, duplicate, bad_signature, store_failed)",
            self.webhooks.clone(),
        );
        r.register(
            "reconciliation_checks",
            "session/status checks of unfinished payments by outcome (news, nothing, failed)",
            self.reconciliation.clone(),
        );
        r.register(
            "subscription_charges",
            "Subscription charges by outcome (started, paid, declined, gave_up, skipped)",
            self.charges.clone(),
        );
        r.register(
            "event_deliveries",
            "Merchant event deliveries by outcome (delivered, failed)",
            self.deliveries.clone(),
        );
        r.register(
            "webhooks_checked_instead",
            "Known webhooks that could not be read; their payment was checked with session/status",
            self.checked_instead.clone(),
        );
        r.register(
            "queue_depth",
            "Items waiting: outbox commands, bank webhooks not yet applied",
            self.depth.clone(),
        );
        r.register_with_unit(
            "queue_oldest_age",
            "How long the oldest waiting item of each queue has waited",
            Unit::Seconds,
            self.oldest.clone(),
        );
        r.register(
            "payments",
            "Payments by status, read from the store at scrape time",
            self.payments.clone(),
        );
        self
    }

    /// One HTTP request answered, and how long it took.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        // An unknown method is `other`; routes are matched templates or `unmatched`.
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        let labels = RequestLabels {
            method,
            route: route.to_owned(),
            status: status.to_string(),
        };
        self.requests
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// One bank webhook received: `stored`, `duplicate`, `bad_signature`, `store_failed`.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks.get_or_create(&Outcome { outcome }).inc();
    }

    /// One bank call, its outcome (`ok`, `refused`, `failed`) and how long it took.
    pub fn bank_call(&self, method: &str, outcome: &'static str, took: Duration) {
        let labels = BankCallLabels {
            method: method.to_owned(),
            outcome,
        };
        self.bank_calls
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// The exposition, with the store's figures read just now (left out
    /// when the store did not answer).
    pub fn render(&self, snapshot: Option<&OperationalSnapshot>) -> String {
        if let Some(snapshot) = snapshot {
            for (queue, waiting) in [("outbox", snapshot.outbox), ("inbox", snapshot.inbox)] {
                let label = QueueLabel { queue };
                self.depth
                    .get_or_create(&label)
                    .set(i64::try_from(waiting.depth).unwrap_or(i64::MAX));
                self.oldest
                    .get_or_create(&label)
                    .set(waiting.oldest_age.as_seconds_f64());
            }
            self.payments.clear();
            for (status, count) in &snapshot.payments {
                let label = StatusLabel {
                    status: domain::State::as_str(*status),
                };
                self.payments
                    .get_or_create(&label)
                    .set(i64::try_from(*count).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl ports::Telemetry for Metrics {
    fn reconciliation_check(&self, outcome: &'static str) {
        self.reconciliation
            .get_or_create(&Outcome { outcome })
            .inc();
    }

    fn subscription_charge(&self, outcome: &'static str) {
        self.charges.get_or_create(&Outcome { outcome }).inc();
    }

    fn event_delivery(&self, outcome: &'static str) {
        self.deliveries.get_or_create(&Outcome { outcome }).inc();
    }

    fn webhook_checked_instead(&self) {
        self.checked_instead.inc();
    }
}

#[cfg(test)]
mod tests {
    use domain::PaymentStatus;
    use ports::Telemetry;
    use service::Waiting;

    use super::*;

    #[test]
    fn label_values_stay_bounded_whatever_the_method() {
        let metrics = Metrics::default();
        for method in ["GET", "BREW", "X-ANYTHING-1", "X-ANYTHING-2"] {
            metrics.request(method, "unmatched", 404, Duration::from_millis(3));
        }
        let text = metrics.render(None);
        assert!(text.contains(r#"method="other""#), "{text}");
        assert!(
            !text.contains("BREW") && !text.contains("X-ANYTHING"),
            "{text}"
        );
    }

    #[test]
    fn latencies_are_histograms_and_outcomes_counters_in_openmetrics_text() {
        let metrics = Metrics::default();
        metrics.request("POST", "/v1/payments", 201, Duration::from_millis(12));
        metrics.bank_call("session/status", "ok", Duration::from_millis(40));
        metrics.webhook("stored");
        metrics.reconciliation_check("news");
        metrics.subscription_charge("paid");
        metrics.event_delivery("failed");
        let snapshot = OperationalSnapshot {
            outbox: Waiting {
                depth: 3,
                oldest_age: time::Duration::seconds(90),
            },
            inbox: Waiting::default(),
            payments: vec![(PaymentStatus::Succeeded, 7)],
        };
        let text = metrics.render(Some(&snapshot));
        for line in [
            "# TYPE recur_http_request_duration_seconds histogram",
            r#"recur_http_request_duration_seconds_bucket{le="0.016",method="POST",route="/v1/payments",status="201"} 1"#,
            r#"recur_bank_request_duration_seconds_count{method="session/status",outcome="ok"} 1"#,
            r#"recur_webhooks_total{outcome="stored"} 1"#,
            r#"recur_reconciliation_checks_total{outcome="news"} 1"#,
            r#"recur_subscription_charges_total{outcome="paid"} 1"#,
            r#"recur_event_deliveries_total{outcome="failed"} 1"#,
            r#"recur_queue_depth{queue="outbox"} 3"#,
            r#"recur_queue_oldest_age_seconds{queue="outbox"} 90.0"#,
            r#"recur_payments{status="succeeded"} 7"#,
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
