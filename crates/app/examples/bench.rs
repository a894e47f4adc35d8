//! Benchmarks, run by `cargo xtask bench` (release build), which writes the
//! Markdown this prints to `docs/benchmarks.md`.
//!
//! - crypto: one RSA-2048 `X-PARTNER-SIGN` signature and verification, one
//!   AES-256-GCM token seal and open;
//! - domain: applying one bank fact to a payment;
//! - end to end: MIT payments through the merchant API against the in-process
//!   sandbox, sequential and 8 at a time, on SQLite;
//! - billing day: monthly subscriptions falling due at once on Postgres,
//!   next to the crypto ceiling measured in the same run (the single-core
//!   `openssl speed rsa2048` sign rate, the signatures each charge costs,
//!   counted).

use std::time::{Duration, Instant};

use app::Config;
use app::demo::{self, Client};
use bank131::{Signer, Verifier};
use domain::{
    BankFact, Confirmation, Currency, CustomerReference, Money, NewPayment, Payment, PaymentId,
    PaymentMethod,
};
use store_sql::crypto::TokenKeys;

fn per_op(total: Duration, n: u32) -> String {
    let micros = total.as_secs_f64() * 1e6 / f64::from(n);
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.2} µs")
    }
}

fn time(n: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed()
}

/// The `per_mille`-th latency of a sorted list (500 = median).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[((sorted.len() - 1) * per_mille / 1000).min(sorted.len() - 1)]
}

async fn payments(
    client: &Client,
    token: &str,
    n: u32,
    concurrency: u32,
) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let mut latencies = Vec::new();
    for batch in 0..n.div_ceil(concurrency) {
        let tasks: Vec<_> = (0..concurrency.min(n - batch * concurrency))
            .map(|_| {
                let client = client.clone();
                let body = demo::token_payment("cust-bench", token, "merchant", 100);
                tokio::spawn(async move {
                    let t = Instant::now();
                    let (status, created) = client.post("/v1/payments", &body).await;
                    assert_eq!(status, 201, "{created}");
                    assert_eq!(created["status"], "succeeded", "{created}");
                    t.elapsed()
                })
            })
            .collect();
        for task in tasks {
            latencies.push(task.await.expect("task"));
        }
    }
    latencies.sort();
    (started.elapsed(), latencies)
}

/// A fresh database on the local PostgreSQL server.
async fn postgres_database(name: &str) -> String {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let server = store_postgres::test_server_url();
    let mut admin = sqlx::AnyConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server}: {e}"));
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.execute(sql.as_str()).await.expect("admin statement");
    }
    store_postgres::with_database(&server, name)
}

/// `openssl speed rsa2048` signatures per second on one core, when openssl
/// is installed.
fn openssl_sign_rate() -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000244s 0.000007s   4098.4 144532.1"
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("rsa 2048 bits"))?;
    line.split_whitespace().nth(5)?.parse().ok()
}

/// CPU time this process has used (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th, in clock ticks (100 per second on Linux).
    let ticks: u64 = stat.rsplit_once(')').map_or(0, |(_, rest)| {
        rest.split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse::<u64>().ok())
            .sum()
    });
    Duration::from_millis(ticks * 10)
}

/// What a billing day measured.
struct BillingDay {
    subscriptions: u32,
    in_flight: usize,
    took: Duration,
    cpu: Duration,
    signatures: u64,
    double_charges: usize,
}

