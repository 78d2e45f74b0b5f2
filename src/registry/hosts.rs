//! Where containerd pulls from: its `hosts.toml` mirror configuration (`config_path`).
//!
//! Air-gapped nodes reach registries through mirrors, and the node pulls images that way; the
//! signatures must come the same way, or every signature fetch fails where the image pull
//! worked. For a registry `R`, `<config_path>/R/hosts.toml` (else `_default/hosts.toml`) lists
//! `[host."scheme://mirror"]` entries tried in order, then `server` (default `https://R`), as
//! containerd does. Only hosts with the `pull` capability are used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One place to fetch from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as oci-client addresses it.
    pub host: String,
    /// Spoken to over plain HTTP (`http://` in hosts.toml).
    pub plain_http: bool,
}

/// Unknown keys are tolerated: the file belongs to containerd, whose newer versions add keys,
/// and refusing it would stop signet from starting over a setting it does not need.
#[derive(Deserialize)]
struct HostsFile {
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    skip_verify: Option<bool>,
    #[serde(default)]
    ca: Option<toml::Value>,
    #[serde(default)]
    client: Option<toml::Value>,
    #[serde(default)]
    override_path: Option<bool>,
    #[serde(default)]
    header: Option<toml::Value>,
    /// Kept in file order (toml's `preserve_order`): containerd tries hosts in that order.
    #[serde(default)]
    host: toml::Table,
}

/// Mirror configuration for every registry that has one.
#[derive(Clone, Debug, Default)]
pub struct Mirrors {
    by_registry: HashMap<String, Vec<Endpoint>>,
    /// Parts of the files signet does not apply (custom CAs, client certificates, paths).
    pub notes: Vec<String>,
}

/// containerd's directory name for a registry: `host_port` for `host:port`.
fn dir_name(registry: &str) -> String {
    registry.replace(':', "_")
}

impl Mirrors {
    /// Read `<dir>/*/hosts.toml`. A file that does not parse is an error naming it: a node
    /// that silently ignored a mirror would fail every fetch, or worse, go elsewhere.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut out = Mirrors::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(format!("registry hosts directory {}: {e}", dir.display())),
        };
        for entry in entries.flatten() {
            let file = entry.path().join("hosts.toml");
            if !file.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let endpoints = parse(&name, &text, &mut out.notes).map_err(|e| format!("{}: {e}", file.display()))?;
            out.by_registry.insert(name, endpoints);
        }
        Ok(out)
    }

    /// Where to fetch `registry`'s artifacts from, in order.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        self.by_registry
            .get(&dir_name(registry))
            .or_else(|| self.by_registry.get(registry))
            .or_else(|| self.by_registry.get("_default"))
            .cloned()
            .unwrap_or_else(|| vec![Endpoint { host: registry.to_string(), plain_http: false }])
    }

    /// Every plain-HTTP mirror host (the registry client is told about them up front).
    pub fn plain_http_hosts(&self) -> impl Iterator<Item = &str> {
        self.by_registry.values().flatten().filter(|e| e.plain_http).map(|e| e.host.as_str())
    }
}

fn parse(registry: &str, text: &str, notes: &mut Vec<String>) -> Result<Vec<Endpoint>, String> {
    let file: HostsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (url, table) in &file.host {
        let caps = table
            .get("capabilities")
            .and_then(|c| c.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).any(|c| c == "pull"));
        if caps == Some(false) {
            continue;
        }
        for key in ["ca", "client", "skip_verify", "override_path", "header"] {
            if table.get(key).is_some() {
                notes.push(format!("hosts.toml for {registry}: host {url}: {key} is not applied to signature fetches"));
            }
        }
        match endpoint(url) {
            Ok(e) => out.push(e),
            Err(e) => notes.push(format!("hosts.toml for {registry}: host {url} skipped: {e}")),
        }
    }
    let server_pulls = file.capabilities.as_ref().is_none_or(|c| c.iter().any(|c| c == "pull"));
    if server_pulls {
        let server = match &file.server {
            Some(s) => endpoint(s).map_err(|e| format!("server {s}: {e}"))?,
            None if registry == "_default" => return Ok(out),
            None => Endpoint { host: registry.to_string(), plain_http: false },
        };
        out.push(server);
    }
    if file.ca.is_some()
        || file.client.is_some()
        || file.skip_verify.is_some()
        || file.header.is_some()
        || file.override_path.is_some()
    {
        notes.push(format!(
            "hosts.toml for {registry}: server TLS and header settings are not applied to signature fetches"
        ));
    }
    Ok(out)
}

