//! Signature verification for one image digest: which fetched signatures count.
//!
//! Pure functions over data already fetched: the registry seam brings untrusted layers,
//! this module decides which of them count. A signature layer counts for an authority only
//! if (1) the authority's signer made it — its key, or a certificate from a trusted CA
//! naming a trusted identity — over the exact payload bytes, (2) the payload is a cosign
//! simple-signing document whose `docker-manifest-digest` equals the digest containerd
//! will run, and (3) when the policy requires it, a transparency-log entry for exactly this
//! signature verifies offline. Point 2 is what binds a signature to content: a valid
//! signature for some other digest (a re-pointed tag, a copied `.sig`) must never pass.
//!
//! - [`layers`]: which signature layers count for one signer (cosign, DSSE, GPG).
//! - [`signer`]: who must have signed — a key, a keyless identity, a named certificate,
//!   OpenPGP keys — and the
//!   log requirement.
//! - [`trust`]: the node's trust root (trusted_root.json) and policy CA/log material.
//! - [`keyless`]: certificate chains and signer identities.
//! - [`certificate`]: a certificate the policy names, with its chain (cosign `--certificate`).
//! - [`sct`]: certificate-transparency proofs embedded in keyless certificates.
//! - [`tlog`]: Rekor entries (SETs) checked offline.
//! - [`timestamp`]: RFC 3161 signed timestamps from a timestamp authority the policy trusts.
//! - [`dsse`]: attestations (DSSE envelopes, in-toto statements).
//! - [`gpg`]: Red Hat simple signing (OpenPGP) from lookaside stores.
//! - [`notary`]: Notary Project (notation) JWS signatures from OCI referrers.
//! - [`referred`]: artifacts attached to the image (SBOMs) under notation signatures.
//! - [`pubkey`]: public keys with the scheme they verify under (digest, RSA padding).

pub mod certificate;
pub mod dsse;
pub mod gpg;
pub mod keyless;
pub mod layers;
pub mod notary;
pub mod pubkey;
pub mod referred;
pub mod sct;
pub mod signer;
pub mod timestamp;
pub mod tlog;
pub mod trust;

pub use layers::{verify_attestations, verify_notary, verify_signatures, verify_simple_signing, LayerFailure};

use trust::TrustRoot;

/// What verification trusts besides the policies, and the clock.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub trust: &'a TrustRoot,
    /// Seconds since the epoch; certificates are checked at this time when no log entry
    /// gives the signing time.
    pub now: i64,
}

impl Context<'_> {
    pub fn now_secs() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    }
}
