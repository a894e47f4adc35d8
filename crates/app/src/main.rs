//! `recur`: recurring payments on the Bank 131 acquiring API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Sandbox => "sandbox",
            Self::Migrate => "migrate",
            Self::Demo => "demo",
            Self::RotateTokenKey => "rotate-token-key",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "recur {}: not yet available in this build",
        cli.command.name()
    );
    ExitCode::from(2)
}
