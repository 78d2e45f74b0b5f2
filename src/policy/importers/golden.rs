//! Golden tests: every file under `testdata/importers/` is imported document by document
//! and the normalised result (or the errors) compared with `<name>.golden`. Run with
//! `SIGNET_BLESS=1` to rewrite the expectations after a reviewed change.

use std::path::{Path, PathBuf};

use super::import;
use crate::policy::file::parse_documents;

fn render(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for (i, doc) in parse_documents(path, &text).unwrap().iter().enumerate() {
        out.push_str(&format!("# document {}\n", i + 1));
        match import(doc) {
            Ok(imported) => {
                for n in &imported.notes {
                    out.push_str(&format!("# note: {n}\n"));
                }
                out.push_str(&serde_yaml::to_string(&imported.policies).unwrap());
            }
            Err(errors) => {
                for e in errors {
                    out.push_str(&format!("# error: {e}\n"));
                }
            }
        }
    }
    out
}

#[test]
fn importers_match_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/importers");
    let bless = std::env::var_os("SIGNET_BLESS").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 5, "one input per importer at least");
    let mut mismatched = Vec::new();
    for input in inputs {
        let golden = input.with_extension("golden");
        let got = render(&input);
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            mismatched.push(format!("{}:\n--- want\n{want}\n+++ got\n{got}", golden.display()));
        }
    }
    assert!(mismatched.is_empty(), "golden mismatch (SIGNET_BLESS=1 to accept):\n{}", mismatched.join("\n"));
}
