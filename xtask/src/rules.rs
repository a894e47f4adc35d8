//! The architecture and hygiene rules `cargo xtask check` enforces.
//! Each rule is a pure function over data, with a test that shows it catches a violation.

use std::path::Path;

use serde_json::Value;

/// The inner hexagon.
const CORE: &[&str] = &["domain", "ports", "service"];
/// Adapters: each depends inward only, never on another adapter, except as listed in [`ADAPTER_EXCEPTIONS`].
const ADAPTERS: &[&str] = &[
    "bank131",
    "gateway-http",
    "events-http",
    "sandbox",
    "store-sql",
    "store-postgres",
    "store-sqlite",
    "store-tests",
    "http-api",
];
/// `(adapter, may depend on)`: the sandbox and the gateway share the protocol
/// crate; the HTTP API drives the use cases; both stores share one SQL
/// implementation and one conformance suite.
const ADAPTER_EXCEPTIONS: &[(&str, &str)] = &[
    ("gateway-http", "bank131"),
    ("sandbox", "bank131"),
    ("http-api", "service"),
    ("store-postgres", "store-sql"),
    ("store-sqlite", "store-sql"),
    ("store-postgres", "store-tests"),
    ("store-sqlite", "store-tests"),
];
/// Crates that may depend on everything.
const WIRING: &[&str] = &["app", "xtask"];
/// Third-party crates the domain must never see.
const NOT_IN_DOMAIN: &[&str] = &[
    "sqlx",
    "axum",
    "reqwest",
    "tokio",
    "serde",
    "serde_json",
    "hyper",
    "tower",
    "async-trait",
];
/// `(library, crates allowed to use it)`.
const PLACEMENT: &[(&str, &[&str])] = &[
    ("sqlx", &["store-sql", "store-postgres", "store-sqlite"]),
    ("reqwest", &["gateway-http", "events-http"]),
    ("axum", &["http-api", "sandbox"]),
];

struct Dep<'a> {
    name: &'a str,
    workspace: bool,
    dev: bool,
}

