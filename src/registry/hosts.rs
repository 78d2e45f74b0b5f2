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
    /// `host[:port]`, as hosts.toml and docker config files name it.
    pub host: String,
    /// Spoken to over plain HTTP (`http://` in hosts.toml).
    pub plain_http: bool,
    pub tls: Tls,
}

impl Endpoint {
    fn new(host: &str, plain_http: bool) -> Self {
        Self { host: host.to_string(), plain_http, tls: Tls::default() }
    }
}

/// How to trust one host's certificate, beyond the system roots. It belongs to the host as
/// one registry's hosts.toml lists it, as in containerd: the same mirror listed for another
/// registry, or reached as a registry itself, has the settings given there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tls {
    /// DER certificates from the `ca` files, trusted in addition to the system roots.
    pub extra_roots: Vec<Vec<u8>>,
    pub skip_verify: bool,
}

impl Tls {
    pub fn is_default(&self) -> bool {
        self.extra_roots.is_empty() && !self.skip_verify
    }

    /// `ca` (a path or a list of paths) and `skip_verify` from a host table or the file's top
    /// level. An unreadable CA is an error naming it: containerd would fail those pulls too,
    /// and guessing would either fail every fetch or trust less than the node does.
    fn from_settings(ca: Option<&toml::Value>, skip_verify: Option<bool>, base: &Path) -> Result<Self, HostsError> {
        let paths: Vec<&str> = match ca {
            None => Vec::new(),
            Some(toml::Value::String(p)) => vec![p.as_str()],
            Some(toml::Value::Array(a)) => {
                a.iter().map(|v| v.as_str().ok_or(HostsError::CaEntries)).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(HostsError::CaType),
        };
        let mut extra_roots = Vec::new();
        for p in paths {
            extra_roots.extend(read_ca(&base.join(p))?);
        }
        Ok(Self { extra_roots, skip_verify: skip_verify.unwrap_or(false) })
    }
}

/// A hosts directory or file that cannot be used; each names the file, host and CA file.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("registry hosts directory {}: {source}", .dir.display())]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", .path.display())]
    InFile { path: PathBuf, source: Box<HostsError> },
    #[error("{0}")]
    Toml(String),
    #[error("host {url}: {source}")]
    Host { url: String, source: Box<HostsError> },
    #[error("server {server}: {source}")]
    Server { server: String, source: Box<HostsError> },
    #[error("ca entries must be paths")]
    CaEntries,
    #[error("ca must be a path or a list of paths")]
    CaType,
    #[error("ca file {}: {source}", .path.display())]
    CaRead { path: PathBuf, source: std::io::Error },
    #[error("ca file {}: not PEM: {message}", .path.display())]
    CaNotPem { path: PathBuf, message: String },
    #[error("ca file {}: no certificate in it", .path.display())]
    CaEmpty { path: PathBuf },
    #[error("ca file {}: bad certificate: {message}", .path.display())]
    CaBad { path: PathBuf, message: String },
    #[error("a host with a path is not supported")]
    HostPath,
}

/// Every certificate in a PEM file, each checked to be X.509.
fn read_ca(path: &Path) -> Result<Vec<Vec<u8>>, HostsError> {
    use x509_cert::der::Decode;
    let path_buf = || path.to_path_buf();
    let text = std::fs::read_to_string(path).map_err(|source| HostsError::CaRead { path: path_buf(), source })?;
    let blocks =
        pem::parse_many(&text).map_err(|e| HostsError::CaNotPem { path: path_buf(), message: e.to_string() })?;
    let certs: Vec<Vec<u8>> =
        blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE").map(pem::Pem::into_contents).collect();
    if certs.is_empty() {
        return Err(HostsError::CaEmpty { path: path_buf() });
    }
    for der in &certs {
        x509_cert::Certificate::from_der(der)
            .map_err(|e| HostsError::CaBad { path: path_buf(), message: e.to_string() })?;
    }
    Ok(certs)
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
    pub fn load(dir: &Path) -> Result<Self, HostsError> {
        let mut out = Mirrors::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => return Err(HostsError::Dir { dir: dir.to_path_buf(), source }),
        };
        for entry in entries.flatten() {
            let base = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let file = base.join("hosts.toml");
            let endpoints = if file.is_file() {
                let text =
                    std::fs::read_to_string(&file).map_err(|source| HostsError::Read { path: file.clone(), source })?;
                parse(&name, &text, &base, &mut out.notes)
                    .map_err(|e| HostsError::InFile { path: file.clone(), source: Box::new(e) })?
            } else if let Some(e) = docker_certs_dir(&name, &base, &mut out.notes)? {
                vec![e]
            } else {
                continue;
            };
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
            .unwrap_or_else(|| vec![Endpoint::new(registry, false)])
    }

    /// Every distinct TLS setting other than the system roots alone, each once.
    pub fn tls_settings(&self) -> Vec<&Tls> {
        let mut out: Vec<&Tls> = Vec::new();
        for tls in self.by_registry.values().flatten().map(|e| &e.tls).filter(|t| !t.is_default()) {
            if !out.contains(&tls) {
                out.push(tls);
            }
        }
        out
    }

    /// Every plain-HTTP mirror host (the registry client is told about them up front).
    pub fn plain_http_hosts(&self) -> impl Iterator<Item = &str> {
        self.by_registry.values().flatten().filter(|e| e.plain_http).map(|e| e.host.as_str())
    }
}

