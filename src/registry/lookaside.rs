//! Where simple-signing (GPG) signatures live: the lookaside stores configured in
//! `/etc/containers/registries.d/*.yaml`, the file podman, skopeo and CRI-O read.
//!
//! For an image `registry/path` the most specific `docker:` scope (registry, registry/ns,
//! ..., full repository) names a `lookaside` (or its older name `sigstore`) base URL; else
//! `default-docker`. Signatures are `<base>/<path>@sha256=<hex>/signature-1`, `-2`, ... up
//! to the first that does not exist. `file://` bases serve air-gapped nodes that sync
//! signatures to disk; `http(s)://` bases are fetched with the signature deadline.
//!
//! A file store is as untrusted as a registry (whoever syncs it decides what is in it), so a
//! signature file is read only if it is a regular file, not through a symbolic link, within
//! the size cap and the deadline: a link to `/dev/zero` or a FIFO must not become an endless
//! read or a thread blocked for good.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A registries.d directory or file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LookasideError {
    #[error("registries.d {}: {source}", .dir.display())]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", .path.display())]
    Parse { path: PathBuf, source: serde_yaml::Error },
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
    pub fn load(dir: &Path) -> Result<Self, LookasideError> {
        let mut out = Lookaside::default();
        let mut paths: Vec<_> = match std::fs::read_dir(dir) {
            Ok(e) => e.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => return Err(LookasideError::Dir { dir: dir.to_path_buf(), source }),
        };
        paths.sort();
        for p in paths {
            let text =
                std::fs::read_to_string(&p).map_err(|source| LookasideError::Read { path: p.clone(), source })?;
            let f: File =
                serde_yaml::from_str(&text).map_err(|source| LookasideError::Parse { path: p.clone(), source })?;
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

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    #[error("lookaside signature {path} is not a regular file ({kind})")]
    NotRegular { path: PathBuf, kind: String },
    #[error("lookaside signature {path} is over the {limit} byte limit")]
    TooLarge { path: PathBuf, limit: usize },
    #[error("lookaside signature {path} was not read within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("lookaside signature {path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// A signature file's bytes; `Ok(None)` when it does not exist.
pub async fn read_file(path: &Path, limit: usize, deadline: Duration) -> Result<Option<Vec<u8>>, ReadError> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || read_regular(&owned, limit));
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ReadError::Io { path: path.to_path_buf(), message: e.to_string() }),
        Err(_) => Err(ReadError::Timeout { path: path.to_path_buf(), timeout: deadline }),
    }
}

fn read_regular(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, ReadError> {
    use nix::fcntl::OFlag;
    let io = |e: std::io::Error| ReadError::Io { path: path.to_path_buf(), message: e.to_string() };
    let not_regular = |kind: &str| ReadError::NotRegular { path: path.to_path_buf(), kind: kind.to_string() };
    // O_NOFOLLOW: a link (the last component) fails with ELOOP instead of being followed.
    // O_NONBLOCK: opening a FIFO without a writer returns at once, to be refused below.
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(flags.bits()).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Err(not_regular("a symbolic link")),
        Err(e) => return Err(io(e)),
    };
    // fstat of what was opened, not a stat of the path, which could change in between.
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(not_regular(&format!("{:?}", meta.file_type()).to_lowercase()));
    }
    if meta.len() > limit as u64 {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), limit });
    }
    // The file may grow after the fstat: read one byte past the limit to notice.
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit as u64 + 1).read_to_end(&mut out).map_err(io)?;
    if out.len() > limit {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), limit });
    }
    Ok(Some(out))
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
        assert!(Lookaside::load(d.path()).unwrap_err().to_string().contains("b.yaml"));
        assert!(Lookaside::load(&d.path().join("none")).unwrap().is_empty());
    }

    const LIMIT: usize = 64 << 10;
    const DEADLINE: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn a_link_to_dev_zero_is_refused_not_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("signature-1");
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let e = read_file(&p, LIMIT, DEADLINE).await.unwrap_err();
        assert!(matches!(e, ReadError::NotRegular { .. }), "{e}");
        assert!(e.to_string().contains("signature-1") && e.to_string().contains("symbolic link"), "{e}");
        // A link to a regular file is refused too: the store must hold the file itself.
        std::fs::write(d.path().join("real"), b"sig").unwrap();
        let p2 = d.path().join("signature-2");
        std::os::unix::fs::symlink(d.path().join("real"), &p2).unwrap();
        assert!(matches!(read_file(&p2, LIMIT, DEADLINE).await, Err(ReadError::NotRegular { .. })));
    }

    #[tokio::test]
    async fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("signature-1");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        let e = read_file(&p, LIMIT, DEADLINE).await.unwrap_err();
        assert!(matches!(e, ReadError::NotRegular { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1), "refused, not timed out");
    }

    #[tokio::test]
    async fn oversize_missing_and_regular_files() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("signature-1");
        std::fs::write(&big, vec![b'x'; LIMIT + 1]).unwrap();
        let e = read_file(&big, LIMIT, DEADLINE).await.unwrap_err();
        assert_eq!(e, ReadError::TooLarge { path: big, limit: LIMIT });
        assert_eq!(read_file(&d.path().join("signature-9"), LIMIT, DEADLINE).await, Ok(None));
        let ok = d.path().join("signature-2");
        std::fs::write(&ok, b"payload").unwrap();
        assert_eq!(read_file(&ok, LIMIT, DEADLINE).await, Ok(Some(b"payload".to_vec())));
        assert!(matches!(read_file(d.path(), LIMIT, DEADLINE).await, Err(ReadError::NotRegular { .. })), "a directory");
    }
}
