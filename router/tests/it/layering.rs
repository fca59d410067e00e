//! The layering rule of `router/src`, checked by reading the source: a module
//! imports only modules of the layers below its own, so configuration stays data
//! and no loop of imports can form again. The order is the one README's "Layout"
//! describes; a new top-level module must be placed in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crate's top-level modules, bottom layer first. Modules of one layer may
/// not import each other.
const LAYERS: &[&[&str]] = &[
    &["retryable", "sync", "digest", "boxed"],
    &["event", "config", "clock", "graceful", "head_timeout"],
    &["metrics", "trace", "tls"],
    &["redis"],
    &["kv", "gate"],
    &["plugin"],
    &["policy"],
    &["forward"],
    &["delivery"],
    &["runtime"],
    &["dispatch"],
    &["queue", "reload", "explain"],
    &["replay"],
    &["whatif"],
    &["http"],
    &["server"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a source file belongs to (`lib` for lib.rs).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every top-level module named after `crate::` in `text`, including the members
/// of a grouped `use crate::{a, b::c}`. Line comments are skipped, since docs
/// may name a module above.
fn crate_imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: those at brace depth 0.
            let mut depth = 0usize;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        found.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" || module == "cli" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            violations.push(format!(
                "{}: module `{module}` has no place in LAYERS",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for import in crate_imports(&text) {
            if import == module {
                continue;
            }
            match layer_of(&import) {
                Some(layer) if layer < own => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` imports `crate::{import}`, which is not below it",
                    file.display()
                )),
                None => violations.push(format!(
                    "{}: `crate::{import}` has no place in LAYERS",
                    file.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scan_sees_grouped_and_nested_imports() {
    let found = crate_imports(
        "use crate::a::b;\nuse crate::{c, d::{e, f}};\n// crate::g in a comment\nlet x = crate::h::i();",
    );
    let found: Vec<_> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["a", "c", "d", "h"]);
}
