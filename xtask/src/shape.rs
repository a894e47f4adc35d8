//! The shape rules `cargo xtask check` enforces over the sources: short
//! files, no two files of one crate importing each other, no port reached
//! around the use cases, and every file named in ARCHITECTURE.md's code map.
//! Each rule is a pure function over file texts, with a
//! test that shows it catches a violation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest a source file under `crates/*/src` may be.
pub const MAX_LINES: usize = 700;

/// One source file: its path shown in messages and its text.
pub struct Source {
    /// `crates/<crate>/src/<module>.rs`.
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// Reads every `.rs` file under `crates/*/src`.
pub fn sources(root: &Path) -> Vec<Source> {
    let mut found = Vec::new();
    let Ok(crates) = std::fs::read_dir(root.join("crates")) else {
        return found;
    };
    for krate in crates.flatten() {
        crate::rules::walk(&krate.path().join("src"), &mut |path| {
            if path.extension().is_some_and(|e| e == "rs") {
                found.push(Source {
                    path: path
                        .strip_prefix(root)
                        .unwrap_or(path)
                        .display()
                        .to_string(),
                    text: std::fs::read_to_string(path).unwrap_or_default(),
                });
            }
        });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Runs every shape rule.
pub fn check(sources: &[Source]) -> Result<(), String> {
    let mut violations = long_files(sources);
    violations.extend(mutual_imports(sources));
    violations.extend(ports_reached_around_the_service(sources));
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

/// Source files that `ARCHITECTURE.md`'s code map does not name: each
/// crate's paragraph (from its bold ``` `crates/NAME` ``` heading to the next
/// blank line) must name every file under its `src/`, as its path from `src/`
/// in backticks.
pub fn unnamed_in_code_map(architecture: &str, sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .filter_map(|s| {
            let rest = s.path.strip_prefix("crates/")?;
            let (krate, file) = rest.split_once("/src/")?;
            let heading = format!("**`crates/{krate}`**");
            let Some(start) = architecture.find(&heading) else {
                return Some(format!(
                    "{}: ARCHITECTURE.md has no paragraph {heading}",
                    s.path
                ));
            };
            let paragraph = &architecture[start + heading.len()..];
            let paragraph = &paragraph[..paragraph.find("\n\n").unwrap_or(paragraph.len())];
            (!paragraph.contains(&format!("`{file}`")))
                .then(|| format!("{}: not named in ARCHITECTURE.md's code map", s.path))
        })
        .collect()
}

/// Files longer than [`MAX_LINES`].
pub fn long_files(sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .filter(|s| s.text.lines().count() > MAX_LINES)
        .map(|s| {
            format!(
                "{}: {} lines; split it by job (at most {MAX_LINES})",
                s.path,
                s.text.lines().count()
            )
        })
        .collect()
}

/// `crates/<crate>/src/a/b.rs` → (`<crate>`, `a/b`); `mod.rs` names its folder.
fn module_of(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix("crates/")?;
    let (krate, rest) = rest.split_once("/src/")?;
    let module = rest.strip_suffix(".rs")?;
    let module = module.strip_suffix("/mod").unwrap_or(module);
    Some((krate, module.to_owned()))
}

/// The first path segments after `prefix` (`crate::a::…`, `crate::{a::…, b}`).
fn segments_after<'t>(text: &'t str, prefix: &str) -> Vec<Vec<&'t str>> {
    let mut found = Vec::new();
    let ident = |s: &'t str| {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(s.len());
        s[..end]
            .split("::")
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
    };
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            found.extend(group[..end].split(',').map(|item| ident(item.trim())));
        } else {
            found.push(ident(rest));
        }
    }
    found
}

/// The modules of the same crate that a file refers to (`crate::m`, `super::m`,
/// and its own child modules).
fn imports(module: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let parent = module.rsplit_once('/').map_or("", |(p, _)| p);
    let join = |base: &str, seg: &str| {
        if base.is_empty() {
            seg.to_owned()
        } else {
            format!("{base}/{seg}")
        }
    };
    let resolve = |base: &str, path: &[&str]| -> Option<String> {
        let mut best = None;
        let mut current = base.to_owned();
        for seg in path {
            current = join(&current, seg);
            if modules.contains(&current) {
                best = Some(current.clone());
            }
        }
        best
    };
    let mut found = BTreeSet::new();
    for path in segments_after(&code, "crate::") {
        found.extend(resolve("", &path));
    }
    for path in segments_after(&code, "super::") {
        let own_parent = modules.contains(parent).then(|| parent.to_owned());
        found.extend(resolve(parent, &path).or(own_parent));
    }
    // `mod child;` then `child::Item`: the parent uses its child.
    for line in code.lines() {
        let line = line.trim();
        let Some(child) = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|c| c.strip_suffix(';'))
        else {
            continue;
        };
        let own = if module == "lib" || module == "main" {
            child.to_owned()
        } else {
            join(module, child)
        };
        if code.contains(&format!("{child}::")) && module != "lib" && module != "main" {
            found.insert(own);
        }
    }
    found.remove(module);
    found
}

