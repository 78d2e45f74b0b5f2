//! One verified fetch of a TUF repository's `trusted_root.json`.
//!
//! The TUF client is [`tough`]'s: it enters through the policy's root.json, follows root
//! rotations, and checks every role's signatures, threshold, version, expiry, length and
//! hashes before a target is handed out. The transport is ours and not tough's HTTP one:
//! every file is read whole into memory with a hard cap ([`MAX_FILE`]) before tough sees
//! it, so a hostile mirror (an endless body, a targets.json that claims a gigabyte-long
//! target) costs at most that much, and requests time out. `file://` mirrors are read the
//! same way (a repository copied onto an air-gapped node).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tough::{RepositoryLoader, TargetName, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use super::{Fetcher, HeldRoot, TufError, TufRepo, TufRoot, TRUSTED_ROOT_TARGET};
use crate::body::{self, Budget};

/// Largest file read from a mirror; Sigstore's root.json and trusted_root.json are tens of
/// kilobytes, and Kyverno caps an inline trusted root at 1 MiB.
pub const MAX_FILE: usize = 1 << 20;
/// Each request is bounded: a refresh runs off the request path, but a hung mirror must
/// not hold the refresh forever.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches with tough over [`CappedTransport`].
pub struct ToughFetcher {
    transport: CappedTransport,
    /// Where tough keeps each repository's last metadata (rollback protection across
    /// refreshes and restarts); a temporary directory per fetch when `None`.
    datastore: Option<PathBuf>,
}

impl ToughFetcher {
    pub fn new(datastore: Option<PathBuf>) -> Result<Self, TufError> {
        let client =
            reqwest::Client::builder().timeout(TIMEOUT).connect_timeout(TIMEOUT).build().map_err(|e| {
                TufError::Fetch { mirror: "(none: the TUF HTTP client)".into(), message: e.to_string() }
            })?;
        Ok(Self { transport: CappedTransport { client }, datastore })
    }

    async fn root_bytes(&self, repo: &TufRepo) -> Result<Vec<u8>, TufError> {
        if let Some(bytes) = repo.root_bytes_inline()? {
            return Ok(bytes);
        }
        let TufRoot::Path(path) = &repo.root else { unreachable!("inline roots returned above") };
        let fail = |message: String| TufError::RootPath { mirror: repo.mirror.clone(), path: path.clone(), message };
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path).map_err(|e| fail(e.to_string()))?
        } else {
            Url::from_file_path(path).map_err(|()| fail("not an absolute path or an http(s) URL".into()))?
        };
        let stream = self.transport.fetch(url).await.map_err(|e| fail(crate::causes::error_chain(&e)))?;
        use tough::IntoVec;
        stream.into_vec().await.map_err(|e| fail(crate::causes::error_chain(&e)))
    }
}

#[async_trait::async_trait]
impl Fetcher for ToughFetcher {
    async fn trusted_root(&self, repo: &TufRepo) -> Result<HeldRoot, TufError> {
        let fail = |message: String| TufError::Fetch { mirror: repo.mirror.clone(), message };
        let policy_root = self.root_bytes(repo).await?;
        let base = Url::parse(&format!("{}/", repo.mirror)).map_err(|e| fail(e.to_string()))?;
        let targets = base.join("targets/").map_err(|e| fail(e.to_string()))?;
        // Each (mirror, root bytes) has its own datastore, so a replaced root file starts
        // afresh. The walk starts from the newest root verified before (tough keeps it as
        // root.json there): starting again from the policy's root would forget a key
        // rotation, and a mirror holding the retired keys could answer 404 for the rotation
        // and serve metadata they sign.
        let own = match &self.datastore {
            Some(dir) => Some(own_datastore(dir, repo, &policy_root).map_err(|e| fail(format!("datastore: {e}")))?),
            None => None,
        };
        let held = match &own {
            Some(d) => newer_root(d, &policy_root).map_err(|e| fail(format!("datastore root.json: {e}")))?,
            None => None,
        };
        let root = held.unwrap_or(policy_root);
        let mut loader = RepositoryLoader::new(&root, base, targets).transport(self.transport.clone());
        if let Some(dir) = own {
            loader = loader.datastore(dir);
        }
        let tuf = loader.load().await.map_err(|e| fail(crate::causes::error_chain(&e)))?;
        let name = TargetName::new(TRUSTED_ROOT_TARGET).expect("a plain file name");
        let stream = tuf
            .read_target(&name)
            .await
            .map_err(|e| fail(crate::causes::error_chain(&e)))?
            .ok_or_else(|| TufError::NoTrustedRoot { mirror: repo.mirror.clone() })?;
        use tough::IntoVec;
        let bytes = stream.into_vec().await.map_err(|e| fail(crate::causes::error_chain(&e)))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| TufError::TrustedRoot { mirror: repo.mirror.clone(), message: e.to_string() })?;
        crate::verify::trust::TrustRoot::parse(text.as_bytes(), TRUSTED_ROOT_TARGET)
            .map_err(|e| TufError::TrustedRoot { mirror: repo.mirror.clone(), message: e.to_string() })?;
        let expires = [
            tuf.root().signed.expires,
            tuf.timestamp().signed.expires,
            tuf.snapshot().signed.expires,
            tuf.targets().signed.expires,
        ]
        .into_iter()
        .min()
        .expect("four roles")
        .as_second();
        Ok(HeldRoot {
            trusted_root: text,
            targets_version: tuf.targets().signed.version.get(),
            expires,
            source: repo.mirror.clone(),
        })
    }
}

