//! `recur`: recurring payments on the Bank 131 acquiring API.

use std::process::ExitCode;
use std::sync::Arc;

use app::config::{SandboxAlone, StoreCommand, process_env};
use app::{Config, LogFormat};
use clap::{Parser, Subcommand};
use sandbox::{Sandbox, SandboxConfig, SandboxKeys};
use tracing_subscriber::EnvFilter;

/// Recurring payments on the Bank 131 / Smart Glocal acquiring API.
#[derive(Debug, Parser)]
#[command(
    name = "recur",
    version,
    about = "Recurring payments on the Bank 131 / Smart Glocal acquiring API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (merchant API, webhook receiver, background workers).
    Serve,
    /// Run the Bank 131 sandbox emulator alone.
    Sandbox,
    /// Apply database migrations and exit.
    Migrate,
    /// Run every seed flow end to end against the sandbox and print a summary.
    Demo,
    /// Re-encrypt stored recurrent tokens with the current RECUR_TOKEN_KEY.
    RotateTokenKey,
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: never into files or journald.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

/// Waits for Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn curl_example(addr: std::net::SocketAddr, key: &str) -> String {
    format!(
        "curl -s http://{addr}/v1/payments \\\n  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -H 'Idempotency-Key: first-payment' \\\n  -d '{{\"customer\":{{\"reference\":\"cust-42\"}},\"amount\":{{\"value\":10000,\"currency\":\"RUB\"}},\"method\":{{\"type\":\"card\",\"card\":{{\"number\":\"4242424242424242\",\"expiry_month\":\"12\",\"expiry_year\":\"30\",\"security_code\":\"123\"}}}},\"save_token\":true}}'"
    )
}

async fn serve() -> Result<(), String> {
    let config = Config::from_env(&process_env).map_err(|e| e.to_string())?;
    init_logs(config.log_format);
    let sandbox_mode = config.sandbox_mode();
    let keys_given = config.api_keys.is_some();
    println!("{}", config.mode_line());
    let running = app::start(config).await.map_err(|e| e.to_string())?;
    let key = running.api_keys.first().cloned().unwrap_or_default();
    println!("recur is listening on http://{}", running.api_addr);
    if let Some(addr) = running.sandbox_addr {
        println!(
            "Bank 131 sandbox (in-process) on http://{addr}; its keys and state are in ./.recur/"
        );
    }
    // A secret is printed only in sandbox mode, and only the one it keeps:
    // keys given in RECUR_API_KEYS may be live ones (RECUR_SANDBOX=true).
    if sandbox_mode && !keys_given {
        let note = if running.generated_key {
            "generated and kept in ./.recur/api_key"
        } else {
            "kept in ./.recur/api_key"
        };
        println!("API key ({note}): {key}");
        println!("Try it:\n{}", curl_example(running.api_addr, &key));
    } else if sandbox_mode {
        println!("API key: from RECUR_API_KEYS (not printed)");
    }
    shutdown_signal().await;
    println!("shutting down");
    running.stop().await;
    Ok(())
}

async fn sandbox_alone() -> Result<(), String> {
    let config = SandboxAlone::from_env(&process_env).map_err(|e| e.to_string())?;
    init_logs(config.log_format);
    let keys = SandboxKeys::load_or_generate(
        &config.keys_dir,
        config.partner_public_key_file.as_deref(),
        config.bank_private_key_file.as_deref(),
    )
    .map_err(|e| format!("sandbox keys: {e}"))?;
    if let Some(private) = &keys.partner_private_key_file {
        println!(
            "partner private key (sign your requests with it): {}",
            private.display()
        );
    }
    println!(
        "bank public key (verify webhooks with it): {}",
        keys.bank_public_key_file.display()
    );
    let sandbox = Sandbox::start(SandboxConfig {
        project: config.project.clone(),
        partner_keys: keys.partner_keys,
        bank_signer: Arc::clone(&keys.bank_signer),
        webhook_url: config.webhook_url.clone(),
        state_file: None,
    })
    .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("SANDBOX_LISTEN: {e}"))?;
    println!(
        "Bank 131 sandbox on http://{} (project {:?}); webhooks go to {}",
        listener.local_addr().map_err(|e| e.to_string())?,
        config.project,
        config.webhook_url
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = app::serve(listener, sandbox.router(), stopped);
    shutdown_signal().await;
    let _ = stop.send(true);
    server.await.map_err(|e| e.to_string())
}

async fn migrate() -> Result<(), String> {
    let config = StoreCommand::from_env(&process_env).map_err(|e| e.to_string())?;
    init_logs(config.log_format);
    app::migrate(&config.database_url)
        .await
        .map_err(|e| e.to_string())?;
    println!("migrations applied");
    Ok(())
}

async fn rotate_token_key() -> Result<(), String> {
    let config = StoreCommand::from_env(&process_env).map_err(|e| e.to_string())?;
    init_logs(config.log_format);
    let current = config.token_key.ok_or(
        "RECUR_TOKEN_KEY: required (the new key; the old one goes in RECUR_TOKEN_KEY_OLD)",
    )?;
    let keys = store_sql::crypto::TokenKeys::from_base64(&current, config.token_key_old.as_deref())
        .map_err(|e| e.0)?;
    let store = app::open_store(&config.database_url, Arc::new(keys))
        .await
        .map_err(|e| e.to_string())?;
    let count = store.rotate_token_key().await.map_err(|e| e.to_string())?;
    println!("re-encrypted {count} token(s) with the current key");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("recur: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve().await,
            Command::Sandbox => sandbox_alone().await,
            Command::Migrate => migrate().await,
            Command::Demo => app::demo::run().await,
            Command::RotateTokenKey => rotate_token_key().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recur: {e}");
            ExitCode::FAILURE
        }
    }
}
