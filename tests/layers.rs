//! The house rule of `docs/architecture.md`: a module imports only modules on its own floor or
//! below. Every `crate::<module>` path in the code of both crates is checked against the
//! floors listed here; a new top-level module must be given a floor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The gateway crate's floors, ground first.
const GATEWAY: &[(&str, u8)] = &[
    ("headers", 1),
    ("schema", 1),
    ("body", 1),
    ("model", 1),
    ("snapshot", 1),
    ("metrics", 1),
    ("errors", 2),
    ("upstream", 2),
    ("ai", 3),
    ("mock_llm", 4),
    ("context", 4),
    ("plugins", 5),
    ("analytics", 5),
    ("store", 6),
    ("proxy", 7),
    ("admin", 8),
    ("server", 8),
    ("served", 8),
    ("gateway", 9),
];

/// The CLI crate's floors, ground first.
const CLI: &[(&str, u8)] = &[
    ("cli", 1),
    ("exit", 1),
    ("paths", 1),
    ("ui", 1),
    ("namespace", 1),
    ("settings", 2),
    ("tls", 2),
    ("config", 2),
    ("file_tools", 3),
    ("state", 3),
    ("client", 3),
    ("plan", 4),
    ("reconcile", 5),
    ("references", 6),
    ("commands", 7),
];

/// Imports that break the rule today; each goes when its change lands. None now.
const KNOWN: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`ai/providers/mod.rs` → `ai`), or `None` for the
/// crate root files.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Every `crate::x` a file's code (not its comments, not its tests) names.
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

fn violations(src: &Path, floors: &[(&str, u8)]) -> Vec<String> {
    let floor: BTreeMap<&str, u8> = floors.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let Some(module) = module_of(src, &f) else {
            continue;
        };
        let Some(&own) = floor.get(module.as_str()) else {
            bad.push(format!(
                "{}: module `{module}` has no floor in tests/layers.rs",
                f.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        for dep in imports(&text) {
            if dep == module {
                continue;
            }
            match floor.get(dep.as_str()) {
                Some(&d) if d > own && !KNOWN.contains(&(module.as_str(), dep.as_str())) => bad
                    .push(format!(
                        "{}: `{module}` (floor {own}) imports `crate::{dep}` (floor {d})",
                        f.display()
                    )),
                _ => {}
            }
        }
    }
    bad
}

#[test]
fn no_gateway_module_imports_a_higher_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded-gateway/src");
    let bad = violations(&src, GATEWAY);
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn no_cli_module_imports_a_higher_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src, CLI);
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    let found = imports("use crate::proxy::Proxy;\n// crate::gateway in a comment\n");
    assert_eq!(found, vec!["proxy".to_owned()]);
}
