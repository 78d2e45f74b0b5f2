//! Reading a registry's answer without letting it choose how much memory that takes.
//!
//! A body is refused when its `Content-Length` is over its cap and cut off as soon as the
//! bytes read pass it, chunk by chunk, so an endless or lying body costs at most the cap plus
//! one chunk. Every body of one verification also draws on a shared [`Budget`], which bounds
//! the sum however the registry splits it across manifests, referrers and blobs.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};

/// Bytes one verification may still read, shared by its concurrent fetches.
#[derive(Debug)]
pub struct Budget {
    left: AtomicUsize,
    total: usize,
}

impl Budget {
    pub fn new(total: usize) -> Self {
        Self { left: AtomicUsize::new(total), total }
    }

    /// Take `n` bytes; `false` (and nothing taken) when fewer are left.
    fn take(&self, n: usize) -> bool {
        self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(n)).is_ok()
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BodyError {
    #[error("{what} from {host} is over the {limit} byte limit")]
    TooLarge { host: String, what: String, limit: usize },
    #[error("{what} from {host} would take the verification past its {limit} byte budget")]
    OverBudget { host: String, what: String, limit: usize },
    #[error("{what} from {host} broke off: {message}")]
    Read { host: String, what: String, message: String },
}

/// The whole body of `resp`, at most `limit` bytes.
pub async fn read(
    mut resp: reqwest::Response,
    limit: usize,
    budget: &Budget,
    host: &str,
    what: &str,
) -> Result<Bytes, BodyError> {
    let too_large = || BodyError::TooLarge { host: host.to_string(), what: what.to_string(), limit };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    loop {
        let chunk = resp.chunk().await.map_err(|e| BodyError::Read {
            host: host.to_string(),
            what: what.to_string(),
            message: crate::registry::client::error_chain(&e),
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        if !budget.take(chunk.len()) {
            return Err(BodyError::OverBudget { host: host.to_string(), what: what.to_string(), limit: budget.total });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_never_overdrawn() {
        let b = Budget::new(10);
        assert!(b.take(6));
        assert!(!b.take(5), "only 4 left");
        assert!(b.take(4));
        assert!(!b.take(1));
    }
}
