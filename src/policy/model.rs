//! Compiled policy and its evaluation rules.
//!
//! A [`PolicySet`] is built once and never mutated: a reload builds a new one and swaps the
//! `Arc`, so a request always sees one complete snapshot. Rules follow sigstore
//! policy-controller: every policy whose globs match the image must pass (AND), and a policy
//! passes when any one of its authorities is satisfied (OR). A policy in `warn` mode that
//! fails is reported but does not deny.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sigstore::crypto::CosignVerificationKey;

use super::matching::ImageGlob;

/// What a failing policy does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Warn,
}

/// What happens to an image that no policy matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NoMatchAction {
    #[default]
    Deny,
    Allow,
    Warn,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
        })
    }
}

impl fmt::Display for NoMatchAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoMatchAction::Deny => "deny",
            NoMatchAction::Allow => "allow",
            NoMatchAction::Warn => "warn",
        })
    }
}

/// A public key an authority trusts, with a short fingerprint for messages.
#[derive(Clone)]
pub struct TrustedKey {
    pub key: CosignVerificationKey,
    /// First 16 hex chars of the SHA-256 of the key's DER: enough to tell keys apart in logs.
    pub fingerprint: String,
}

impl TrustedKey {
    /// Parse a PEM public key (ECDSA P-256/P-384, RSA, Ed25519 — whatever sigstore accepts).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let block = pem::parse(pem).map_err(|e| format!("not a PEM public key: {e}"))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(format!("PEM block is {:?}, expected \"PUBLIC KEY\"", block.tag()));
        }
        let key = CosignVerificationKey::try_from_der(block.contents())
            .map_err(|e| format!("unsupported public key: {e}"))?;
        let fingerprint = hex::encode(&Sha256::digest(block.contents())[..8]);
        Ok(Self { key, fingerprint })
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedKey({})", self.fingerprint)
    }
}

#[derive(Clone, Debug)]
pub enum AuthorityKind {
    /// A cosign signature made by this key must be found for the image's digest.
    Key(TrustedKey),
    /// `static: {action: pass}`: always satisfied.
    StaticPass,
    /// `static: {action: fail}`: never satisfied.
    StaticFail,
}

#[derive(Clone, Debug)]
pub struct Authority {
    pub name: String,
    pub kind: AuthorityKind,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    pub images: Vec<ImageGlob>,
    pub authorities: Vec<Authority>,
    pub mode: Mode,
}

impl Policy {
    pub fn matches(&self, full: &str, repository: &str) -> bool {
        self.images.iter().any(|g| g.matches(full, repository))
    }
}

/// One complete, immutable policy snapshot.
#[derive(Debug)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    pub no_match: NoMatchAction,
    /// Identifies this snapshot's content; part of every cache key, so a policy change
    /// never serves a decision made under the old policy.
    pub hash: String,
    /// Set when this snapshot stands in for a policy that failed to load at boot: every
    /// image is denied with this reason until a valid policy arrives.
    pub load_error: Option<String>,
}

impl PolicySet {
    /// Build a snapshot; `canonical` is the normalised source text the hash is taken over.
    pub fn new(policies: Vec<Policy>, no_match: NoMatchAction, canonical: &[u8]) -> Arc<Self> {
        let mut h = Sha256::new();
        h.update(canonical);
        h.update(no_match.to_string().as_bytes());
        Arc::new(Self { policies, no_match, hash: hex::encode(&h.finalize()[..16]), load_error: None })
    }

    /// The fail-closed snapshot used when no valid policy has ever been loaded.
    pub fn unavailable(reason: String) -> Arc<Self> {
        Arc::new(Self {
            policies: Vec::new(),
            no_match: NoMatchAction::Deny,
            hash: "unavailable".to_string(),
            load_error: Some(reason),
        })
    }

    /// The policies that cover an image, in load order.
    pub fn matching<'a>(&'a self, full: &str, repository: &str) -> Vec<&'a Policy> {
        self.policies.iter().filter(|p| p.matches(full, repository)).collect()
    }
}