/// `<dir>/<digest of mirror and root>`, made 0700 and refused when it is not a directory of
/// its own (a planted symlink would send tough's writes elsewhere).
fn own_datastore(dir: &std::path::Path, repo: &TufRepo, root: &[u8]) -> std::io::Result<PathBuf> {
    use sha2::Digest;
    use std::os::unix::fs::DirBuilderExt;
    let mut h = sha2::Sha256::new();
    h.update(repo.mirror.as_bytes());
    h.update([0]);
    h.update(root);
    let own = dir.join(hex::encode(&h.finalize()[..12]));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&own)?;
    for d in [dir, own.as_path()] {
        let meta = std::fs::symlink_metadata(d)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!("{} is not a directory", d.display())));
        }
    }
    Ok(own)
}

/// The root tough verified last in `dir`, when it is newer than the policy's own. One that is
/// there but unreadable (a crash between tough's remove and write) is an error, never a quiet
/// fall back to the policy's root, which would forget a rotation.
fn newer_root(dir: &std::path::Path, policy_root: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let version =
        |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok()?.pointer("/signed/version")?.as_u64();
    let Some(held) = crate::statefile::read_optional(&dir.join("root.json"))? else { return Ok(None) };
    let held_version = version(&held).ok_or_else(|| std::io::Error::other("not a signed root"))?;
    let policy_version =
        version(policy_root).ok_or_else(|| std::io::Error::other("the policy's root is not a signed root"))?;
    Ok((held_version > policy_version).then_some(held))
}

/// http(s) and file URLs, each file read whole and capped at [`MAX_FILE`].
#[derive(Clone, Debug)]
pub struct CappedTransport {
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl Transport for CappedTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let bytes = match url.scheme() {
            "file" => read_file(&url).await?,
            "http" | "https" => self.get(&url).await?,
            _ => return Err(TransportError::new(TransportErrorKind::UnsupportedUrlScheme, url)),
        };
        Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })))
    }
}

impl CappedTransport {
    async fn get(&self, url: &Url) -> Result<Bytes, TransportError> {
        let other = |message: String| TransportError::new_with_cause(TransportErrorKind::Other, url, message);
        let resp = self.client.get(url.clone()).send().await.map_err(|e| other(crate::causes::error_chain(&e)))?;
        let status = resp.status();
        // A missing N+1.root.json is how a client learns it holds the newest root; object
        // stores answer 403 for a missing key.
        if matches!(status.as_u16(), 403 | 404 | 410) {
            return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
        }
        if !status.is_success() {
            return Err(other(format!("HTTP {}", status.as_u16())));
        }
        let host = url.origin().ascii_serialization();
        body::read(resp, MAX_FILE, &Budget::new(MAX_FILE), &host, "TUF file").await.map_err(|e| other(e.to_string()))
    }
}

async fn read_file(url: &Url) -> Result<Bytes, TransportError> {
    let path = url
        .to_file_path()
        .map_err(|()| TransportError::new_with_cause(TransportErrorKind::Other, url, "not a local path"))?;
    let url = url.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking, and a regular file only: a FIFO or a device named as a root would
        // hold the refresh forever.
        let opened = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(&path);
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TransportError::new(TransportErrorKind::FileNotFound, &url))
            }
            Err(e) => return Err(TransportError::new_with_cause(TransportErrorKind::Other, &url, e)),
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            let message = format!("{} is not a regular file", path.display());
            return Err(TransportError::new_with_cause(TransportErrorKind::Other, &url, message));
        }
        let mut out = Vec::new();
        file.take(MAX_FILE as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| TransportError::new_with_cause(TransportErrorKind::Other, &url, e))?;
        if out.len() > MAX_FILE {
            let message = format!("{} is longer than {MAX_FILE} bytes", path.display());
            return Err(TransportError::new_with_cause(TransportErrorKind::Other, &url, message));
        }
        Ok(Bytes::from(out))
    })
    .await
    .map_err(|e| TransportError::new_with_cause(TransportErrorKind::Other, "file", e.to_string()))?
}
