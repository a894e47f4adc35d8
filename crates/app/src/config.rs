//! Configuration from the environment, exactly as the contract names it.
//! A missing or malformed setting stops start-up with one line naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn error(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// The process environment, as every command reads its settings.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads variables through a source (the process environment, or a map in
/// tests): trimmed, an empty value being unset. Every default lives here.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        self.get(name)
            .unwrap_or_else(|| default.to_owned())
            .parse::<SocketAddr>()
            .map_err(|_| error(name, "must be host:port, e.g. 127.0.0.1:8080"))
    }

    /// A `true`/`false` (or `1`/`0`) setting; `None` when unset.
    fn flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(name).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(error(name, "must be true or false")),
        }
    }

    /// `DATABASE_URL`, `sqlite://recur.db` by default.
    fn database_url(&self) -> Result<String, ConfigError> {
        let url = self
            .get("DATABASE_URL")
            .unwrap_or_else(|| "sqlite://recur.db".into());
        if url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
        {
            Ok(url)
        } else {
            Err(error(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ))
        }
    }

    /// `RECUR_LOG_FORMAT`.
    fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.get("RECUR_LOG_FORMAT").as_deref() {
            None | Some("human" | "text") => Ok(LogFormat::Human),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(error("RECUR_LOG_FORMAT", "must be human or json")),
        }
    }
}

/// Settings that only make sense against the real bank: any of them without
/// `BANK131_BASE_URL` is a forgotten or misspelled URL, not a wish for the
/// sandbox (which would print the live API key and disable every real token
/// it is asked to charge).
const LIVE_SETTINGS: &[&str] = &[
    "BANK131_PROJECT",
    "BANK131_PRIVATE_KEY_FILE",
    "BANK131_PUBLIC_KEY_FILE",
    "RECUR_API_KEYS",
    "RECUR_TOKEN_KEY",
];

/// Sandbox mode runs only when nothing live is configured, or when
/// `RECUR_SANDBOX=true` asks for it anyway.
fn sandbox_allowed(vars: &Vars<'_>) -> Result<(), ConfigError> {
    let forced = vars.flag("RECUR_SANDBOX")?.unwrap_or(false);
    let live: Vec<&str> = LIVE_SETTINGS
        .iter()
        .copied()
        .filter(|name| vars.get(name).is_some())
        .collect();
    if live.is_empty() || forced {
        return Ok(());
    }
    Err(error(
        "BANK131_BASE_URL",
        format!(
            "is not set but live settings are ({}); set BANK131_BASE_URL, or RECUR_SANDBOX=true to run the built-in sandbox anyway",
            live.join(", ")
        ),
    ))
}

/// Whether `base_url` is the bank's production host (`proxy.bank131.ru`,
/// bank131-api.md "Base URLs"), where a test clock must never run.
fn is_production_host(base_url: &str) -> bool {
    let host = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .split(['/', ':', '?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    host == "proxy.bank131.ru"
}

/// `7d`, `12h`, `30m`, `3600s` (or bare seconds): a positive duration.
fn retention(text: &str) -> Option<time::Duration> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = digits.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        "d" => n.checked_mul(86_400)?,
        "h" => n.checked_mul(3_600)?,
        "m" => n.checked_mul(60)?,
        "s" | "" => n,
        _ => return None,
    };
    Some(time::Duration::seconds(seconds))
}

/// Where sandbox mode keeps what it generates.
pub const STATE_DIR: &str = ".recur";

/// `recur sandbox`'s configuration (the contract's `SANDBOX_*` variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxAlone {
    /// `SANDBOX_LISTEN`.
    pub listen: SocketAddr,
    /// `SANDBOX_KEYS_DIR`: where generated keys go.
    pub keys_dir: PathBuf,
    /// `SANDBOX_PARTNER_PUBLIC_KEY_FILE`: the client's key, when given.
    pub partner_public_key_file: Option<PathBuf>,
    /// `SANDBOX_BANK_PRIVATE_KEY_FILE`: the bank's signing key, when given.
    pub bank_private_key_file: Option<PathBuf>,
    /// `SANDBOX_WEBHOOK_URL`.
    pub webhook_url: String,
    /// `SANDBOX_PROJECT`.
    pub project: String,
    /// `RECUR_LOG_FORMAT`.
    pub log_format: LogFormat,
}

impl SandboxAlone {
    /// Reads the configuration through `var`.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(var);
        Ok(Self {
            listen: vars.addr("SANDBOX_LISTEN", "127.0.0.1:9131")?,
            keys_dir: PathBuf::from(
                vars.get("SANDBOX_KEYS_DIR")
                    .unwrap_or_else(|| "./sandbox-keys".into()),
            ),
            partner_public_key_file: vars
                .get("SANDBOX_PARTNER_PUBLIC_KEY_FILE")
                .map(PathBuf::from),
            bank_private_key_file: vars.get("SANDBOX_BANK_PRIVATE_KEY_FILE").map(PathBuf::from),
            webhook_url: vars
                .get("SANDBOX_WEBHOOK_URL")
                .unwrap_or_else(|| "http://127.0.0.1:8080/webhooks/bank131".into()),
            project: vars
                .get("SANDBOX_PROJECT")
                .unwrap_or_else(|| "sandbox".into()),
            log_format: vars.log_format()?,
        })
    }
}

