//! Benchmark 1, the billing day: monthly subscriptions falling due at the
//! same moment (test clock), in-process sandbox, PostgreSQL.

use std::time::{Duration, Instant};

use app::Config;
use app::demo::{self, Client};

use crate::measure::{
    cpu_time, drop_postgres_database, peak_rss_mib, postgres_cpu_time, postgres_database,
    reset_peak_rss,
};
use crate::seed;

/// What a billing day measured.
pub struct BillingDay {
    pub subscriptions: u32,
    pub took: Duration,
    pub cpu: Duration,
    /// PostgreSQL's CPU time over the same span.
    pub postgres_cpu: Duration,
    pub signatures: u64,
    pub double_charges: usize,
    pub peak_rss_mib: f64,
}

impl BillingDay {
    pub fn charges_per_second(&self) -> f64 {
        f64::from(self.subscriptions) / self.took.as_secs_f64()
    }

    /// CPU milliseconds a charge cost (this process, PostgreSQL).
    pub fn cpu_ms_per_charge(&self) -> (f64, f64) {
        let per = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(self.subscriptions);
        (per(self.cpu), per(self.postgres_cpu))
    }

    #[allow(clippy::cast_precision_loss)]
    pub fn signatures_per_charge(&self) -> f64 {
        self.signatures as f64 / f64::from(self.subscriptions)
    }
}

/// `n` monthly subscriptions that fall due at the same moment, with
/// `history` finished payments already stored: the test clock moves past the
/// moment, and the run ends when the sandbox has charged every one.
pub async fn run(n: u32, in_flight: usize, history: u64) -> BillingDay {
    let tag = format!("{}_{history}_{in_flight}", std::process::id());
    let dir = std::env::temp_dir().join(format!("recur-bench-day-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let name = format!("recur_bench_day_{tag}");
    let database = postgres_database(&name).await;
    let mut config = Config::ephemeral(dir.join("state"), database.clone());
    config.worker_in_flight = in_flight;
    let running = app::start(config).await.expect("service");
    let client = Client::of(&running);
    let sandbox = running.sandbox.clone().expect("sandbox mode");
    let token = demo::saved_card_token(&client, "cust-day")
        .await
        .expect("token");
    let (_, clock) = client.get("/v1/test/clock").await;
    let now = time::OffsetDateTime::parse(
        clock["now"].as_str().expect("now"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    let due = (now + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (client, token, due) = (client.clone(), token.clone(), due.clone());
            tokio::spawn(async move {
                for i in (w..n).step_by(16) {
                    let body = serde_json::json!({ "customer": { "reference": "cust-day" },
                        "token_id": token, "amount": { "value": 100_000 + i, "currency": "RUB" },
                        "interval": { "unit": "month", "count": 1 }, "start_at": due });
                    let (status, created) = client.post("/v1/subscriptions", &body).await;
                    assert_eq!(status, 201, "{created}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    // Seeded (and analysed) after the subscriptions exist: statistics taken
    // while their table was empty would plan its lookups as scans.
    if history > 0 {
        seed::history(&database, history).await;
    }
    // Done when recur has settled every charge (the bank's payment_finished
    // applied), not merely when the bank has charged.
    let mut db = {
        use sqlx::Connection;
        sqlx::AnyConnection::connect(&database)
            .await
            .expect("database")
    };
    let settled = async |db: &mut sqlx::AnyConnection| -> usize {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM subscription_charges WHERE status = 'succeeded'",
        )
        .fetch_one(db)
        .await
        .expect("count");
        usize::try_from(n).expect("count")
    };
    let signatures = bank131::signatures_made();
    let cpu = cpu_time();
    let postgres_cpu = postgres_cpu_time();
    reset_peak_rss();
    let started = Instant::now();
    let (status, moved) = client
        .post(
            "/v1/test/clock/advance",
            &serde_json::json!({ "seconds": 86_400 + 60 }),
        )
        .await;
    // The test clock runs what falls due inside the request; a day this big
    // outlasts the request timeout, and the workers carry on (503 "timeout"
    // says it may have taken effect: it has, the clock stands at the due moment).
    assert!(
        status == 200 || (status == 503 && moved["error"]["code"] == "timeout"),
        "{moved}"
    );
    let total = usize::try_from(n).expect("fits");
    while settled(&mut db).await < total {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "billing day not over in 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    let postgres_cpu = postgres_cpu_time().saturating_sub(postgres_cpu);
    // Let the last webhooks and confirms land before counting signatures.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signatures = bank131::signatures_made() - signatures;
    let mut amounts: Vec<i64> = sandbox
        .ledger()
        .iter()
        .filter(|e| e.kind == "charge" && e.amount >= 100_000)
        .map(|e| e.amount)
        .collect();
    let all = amounts.len();
    amounts.sort_unstable();
    amounts.dedup();
    let peak = peak_rss_mib();
    running.stop().await;
    drop(db);
    drop_postgres_database(&name).await;
    let _ = std::fs::remove_dir_all(&dir);
    BillingDay {
        subscriptions: n,
        took,
        cpu,
        postgres_cpu,
        signatures,
        double_charges: all - amounts.len(),
        peak_rss_mib: peak,
    }
}