fn parse(registry: &str, text: &str, base: &Path, notes: &mut Vec<String>) -> Result<Vec<Endpoint>, HostsError> {
    let file: HostsFile = toml::from_str(text).map_err(|e| HostsError::Toml(e.to_string()))?;
    let mut out = Vec::new();
    for (url, table) in &file.host {
        let caps = table
            .get("capabilities")
            .and_then(|c| c.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).any(|c| c == "pull"));
        if caps == Some(false) {
            continue;
        }
        for key in ["client", "override_path", "header"] {
            if table.get(key).is_some() {
                notes.push(format!("hosts.toml for {registry}: host {url}: {key} is not applied to signature fetches"));
            }
        }
        let skip_verify = table.get("skip_verify").and_then(toml::Value::as_bool);
        let tls = Tls::from_settings(table.get("ca"), skip_verify, base)
            .map_err(|e| HostsError::Host { url: url.clone(), source: Box::new(e) })?;
        match endpoint(url) {
            Ok(e) => out.push(Endpoint { tls, ..e }),
            Err(e) => notes.push(format!("hosts.toml for {registry}: host {url} skipped: {e}")),
        }
    }
    let server_pulls = file.capabilities.as_ref().is_none_or(|c| c.iter().any(|c| c == "pull"));
    if server_pulls {
        let server = match &file.server {
            Some(s) => endpoint(s).map_err(|e| HostsError::Server { server: s.clone(), source: Box::new(e) })?,
            None if registry == "_default" => return Ok(out),
            None => Endpoint::new(registry, false),
        };
        let tls = Tls::from_settings(file.ca.as_ref(), file.skip_verify, base)?;
        out.push(Endpoint { tls, ..server });
    }
    if file.client.is_some() || file.header.is_some() || file.override_path.is_some() {
        notes.push(format!(
            "hosts.toml for {registry}: server client certificate and header settings are not applied to signature fetches"
        ));
    }
    Ok(out)
}

/// A registry directory without hosts.toml, in Docker's layout: its `*.crt` files are CAs for
/// the registry itself. `None` when it has none.
fn docker_certs_dir(registry: &str, base: &Path, notes: &mut Vec<String>) -> Result<Option<Endpoint>, HostsError> {
    let Ok(entries) = std::fs::read_dir(base) else { return Ok(None) };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let mut tls = Tls::default();
    for f in &files {
        match f.extension().and_then(|x| x.to_str()) {
            Some("crt") => tls.extra_roots.extend(read_ca(f)?),
            Some("cert") => notes.push(format!("{}: client certificates are not presented", f.display())),
            _ => {}
        }
    }
    if tls.is_default() {
        return Ok(None);
    }
    // containerd names the directory `host_port` for `host:port`.
    let host = match registry.rsplit_once('_') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => format!("{h}:{port}"),
        _ => registry.to_string(),
    };
    Ok(Some(Endpoint { tls, ..Endpoint::new(&host, false) }))
}

