//! The last-known-good snapshot of cluster policy.
//!
//! Written after each complete sync whose content changed, atomically (temporary file,
//! fsync, rename, fsync of the directory) so a crash or power loss leaves either the old or
//! the new file, never a torn one. Secret keys are stored inline, so the file alone is
//! enough to enforce at boot with the API server down; it therefore holds public keys
//! only and is written 0600 all the same.
//!
//! The temporary file is created fresh (`O_EXCL`, `O_NOFOLLOW`), so a symlink planted in
//! the state directory cannot redirect the write. The file carries the SHA-256 of its
//! policies; a file whose content does not match is refused, never half-trusted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::policy::normal::NormalPolicy;

/// 2: with `sha256`. Format 1 files (no integrity hash) are refused.
const FORMAT: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum LkgError {
    #[error("last-known-good file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("last-known-good file {path}: {message}")]
    Format { path: PathBuf, message: String },
}

#[derive(Serialize, Deserialize)]
struct File<'a> {
    format: u32,
    /// When the sync it records completed (RFC 3339), for operators.
    written_at: String,
    /// Hex SHA-256 of the `policies` JSON text exactly as stored in this file.
    sha256: String,
    #[serde(borrow)]
    policies: &'a serde_json::value::RawValue,
}

fn digest(json: &str) -> String {
    hex::encode(sha2::Sha256::digest(json.as_bytes()))
}

/// Read the file; `Ok(None)` when it does not exist (first boot).
pub fn load(path: &Path) -> Result<Option<Vec<NormalPolicy>>, LkgError> {
    let Some(bytes) =
        crate::statefile::read_optional(path).map_err(|source| LkgError::Io { path: path.into(), source })?
    else {
        return Ok(None);
    };
    let format = |message: String| LkgError::Format { path: path.into(), message };
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    if version.format != FORMAT {
        return Err(format(format!(
            "format {} is not {FORMAT} (an older signet wrote it without an integrity hash)",
            version.format
        )));
    }
    let file: File = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    let actual = digest(file.policies.get());
    if actual != file.sha256 {
        return Err(format(format!(
            "content hash {actual} does not match the recorded {}; the file was altered or damaged",
            file.sha256
        )));
    }
    let policies = serde_json::from_str(file.policies.get()).map_err(|e| format(e.to_string()))?;
    Ok(Some(policies))
}

/// Replace the file with these policies, atomically.
pub fn store(path: &Path, policies: &[NormalPolicy]) -> Result<(), LkgError> {
    let json = serde_json::to_string(policies).expect("policies always serialise");
    let raw = serde_json::value::RawValue::from_string(json).expect("serde_json writes valid JSON");
    let file = File { format: FORMAT, written_at: now_rfc3339(), sha256: digest(raw.get()), policies: &raw };
    let bytes = serde_json::to_vec(&file).expect("policies always serialise");
    crate::statefile::write_atomic(path, &bytes).map_err(|source| LkgError::Io { path: path.into(), source })
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::normal::{Check, NormalAuthority, StaticAction};
    use crate::testutil::normal_policy;

    fn policy() -> NormalPolicy {
        NormalPolicy {
            origin: "signet.dev/v1alpha1 ClusterImagePolicy p".into(),
            ..normal_policy("p", "reg.io/**", vec![NormalAuthority::new("a", Check::Static(StaticAction::Pass))])
        }
    }

    #[test]
    fn round_trip_and_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state/lkg.json");
        assert!(load(&path).unwrap().is_none());
        store(&path, &[policy()]).unwrap();
        assert_eq!(load(&path).unwrap().unwrap(), vec![policy()]);
        assert!(!path.with_extension("tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    /// Regression (#13.8): a symlink where the temporary file goes is not followed.
    #[test]
    fn a_planted_symlink_does_not_redirect_the_write() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lkg.json");
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).unwrap();
        store(&path, &[policy()]).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(load(&path).unwrap().unwrap(), vec![policy()]);
    }

    /// Regression (#13.8): altered content is refused, naming the file and the mismatch.
    #[test]
    fn altered_content_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lkg.json");
        store(&path, &[policy()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("reg.io/**", "nothing.invalid/**")).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("lkg.json") && err.contains("does not match"), "{err}");
        let old = serde_json::json!({"format": 1, "written_at": "x", "policies": []}).to_string();
        std::fs::write(&path, old).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("format 1"));
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lkg.json");
        std::fs::write(&path, "{\"format\": 1, \"writ").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("lkg.json"), "{err}");
    }
}
