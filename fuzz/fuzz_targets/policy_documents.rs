//! Policy YAML of every kind: parse, import and compile must end in policies or named
//! errors, never a panic (a bad policy must not take the daemon down).
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use signet::policy::compile::{compile, FilesOnly};
use signet::policy::file::parse_documents;
use signet::policy::importers::import;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(docs) = parse_documents(Path::new("fuzz.yaml"), text) else { return };
    for doc in &docs {
        if let Ok(imported) = import(doc) {
            for p in &imported.policies {
                // Key paths are not read: the base directory does not exist.
                let _ = compile(p, &FilesOnly(Path::new("/nonexistent-fuzz-dir")));
            }
        }
    }
});
