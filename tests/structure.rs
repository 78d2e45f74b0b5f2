//! The shape of the source, checked: no string errors in signatures, and the imports that
//! would run upward (a lower floor reading a higher one) stay absent.
//!
//! Both read each file as text without its `#[cfg(test)]` items (rustfmt puts a top-level
//! item's closing brace alone in column 0, which is where such an item ends).

use std::path::{Path, PathBuf};

/// Files whose string errors are still being converted (#17); none left.
const STRING_ERRORS_PENDING: &[&str] = &[];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") && !path.to_string_lossy().ends_with("_tests.rs") {
            out.push(path);
        }
    }
}

/// `(path from the crate root, non-test text)` of every source file under `src/`.
fn non_test_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "testutil"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.strip_prefix(root).unwrap().to_string_lossy().into_owned(), without_test_items(&text))
        })
        .collect()
}

/// `text` without its top-level `#[cfg(test)]` items; lines keep their numbers (blanked).
fn without_test_items(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line != "#[cfg(test)]" {
            out.push(line);
            continue;
        }
        out.push("");
        let Some(item) = lines.next() else { break };
        out.push("");
        if item.ends_with('{') {
            for inner in lines.by_ref() {
                out.push("");
                if inner == "}" {
                    break;
                }
            }
        }
    }
    out.join("\n")
}

#[test]
fn no_function_returns_a_string_error() {
    let mut found = Vec::new();
    for (path, text) in non_test_sources() {
        if STRING_ERRORS_PENDING.contains(&path.as_str()) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let returns = line.split_once("-> ").map(|(_, r)| r);
            if returns.is_some_and(|r| r.contains("Result<") && r.contains(", String>")) {
                found.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "functions returning Result<_, String>, give them a thiserror enum:\n{}",
        found.join("\n")
    );
}

#[test]
fn lower_floors_do_not_import_higher_ones() {
    // (files under this prefix, may not name this module)
    let rules: &[(&str, &str)] = &[
        ("src/kms/", "crate::policy"),
        ("src/registry/", "crate::verify"),
        // Judgement stands on policy and verify; they read neither it nor each other upward.
        ("src/verify/", "crate::policy"),
        ("src/verify/", "crate::evaluate"),
        ("src/policy/", "crate::evaluate"),
        ("src/kms/", "crate::evaluate"),
        ("src/registry/", "crate::evaluate"),
        // The CEL language is the floor of both policy forms, so it names neither.
        ("src/policy/cel.rs", "super::model"),
        ("src/policy/cel.rs", "super::normal"),
        ("src/policy/cel.rs", "super::compile"),
        ("src/policy/cel.rs", "crate::policy"),
        // The ground floor names nothing of the crate.
        ("src/encoding.rs", "crate::"),
        ("src/decision.rs", "crate::"),
        ("src/reference/", "crate::"),
    ];
    let mut found = Vec::new();
    for (path, text) in non_test_sources() {
        for (_, forbidden) in rules.iter().filter(|(prefix, _)| path.starts_with(prefix)) {
            for (n, line) in text.lines().enumerate() {
                if line.contains(forbidden) && !line.trim_start().starts_with("//") {
                    found.push(format!("{path}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "imports that run upward:\n{}", found.join("\n"));
}