/// `n` monthly subscriptions that fall due at the same moment: the test clock
/// moves past it, and the run ends when the sandbox has charged every one.
async fn billing_day(n: u32, in_flight: usize) -> BillingDay {
    let dir = std::env::temp_dir().join(format!("recur-bench-day-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let database = postgres_database(&format!("recur_bench_day_{}", std::process::id())).await;
    let mut config = Config::ephemeral(dir.join("state"), database);
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
    let charged = |sandbox: &sandbox::Sandbox| {
        sandbox
            .ledger()
            .iter()
            .filter(|e| e.kind == "charge" && e.amount >= 100_000)
            .count()
    };
    let signatures = bank131::signatures_made();
    let cpu = cpu_time();
    let started = Instant::now();
    let (status, moved) = client
        .post(
            "/v1/test/clock/advance",
            &serde_json::json!({ "seconds": 86_400 + 60 }),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let total = usize::try_from(n).expect("small");
    while charged(&sandbox) < total {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "billing day not over in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
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
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    BillingDay {
        subscriptions: n,
        in_flight,
        took,
        cpu,
        signatures,
        double_charges: all - amounts.len(),
    }
}

#[tokio::main]
async fn main() {
    let signer = Signer::generate().expect("key");
    let verifier =
        Verifier::from_pems([signer.public_pem().expect("pem").as_str()]).expect("verifier");
    let body = br#"{"session_id":"ps_3230","payment_details":{"type":"recurrent","recurrent":{"token":"feda2b21"}}}"#;
    let signature = signer.sign(body).expect("sign");
    let n = 500;
    let sign = time(n, || {
        signer.sign(body).expect("sign");
    });
    let verify = time(n, || assert!(verifier.verify(body, &signature)));
    let keys = TokenKeys::ephemeral();
    let sealed = keys.seal(
        "tok_1",
        "feda2b2106a2e8747bbdc4c9f53c7f5f6ab845ffa1b7cc68ca839720af99b3d1",
    );
    let seal = time(n * 20, || {
        keys.seal(
            "tok_1",
            "feda2b2106a2e8747bbdc4c9f53c7f5f6ab845ffa1b7cc68ca839720af99b3d1",
        );
    });
    let open = time(n * 20, || {
        keys.open("tok_1", &sealed).expect("open");
    });
    let now = time::OffsetDateTime::now_utc();
    let fresh = Payment::new(
        NewPayment {
            id: PaymentId::parse("pay_bench").expect("id"),
            customer: CustomerReference::parse("c").expect("ref"),
            amount: Money::new(100, Currency::RUB).expect("money"),
            method: PaymentMethod::Card,
            save_token: false,
            confirmation: Confirmation::Automatic,
            return_url: None,
            description: None,
            metadata: None,
        },
        now,
    )
    .expect("payment");
    let apply = time(n * 100, || {
        let mut p = fresh.clone();
        p.apply(BankFact::Succeeded { token: None }, now);
    });

    let dir = std::env::temp_dir().join(format!("recur-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config::ephemeral(
        dir.join("state"),
        format!("sqlite://{}", dir.join("bench.db").display()),
    );
    let running = app::start(config).await.expect("service");
    let client = Client::of(&running);
    let token = demo::saved_card_token(&client, "cust-bench")
        .await
        .expect("token");
    payments(&client, &token, 20, 1).await; // warm-up
    let count: u32 = 200;
    let (sequential, seq_lat) = payments(&client, &token, count, 1).await;
    let (parallel, par_lat) = payments(&client, &token, count, 8).await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let days = [billing_day(2_000, 8).await, billing_day(2_000, 32).await];
    let openssl = openssl_sign_rate();

    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!("# Benchmarks\n");
    println!(
        "Written by `cargo xtask bench` (release build, {cores} cores). Numbers are from one run on the machine that ran it; compare runs on the same machine only.\n"
    );
    println!("| what | per operation |\n| --- | --- |");
    println!(
        "| RSA-2048 `X-PARTNER-SIGN` signature (aws-lc-rs) | {} |",
        per_op(sign, n)
    );
    println!(
        "| RSA-2048 signature verification | {} |",
        per_op(verify, n)
    );
    println!("| AES-256-GCM token seal | {} |", per_op(seal, n * 20));
    println!("| AES-256-GCM token open | {} |", per_op(open, n * 20));
    println!(
        "| apply one bank fact to a payment (domain) | {} |",
        per_op(apply, n * 100)
    );
    println!();
    println!(
        "MIT payments through `POST /v1/payments` (create session, start, confirm: three signed bank calls, four commits) against the in-process sandbox, SQLite (WAL, synchronous=FULL), {count} payments:\n"
    );
    println!("| concurrency | throughput | p50 | p99 |\n| --- | --- | --- | --- |");
    for (label, total, lat) in [("1", sequential, &seq_lat), ("8", parallel, &par_lat)] {
        println!(
            "| {label} | {:.0} payments/s | {:.1} ms | {:.1} ms |",
            f64::from(count) / total.as_secs_f64(),
            percentile(lat, 500).as_secs_f64() * 1e3,
            percentile(lat, 990).as_secs_f64() * 1e3
        );
    }

    println!();
    let ours = f64::from(n) / sign.as_secs_f64();
    let rate = openssl.unwrap_or(ours);
    println!(
        "Billing day: 2,000 monthly subscriptions fall due at the same moment (test clock), in-process sandbox, Postgres; the limit measured in the same run: `openssl speed rsa2048` on one core {}, aws-lc-rs {ours:.0} signs/s.\n",
        openssl.map_or_else(
            || "(openssl not installed)".to_owned(),
            |r| format!("{r:.0} signs/s")
        )
    );
    println!(
        "| `RECUR_WORKER_CONCURRENCY` | charges/s | all charged in | double charges | signatures per charge (counted) | crypto ceiling (cores × sign rate ÷ signatures) | reached | CPU busy | time per charge in flight |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for day in &days {
        let charges_per_second = f64::from(day.subscriptions) / day.took.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let per_charge = day.signatures as f64 / f64::from(day.subscriptions);
        #[allow(clippy::cast_precision_loss)]
        let ceiling = cores as f64 * rate / per_charge;
        #[allow(clippy::cast_precision_loss)]
        let busy = day.cpu.as_secs_f64() / (day.took.as_secs_f64() * cores as f64);
        #[allow(clippy::cast_precision_loss)]
        let in_flight_ms = day.in_flight as f64 / charges_per_second * 1e3;
        println!(
            "| {} | {charges_per_second:.0} | {:.1} s | {} | {per_charge:.1} | {ceiling:.0} charges/s | {:.0} % (target 50 %) | {:.0} % | {in_flight_ms:.0} ms |",
            day.in_flight,
            day.took.as_secs_f64(),
            day.double_charges,
            100.0 * charges_per_second / ceiling,
            100.0 * busy,
        );
    }
    println!(
        "\n**Where the time goes (target missed).** The CPU is not the limit (busy well under 100 %) and more charges in flight are not faster, so the run is bound by a serial section, not by the crypto ceiling. The one serial section each charge passes several times: on Postgres every commit that appends merchant events takes one advisory lock (`pg_advisory_xact_lock` in `store-sql/src/commit.rs`) so that event ids are handed out in commit order; a charge commits events at least twice (started, succeeded), each holding the lock through its commit's fsync. Second: the scheduler finishes each claimed batch of 50 before it reads the next. Neither is profiled yet beyond these figures; the fix is a feed whose order does not need a global lock (ids from a sequence plus a visible-up-to watermark for readers)."
    );
    println!(
        "\n\"CPU busy\" is this process's CPU time (recur and the in-process sandbox) over wall time × cores; \"time per charge in flight\" is the concurrency over the throughput (Little's law): how long each charge holds its slot, create, start and confirm at the bank and their commits included."
    );
}