/// `scheme://host[:port]` with no path (a path prefix cannot be expressed to the registry client).
fn endpoint(url: &str) -> Result<Endpoint, HostsError> {
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
        return Err(HostsError::HostPath);
    }
    // Docker Hub's documented server name; the client resolves docker.io to it itself.
    let host = if host == "registry-1.docker.io" { "docker.io" } else { host };
    Ok(Endpoint::new(host, plain_http))
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

    const ROOT_PEM: &str = include_str!("../../testdata/cosign/root.pem");

    #[test]
    fn host_port_directories_default_and_unsupported_parts() {
        let m = mirrors(&[
            ("reg.local_5000", "server = \"http://reg.local:5000\"\n"),
            ("_default", "[host.\"https://catch-all\"]\nclient = \"/etc/c.pem\"\n[host.\"https://m/prefix\"]\n"),
        ]);
        assert_eq!(hosts(&m, "reg.local:5000"), [("reg.local:5000".into(), true)]);
        assert_eq!(hosts(&m, "other.io"), [("catch-all".into(), false)]);
        assert!(m.notes.iter().any(|n| n.contains("client is not applied")), "{:?}", m.notes);
        assert!(m.notes.iter().any(|n| n.contains("with a path")), "{:?}", m.notes);
    }

    fn load(files: &[(&str, &str)]) -> Result<Mirrors, String> {
        load_typed(files).map_err(|e| e.to_string())
    }

    fn load_typed(files: &[(&str, &str)]) -> Result<Mirrors, HostsError> {
        let d = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = d.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Mirrors::load(d.path())
    }

    fn der_of(pem_text: &str) -> Vec<u8> {
        pem::parse(pem_text).unwrap().into_contents()
    }

    #[test]
    fn ca_files_are_read_like_containerd_reads_them() {
        // Relative to the registry's directory, a list or one path, per host and for the server.
        let m = load(&[
            (
                "r.io/hosts.toml",
                "server = \"https://r.io\"\nca = \"server-ca.pem\"\n\
                                 [host.\"https://m.local\"]\nca = [\"m-ca.pem\"]\n\
                                 [host.\"https://lax.local\"]\nskip_verify = true\n",
            ),
            ("r.io/server-ca.pem", ROOT_PEM),
            ("r.io/m-ca.pem", ROOT_PEM),
        ])
        .unwrap();
        let e = m.endpoints("r.io");
        assert_eq!(e.iter().map(|e| e.host.as_str()).collect::<Vec<_>>(), ["m.local", "lax.local", "r.io"]);
        assert_eq!(e[0].tls.extra_roots, [der_of(ROOT_PEM)]);
        assert!(!e[0].tls.skip_verify);
        assert!(e[1].tls.skip_verify && e[1].tls.extra_roots.is_empty());
        assert_eq!(e[2].tls.extra_roots, [der_of(ROOT_PEM)]);
        assert_eq!(m.tls_settings().len(), 2, "the CA (twice) and skip_verify");
    }

    #[test]
    fn docker_layout_crt_files_without_hosts_toml() {
        let m = load(&[("reg.local_5443/ca.crt", ROOT_PEM), ("reg.local_5443/client.cert", ROOT_PEM)]).unwrap();
        let e = m.endpoints("reg.local:5443");
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].host.as_str(), e[0].plain_http), ("reg.local:5443", false));
        assert_eq!(e[0].tls.extra_roots, [der_of(ROOT_PEM)]);
        assert!(m.notes.iter().any(|n| n.contains("client certificates are not presented")), "{:?}", m.notes);
        // A directory with neither hosts.toml nor CAs changes nothing.
        let m = load(&[("plain.io/README", "x")]).unwrap();
        assert!(m.tls_settings().is_empty());
        assert_eq!(hosts(&m, "plain.io"), [("plain.io".into(), false)]);
    }

    #[test]
    fn a_missing_or_broken_ca_is_an_error_naming_the_file() {
        let e = load(&[("r.io/hosts.toml", "[host.\"https://m\"]\nca = \"/nonexistent/ca.pem\"\n")]).unwrap_err();
        assert!(e.contains("r.io/hosts.toml") && e.contains("/nonexistent/ca.pem"), "{e}");
        let e = load(&[("r.io/hosts.toml", "ca = \"bad.pem\"\n"), ("r.io/bad.pem", "not a certificate")]).unwrap_err();
        assert!(e.contains("bad.pem") && e.contains("no certificate"), "{e}");
        let e = load(&[("r.io/hosts.toml", "ca = 7\n")]).unwrap_err();
        assert!(e.contains("ca must be a path"), "{e}");
        let garbled = ROOT_PEM.replace("MII", "MIX");
        let e = load(&[("r.io/ca.crt", garbled.as_str())]).unwrap_err();
        assert!(e.contains("r.io/ca.crt"), "{e}");
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
        let e = Mirrors::load(d.path()).unwrap_err().to_string();
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
