//! `cargo xtask fuzz [--seconds N]`: runs every `cargo fuzz` target of
//! `fuzz/` for N seconds (60 by default), each from its seed corpus (the
//! protocol fixtures, the merchant examples), and fails when one finds a
//! crash (its input is left in `fuzz/artifacts/<target>/`).
//!
//! Needs `cargo install cargo-fuzz`. The targets build on the stable
//! toolchain (`RUSTC_BOOTSTRAP=1` unlocks the flags cargo fuzz passes) and
//! without a sanitizer: the code is safe Rust, so what is looked for is a
//! panic or a broken invariant, not memory errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::root;

/// Each target and the folders its seed inputs come from.
const TARGETS: &[(&str, &[&str])] = &[
    ("webhook", &["crates/bank131/tests/fixtures"]),
    ("merchant_request", &["fuzz/seeds/merchant_request"]),
    ("money", &[]),
    ("payment_machine", &[]),
    ("token_machine", &[]),
    ("subscription_machine", &[]),
];

/// The `--seconds` value, 60 when absent.
pub fn seconds(args: &[String]) -> Result<u64, String> {
    match args.iter().position(|a| a == "--seconds") {
        None => Ok(60),
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| "--seconds takes a whole number of seconds".to_owned()),
    }
}

/// Runs every target for `seconds`.
pub fn run(seconds: u64) -> Result<(), String> {
    let fuzz = root().join("fuzz");
    let mut failed = Vec::new();
    for (target, seeds) in TARGETS {
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut args: Vec<String> = vec![
            "fuzz".into(),
            "run".into(),
            "--sanitizer".into(),
            "none".into(),
            "-O".into(),
            (*target).into(),
            path_text(&corpus),
        ];
        args.extend(seeds.iter().map(|s| path_text(&root().join(s))));
        args.extend(["--".into(), format!("-max_total_time={seconds}")]);
        eprintln!("$ cargo {}", args.join(" "));
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(&args)
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&fuzz)
            .status()
            .map_err(|e| format!("cannot run cargo fuzz (cargo install cargo-fuzz): {e}"))?;
        if !status.success() {
            failed.push(*target);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz targets failed: {} (inputs in fuzz/artifacts/)",
            failed.join(", ")
        ))
    }
}

fn path_text(path: &Path) -> String {
    PathBuf::from(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_default_to_sixty_and_must_be_a_positive_number() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(seconds(&args(&["fuzz"])), Ok(60));
        assert_eq!(seconds(&args(&["fuzz", "--seconds", "5"])), Ok(5));
        assert!(seconds(&args(&["fuzz", "--seconds"])).is_err());
        assert!(seconds(&args(&["fuzz", "--seconds", "0"])).is_err());
    }

    #[test]
    fn every_target_has_its_source_and_its_seeds_exist() {
        for (target, seeds) in TARGETS {
            let source = root()
                .join("fuzz/fuzz_targets")
                .join(format!("{target}.rs"));
            assert!(source.is_file(), "{}", source.display());
            for seed in *seeds {
                assert!(root().join(seed).is_dir(), "{seed}");
            }
        }
    }
}
