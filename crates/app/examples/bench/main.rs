//! Benchmarks, run by `cargo xtask bench` (release build), which writes the
//! Markdown this prints to `docs/benchmarks.md`. Every figure stands next to
//! the limit it is measured against, taken in the same run.
//!
//! `bench [--quick] [micro|billing|external|api|ingest|growth ...]`: the
//! named sections (all by default); `--quick` shrinks every load to check
//! that the benchmarks run, not to measure; `--subscriptions=N` sets the
//! billing day's size.

mod api;
mod billing;
mod external;
mod ingest;
mod measure;
mod micro;
mod seed;

use std::time::Duration;

use api::Store;

/// How big each load is.
struct Scale {
    subscriptions: u32,
    external_payments: usize,
    api_creates: usize,
    webhooks: usize,
    histories: [u64; 2],
}

const FULL: Scale = Scale {
    subscriptions: 10_000,
    external_payments: 3_000,
    api_creates: 4_000,
    webhooks: 12_000,
    histories: [10_000, 1_000_000],
};

const QUICK: Scale = Scale {
    subscriptions: 200,
    external_payments: 100,
    api_creates: 200,
    webhooks: 600,
    histories: [1_000, 10_000],
};

fn ratio(value: f64, limit: f64) -> String {
    format!("{:.0} %", 100.0 * value / limit)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut scale = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    // While iterating on one figure: `--subscriptions=2000`.
    if let Some(n) = args.iter().find_map(|a| a.strip_prefix("--subscriptions=")) {
        scale.subscriptions = n.parse().expect("--subscriptions=N");
    }
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |section: &str| named.is_empty() || named.contains(&section);
    let cores = cores();
    println!("# Benchmarks\n");
    println!(
        "Written by `cargo xtask bench` (release build, {cores} cores). Numbers are from one run on the machine that ran it; compare runs on the same machine only. Memory is the bench process's: recur, the in-process sandbox and the load generator together, so recur alone uses less.\n"
    );
    let (aws_rate, micro_table) = micro::run();
    let openssl = measure::openssl_sign_rate();
    let sign_rate = openssl.unwrap_or(aws_rate);
    if wanted("micro") {
        println!("## Per operation\n\n{micro_table}\n");
    }
    let mut base_day = None;
    if wanted("billing") || wanted("growth") {
        println!(
            "## 1. Billing day\n\n{} monthly subscriptions fall due at the same moment (test clock), in-process sandbox, PostgreSQL. The limit, measured in the same run: `openssl speed rsa2048` on one core {}, aws-lc-rs {aws_rate:.0} signs/s; the crypto ceiling is cores × sign rate ÷ signatures per charge (counted: recur's and the sandbox's).\n",
            scale.subscriptions,
            openssl.map_or_else(
                || "(openssl not installed)".to_owned(),
                |r| format!("{r:.0} signs/s")
            )
        );
        println!(
            "| `RECUR_WORKER_CONCURRENCY` | charges/s | all charged in | double charges | signatures per charge | crypto ceiling | reached (target 50 %) | CPU busy | peak RSS |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for in_flight in [8, 32] {
            let day = billing::run(scale.subscriptions, in_flight, 0).await;
            #[allow(clippy::cast_precision_loss)]
            let ceiling = cores as f64 * sign_rate / day.signatures_per_charge();
            #[allow(clippy::cast_precision_loss)]
            let busy = day.cpu.as_secs_f64() / (day.took.as_secs_f64() * cores as f64);
            println!(
                "| {in_flight} | {:.0} | {:.1} s | {} | {:.1} | {ceiling:.0} charges/s | {} | {:.0} % | {:.0} MiB |",
                day.charges_per_second(),
                day.took.as_secs_f64(),
                day.double_charges,
                day.signatures_per_charge(),
                ratio(day.charges_per_second(), ceiling),
                100.0 * busy,
                day.peak_rss_mib,
            );
            if in_flight == 8 {
                base_day = Some(day);
            }
        }
        println!();
    }
    if wanted("external") {
        let run = external::run(scale.external_payments, 8).await;
        println!(
            "## 2. External bank\n\n`recur sandbox` as a separate process (every `ready_to_confirm` is a webhook, every confirm goes through the outbox), PostgreSQL; {} customer-initiated token payments through 3-D Secure, created by {} clients. The bank sends `ready_to_confirm` as the payment starts; confirm latency runs from the API's answer to the payment showing `requires_action` (the bank asks for 3-D Secure only after the confirm), so it also holds the `action_required` webhook. Limit: every session confirmed within 5 s. The rate counts whole payments: created, confirmed, 3-D Secure approved by the client.\n",
            run.payments, run.clients
        );
        println!(
            "| confirms/s | p50 | p99 | max | over 5 s | double charges | peak RSS |\n| --- | --- | --- | --- | --- | --- | --- |"
        );
        println!(
            "| {:.0} | {:.0} ms | {:.0} ms | {:.0} ms | {} of {} | {} | {:.0} MiB |\n",
            run.confirms_per_second(),
            run.ms(500),
            run.ms(990),
            run.ms(1000),
            run.over(Duration::from_secs(5)),
            run.payments,
            run.double_charges,
            run.peak_rss_mib
        );
    }
    let mut base_api = Vec::new();
    if wanted("api") || wanted("growth") {
        println!(
            "## 3. Merchant API at 32 connections\n\n{} `POST /v1/payments` (merchant-initiated token charges, a new `Idempotency-Key` each: session/create, start and confirm at the in-process sandbox before the answer), then twice as many `GET /v1/payments/{{id}}` and `GET /healthz` of the same process. Target: POST ≥ 800/s on PostgreSQL with p99 < 100 ms.\n",
            scale.api_creates
        );
        println!(
            "| store | POST /v1/payments | p50 | p99 | GET /v1/payments/{{id}} | p50 | p99 | GET /healthz | p50 | p99 | POST vs target | peak RSS | idle RSS |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for store in [Store::Sqlite, Store::Postgres] {
            let run = api::run(store, 0, scale.api_creates, 32).await;
            let peak = run.create.peak_rss_mib.max(run.read.peak_rss_mib);
            println!(
                "| {} | {} | {} | {} | {} | {peak:.0} MiB | {:.0} MiB |",
                store.name(),
                run.create.cells(),
                run.read.cells(),
                run.health.cells(),
                ratio(run.create.rate(), 800.0),
                run.idle_rss_mib
            );
            base_api.push(run);
        }
        println!();
    }
    let mut base_ingest = None;
    if wanted("ingest") || wanted("growth") {
        println!(
            "## 4. Webhook ingest\n\n{} signed `payment_finished` webhooks per row (two in three are duplicates of one sent before), PostgreSQL, next to `pgbench` single-row inserts (a unique key and a body, like the inbox row) at the same concurrency on the same server. Target at 32 connections: ≥ 50 % of pgbench, p99 < 50 ms.\n",
            scale.webhooks
        );
        println!(
            "| connections | webhooks | p50 | p99 | pgbench inserts/s | ratio | peak RSS |\n| --- | --- | --- | --- | --- | --- | --- |"
        );
        for run in ingest::run(scale.webhooks, &[1, 8, 32], 0).await {
            println!(
                "| {} | {} | {} | {} | {:.0} MiB |",
                run.connections,
                run.webhooks.cells(),
                run.pgbench
                    .map_or_else(|| "(no pgbench)".to_owned(), |r| format!("{r:.0}")),
                run.pgbench
                    .map_or_else(String::new, |r| ratio(run.webhooks.rate(), r)),
                run.webhooks.peak_rss_mib
            );
            if run.connections == 32 {
                base_ingest = Some(run);
            }
        }
        println!();
    }
    if wanted("growth") {
        println!(
            "## 5. Cost growth\n\nBenchmarks 1, 3 and 4 again with {} and {} finished payments already stored (each with an event and a handled webhook, copied in by SQL). Target: no more than 20 % slower than with an empty database (the runs above).\n",
            scale.histories[0], scale.histories[1]
        );
        println!(
            "| what | existing payments | rate | p99 | rate vs empty database |\n| --- | --- | --- | --- | --- |"
        );
        for history in scale.histories {
            if let Some(base) = &base_day {
                let day = billing::run(scale.subscriptions, 8, history).await;
                println!(
                    "| billing day | {history} | {:.0} charges/s | | {} |",
                    day.charges_per_second(),
                    ratio(day.charges_per_second(), base.charges_per_second())
                );
            }
            for base in &base_api {
                let run = api::run(base.store, history, scale.api_creates, 32).await;
                println!(
                    "| POST /v1/payments, {} | {history} | {:.0}/s | {:.1} ms | {} |",
                    base.store.name(),
                    run.create.rate(),
                    run.create.ms(990),
                    ratio(run.create.rate(), base.create.rate())
                );
                println!(
                    "| GET /v1/payments/{{id}}, {} | {history} | {:.0}/s | {:.1} ms | {} |",
                    base.store.name(),
                    run.read.rate(),
                    run.read.ms(990),
                    ratio(run.read.rate(), base.read.rate())
                );
            }
            if let Some(base) = &base_ingest {
                for run in ingest::run(scale.webhooks, &[32], history).await {
                    println!(
                        "| webhook ingest, 32 connections | {history} | {:.0}/s | {:.1} ms | {} |",
                        run.webhooks.rate(),
                        run.webhooks.ms(990),
                        ratio(run.webhooks.rate(), base.webhooks.rate())
                    );
                }
            }
        }
        println!();
    }
    println!("{}", include_str!("analysis.md"));
}
