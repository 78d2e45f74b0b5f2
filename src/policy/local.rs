//! Loading a local policy directory (air-gapped nodes, or the node's own baseline).
//!
//! Every `*.yaml` / `*.yml` file in the directory (not recursive, sorted by name) is read;
//! hidden files are skipped so editors' swap files and `..data` symlink farms of mounted
//! ConfigMaps do not count twice. Documents may be of any kind the importers read. A load
//! succeeds only if every document compiles; otherwise the caller keeps its previous
//! snapshot and reports all errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::compile::{compile, FilesOnly, WithHeld};
use super::file::parse_documents;
use super::importers;
use super::normal::NormalPolicy;
use super::{Policy, PolicyError, PolicyErrors};
use crate::held::Held;

/// Everything loaded from a set of files.
#[derive(Debug, Default)]
pub struct Loaded {
    pub policies: Vec<Policy>,
    /// The normalised form, in the same order as `policies`.
    pub normal: Vec<NormalPolicy>,
    /// Parts that fail closed on this node (unsupported checks, unreadable Secrets).
    pub warnings: Vec<String>,
    /// Informational remarks from the importers.
    pub notes: Vec<String>,
}

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

/// How files are read beyond their own content.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The namespace of namespaced objects (Portieris ImagePolicy, Kyverno Policy) that name
    /// none, as `kubectl apply -n` would give it. A file's own `# signet.dev/namespace: NAME`
    /// line comes first, `metadata.namespace` before both.
    pub namespace: Option<String>,
}

/// Load the named files. Key paths are relative to each file's directory.
/// KMS keys fail closed: nothing is resolved here ([`load_files_with`] takes what a
/// resolver holds).
pub fn load_files(files: &[PathBuf]) -> Result<Loaded, PolicyErrors> {
    load_files_with(files, &LoadOptions::default(), &Held::offline())
}

