//! Who must have made a signature: a trusted key, a keyless identity under a CA, a named
//! certificate, OpenPGP keys or notation certificates, and whether a transparency-log entry is required. Policies name signers in these
//! terms; [`super::layers`] checks layers against them.

use std::fmt;

use sha2::{Digest, Sha256};

use super::keyless::Identity;
use super::pubkey::{KeyError, PublicKey, Signing};
use super::trust::{CaPool, LogKey};

/// A public key an authority trusts, with a short fingerprint for messages.
#[derive(Clone)]
pub struct TrustedKey {
    /// With the scheme signatures are checked under (digest, RSA padding).
    pub key: PublicKey,
    /// First 16 hex chars of the SHA-256 of the key's DER: enough to tell keys apart in logs.
    pub fingerprint: String,
    /// SubjectPublicKeyInfo DER, to recognise the key in transparency-log entries.
    pub der: Vec<u8>,
}

impl TrustedKey {
    /// Parse a PEM public key (ECDSA P-256/P-384, RSA, Ed25519 — whatever sigstore accepts).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem_with(pem, Signing::default())
    }

    /// Parse a PEM public key whose signatures are made under `signing` (a policy's
    /// `hashAlgorithm`, a KMS key's algorithm).
    pub fn from_pem_with(pem: &[u8], signing: Signing) -> Result<Self, KeyError> {
        let block = pem::parse(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError::NotPublicKey(block.tag().to_string()));
        }
        let key = PublicKey::from_der(block.contents(), signing)?;
        let fingerprint = hex::encode(&Sha256::digest(block.contents())[..8]);
        Ok(Self { key, fingerprint, der: block.into_contents() })
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The scheme is part of what a verdict depends on, so of the policy identity too.
        write!(f, "TrustedKey({} {})", self.fingerprint, self.key.scheme())
    }
}

/// What an authority accepts as evidence.
#[derive(Clone, Debug)]
pub struct SignedBy {
    pub signer: Signer,
    pub tlog: Tlog,
    /// Predicate types that must each be attested by the signer. When set, attestations
    /// are checked instead of image signatures (as in policy-controller).
    pub attestations: Vec<String>,
    /// Kyverno ClusterPolicy attestation conditions: with them, every statement of the
    /// (one) attested type the signer made must satisfy them, not only one.
    pub conditions: Option<std::sync::Arc<crate::conditions::Conditions>>,
    /// Timestamp authorities whose RFC 3161 timestamps count (cosign's `UseSignedTimestamps`
    /// with a TSA chain): a layer's timestamp must then verify under them, a sigstore bundle
    /// must carry one, and certificates are also checked at the time it proves. `None`:
    /// timestamps are not read.
    pub tsa: Option<super::timestamp::Authorities>,
    /// Without `tsa`: a sigstore bundle must carry a timestamp from one of the node trust
    /// root's timestamp authorities, as for `tsa` (Kyverno ImageValidatingPolicy's keyless
    /// attestors with the log ignored); other layers' timestamps are not read.
    pub trust_root_timestamps: bool,
    /// The policy's own trust root, replacing the node's for this signer (CAs, logs, TSAs).
    pub trust: Option<std::sync::Arc<super::trust::TrustRoot>>,
    /// When `trust` stops counting (seconds since the epoch): the expiry of the TUF metadata
    /// it was verified under.
    pub trust_until: Option<i64>,
    /// Where the signatures are kept when not under cosign's own tags in the image's own
    /// repository: what the evaluator fetches for this signer; verification is the same.
    pub source: Option<Attached>,
}

/// Where a cosign signer's signatures and attestations are attached when not in cosign's
/// default place: another repository (cosign's `COSIGN_REPOSITORY`, a normalised
/// `registry/path`; `None`, the image's own) and tags under a prefix (cosign's
/// `--attachment-tag-prefix`; referrers have no tag and are unaffected).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attached {
    pub repository: Option<String>,
    pub tag_prefix: String,
}

impl fmt::Display for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repository, self.tag_prefix.as_str()) {
            (Some(r), "") => write!(f, "{r}"),
            (Some(r), p) => write!(f, "{r} under tag prefix {p:?}"),
            (None, p) => write!(f, "the image's repository under tag prefix {p:?}"),
        }
    }
}

impl SignedBy {
    /// `signer` under `tlog`, for image signatures, with nothing else asked: no attestations,
    /// no timestamps, the image's own repository and the node's trust root.
    pub fn new(signer: Signer, tlog: Tlog) -> Self {
        Self {
            signer,
            tlog,
            attestations: Vec::new(),
            conditions: None,
            tsa: None,
            trust_root_timestamps: false,
            trust: None,
            trust_until: None,
            source: None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Signer {
    Key(TrustedKey),
    Keyless(Keyless),
    /// A certificate the policy names: its key, and its chain when given.
    Certificate(super::certificate::CertificateSigner),
    /// OpenPGP keys of simple-signing signatures in the lookaside store.
    Gpg(super::gpg::GpgSigner),
    /// Certificates anchoring Notary Project (notation) signatures, found as OCI referrers.
    Notary(super::notary::NotaryTrust),
}

#[derive(Clone, Debug)]
pub struct Keyless {
    /// Any one must match; empty means any holder of a certificate from the CA.
    pub identities: Vec<Identity>,
    /// The policy's own CA; `None` means the node trust root's certificate authorities.
    pub ca: Option<CaPool>,
    /// Require an embedded SCT from a trusted CT log.
    pub sct: bool,
    /// The policy's own CT log keys; empty means the node trust root's CT logs.
    pub sct_logs: Vec<LogKey>,
}

/// Whether the signature must be in a transparency log (verified offline from its SET).
#[derive(Clone, Debug)]
pub enum Tlog {
    Ignore,
    Require {
        /// For messages only: the node never contacts the log.
        url: Option<String>,
        /// The policy's own log keys; empty means the node trust root's logs.
        keys: Vec<LogKey>,
    },
}