/// `recur migrate` and `recur rotate-token-key`: the database and, for the
/// rotation, the token keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCommand {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `RECUR_TOKEN_KEY`, else the key sandbox mode generated (`./.recur/token_key`).
    pub token_key: Option<String>,
    /// `RECUR_TOKEN_KEY_OLD`.
    pub token_key_old: Option<String>,
    /// `RECUR_LOG_FORMAT`.
    pub log_format: LogFormat,
}

impl StoreCommand {
    /// Reads the configuration through `var`.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(var);
        Ok(Self {
            database_url: vars.database_url()?,
            token_key: vars.get("RECUR_TOKEN_KEY").or_else(|| {
                std::fs::read_to_string(PathBuf::from(STATE_DIR).join("token_key"))
                    .ok()
                    .map(|k| k.trim().to_owned())
            }),
            token_key_old: vars.get("RECUR_TOKEN_KEY_OLD"),
            log_format: vars.log_format()?,
        })
    }
}

/// Which bank the service talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bank {
    /// The built-in sandbox, in-process, listening on this address.
    Sandbox {
        /// `SANDBOX_LISTEN`.
        listen: SocketAddr,
        /// Whether `SANDBOX_LISTEN` was set; if not and the default port is
        /// taken, the sandbox takes a free port instead of failing.
        explicit: bool,
    },
    /// A real (or external) Bank 131 endpoint.
    Remote {
        /// `BANK131_BASE_URL`.
        base_url: String,
        /// `BANK131_PROJECT`.
        project: String,
        /// `BANK131_PROJECT_3DS`: the project for payments with the customer
        /// present (card, widget, customer-initiated token payments).
        project_3ds: Option<String>,
        /// `BANK131_PRIVATE_KEY_FILE`.
        private_key_file: PathBuf,
        /// `BANK131_PUBLIC_KEY_FILE` (comma-separated paths).
        public_key_files: Vec<PathBuf>,
    },
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `recur serve`'s configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `RECUR_LISTEN`.
    pub listen: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `RECUR_API_KEYS` (generated and kept in sandbox mode when unset).
    pub api_keys: Option<Vec<String>>,
    /// The bank.
    pub bank: Bank,
    /// `RECUR_TOKEN_KEY` (generated and kept in sandbox mode when unset).
    pub token_key: Option<String>,
    /// `RECUR_TOKEN_KEY_OLD`.
    pub token_key_old: Option<String>,
    /// `RECUR_EVENTS_URL` and `RECUR_EVENTS_SECRET`.
    pub events: Option<(String, String)>,
    /// `RECUR_TEST_CLOCK`.
    pub test_clock: bool,
    /// `RECUR_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Where sandbox mode keeps what it generates (`./.recur`).
    pub state_dir: PathBuf,
    /// `RECUR_BANK_TIMEOUT_MS`: how long a bank request may take before its
    /// outcome is unknown (default 30 s).
    pub bank_timeout: std::time::Duration,
    /// `RECUR_INBOX_RETENTION`: how long handled bank webhooks are kept (7 days).
    pub inbox_retention: time::Duration,
    /// `RECUR_WORKER_CONCURRENCY`: items each background worker carries out
    /// at the same time (8).
    pub worker_in_flight: usize,
    /// How long the inbox and outbox workers sleep when idle before they
    /// look again (50 ms); a webhook wakes the inbox, and applied webhooks
    /// wake the outbox, at once. Not an environment variable: tests set it
    /// long to show that the wake-ups, not the polling, carry the work.
    pub worker_poll: std::time::Duration,
}

/// [`Config::worker_poll`] unless a test sets it.
const WORKER_POLL: std::time::Duration = std::time::Duration::from_millis(50);

impl Config {
    /// Whether the built-in sandbox is the bank.
    pub fn sandbox_mode(&self) -> bool {
        matches!(self.bank, Bank::Sandbox { .. })
    }

    /// Which mode runs, in words, for the start-up line.
    pub fn mode_line(&self) -> String {
        let clock = if self.test_clock {
            "test clock on"
        } else {
            "real clock"
        };
        match &self.bank {
            Bank::Sandbox { .. } => format!(
                "recur runs in SANDBOX mode: the built-in Bank 131 sandbox, no real money ({clock})"
            ),
            Bank::Remote { base_url, .. } => {
                format!("recur runs in LIVE mode against the bank at {base_url} ({clock})")
            }
        }
    }

