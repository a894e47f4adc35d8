//! Project automation, run as `cargo xtask <command>`:
//!
//! - `codegen`: writes the generated docs (`docs/state-machines.md`, `docs/openapi.json`).
//! - `bench [--quick] [section ...]`: runs the benchmarks (release); a full
//!   run of every section writes `docs/benchmarks.md`.
//! - `fuzz [--seconds N]`: runs every `cargo fuzz` target for N seconds.
//! - `check`: everything CI checks after the tests (format, clippy, dependency
//!   direction, fresh generated files, no placeholders, `cargo deny`, docs
//!   without warnings).

mod codegen;
mod fuzz;
mod rules;
mod shape;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("codegen") => codegen::run(codegen::Mode::Write),
        Some("check") => check(),
        Some("bench") => bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("fuzz") => {
            let args: Vec<String> = std::env::args().collect();
            fuzz::seconds(&args).and_then(fuzz::run)
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <codegen|check|bench [--quick] [section ...]|fuzz [--seconds N]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed", args.join(" ")))
    }
}

fn check() -> Result<(), String> {
    let mut failures = Vec::new();
    let mut step = |name: &str, result: Result<(), String>| {
        match &result {
            Ok(()) => eprintln!("ok: {name}"),
            Err(e) => eprintln!("FAILED: {name}: {e}"),
        }
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    };
    step("format", cargo(&["fmt", "--all", "--check"], &[]));
    step(
        "clippy",
        cargo(
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        ),
    );
    step(
        "dependency direction",
        rules::check_dependencies(&metadata()?),
    );
    step("generated files fresh", codegen::run(codegen::Mode::Verify));
    step("no placeholders", rules::check_sources(&root()));
    step("shape", shape::check(&shape::sources(&root())));
    step("code map names every module file", code_map());
    step("cargo deny", deny());
    step(
        "docs",
        cargo(
            &["doc", "--workspace", "--no-deps", "--all-features"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        ),
    );
    if failures.is_empty() {
        eprintln!("all checks passed");
        Ok(())
    } else {
        Err(format!(
            "{} check(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        ))
    }
}

/// `cargo deny check` against `deny.toml`: licenses, bans and sources
/// always; advisories too when the RustSec database can be fetched (it needs
/// network access to GitHub, which some machines do not have).
fn deny() -> Result<(), String> {
    let installed = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        return Err("cargo-deny is not installed (cargo install cargo-deny --locked)".into());
    }
    if cargo(&["deny", "fetch", "db"], &[]).is_ok() {
        cargo(&["deny", "check", "--hide-inclusion-graph"], &[])
    } else {
        eprintln!("the advisory database cannot be fetched: licenses, bans and sources only");
        cargo(
            &[
                "deny",
                "check",
                "--hide-inclusion-graph",
                "licenses",
                "bans",
                "sources",
            ],
            &[],
        )
    }
}

/// Builds the `recur` binary and the benchmarks in release mode, runs them and,
/// when every section ran at full size, writes `docs/benchmarks.md`. `args`
/// (`--quick`, section names) go to the benchmark binary.
fn bench(args: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo build --release -p app --bins --example bench");
    let built = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "app",
            "--bins",
            "--example",
            "bench",
        ])
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot build the benchmarks: {e}"))?;
    if !built.success() {
        return Err("the benchmarks did not build".into());
    }
    eprintln!("$ target/release/examples/bench {}", args.join(" "));
    let out = Command::new(root().join("target/release/examples/bench"))
        .args(args)
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the benchmarks: {e}"))?;
    if !out.status.success() {
        print!("{}", String::from_utf8_lossy(&out.stdout));
        return Err("the benchmarks failed (see above; what they measured is printed)".into());
    }
    let report = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    if args.is_empty() {
        let path = root().join("docs/benchmarks.md");
        std::fs::write(&path, &report)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    print!("{report}");
    Ok(())
}

/// Every file under `crates/*/src` named in `ARCHITECTURE.md`'s code map.
fn code_map() -> Result<(), String> {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md"))
        .map_err(|e| format!("cannot read ARCHITECTURE.md: {e}"))?;
    let unnamed = shape::unnamed_in_code_map(&architecture, &shape::sources(&root()));
    if unnamed.is_empty() {
        Ok(())
    } else {
        Err(unnamed.join("\n"))
    }
}

fn metadata() -> Result<serde_json::Value, String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad cargo metadata: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn workspace_follows_the_dependency_rules() {
        super::rules::check_dependencies(&super::metadata().unwrap()).unwrap();
    }

    #[test]
    fn workspace_has_no_placeholders() {
        super::rules::check_sources(&super::root()).unwrap();
    }
}
