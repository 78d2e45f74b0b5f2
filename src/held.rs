//! What policies reference that is fetched off the request path and held for them: KMS
//! public keys ([`crate::kms::Resolver`]) and TUF trust roots ([`crate::tuf::Store`]).
//!
//! Compilation only looks up (never I/O); the daemon's timer and each cluster sync refresh,
//! and a refresh that changes what is held recompiles policy.

use std::sync::Arc;

use crate::kms::Resolver;
use crate::tuf::Store;

#[derive(Clone, Debug)]
pub struct Held {
    pub kms: Arc<Resolver>,
    pub tuf: Arc<Store>,
}

impl Held {
    /// Nothing fetches: KMS and TUF authorities fail closed unless pinned or cached.
    pub fn offline() -> Self {
        Self { kms: Arc::new(Resolver::offline()), tuf: Arc::new(Store::offline()) }
    }

    pub fn new(kms: Resolver, tuf: Store) -> Self {
        Self { kms: Arc::new(kms), tuf: Arc::new(tuf) }
    }

    /// Refresh whatever was looked up and is due; whether anything held changed.
    pub async fn refresh_due(&self) -> bool {
        let kms = self.kms.refresh(std::iter::empty()).await;
        self.tuf.refresh(std::iter::empty()).await | kms
    }

    /// Resolves when a refresh changed something held (a key or a trust root).
    pub fn changes(&self) -> Changes {
        Changes { kms: self.kms.subscribe(), tuf: self.tuf.subscribe() }
    }
}

/// Both stores' change notices as one.
pub struct Changes {
    kms: tokio::sync::watch::Receiver<u64>,
    tuf: tokio::sync::watch::Receiver<u64>,
}

impl Changes {
    /// Waits for the next change; `Err` once both stores are gone.
    pub async fn changed(&mut self) -> Result<(), tokio::sync::watch::error::RecvError> {
        tokio::select! {
            r = self.kms.changed() => r,
            r = self.tuf.changed() => r,
        }
    }
}