/// [`load_files`] with options, and KMS keys as `kms` holds them (it does no I/O); the
/// normal forms carry the resolved keys. `signet policy check` and the daemon's local source
/// both come through here.
pub fn load_files_with(files: &[PathBuf], options: &LoadOptions, held: &Held) -> Result<Loaded, PolicyErrors> {
    let mut errors = Vec::new();
    let mut out = Loaded::default();
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
        let files_only = FilesOnly(path.parent().unwrap_or(Path::new(".")));
        let keys = WithHeld { keys: &files_only, held };
        let default_namespace = super::file::namespace_directive(&text).or_else(|| options.namespace.clone());
        for (index, mut doc) in docs.into_iter().enumerate() {
            let kind = |key: &str| doc.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let (api_version, kind) = (kind("apiVersion"), kind("kind"));
            if importers::is_not_policy(&api_version, &kind) {
                let name = doc.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or("?");
                out.notes.push(format!(
                    "{}: document {}: {api_version} {kind} {name} is not policy; skipped",
                    path.display(),
                    index + 1
                ));
                continue;
            }
            if importers::is_namespaced(&api_version, &kind) {
                let metadata = doc.get_mut("metadata").and_then(|m| m.as_object_mut());
                if let (Some(metadata), Some(ns)) = (metadata, &default_namespace) {
                    let named = metadata.get("namespace").and_then(|n| n.as_str()).is_some_and(|n| !n.is_empty());
                    if !named {
                        metadata.insert("namespace".into(), ns.clone().into());
                        out.notes.push(format!(
                            "{}: document {}: {kind} without metadata.namespace is taken as in namespace {ns}",
                            path.display(),
                            index + 1
                        ));
                    }
                }
            }
            let doc = &doc;
            let meta = importers::meta(doc).ok();
            let object = meta.as_ref().map(|m| m.name.clone()).unwrap_or_else(|| format!("document {}", index + 1));
            // One object per (group, kind, namespace, name), as in a cluster; checked before
            // import so a broken duplicate is still reported as one.
            if let Some(m) = &meta {
                let group = m.api_version.split('/').next().unwrap_or_default();
                let id = format!("{group} {} {}/{}", m.kind, m.namespace.as_deref().unwrap_or(""), m.name);
                if let Some(first) = seen.insert(id, path.clone()) {
                    errors.push(PolicyError::Duplicate { policy: object.clone(), first, second: path.clone() });
                }
            }
            let invalid =
                |message: String| PolicyError::Invalid { path: path.clone(), policy: object.clone(), message };
            let imported = match importers::import(doc) {
                Ok(i) => i,
                Err(messages) => {
                    errors.extend(messages.into_iter().map(invalid));
                    continue;
                }
            };
            out.notes.extend(imported.notes.into_iter().map(|n| format!("{}: {object}: {n}", path.display())));
            for mut normal in imported.policies {
                normal.inline_held(held);
                match compile(&normal, &keys) {
                    Ok(c) => {
                        out.warnings.extend(c.warnings.into_iter().map(|w| format!("policy {:?}: {w}", normal.name)));
                        out.policies.push(c.policy);
                        out.normal.push(normal);
                    }
                    Err(messages) => errors.extend(messages.into_iter().map(|m| PolicyError::Invalid {
                        path: path.clone(),
                        policy: normal.name.clone(),
                        message: m.to_string(),
                    })),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Load every policy file of a directory.
pub fn load_dir(dir: &Path) -> Result<Loaded, PolicyErrors> {
    load_dir_with(dir, &Held::offline())
}

/// [`load_dir`] with KMS keys as `kms` holds them.
pub fn load_dir_with(dir: &Path, held: &Held) -> Result<Loaded, PolicyErrors> {
    let files = policy_files(dir).map_err(|e| PolicyErrors(vec![e]))?;
    load_files_with(&files, &LoadOptions::default(), held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{NoMatchAction, PolicySet};

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const POLICY: &str = "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: NAME}\nspec:\n  images: [{glob: \"reg.io/**\"}]\n  authorities: [{static: {action: pass}}]\n";

    fn hash(dir: &Path, no_match: NoMatchAction) -> String {
        PolicySet::assemble(load_dir(dir).unwrap().policies, no_match).hash.clone()
    }

    #[test]
    fn loads_yaml_files_and_skips_others() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yaml", &POLICY.replace("NAME", "a"));
        write(d.path(), "b.yml", &format!("{}---\n{}", POLICY.replace("NAME", "b1"), POLICY.replace("NAME", "b2")));
        write(d.path(), "notes.txt", "not policy");
        write(d.path(), ".swap.yaml", "{{{{");
        let loaded = load_dir(d.path()).unwrap();
        let names: Vec<_> = loaded.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b1", "b2"]);
    }

    #[test]
    fn errors_from_all_files_are_collected() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yaml", "apiVersion: [");
        write(d.path(), "b.yaml", &POLICY.replace("NAME", "b").replace("pass", "nope"));
        write(d.path(), "c.yaml", &POLICY.replace("NAME", "b"));
        write(d.path(), "d.yaml", "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}\n");
        let err = load_dir(d.path()).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 4, "{text}");
        assert!(text.contains("a.yaml"), "{text}");
        assert!(text.contains("nope"), "{text}");
        assert!(text.contains("defined twice"), "{text}");
        assert!(text.contains("example.com/v1 Thing is not a policy kind"), "{text}");
    }

    #[test]
    fn unsupported_parts_load_as_warnings_and_fail_closed() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "k.yaml",
            &POLICY.replace("NAME", "k").replace("{static: {action: pass}}", "{key: {kms: \"awskms:///alias/k\"}}"),
        );
        let loaded = load_dir(d.path()).unwrap();
        assert_eq!(loaded.policies.len(), 1);
        assert!(loaded.warnings[0].contains("KMS"), "{:?}", loaded.warnings);
    }

    #[test]
    fn hash_changes_with_content_and_no_match_action() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yaml", &POLICY.replace("NAME", "a"));
        let h1 = hash(d.path(), NoMatchAction::Deny);
        assert_eq!(h1, hash(d.path(), NoMatchAction::Deny));
        assert_ne!(h1, hash(d.path(), NoMatchAction::Allow));
        write(d.path(), "a.yaml", &POLICY.replace("NAME", "a").replace("reg.io", "other.io"));
        assert_ne!(h1, hash(d.path(), NoMatchAction::Deny));
    }

    const IMAGE_POLICY: &str = "apiVersion: portieris.cloud.ibm.com/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  repositories:\n  - {name: \"icr.io/*\", policy: {}}\n";

    /// The peers apply namespaced objects with `kubectl -n`; the node is told the namespace
    /// by the file or the caller, and says how when neither does.
    #[test]
    fn namespaced_objects_take_the_namespace_they_are_given() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "p.yaml", IMAGE_POLICY);
        let err = load_dir(d.path()).unwrap_err().to_string();
        assert!(err.contains("metadata.namespace is missing") && err.contains("--namespace"), "{err}");
        let files = policy_files(d.path()).unwrap();
        let with = |ns: &str| LoadOptions { namespace: Some(ns.into()) };
        let loaded = load_files_with(&files, &with("payments"), &Held::offline()).unwrap();
        assert_eq!(loaded.normal[0].namespaces.include, ["payments"]);
        write(d.path(), "p.yaml", &format!("# signet.dev/namespace: tenant\n{IMAGE_POLICY}"));
        let loaded = load_files_with(&files, &with("payments"), &Held::offline()).unwrap();
        assert_eq!(loaded.normal[0].namespaces.include, ["tenant"], "the file's own line comes first");
        let named = IMAGE_POLICY.replace("{name: p}", "{name: p, namespace: own}");
        write(d.path(), "p.yaml", &format!("# signet.dev/namespace: tenant\n{named}"));
        let loaded = load_files_with(&files, &with("payments"), &Held::offline()).unwrap();
        assert_eq!(loaded.normal[0].namespaces.include, ["own"], "metadata.namespace before both");
    }

    #[test]
    fn built_in_kinds_beside_policy_are_skipped_with_a_note() {
        let d = tempfile::tempdir().unwrap();
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: keys}\n";
        write(d.path(), "a.yaml", &format!("{ns}---\n{}", POLICY.replace("NAME", "a")));
        let loaded = load_dir(d.path()).unwrap();
        assert_eq!(loaded.policies.len(), 1);
        assert!(loaded.notes.iter().any(|n| n.contains("v1 Namespace payments is not policy")), "{:?}", loaded.notes);
        write(d.path(), "a.yaml", "apiVersion: kyverno.io/v1\nkind: ClusterPolicyy\nmetadata: {name: t}\n");
        assert!(load_dir(d.path()).is_err(), "a misspelt policy kind is an error, not skipped");
        write(d.path(), "a.yaml", "apiVersion: v1\nkind: List\nitems: []\nmetadata: {name: l}\n");
        assert!(load_dir(d.path()).is_err(), "a List may hold policy");
    }

    #[test]
    fn missing_directory_is_named() {
        let err = load_dir(Path::new("/no/such/dir")).unwrap_err();
        assert!(err.to_string().contains("/no/such/dir"));
    }
}