    /// Sandbox mode on free local ports with the test clock, keeping its
    /// state in `state_dir` (the demo and the end-to-end tests use it).
    pub fn ephemeral(state_dir: PathBuf, database_url: String) -> Self {
        let any_port: SocketAddr = ([127, 0, 0, 1], 0).into();
        Self {
            listen: any_port,
            database_url,
            api_keys: None,
            bank: Bank::Sandbox {
                listen: any_port,
                explicit: true,
            },
            token_key: None,
            token_key_old: None,
            events: None,
            test_clock: true,
            log_format: LogFormat::Human,
            state_dir,
            bank_timeout: std::time::Duration::from_secs(30),
            inbox_retention: time::Duration::days(7),
            worker_in_flight: service::DEFAULT_IN_FLIGHT,
            worker_poll: WORKER_POLL,
        }
    }

    /// Reads the configuration through `var` (the process environment in `main`).
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(var);
        let get = |name: &str| vars.get(name);
        let addr = |name: &'static str, default: &str| vars.addr(name, default);
        let listen = addr("RECUR_LISTEN", "127.0.0.1:8080")?;
        let database_url = vars.database_url()?;
        let bank = match get("BANK131_BASE_URL") {
            None => {
                sandbox_allowed(&vars)?;
                Bank::Sandbox {
                    listen: addr("SANDBOX_LISTEN", "127.0.0.1:9131")?,
                    explicit: get("SANDBOX_LISTEN").is_some(),
                }
            }
            Some(base_url) => {
                if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
                    return Err(error("BANK131_BASE_URL", "must be an http(s) URL"));
                }
                let project = get("BANK131_PROJECT")
                    .ok_or_else(|| error("BANK131_PROJECT", "required with BANK131_BASE_URL"))?;
                let private_key_file = get("BANK131_PRIVATE_KEY_FILE")
                    .ok_or_else(|| {
                        error("BANK131_PRIVATE_KEY_FILE", "required with BANK131_BASE_URL")
                    })?
                    .into();
                let public_key_files = get("BANK131_PUBLIC_KEY_FILE")
                    .ok_or_else(|| {
                        error("BANK131_PUBLIC_KEY_FILE", "required with BANK131_BASE_URL")
                    })?
                    .split(',')
                    .map(|p| PathBuf::from(p.trim()))
                    .collect();
                Bank::Remote {
                    base_url,
                    project,
                    project_3ds: get("BANK131_PROJECT_3DS"),
                    private_key_file,
                    public_key_files,
                }
            }
        };
        let sandbox = matches!(bank, Bank::Sandbox { .. });
        let api_keys = get("RECUR_API_KEYS").map(|v| {
            v.split(',')
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect::<Vec<_>>()
        });
        match &api_keys {
            Some(keys) if keys.is_empty() => return Err(error("RECUR_API_KEYS", "lists no key")),
            None if !sandbox => {
                return Err(error("RECUR_API_KEYS", "required outside sandbox mode"));
            }
            _ => {}
        }
        let token_key = get("RECUR_TOKEN_KEY");
        if token_key.is_none() && !sandbox {
            return Err(error(
                "RECUR_TOKEN_KEY",
                "required outside sandbox mode (32 bytes, base64)",
            ));
        }
        let events = match (get("RECUR_EVENTS_URL"), get("RECUR_EVENTS_SECRET")) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(error(
                    "RECUR_EVENTS_SECRET",
                    "required with RECUR_EVENTS_URL",
                ));
            }
            (Some(url), Some(secret)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(error("RECUR_EVENTS_URL", "must be an http(s) URL"));
                }
                Some((url, secret))
            }
        };
        let test_clock = vars.flag("RECUR_TEST_CLOCK")?.unwrap_or(sandbox);
        if let Bank::Remote { base_url, .. } = &bank
            && test_clock
            && is_production_host(base_url)
        {
            return Err(error(
                "RECUR_TEST_CLOCK",
                "must not be true against the bank's production host",
            ));
        }
        let log_format = vars.log_format()?;
        let bank_timeout = match get("RECUR_BANK_TIMEOUT_MS") {
            None => std::time::Duration::from_secs(30),
            Some(ms) => ms
                .parse::<u64>()
                .ok()
                .filter(|ms| (100..=600_000).contains(ms))
                .map(std::time::Duration::from_millis)
                .ok_or_else(|| error("RECUR_BANK_TIMEOUT_MS", "must be 100–600000 milliseconds"))?,
        };
        Ok(Self {
            listen,
            database_url,
            api_keys,
            bank,
            token_key,
            token_key_old: get("RECUR_TOKEN_KEY_OLD"),
            events,
            test_clock,
            log_format,
            state_dir: PathBuf::from(STATE_DIR),
            bank_timeout,
            inbox_retention: match get("RECUR_INBOX_RETENTION") {
                None => time::Duration::days(7),
                Some(text) => retention(&text).ok_or_else(|| {
                    error(
                        "RECUR_INBOX_RETENTION",
                        "must be like 7d, 12h, 30m or 3600s",
                    )
                })?,
            },
            worker_in_flight: match get("RECUR_WORKER_CONCURRENCY") {
                None => service::DEFAULT_IN_FLIGHT,
                Some(n) => n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| error("RECUR_WORKER_CONCURRENCY", "must be 1–256"))?,
            },
            worker_poll: WORKER_POLL,
        })
    }
}

#[cfg(test)]
mod tests;