/// `scheme://host[:port]` with no path (a path prefix cannot be expressed to the registry client).
fn endpoint(url: &str) -> Result<Endpoint, String> {
    let (plain_http, rest) = if let Some(r) = url.strip_prefix("http://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (false, r)
    } else {
        (false, url)
    };
    let rest = rest.trim_end_matches('/');
    let host = rest.strip_suffix("/v2").unwrap_or(rest);
    if host.is_empty() || host.contains('/') {
        return Err("a host with a path is not supported".into());
    }
    // Docker Hub's documented server name; oci-client resolves docker.io itself.
    let host = if host == "registry-1.docker.io" { "docker.io" } else { host };
    Ok(Endpoint { host: host.to_string(), plain_http })
}

/// containerd's `config_path` from its config file (version 2 or 3), if set.
pub fn config_path_from_containerd(config: &Path) -> Option<PathBuf> {
    let table: toml::Table = std::fs::read_to_string(config).ok()?.parse().ok()?;
    let plugins = table.get("plugins")?;
    plugins
        .get("io.containerd.grpc.v1.cri")
        .and_then(|c| c.get("registry"))
        .or_else(|| plugins.get("io.containerd.cri.v1.images")?.get("registry"))
        .and_then(|r| r.get("config_path"))
        .and_then(|p| p.as_str())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrors(files: &[(&str, &str)]) -> Mirrors {
        let d = tempfile::tempdir().unwrap();
        for (dir, text) in files {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
            std::fs::write(d.path().join(dir).join("hosts.toml"), text).unwrap();
        }
        Mirrors::load(d.path()).unwrap()
    }

    fn hosts(m: &Mirrors, registry: &str) -> Vec<(String, bool)> {
        m.endpoints(registry).into_iter().map(|e| (e.host, e.plain_http)).collect()
    }

    #[test]
    fn mirrors_in_file_order_then_the_server() {
        let m = mirrors(&[(
            "docker.io",
            "server = \"https://registry-1.docker.io\"\n\
             [host.\"http://zz-mirror:5000\"]\ncapabilities = [\"pull\", \"resolve\"]\n\
             [host.\"https://aa-mirror\"]\n\
             [host.\"https://push-only\"]\ncapabilities = [\"push\"]\n",
        )]);
        assert_eq!(
            hosts(&m, "docker.io"),
            [("zz-mirror:5000".into(), true), ("aa-mirror".into(), false), ("docker.io".into(), false)]
        );
        assert_eq!(m.plain_http_hosts().collect::<Vec<_>>(), ["zz-mirror:5000"]);
        assert_eq!(hosts(&m, "quay.io"), [("quay.io".into(), false)], "no file: the registry itself");
    }

    #[test]
    fn host_port_directories_default_and_unsupported_parts() {
        let m = mirrors(&[
            ("reg.local_5000", "server = \"http://reg.local:5000\"\n"),
            ("_default", "[host.\"https://catch-all\"]\nca = \"/etc/ca.pem\"\n[host.\"https://m/prefix\"]\n"),
        ]);
        assert_eq!(hosts(&m, "reg.local:5000"), [("reg.local:5000".into(), true)]);
        assert_eq!(hosts(&m, "other.io"), [("catch-all".into(), false)]);
        assert!(m.notes.iter().any(|n| n.contains("ca is not applied")), "{:?}", m.notes);
        assert!(m.notes.iter().any(|n| n.contains("with a path")), "{:?}", m.notes);
    }

    #[test]
    fn keys_from_newer_containerd_are_tolerated() {
        let m = mirrors(&[("r.io", "server = \"https://r.io\"\ndial_timeout = \"3s\"\n[host.\"https://m\"]\n")]);
        assert_eq!(hosts(&m, "r.io"), [("m".into(), false), ("r.io".into(), false)]);
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("r.io")).unwrap();
        std::fs::write(d.path().join("r.io/hosts.toml"), "server = [").unwrap();
        let e = Mirrors::load(d.path()).unwrap_err();
        assert!(e.contains("r.io/hosts.toml"), "{e}");
    }

    #[test]
    fn config_path_is_read_from_containerd_config() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("config.toml");
        std::fs::write(&c, "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n").unwrap();
        assert_eq!(config_path_from_containerd(&c), Some(PathBuf::from("/etc/containerd/certs.d")));
    }
}
