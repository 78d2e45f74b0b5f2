//! Registry credentials for signature fetches, from docker `config.json` files on the node
//! (kubelet's `/var/lib/kubelet/config.json`, root's `~/.docker/config.json`) and from
//! `kubernetes.io/dockerconfigjson` pull Secrets that policies name.
//!
//! Credentials are never logged: [`Credentials`] prints only which hosts it has.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

/// Where kubelet and the docker CLI keep node-wide credentials.
pub const DEFAULT_FILES: &[&str] = &["/var/lib/kubelet/config.json", "/root/.docker/config.json"];

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

/// What to answer a host's challenge with.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Anonymous,
    Basic(String, String),
    /// A docker config `registrytoken`: sent as the bearer token itself.
    Bearer(String),
}

/// Only the shape, never the secret.
impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::Anonymous => f.write_str("Anonymous"),
            RegistryAuth::Basic(user, _) => write!(f, "Basic({user:?}, ..)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Secret {
    Basic(String, String),
    Bearer(String),
}

/// Credentials by registry host. The first source that names a host wins.
#[derive(Clone, Default)]
pub struct Credentials {
    by_host: BTreeMap<String, Secret>,
    /// What was skipped (credential helpers), for the log.
    pub notes: Vec<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials(hosts: {:?})", self.by_host.keys().collect::<Vec<_>>())
    }
}

/// The host part of an `auths` key, which may be a URL (`https://index.docker.io/v1/`).
fn host_of(key: &str) -> String {
    let rest = key.split_once("://").map(|(_, r)| r).unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// A docker config that cannot be used. Messages name the file or Secret and the registry
/// entry, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("registry credentials {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("registry credentials {source_name}: {message}")]
    Parse { source_name: String, message: String },
    #[error("registry credentials {source_name}: {key}: {problem}")]
    Entry { source_name: String, key: String, problem: EntryProblem },
}

/// What is wrong with one `auths` entry, by its shape only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error("auth is not base64")]
    NotBase64,
    #[error("auth is not text")]
    NotText,
    #[error("auth is not user:password")]
    NoColon,
    #[error("identity tokens (OAuth refresh tokens) are not supported; use a username and password")]
    IdentityToken,
}

impl Credentials {
    /// Read the files that exist; a file that exists but does not parse is an error naming it.
    pub fn load_files(files: &[PathBuf]) -> Result<Self, CredentialsError> {
        let mut out = Credentials::default();
        for f in files {
            match std::fs::read(f) {
                Ok(data) => out.add_config(&data, &f.display().to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(CredentialsError::Read { path: f.clone(), source }),
            }
        }
        Ok(out)
    }

    /// Add a docker config (`config.json`, or a Secret's `.dockerconfigjson`).
    pub fn add_config(&mut self, data: &[u8], source: &str) -> Result<(), CredentialsError> {
        let cfg: DockerConfig = serde_json::from_slice(data)
            .map_err(|e| CredentialsError::Parse { source_name: source.to_string(), message: e.to_string() })?;
        for (key, entry) in cfg.auths {
            let host = host_of(&key);
            let secret = entry_secret(&entry).map_err(|problem| CredentialsError::Entry {
                source_name: source.to_string(),
                key: key.clone(),
                problem,
            })?;
            if let Some(s) = secret {
                self.by_host.entry(host).or_insert(s);
            }
        }
        if cfg.creds_store.is_some() || !cfg.cred_helpers.is_empty() {
            self.notes.push(format!("registry credentials {source}: credential helpers are not run by signet"));
        }
        Ok(())
    }

    /// Auth for `host`; anonymous when none is known.
    pub fn auth_for(&self, host: &str) -> RegistryAuth {
        match self.by_host.get(host) {
            Some(Secret::Basic(u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            Some(Secret::Bearer(t)) => RegistryAuth::Bearer(t.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// `other`'s hosts that are not known here.
    pub fn merge(&mut self, other: &Credentials) {
        for (h, s) in &other.by_host {
            self.by_host.entry(h.clone()).or_insert_with(|| s.clone());
        }
    }
}

fn entry_secret(e: &AuthEntry) -> Result<Option<Secret>, EntryProblem> {
    if let Some(t) = e.registry_token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Secret::Bearer(t.clone())));
    }
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        return Ok(Some(Secret::Basic(u.clone(), p.clone())));
    }
    if let Some(a) = e.auth.as_ref().filter(|a| !a.is_empty()) {
        // Never echo the value: only say what shape was wrong.
        let raw = base64::engine::general_purpose::STANDARD.decode(a.trim()).map_err(|_| EntryProblem::NotBase64)?;
        let text = String::from_utf8(raw).map_err(|_| EntryProblem::NotText)?;
        let (u, p) = text.split_once(':').ok_or(EntryProblem::NoColon)?;
        return Ok(Some(Secret::Basic(u.to_string(), p.to_string())));
    }
    if e.identity_token.is_some() {
        return Err(EntryProblem::IdentityToken);
    }
    Ok(None)
}

/// The default files, for settings that name none.
pub fn default_files() -> Vec<PathBuf> {
    DEFAULT_FILES.iter().map(|p| Path::new(p).to_path_buf()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_in_every_form_and_host_normalisation() {
        let mut c = Credentials::default();
        let b64 = base64::engine::general_purpose::STANDARD.encode("robot:s3cret");
        let cfg = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{b64}"}},
                "reg.local:5000": {{"username": "u", "password": "p"}},
                "tok.io": {{"registrytoken": "t0k"}}}}, "credHelpers": {{"gcr.io": "gcloud"}}}}"#
        );
        c.add_config(cfg.as_bytes(), "config.json").unwrap();
        assert_eq!(c.auth_for("docker.io"), RegistryAuth::Basic("robot".into(), "s3cret".into()));
        assert_eq!(c.auth_for("reg.local:5000"), RegistryAuth::Basic("u".into(), "p".into()));
        assert_eq!(c.auth_for("tok.io"), RegistryAuth::Bearer("t0k".into()));
        assert_eq!(c.auth_for("other.io"), RegistryAuth::Anonymous);
        assert!(c.notes[0].contains("credential helpers"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("t0k") && shown.contains("reg.local:5000"), "{shown}");
    }

    #[test]
    fn errors_name_the_source_and_never_the_secret() {
        let mut c = Credentials::default();
        let e = c.add_config(br#"{"auths": {"r.io": {"auth": "not base64 s3cret!"}}}"#, "/root/.docker/config.json");
        let e = e.unwrap_err().to_string();
        assert!(e.contains("/root/.docker/config.json") && e.contains("r.io") && !e.contains("s3cret"), "{e}");
        assert!(c.add_config(b"{", "x").unwrap_err().to_string().contains("registry credentials x"));
        let d = tempfile::tempdir().unwrap();
        assert!(Credentials::load_files(&[d.path().join("missing.json")]).unwrap().is_empty());
    }
}
