//! Benchmarks, run by `cargo xtask bench` (release build), which writes the
//! Markdown this prints to `docs/benchmarks.md`.
//!
//! - crypto: one RSA-2048 `X-PARTNER-SIGN` signature and verification, one
//!   AES-256-GCM token seal and open;
//! - domain: applying one bank fact to a payment;
//! - end to end: MIT payments through the merchant API against the in-process
//!   sandbox, sequential and 8 at a time, on SQLite.

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
}
