//! Where simple-signing (GPG) signatures live: the lookaside stores configured in
//! `/etc/containers/registries.d/*.yaml`, the file podman, skopeo and CRI-O read.
//!
//! For an image `registry/path` the most specific `docker:` scope (registry, registry/ns,
//! ..., full repository) names a `lookaside` (or its older name `sigstore`) base URL; else
//! `default-docker`. Signatures are `<base>/<path>@sha256=<hex>/signature-1`, `-2`, ... up
//! to the first that does not exist. `file://` bases serve air-gapped nodes that sync
//! signatures to disk; `http(s)://` bases are fetched with the signature deadline.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    default_docker: Option<Scope>,
    #[serde(default)]
    docker: BTreeMap<String, Scope>,
}

#[derive(Deserialize, Default, Clone)]
struct Scope {
    #[serde(default)]
    lookaside: Option<String>,
    #[serde(default)]
    sigstore: Option<String>,
}

impl Scope {
    fn base(&self) -> Option<String> {
        self.lookaside.clone().or_else(|| self.sigstore.clone()).map(|u| u.trim_end_matches('/').to_string())
    }
}

/// Lookaside bases by scope.
#[derive(Clone, Debug, Default)]
pub struct Lookaside {
    default: Option<String>,
    scopes: BTreeMap<String, String>,
}

impl Lookaside {
    /// Read every `*.yaml` in `dir` (missing dir: none configured). A file that does not
    /// parse is an error naming it.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut out = Lookaside::default();
        let mut paths: Vec<_> = match std::fs::read_dir(dir) {
            Ok(e) => e.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(format!("registries.d {}: {e}", dir.display())),
        };
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let f: File = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            if let Some(base) = f.default_docker.and_then(|s| s.base()) {
                out.default.get_or_insert(base);
            }
            for (scope, s) in f.docker {
                if let Some(base) = s.base() {
                    out.scopes.entry(scope).or_insert(base);
                }
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.scopes.is_empty()
    }

    /// The base URL for `registry/path`, most specific scope first.
    pub fn base_for(&self, repository: &str) -> Option<&str> {
        let mut scope = repository;
        loop {
            if let Some(b) = self.scopes.get(scope) {
                return Some(b);
            }
            match scope.rsplit_once('/') {
                Some((parent, _)) => scope = parent,
                None => return self.default.as_deref(),
            }
        }
    }
}

/// The URL of signature number `n` (from 1).
pub fn signature_url(base: &str, path: &str, digest: &str, n: usize) -> String {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    format!("{base}/{path}@{alg}={hex}/signature-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_scope_then_default() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("a.yaml"),
            "default-docker:\n  lookaside: https://sigs.example/\ndocker:\n  reg.io/team:\n    sigstore: file:///var/sigs\n  reg.io/team/app:\n    lookaside: https://app.example\n",
        )
        .unwrap();
        std::fs::write(d.path().join("ignored.txt"), "not yaml {").unwrap();
        let l = Lookaside::load(d.path()).unwrap();
        assert_eq!(l.base_for("reg.io/team/app"), Some("https://app.example"));
        assert_eq!(l.base_for("reg.io/team/other"), Some("file:///var/sigs"));
        assert_eq!(l.base_for("quay.io/x/y"), Some("https://sigs.example"));
        assert_eq!(
            signature_url("file:///var/sigs", "team/app", "sha256:ab", 2),
            "file:///var/sigs/team/app@sha256=ab/signature-2"
        );
        std::fs::write(d.path().join("b.yaml"), "docker: [").unwrap();
        assert!(Lookaside::load(d.path()).unwrap_err().contains("b.yaml"));
        assert!(Lookaside::load(&d.path().join("none")).unwrap().is_empty());
    }
}
