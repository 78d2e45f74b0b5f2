//! Loading a local policy directory (air-gapped nodes, or the node's own baseline).
//!
//! Every `*.yaml` / `*.yml` file in the directory (not recursive, sorted by name) is read;
//! hidden files are skipped so editors' swap files and `..data` symlink farms of mounted
//! ConfigMaps do not count twice. A load succeeds only if every document compiles; otherwise
//! the caller keeps its previous snapshot and reports all errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file::{compile, parse_documents};
use super::model::{NoMatchAction, PolicySet};
use super::{PolicyError, PolicyErrors};

/// Files in `dir` that hold policy, in load order.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PolicyError::Dir { path: dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PolicyError::Dir { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if is_yaml && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Load the named files into one snapshot. Key paths are relative to each file's directory.
pub fn load_files(files: &[PathBuf], no_match: NoMatchAction) -> Result<Arc<PolicySet>, PolicyErrors> {
    let mut errors = Vec::new();
    let mut policies = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(source) => {
                errors.push(PolicyError::Read { path: path.clone(), source });
                continue;
            }
        };
        let docs = match parse_documents(path, &text) {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for doc in &docs {
            if let Some(first) = seen.insert(doc.metadata.name.clone(), path.clone()) {
                errors.push(PolicyError::Duplicate { policy: doc.metadata.name.clone(), first, second: path.clone() });
            }
            match compile(path, base, doc) {
                Ok(p) => policies.push(p),
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    // The Debug form covers names, globs, modes and key fingerprints: everything a decision
    // depends on, so the hash changes exactly when a decision could.
    let canonical = format!("{policies:?}");
    Ok(PolicySet::new(policies, no_match, canonical.as_bytes()))
}

/// Load every policy file of a directory.
pub fn load_dir(dir: &Path, no_match: NoMatchAction) -> Result<Arc<PolicySet>, PolicyErrors> {
    let files = policy_files(dir).map_err(|e| PolicyErrors(vec![e]))?;
    load_files(&files, no_match)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const POLICY: &str = "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: NAME}\nspec:\n  images: [{glob: \"reg.io/**\"}]\n  authorities: [{static: {action: pass}}]\n";

    #[test]
    fn loads_yaml_files_and_skips_others() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yaml", &POLICY.replace("NAME", "a"));
        write(d.path(), "b.yml", &format!("{}---\n{}", POLICY.replace("NAME", "b1"), POLICY.replace("NAME", "b2")));
        write(d.path(), "notes.txt", "not policy");
        write(d.path(), ".swap.yaml", "{{{{");
        let set = load_dir(d.path(), NoMatchAction::Deny).unwrap();
        let names: Vec<_> = set.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b1", "b2"]);
    }

    #[test]
    fn errors_from_all_files_are_collected() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yaml", "apiVersion: [");
        write(d.path(), "b.yaml", &POLICY.replace("NAME", "b").replace("pass", "nope"));
        write(d.path(), "c.yaml", &POLICY.replace("NAME", "b"));
        let err = load_dir(d.path(), NoMatchAction::Deny).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        assert!(text.contains("a.yaml"), "{text}");
        assert!(text.contains("nope"), "{text}");
        assert!(text.contains("defined twice"), "{text}");
    }

    #[test]
    fn hash_changes_with_content_and_no_match_action() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yaml", &POLICY.replace("NAME", "a"));
        let h1 = load_dir(d.path(), NoMatchAction::Deny).unwrap().hash.clone();
        assert_eq!(h1, load_dir(d.path(), NoMatchAction::Deny).unwrap().hash);
        assert_ne!(h1, load_dir(d.path(), NoMatchAction::Allow).unwrap().hash);
        write(d.path(), "a.yaml", &POLICY.replace("NAME", "a").replace("reg.io", "other.io"));
        assert_ne!(h1, load_dir(d.path(), NoMatchAction::Deny).unwrap().hash);
    }

    #[test]
    fn missing_directory_is_named() {
        let err = load_dir(Path::new("/no/such/dir"), NoMatchAction::Deny).unwrap_err();
        assert!(err.to_string().contains("/no/such/dir"));
    }
}
