//! Benchmarks, run by `cargo xtask bench` (release build), which writes the
//! Markdown this prints to `docs/benchmarks.md`. Every figure stands next to
//! the limit it is measured against, taken in the same run.
//!
//! `bench [--quick] [micro|billing|external|api|ingest|growth ...]`: the
//! named sections (all by default); `--quick` shrinks every load to check
//! that the benchmarks run, not to measure; `--subscriptions=N` sets the
//! billing day's size.
//!
//! Every measurement runs in a process of its own (this program again, with
//! `--part=…`): its memory figures are its own, and nothing an earlier run
//! left behind (the allocator's retained heap, a stopped sandbox's webhook
//! retries) slows a later one.

mod api;
mod billing;
mod external;
mod ingest;
mod measure;
mod micro;
mod seed;

use std::process::Command;
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

/// Operations a second the machine's cores could sign if each cost nothing
/// but its `signatures` (`sign_rate`: one core's signatures a second).
#[allow(clippy::cast_precision_loss)]
fn crypto_ceiling(sign_rate: f64, signatures: f64) -> f64 {
    cores() as f64 * sign_rate / signatures
}

/// The arguments a part passes on to the parts it starts.
struct Args {
    quick: bool,
    subscriptions: Option<String>,
}

impl Args {
    /// Runs `part` in a process of its own and returns what it printed.
    fn part(&self, part: &str, sign_rate: f64) -> String {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut command = Command::new(exe);
        command
            .arg(format!("--part={part}"))
            .arg(format!("--sign-rate={sign_rate}"));
        if self.quick {
            command.arg("--quick");
        }
        if let Some(n) = &self.subscriptions {
            command.arg(format!("--subscriptions={n}"));
        }
        let out = command
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("start a benchmark part");
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "benchmark part {part} failed ({}); it printed:\n{printed}",
            out.status
        );
        printed
    }

    /// A growth part's figures: `(rate, p99 ms)` per line it printed.
    fn figures(&self, part: &str, sign_rate: f64) -> Vec<(f64, f64)> {
        self.part(part, sign_rate)
            .lines()
            .filter_map(|line| {
                let (rate, p99) = line.strip_prefix("figure ")?.split_once(' ')?;
                Some((rate.parse().ok()?, p99.parse().ok()?))
            })
            .collect()
    }
}

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().find_map(|a| a.strip_prefix(flag))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut scale = if quick { QUICK } else { FULL };
    // While iterating on one figure: `--subscriptions=2000`.
    let subscriptions = value(&args, "--subscriptions=").map(str::to_owned);
    if let Some(n) = &subscriptions {
        scale.subscriptions = n.parse().expect("--subscriptions=N");
    }
    if let Some(part) = value(&args, "--part=") {
        let sign_rate = value(&args, "--sign-rate=")
            .and_then(|r| r.parse().ok())
            .expect("--sign-rate=R");
        run_part(part, &scale, sign_rate).await;
        return;
    }
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |section: &str| named.is_empty() || named.contains(&section);
    let parts = Args {
        quick,
        subscriptions,
    };
    let cores = cores();
    println!("# Benchmarks\n");
    println!(
        "Written by `cargo xtask bench` (release build, {cores} cores). Numbers are from one run on the machine that ran it; compare runs on the same machine only. Each row is measured in a fresh process (recur, the in-process sandbox when there is one, and the load generator), so its memory is its own; recur alone uses less.\n"
    );
    let (aws_rate, micro_table) = micro::run();
    let openssl = measure::openssl_sign_rate();
    let sign_rate = openssl.unwrap_or(aws_rate);
    if wanted("micro") {
        println!("## Per operation\n\n{micro_table}\n");
    }
    if wanted("billing") {
        println!(
            "## 1. Billing day\n\n{} monthly subscriptions fall due at the same moment (test clock), in-process sandbox, PostgreSQL. The limit, measured in the same run: `openssl speed rsa2048` on one core {}, aws-lc-rs {aws_rate:.0} signs/s; the crypto ceiling is cores × sign rate ÷ signatures per charge (counted: recur's and the sandbox's).\n",
            scale.subscriptions,
            openssl.map_or_else(
                || "(openssl not installed)".to_owned(),
                |r| format!("{r:.0} signs/s")
            )
        );
        println!(
            "| `RECUR_WORKER_CONCURRENCY` | charges/s | all charged in | double charges | signatures per charge | crypto ceiling | reached (target 50 %) | CPU per charge: recur + sandbox | CPU per charge: PostgreSQL | machine busy | peak RSS (target < 100 MiB) |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for in_flight in [8, 32] {
            print!("{}", parts.part(&format!("billing:{in_flight}"), sign_rate));
        }
        println!();
    }
    if wanted("external") {
        print!("{}", parts.part("external", sign_rate));
    }
    if wanted("api") {
        println!(
            "## 3. Merchant API at 32 connections\n\n{} `POST /v1/payments` (merchant-initiated token charges, a new `Idempotency-Key` each: session/create, start and confirm at the in-process sandbox before the answer), then twice as many `GET /v1/payments/{{id}}` and `GET /healthz` of the same process. Target: POST ≥ 800/s on PostgreSQL with p99 < 100 ms. The POST crypto ceiling is cores × sign rate ÷ signatures per POST (counted): the rate the two cores would reach if a POST cost nothing but its signatures.\n",
            scale.api_creates
        );
        println!(
            "| store | POST /v1/payments | p50 | p99 | GET /v1/payments/{{id}} | p50 | p99 | GET /healthz | p50 | p99 | POST vs target | signatures per POST | POST crypto ceiling | POST vs ceiling | CPU per POST: recur + sandbox / PostgreSQL | peak RSS (target < 100 MiB) | idle RSS |"
        );
        println!(
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for store in ["sqlite", "postgres"] {
            print!("{}", parts.part(&format!("api:{store}"), sign_rate));
        }
        println!();
    }
    if wanted("ingest") {
        println!(
            "## 4. Webhook ingest\n\n{} signed `payment_finished` webhooks per row (two in three are duplicates of one sent before), PostgreSQL, next to `pgbench` single-row inserts (a unique key and a body, like the inbox row) at the same concurrency on the same server. Target at 32 connections: ≥ 50 % of pgbench, p99 < 50 ms.\n",
            scale.webhooks
        );
        println!(
            "| connections | webhooks | p50 | p99 | pgbench inserts/s | ratio | CPU per webhook: recur / PostgreSQL | peak RSS (target < 100 MiB) |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        print!("{}", parts.part("ingest", sign_rate));
        println!();
    }
    if wanted("growth") {
        growth(&parts, &scale, sign_rate);
    }
    println!("{}", include_str!("analysis.md"));
}

/// Benchmark 5: each figure with 0, then each history size, stored.
fn growth(parts: &Args, scale: &Scale, sign_rate: f64) {
    println!(
        "## 5. Cost growth\n\nBenchmarks 1 (`RECUR_WORKER_CONCURRENCY` 8), 3 and 4 (32 connections) again on an empty database and with {} and {} finished payments already stored (each with its subscription charge, an event and a handled webhook, copied in by SQL), every run in a fresh process. Target: no more than 20 % slower than with an empty database.\n",
        scale.histories[0], scale.histories[1]
    );
    println!(
        "| what | existing payments | rate | p99 | rate vs empty database |\n| --- | --- | --- | --- | --- |"
    );
    let whats: [(&str, &[&str]); 4] = [
        ("billing", &["billing day"]),
        (
            "api-sqlite",
            &["POST /v1/payments, SQLite", "GET /v1/payments/{id}, SQLite"],
        ),
        (
            "api-postgres",
            &[
                "POST /v1/payments, PostgreSQL",
                "GET /v1/payments/{id}, PostgreSQL",
            ],
        ),
        ("ingest", &["webhook ingest, 32 connections"]),
    ];
    for (what, labels) in whats {
        let base = parts.figures(&format!("growth:{what}:0"), sign_rate);
        for history in scale.histories {
            let grown = parts.figures(&format!("growth:{what}:{history}"), sign_rate);
            for ((label, (rate, p99)), (base_rate, _)) in labels.iter().zip(&grown).zip(&base) {
                let p99 = if p99.is_nan() {
                    String::new()
                } else {
                    format!("{p99:.1} ms")
                };
                println!(
                    "| {label} | {history} | {rate:.0}/s | {p99} | {} |",
                    ratio(*rate, *base_rate)
                );
            }
        }
    }
    println!();
}

/// One measurement, in this process: prints its table rows (or, for a
/// growth part, `figure <rate> <p99 ms>` lines).
async fn run_part(part: &str, scale: &Scale, sign_rate: f64) {
    let cores = cores();
    let fields: Vec<&str> = part.split(':').collect();
    match fields.as_slice() {
        ["billing", in_flight] => {
            let in_flight = in_flight.parse().expect("billing:N");
            let day = billing::run(scale.subscriptions, in_flight, 0).await;
            let ceiling = crypto_ceiling(sign_rate, day.signatures_per_charge());
            #[allow(clippy::cast_precision_loss)]
            let busy = (day.cpu + day.postgres_cpu).as_secs_f64()
                / (day.took.as_secs_f64() * cores as f64);
            let (ours, postgres) = day.cpu_ms_per_charge();
            println!(
                "| {in_flight} | {:.0} | {:.1} s | {} | {:.1} | {ceiling:.0} charges/s | {} | {ours:.2} ms | {postgres:.2} ms | {:.0} % | {:.0} MiB |",
                day.charges_per_second(),
                day.took.as_secs_f64(),
                day.double_charges,
                day.signatures_per_charge(),
                ratio(day.charges_per_second(), ceiling),
                100.0 * busy,
                day.peak_rss_mib,
            );
        }
        ["external"] => {
            let run = external::run(scale.external_payments, 8).await;
            println!(
                "## 2. External bank\n\n`recur sandbox` as a separate process (every `ready_to_confirm` is a webhook, every confirm goes through the outbox), PostgreSQL; {} customer-initiated token payments through 3-D Secure, created by {} clients. The bank sends `ready_to_confirm` as the payment starts; confirm latency runs from the API's answer to the payment showing `requires_action` (the bank asks for 3-D Secure only after the confirm), so it also holds the `action_required` webhook. Limit: every session confirmed within 5 s. The rate counts whole payments: created, confirmed, 3-D Secure approved by the client.\n",
                run.payments, run.clients
            );
            println!(
                "| confirms/s | p50 | p99 | max | over 5 s | double charges | peak RSS (target < 100 MiB) |\n| --- | --- | --- | --- | --- | --- | --- |"
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
        ["api", store] => {
            let store = Store::named(store);
            let run = api::run(store, 0, scale.api_creates, 32).await;
            let peak = run.create.peak_rss_mib.max(run.read.peak_rss_mib);
            let ceiling = crypto_ceiling(sign_rate, run.signatures_per_create);
            println!(
                "| {} | {} | {} | {} | {} | {:.1} | {ceiling:.0}/s | {} | {} | {peak:.0} MiB | {:.0} MiB |",
                store.name(),
                run.create.cells(),
                run.read.cells(),
                run.health.cells(),
                ratio(run.create.rate(), 800.0),
                run.signatures_per_create,
                ratio(run.create.rate(), ceiling),
                run.create.cpu_per_request(),
                run.idle_rss_mib
            );
        }
        ["ingest"] => {
            for run in ingest::run(scale.webhooks, &[1, 8, 32], 0).await {
                println!(
                    "| {} | {} | {} | {} | {} | {:.0} MiB |",
                    run.connections,
                    run.webhooks.cells(),
                    run.pgbench
                        .map_or_else(|| "(no pgbench)".to_owned(), |r| format!("{r:.0}")),
                    run.pgbench
                        .map_or_else(String::new, |r| ratio(run.webhooks.rate(), r)),
                    run.webhooks.cpu_per_request(),
                    run.webhooks.peak_rss_mib
                );
            }
        }
        ["growth", what, history] => {
            let history = history.parse().expect("growth:what:N");
            match *what {
                "billing" => {
                    let day = billing::run(scale.subscriptions, 8, history).await;
                    println!("figure {} NaN", day.charges_per_second());
                }
                "ingest" => {
                    for run in ingest::run(scale.webhooks, &[32], history).await {
                        println!("figure {} {}", run.webhooks.rate(), run.webhooks.ms(990));
                    }
                }
                api => {
                    let store = Store::named(api.strip_prefix("api-").expect("api-<store>"));
                    let run = api::run(store, history, scale.api_creates, 32).await;
                    for measured in [&run.create, &run.read] {
                        println!("figure {} {}", measured.rate(), measured.ms(990));
                    }
                }
            }
        }
        _ => panic!("unknown benchmark part {part}"),
    }
}
