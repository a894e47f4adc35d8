//! What every benchmark measures with: timers, percentiles, a load generator,
//! the process's CPU time and memory, and the limits of this machine
//! (`openssl speed`, `pgbench`) measured in the same run.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `total` over `n` as a per-operation time (`µs` or `ms`).
pub fn per_op(total: Duration, n: u32) -> String {
    let micros = total.as_secs_f64() * 1e6 / f64::from(n);
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.2} µs")
    }
}

/// How long `n` calls of `f` take, one after another.
pub fn time(n: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed()
}

/// The `per_mille`-th of `sorted` latencies in milliseconds (500 = median).
pub fn percentile_ms(sorted: &[Duration], per_mille: usize) -> f64 {
    let at = ((sorted.len() - 1) * per_mille / 1000).min(sorted.len() - 1);
    sorted[at].as_secs_f64() * 1e3
}

/// What one load run measured.
pub struct Run {
    /// Wall time of the whole run.
    pub took: Duration,
    /// Every request's latency, sorted.
    pub latencies: Vec<Duration>,
    /// The process's peak resident memory during the run, in MiB.
    pub peak_rss_mib: f64,
    /// CPU time used during the run: this process, then PostgreSQL.
    pub cpu: (Duration, Duration),
}

impl Run {
    /// Requests per second.
    #[allow(clippy::cast_precision_loss)]
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.took.as_secs_f64()
    }

    /// The `per_mille`-th latency in milliseconds (500 = median).
    pub fn ms(&self, per_mille: usize) -> f64 {
        percentile_ms(&self.latencies, per_mille)
    }

    /// CPU milliseconds a request cost: `this process / PostgreSQL`.
    #[allow(clippy::cast_precision_loss)]
    pub fn cpu_per_request(&self) -> String {
        let per = |d: Duration| d.as_secs_f64() * 1e3 / self.latencies.len() as f64;
        format!("{:.2} / {:.2} ms", per(self.cpu.0), per(self.cpu.1))
    }

    /// `| rate | p50 | p99 |` cells.
    pub fn cells(&self) -> String {
        format!(
            "{:.0}/s | {:.1} ms | {:.1} ms",
            self.rate(),
            self.ms(500),
            self.ms(990)
        )
    }
}

/// Runs `request(0..total)` over `connections` tasks, each taking the next
/// index as soon as its previous request is answered (a closed loop).
pub async fn load<F, Fut>(total: usize, connections: usize, request: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    reset_peak_rss();
    let cpu = (cpu_time(), postgres_cpu_time());
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (request, next) = (Arc::clone(&request), Arc::clone(&next));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return latencies;
                    }
                    let t = Instant::now();
                    request(i).await;
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    let took = started.elapsed();
    latencies.sort();
    Run {
        took,
        latencies,
        peak_rss_mib: peak_rss_mib(),
        cpu: (
            cpu_time().saturating_sub(cpu.0),
            postgres_cpu_time().saturating_sub(cpu.1),
        ),
    }
}

/// CPU time this process has used (user + system), from `/proc/self/stat`.
pub fn cpu_time() -> Duration {
    ticks_of(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU time every PostgreSQL server process on this machine has used (user +
/// system; a backend that ended meanwhile is not counted), from `/proc/*/stat`.
pub fn postgres_cpu_time() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .map(|stat| ticks_of(&stat))
        .sum()
}

/// utime + stime of one `/proc/<pid>/stat` line: the 12th and 13th fields
/// after the command's closing parenthesis, in clock ticks (100 a second).
fn ticks_of(stat: &str) -> Duration {
    let ticks: u64 = stat.rsplit_once(')').map_or(0, |(_, rest)| {
        rest.split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse::<u64>().ok())
            .sum()
    });
    Duration::from_millis(ticks * 10)
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// This process's resident memory now, in MiB.
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

/// This process's peak resident memory since the last [`reset_peak_rss`], in MiB.
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// Starts a new peak-memory window (Linux: `5` into `clear_refs`).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `openssl speed rsa2048` signatures per second on one core, when openssl
/// is installed.
pub fn openssl_sign_rate() -> Option<f64> {
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

/// `pgbench` single-row inserts per second at `clients` connections, 10 s, on
/// a scratch table of database `name`, when pgbench is installed.
pub fn pgbench_inserts(name: &str, clients: u32) -> Option<f64> {
    let dir = std::env::temp_dir().join(format!("recur-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let script = dir.join("insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO pgbench_rows (dedupe_key, body) VALUES (md5(random()::text), 'x');\n",
    )
    .ok()?;
    let psql = |sql: &str| {
        std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-q",
                "-d",
                name,
                "-c",
                sql,
            ])
            .output()
            .ok()
    };
    psql(
        "DROP TABLE IF EXISTS pgbench_rows; CREATE TABLE pgbench_rows (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, dedupe_key TEXT UNIQUE, body BYTEA)",
    )?;
    let out = std::process::Command::new("pgbench")
        .env("PGSSLMODE", "disable")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-T", "10"])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .arg("-f")
        .arg(&script)
        .arg(name)
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    // "tps = 1234.567890 (without initial connection time)"
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Runs `statements` on the local PostgreSQL server's admin database.
async fn admin(statements: &[String]) {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let server = store_postgres::test_server_url();
    let mut admin = sqlx::AnyConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server}: {e}"));
    for sql in statements {
        admin.execute(sql.as_str()).await.expect("admin statement");
    }
}

/// A fresh database on the local PostgreSQL server.
pub async fn postgres_database(name: &str) -> String {
    admin(&[
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ])
    .await;
    let url = store_postgres::with_database(&store_postgres::test_server_url(), name);
    if url.contains("sslmode=") {
        return url;
    }
    // The server is on this machine: connected as a co-located deployment
    // would be, without TLS over loopback (pgbench too, see
    // `pgbench_inserts`). With it, a payment costs about 15 % more machine
    // time here (docs/benchmarks.md).
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=disable")
}

/// Drops a database [`postgres_database`] made, once its run is over (the
/// cost-growth runs leave gigabytes).
pub async fn drop_postgres_database(name: &str) {
    admin(&[format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]).await;
}
