//! Reading an HTTP answer without letting the other side choose how much memory that takes:
//! the registry client's manifests, blobs and tokens, and the KMS providers' key documents.
//!
//! A body is refused when its `Content-Length` is over its cap and cut off as soon as the
//! bytes read pass it, chunk by chunk, so an endless or lying body costs at most the cap plus
//! one chunk. Every body of one verification also draws on a shared [`Budget`], which bounds
//! the sum however the registry splits it across manifests, referrers and blobs; and every
//! budget draws on one process-wide [`Pool`], so that many verifications at once (a burst of
//! new images, some from a hostile registry) stay inside the daemon's memory limit: a read
//! that would pass it waits for bytes to be given back, within the verification's deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes all verifications in flight may hold together.
#[derive(Clone, Debug)]
pub struct Pool(Arc<Semaphore>);

impl Pool {
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }
}

/// Bytes one verification may still read, shared by its concurrent fetches; what it took
/// from the pool goes back when it is dropped.
#[derive(Debug)]
pub struct Budget {
    left: AtomicUsize,
    total: usize,
    pool: Option<Pool>,
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Budget {
    /// A budget of its own, outside any pool (a token reply).
    pub fn new(total: usize) -> Self {
        Self { left: AtomicUsize::new(total), total, pool: None, held: Mutex::default() }
    }

    pub fn in_pool(total: usize, pool: &Pool) -> Self {
        Self { pool: Some(pool.clone()), ..Self::new(total) }
    }

    /// Take `n` bytes; `false` (and nothing taken) when fewer are left in this budget.
    async fn take(&self, n: usize) -> bool {
        // The pool first: a read cancelled while waiting for it (the deadline) has taken nothing.
        let permit = match &self.pool {
            // n is at most one chunk, far below u32::MAX; the semaphore is never closed.
            Some(pool) => match Arc::clone(&pool.0).acquire_many_owned(n as u32).await {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
            None => None,
        };
        if self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(n)).is_err() {
            return false;
        }
        if let Some(permit) = permit {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            match held.as_mut() {
                Some(h) => h.merge(permit),
                None => *held = Some(permit),
            }
        }
        true
    }

    /// Charge `n` bytes held in memory that were not read through this budget (a copy of
    /// an answer another verification fetched); `false` when they do not fit.
    pub async fn charge(&self, n: usize) -> bool {
        let chunk = 1 << 20;
        let mut left = n;
        while left > 0 {
            let part = left.min(chunk);
            if !self.take(part).await {
                return false;
            }
            left -= part;
        }
        true
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
            message: crate::causes::error_chain(&e),
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        if !budget.take(chunk.len()).await {
            return Err(BodyError::OverBudget { host: host.to_string(), what: what.to_string(), limit: budget.total });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_is_shared_and_never_overdrawn() {
        let b = Budget::new(10);
        assert!(b.take(6).await);
        assert!(!b.take(5).await, "only 4 left");
        assert!(b.take(4).await);
        assert!(!b.take(1).await);
    }

    #[tokio::test]
    async fn budgets_wait_for_the_pool_and_give_back_when_done() {
        let pool = Pool::new(10);
        let first = Budget::in_pool(8, &pool);
        assert!(first.take(8).await);
        let second = Budget::in_pool(8, &pool);
        assert!(second.take(2).await);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), second.take(1)).await;
        assert!(waiting.is_err(), "the pool is empty: the read waits");
        drop(first);
        assert!(second.take(6).await, "the first verification's bytes came back");
    }
}