fn deps(package: &Value) -> Vec<Dep<'_>> {
    package["dependencies"]
        .as_array()
        .map(|deps| {
            deps.iter()
                .map(|d| Dep {
                    name: d["name"].as_str().unwrap_or_default(),
                    workspace: d.get("path").is_some_and(|p| !p.is_null()),
                    dev: d["kind"].as_str() == Some("dev"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks `cargo metadata --no-deps` output against the hexagon's rules.
pub fn check_dependencies(metadata: &Value) -> Result<(), String> {
    let mut violations = Vec::new();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        let known = CORE.contains(&name) || ADAPTERS.contains(&name) || WIRING.contains(&name);
        if !known {
            violations.push(format!(
                "{name}: unknown crate; classify it in xtask/src/rules.rs"
            ));
            continue;
        }
        if WIRING.contains(&name) {
            continue;
        }
        for dep in deps(package) {
            let mut refuse = |why: &str| violations.push(format!("{name} -> {}: {why}", dep.name));
            if name == "domain" && !dep.dev {
                if dep.workspace {
                    refuse("domain depends on no workspace crate");
                }
                if NOT_IN_DOMAIN.contains(&dep.name) {
                    refuse("domain is pure: no IO, async or serde");
                }
            }
            if !dep.dev {
                for (lib, allowed) in PLACEMENT {
                    if dep.name == *lib && !allowed.contains(&name) {
                        refuse(&format!("{lib} is only for {}", allowed.join(", ")));
                    }
                }
            }
            if !dep.workspace || name == "domain" {
                continue;
            }
            let allowed = match name {
                "ports" => dep.name == "domain",
                "service" => ["domain", "ports"].contains(&dep.name),
                _ => {
                    ["domain", "ports"].contains(&dep.name)
                        || ADAPTER_EXCEPTIONS.contains(&(name, dep.name))
                        // The test-support crate may be used by any store's tests,
                        // and the gateway is tested against the sandbox bank.
                        || (dep.dev && dep.name == "store-tests")
                        || (dep.dev && name == "gateway-http" && dep.name == "sandbox")
                }
            };
            if !allowed {
                refuse("dependencies point inward only; adapters never depend on each other");
            }
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

/// Scans every Rust file under `crates/` and `xtask/`.
pub fn check_sources(root: &Path) -> Result<(), String> {
    let mut violations = Vec::new();
    for dir in ["crates", "xtask"] {
        walk(&root.join(dir), &mut |path| {
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let shown = path
                    .strip_prefix(root)
                    .unwrap_or(path)
                    .display()
                    .to_string();
                violations.extend(scan_source(&shown, &text));
            }
        });
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

pub(crate) fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            walk(&path, visit);
        } else {
            visit(&path);
        }
    }
}

/// Placeholders and skipped tests in one file. Test code may use the
/// placeholder macros while it is being written; no test may be ignored.
pub fn scan_source(path: &str, text: &str) -> Vec<String> {
    // Spelled in pieces so that this file does not match itself.
    let ignore = concat!("#[", "ignore");
    let placeholders = [concat!("todo", "!("), concat!("unimplemented", "!(")];
    let is_test_file = path.contains("/tests/") || path.ends_with("/tests.rs");
    let test_module_starts = text.find("#[cfg(test)]").unwrap_or(usize::MAX);
    let mut found = Vec::new();
    let mut offset = 0;
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        if code.contains(ignore) {
            found.push(format!(
                "{path}:{}: an ignored test (#[ig\u{6e}ore]) hides a check",
                n + 1
            ));
        }
        let in_tests = is_test_file || offset >= test_module_starts;
        if !in_tests && placeholders.iter().any(|p| code.contains(p)) {
            found.push(format!("{path}:{}: placeholder macro outside tests", n + 1));
        }
        offset += line.len() + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn package(name: &str, deps: &[(&str, bool, bool)]) -> Value {
        let deps: Vec<Value> = deps
            .iter()
            .map(|(dep, workspace, dev)| {
                json!({
                    "name": dep,
                    "path": if *workspace { json!(format!("/w/crates/{dep}")) } else { Value::Null },
                    "kind": if *dev { json!("dev") } else { Value::Null },
                })
            })
            .collect();
        json!({ "name": name, "dependencies": deps })
    }

    #[allow(clippy::needless_pass_by_value)]
    fn metadata(packages: Vec<Value>) -> Value {
        json!({ "packages": packages })
    }

    #[test]
    fn a_clean_hexagon_passes() {
        let m = metadata(vec![
            package(
                "domain",
                &[("time", false, false), ("proptest", false, true)],
            ),
            package(
                "ports",
                &[("domain", true, false), ("async-trait", false, false)],
            ),
            package(
                "service",
                &[("domain", true, false), ("ports", true, false)],
            ),
            package(
                "gateway-http",
                &[
                    ("bank131", true, false),
                    ("ports", true, false),
                    ("reqwest", false, false),
                ],
            ),
            package(
                "store-sqlite",
                &[
                    ("ports", true, false),
                    ("sqlx", false, false),
                    ("store-tests", true, true),
                ],
            ),
            package(
                "app",
                &[("gateway-http", true, false), ("store-sqlite", true, false)],
            ),
        ]);
        check_dependencies(&m).unwrap();
    }

    #[test]
    fn domain_with_serde_is_caught() {
        let m = metadata(vec![package("domain", &[("serde", false, false)])]);
        assert!(
            check_dependencies(&m)
                .unwrap_err()
                .contains("domain -> serde")
        );
    }

    #[test]
    fn domain_with_a_workspace_dependency_is_caught() {
        let m = metadata(vec![package("domain", &[("ports", true, false)])]);
        assert!(
            check_dependencies(&m)
                .unwrap_err()
                .contains("domain -> ports")
        );
    }

    #[test]
    fn ports_depending_on_service_is_caught() {
        let m = metadata(vec![package(
            "ports",
            &[("domain", true, false), ("service", true, false)],
        )]);
        assert!(
            check_dependencies(&m)
                .unwrap_err()
                .contains("ports -> service")
        );
    }

    #[test]
    fn an_adapter_depending_on_another_adapter_is_caught() {
        let m = metadata(vec![package("http-api", &[("store-sqlite", true, false)])]);
        assert!(
            check_dependencies(&m)
                .unwrap_err()
                .contains("http-api -> store-sqlite")
        );
    }

    #[test]
    fn a_library_in_the_wrong_crate_is_caught() {
        let m = metadata(vec![package(
            "store-postgres",
            &[("reqwest", false, false)],
        )]);
        assert!(
            check_dependencies(&m)
                .unwrap_err()
                .contains("reqwest is only for gateway-http")
        );
        let m = metadata(vec![package("service", &[("sqlx", false, false)])]);
        assert!(check_dependencies(&m).is_err());
    }

    #[test]
    fn an_unclassified_crate_is_caught() {
        let m = metadata(vec![package("mystery", &[])]);
        assert!(
            check_dependencies(&m)
                .unwrap_err()
                .contains("unknown crate")
        );
    }

    #[test]
    fn ignored_tests_are_caught_everywhere() {
        let src = concat!("#[test]\n#[", "ignore]\nfn t() {}\n");
        assert_eq!(scan_source("crates/x/tests/it/main.rs", src).len(), 1);
    }

    #[test]
    fn placeholders_are_caught_outside_tests_only() {
        let src = concat!(
            "fn f() { todo",
            "!() }\n#[cfg(test)]\nmod tests { fn g() { unimplemented",
            "!() } }\n"
        );
        let found = scan_source("crates/x/src/lib.rs", src);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains(":1:"));
        assert!(scan_source("crates/x/tests/it/main.rs", src).is_empty());
    }
}
