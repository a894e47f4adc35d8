//! Prometheus counters, rendered as text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    webhooks: Mutex<BTreeMap<String, u64>>,
    gateway: Mutex<BTreeMap<(String, bool), (u64, f64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Metrics {
    /// One HTTP request answered.
    pub fn request(&self, method: &str, route: &str, status: u16) {
        // Label values stay bounded whatever a client sends: an unknown
        // method is `other` (routes are the matched templates, or `unmatched`).
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "other",
        };
        *lock(&self.requests)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }

    /// One bank webhook received: `stored`, `duplicate`, `bad_signature`.
    pub fn webhook(&self, outcome: &str) {
        *lock(&self.webhooks).entry(outcome.to_owned()).or_default() += 1;
    }

    /// One bank call and how long it took.
    pub fn gateway(&self, method: &str, took: Duration, ok: bool) {
        let mut g = lock(&self.gateway);
        let entry = g.entry((method.to_owned(), ok)).or_default();
        entry.0 += 1;
        entry.1 += took.as_secs_f64();
    }

    /// The Prometheus text exposition, with the outbox depth gauge.
    pub fn render(&self, snapshot: Option<service::OperationalSnapshot>) -> String {
        let mut out = String::new();
        out.push_str("# HELP recur_http_requests_total Merchant API and webhook requests by route and status.\n");
        out.push_str("# TYPE recur_http_requests_total counter\n");
        for ((method, route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "recur_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        out.push_str("# HELP recur_webhooks_total Bank webhooks by outcome.\n# TYPE recur_webhooks_total counter\n");
        for (outcome, n) in lock(&self.webhooks).iter() {
            let _ = writeln!(
                out,
                "recur_webhooks_total{{outcome=\"{}\"}} {n}",
                label(outcome)
            );
        }
        out.push_str("# HELP recur_gateway_request_seconds Bank API latency.\n# TYPE recur_gateway_request_seconds summary\n");
        for ((method, ok), (count, sum)) in lock(&self.gateway).iter() {
            let labels = format!("method=\"{}\",ok=\"{ok}\"", label(method));
            let _ = writeln!(out, "recur_gateway_request_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(
                out,
                "recur_gateway_request_seconds_count{{{labels}}} {count}"
            );
        }
        if let Some(snapshot) = snapshot {
            out.push_str("# HELP recur_outbox_depth Background commands waiting.\n# TYPE recur_outbox_depth gauge\n");
            let _ = writeln!(out, "recur_outbox_depth {}", snapshot.outbox_depth);
            out.push_str("# HELP recur_webhooks_checked_instead_total Known webhooks that could not be read; their payment was checked with session/status.\n# TYPE recur_webhooks_checked_instead_total counter\n");
            let _ = writeln!(
                out,
                "recur_webhooks_checked_instead_total {}",
                snapshot.webhooks_checked_instead
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_stay_bounded_whatever_the_method() {
        let metrics = Metrics::default();
        for method in ["GET", "BREW", "X-ANYTHING-1", "X-ANYTHING-2"] {
            metrics.request(method, "unmatched", 404);
        }
        let text = metrics.render(None);
        assert!(text.contains(r#"method="other""#), "{text}");
        assert!(
            !text.contains("BREW") && !text.contains("X-ANYTHING"),
            "{text}"
        );
    }
}