/// Pairs of files of one crate that import each other. The crate root
/// (`lib.rs`, `main.rs`) declares and re-exports; it is not counted.
pub fn mutual_imports(sources: &[Source]) -> Vec<String> {
    let mut by_crate: BTreeMap<&str, Vec<(String, &Source)>> = BTreeMap::new();
    for source in sources {
        if let Some((krate, module)) = module_of(&source.path) {
            by_crate.entry(krate).or_default().push((module, source));
        }
    }
    let mut violations = Vec::new();
    for (krate, files) in by_crate {
        let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
        let edges: BTreeMap<&str, BTreeSet<String>> = files
            .iter()
            .filter(|(m, _)| m != "lib" && m != "main")
            .map(|(m, s)| (m.as_str(), imports(m, &s.text, &modules)))
            .collect();
        for (a, targets) in &edges {
            for b in targets {
                let back = edges.get(b.as_str()).is_some_and(|t| t.contains(*a));
                if back && *a < b.as_str() {
                    violations.push(format!(
                        "crates/{krate}: {a}.rs and {b}.rs import each other; move what they share below both"
                    ));
                }
            }
        }
    }
    violations
}

/// Nothing outside `service` reaches the ports around the use cases.
pub fn ports_reached_around_the_service(sources: &[Source]) -> Vec<String> {
    let needle = concat!(".deps", "()");
    sources
        .iter()
        .filter(|s| !s.path.starts_with("crates/service/"))
        .flat_map(|s| {
            s.text
                .lines()
                .enumerate()
                .filter(|(_, line)| line.contains(needle))
                .map(move |(n, _)| {
                    format!(
                        "{}:{}: a port is reached around the use cases; add a use case to service",
                        s.path,
                        n + 1
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, text: &str) -> Source {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_long_file_is_caught() {
        let long = "fn f() {}\n".repeat(MAX_LINES + 1);
        let files = [
            source("crates/a/src/lib.rs", &long),
            source("crates/a/src/ok.rs", "fn f() {}\n"),
        ];
        let found = long_files(&files);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("crates/a/src/lib.rs"), "{found:?}");
    }

    #[test]
    fn two_files_importing_each_other_are_caught() {
        let files = [
            source("crates/a/src/lib.rs", "mod x;\nmod y;\npub use x::X;\n"),
            source("crates/a/src/x.rs", "use crate::y::Y;\npub struct X;\n"),
            source(
                "crates/a/src/y.rs",
                "use crate::{x::X, z};\npub struct Y;\n",
            ),
        ];
        let found = mutual_imports(&files);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("x.rs and y.rs"), "{found:?}");
    }

    #[test]
    fn a_child_using_its_parent_is_caught_and_siblings_one_way_pass() {
        let files = [
            source("crates/a/src/p.rs", "mod c;\nmod d;\npub use c::C;\n"),
            source("crates/a/src/p/c.rs", "use super::d::D;\npub struct C;\n"),
            source("crates/a/src/p/d.rs", "pub struct D;\n"),
        ];
        assert!(mutual_imports(&files).is_empty());
        let files = [
            source(
                "crates/a/src/p.rs",
                "mod c;\npub use c::C;\npub struct P;\n",
            ),
            source("crates/a/src/p/c.rs", "use super::P;\npub struct C;\n"),
        ];
        assert_eq!(mutual_imports(&files).len(), 1);
    }

    #[test]
    fn a_port_reached_outside_the_service_is_caught() {
        let call = concat!("let n = state.service.deps", "().outbox.depth();\n");
        let files = [
            source("crates/http-api/src/handlers.rs", call),
            source("crates/service/src/lib.rs", call),
        ];
        let found = ports_reached_around_the_service(&files);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("crates/http-api/src/handlers.rs:1"));
    }

    #[test]
    fn the_workspace_has_its_shape() {
        check(&sources(&crate::root())).unwrap();
    }

    #[test]
    fn a_file_missing_from_the_code_map_is_caught() {
        let map = "**`crates/a`** — `lib.rs` and `x.rs`.\n\n**`crates/b`** — `lib.rs`.";
        let files = [
            source("crates/a/src/x.rs", ""),
            source("crates/a/src/y.rs", ""),
            source("crates/b/src/x.rs", ""),
            source("crates/c/src/lib.rs", ""),
        ];
        let found = unnamed_in_code_map(map, &files);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("crates/a/src/y.rs"));
        assert!(
            found[1].starts_with("crates/b/src/x.rs"),
            "named in another crate's paragraph only"
        );
        assert!(found[2].contains("no paragraph"));
    }

    #[test]
    fn the_code_map_names_every_module_file() {
        crate::code_map().unwrap();
    }
}
