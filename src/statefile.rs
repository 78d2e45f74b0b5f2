//! Files under the state directory, written so that a crash, a power loss or a planted
//! symlink never leaves a torn or redirected file: the last-known-good snapshot, the KMS key
//! cache and the TUF trust-root cache all go through here.
//!
//! The temporary file is created fresh (`O_EXCL`, `O_NOFOLLOW`, mode 0600), fsynced, renamed
//! over the target, and the directory fsynced, so a reader sees the old content or the new.

use std::io::Write;
use std::path::Path;

/// Replace `path` with `bytes`, atomically; creates the directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    // A leftover from a crash (or anything planted there): unlink removes a symlink itself,
    // never its target; then the new file must be ours alone.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

/// The file's bytes, `Ok(None)` when it does not exist (a first boot).
pub fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A versioned JSON state file that is not used (what it held is fetched again).
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Parse(#[from] serde_json::Error),
    #[error("format {found} is not {expected}")]
    Format { found: u32, expected: u32 },
}

/// A JSON file whose `format` field must be `format`; `Ok(None)` when it does not exist.
pub fn read_versioned<T: serde::de::DeserializeOwned>(path: &Path, format: u32) -> Result<Option<T>, StateFileError> {
    #[derive(serde::Deserialize)]
    struct Version {
        format: u32,
    }
    let Some(bytes) = read_optional(path)? else { return Ok(None) };
    let found = serde_json::from_slice::<Version>(&bytes)?.format;
    if found != format {
        return Err(StateFileError::Format { found, expected: format });
    }
    Ok(Some(serde_json::from_slice(&bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_0600_replaces_and_never_follows_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/cache.json");
        assert_eq!(read_optional(&path).unwrap(), None);
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).unwrap();
        write_atomic(&path, b"three").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
    }
}
