//! A certificate a policy names as its signer (Kyverno `certificates` attestors, cosign
//! `verify --certificate [--certificate-chain]`).
//!
//! Signatures count when they verify under the certificate's public key, over the payload
//! that binds the digest, as for a plain key. With a chain (intermediates, then the root
//! last, as cosign's `ValidateAndUnpackCertWithChain` reads it) the certificate must also
//! chain to that root for code signing; as in cosign, the chain is checked at the
//! certificate's own `notBefore`, so the certificate is trusted for as long as the policy
//! names it, and its expiry is not what decides. A certificate the signature layer itself
//! carries must be for the same key, and is checked for expiry at the time the log entry
//! proves, or now (cosign's check on `sig.Cert()`). With a chain, cosign also requires an
//! embedded SCT unless told to ignore it; [`super::layers`] checks it against the node's CT
//! logs, and, where Kyverno would have cosign check the certificate against its Sigstore
//! trusted root instead of the chain, against the node trust root's CAs too.

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, Encode};

use super::pubkey::{HashAlgorithm, KeyError, PublicKey, Signing};

/// id-kp-codeSigning, the value bytes webpki compares.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// Kyverno refuses longer chains (CVE-2026-32280: chain building is costly); so does the node.
pub const MAX_CHAIN_CERTS: usize = 11;

/// A policy's signing certificate or chain that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate: not PEM: {0}")]
    NotPem(String),
    #[error("certificate: no CERTIFICATE block")]
    None,
    #[error("certificate: unreadable: {0}")]
    Malformed(String),
    #[error("certificate: its public key: {0}")]
    Key(KeyError),
    #[error("certificate chain: not PEM: {0}")]
    ChainNotPem(String),
    #[error("certificate chain: holds no certificate")]
    EmptyChain,
    #[error("certificate chain: {0} certificates, more than the {MAX_CHAIN_CERTS} Kyverno accepts")]
    ChainTooLong(usize),
    #[error("certificate does not chain to the root of its certificate chain for code signing: {0}")]
    Untrusted(String),
}

/// Why a certificate carried by a signature layer does not go with the policy's certificate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum CarriedError {
    #[error("the signature's certificate is unreadable: {0}")]
    Malformed(String),
    #[error("the signature's certificate is for another key than the policy's certificate")]
    OtherKey,
    #[error("the signature's certificate was not valid at {at} (valid {not_before} to {not_after})")]
    Expired { at: i64, not_before: i64, not_after: i64 },
}

/// The policy's certificate, checked against its chain when it has one.
#[derive(Clone)]
pub struct CertificateSigner {
    /// The certificate's public key; signatures verify under it (SHA-256, as cosign).
    pub key: PublicKey,
    /// That key's SubjectPublicKeyInfo, DER: what a log entry or a carried certificate names.
    pub spki: Vec<u8>,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The chain it was verified against (root last); empty without one.
    pub chain: Vec<CertificateDer<'static>>,
    /// An embedded SCT from a trusted CT log is required (cosign, with a chain).
    pub sct: bool,
    /// The policy's own CT log keys for that SCT; empty means the node trust root's CT logs.
    pub sct_logs: Vec<super::trust::LogKey>,
    /// It must also chain to the node trust root's CAs at [`Self::not_before`] (Kyverno
    /// ImageValidatingPolicy with the log required: cosign checks it against the trusted
    /// root then).
    pub trust_root_cas: bool,
    /// The certificate's `notBefore`, seconds since the epoch: when its chains are checked.
    pub not_before: i64,
}

impl std::fmt::Debug for CertificateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What a verdict depends on: the certificate, its chain, whether an SCT is needed.
        let mut h = Sha256::new();
        self.chain.iter().for_each(|c| h.update(c.as_ref()));
        let chain = hex::encode(&h.finalize()[..8]);
        write!(
            f,
            "CertificateSigner({} chain {chain} sct {} {:?} trust root CAs {} {})",
            self.fingerprint(),
            self.sct,
            self.sct_logs,
            self.trust_root_cas,
            self.key.scheme()
        )
    }
}

impl CertificateSigner {
    /// From the first certificate of `cert_pem` (as Kyverno reads it) and an optional chain;
    /// `sct` is whether an SCT is required, which only applies with a chain (cosign checks
    /// none for a bare certificate).
    pub fn from_pem(cert_pem: &str, chain_pem: Option<&str>, sct: bool) -> Result<Self, CertificateError> {
        let blocks = pem::parse_many(cert_pem).map_err(|e| CertificateError::NotPem(e.to_string()))?;
        let der = blocks.into_iter().find(|b| b.tag() == "CERTIFICATE").ok_or(CertificateError::None)?.into_contents();
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        // cosign's ValidateAndUnpackCert and Kyverno's default signatureAlgorithm: SHA-256,
        // whatever the curve (a P-384 key's own default would be SHA-384).
        let signing = Signing { hash: Some(HashAlgorithm::Sha256), padding: None };
        let key = PublicKey::from_der(&spki, signing).map_err(CertificateError::Key)?;
        let not_before = cert.tbs_certificate().validity().not_before.to_unix_duration();
        let chain = match chain_pem {
            None => Vec::new(),
            Some(text) => {
                let chain = parse_chain(text)?;
                verify_chain(&der, &chain, not_before)?;
                chain
            }
        };
        let sct = sct && !chain.is_empty();
        let not_before = not_before.as_secs() as i64;
        Ok(Self { key, spki, der, chain, sct, sct_logs: Vec::new(), trust_root_cas: false, not_before })
    }

    /// Short identity for messages: the first 16 hex chars of the certificate's SHA-256.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(&self.der)[..8])
    }

    /// A certificate the signature layer carries (PEM), which must be for the same key.
    pub fn carried(&self, pem_text: &str) -> Result<Carried, CarriedError> {
        let malformed = |e: String| CarriedError::Malformed(e);
        let der = pem::parse(pem_text).map_err(|e| malformed(e.to_string()))?.into_contents();
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| malformed(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs.subject_public_key_info().to_der().map_err(|e| malformed(e.to_string()))?;
        if spki != self.spki {
            return Err(CarriedError::OtherKey);
        }
        let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        let (not_before, not_after) = (secs(tbs.validity().not_before), secs(tbs.validity().not_after));
        Ok(Carried { der, not_before, not_after })
    }
}

/// A signature layer's own certificate, for the policy certificate's key.
pub struct Carried {
    /// What a log entry for the layer names.
    pub der: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

impl Carried {
    /// Whether it was valid at `at` (the log entry's time, or now).
    pub fn valid_at(&self, at: i64) -> Result<(), CarriedError> {
        if at < self.not_before || at > self.not_after {
            return Err(CarriedError::Expired { at, not_before: self.not_before, not_after: self.not_after });
        }
        Ok(())
    }
}

fn parse_chain(text: &str) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    // Counted before anything is decoded, as Kyverno does.
    let count = text.matches("-----BEGIN CERTIFICATE-----").count();
    if count > MAX_CHAIN_CERTS {
        return Err(CertificateError::ChainTooLong(count));
    }
    let blocks = pem::parse_many(text).map_err(|e| CertificateError::ChainNotPem(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    if chain.is_empty() {
        return Err(CertificateError::EmptyChain);
    }
    Ok(chain)
}

/// cosign's `TrustedCert` over `ValidateAndUnpackCertWithChain`'s pools: the chain's last
/// certificate is the one anchor, the others intermediates, at the leaf's `notBefore`.
fn verify_chain(
    leaf: &[u8],
    chain: &[CertificateDer<'static>],
    at: std::time::Duration,
) -> Result<(), CertificateError> {
    let (root, intermediates) = chain.split_last().expect("a chain is never empty");
    let anchor = webpki::anchor_from_trusted_cert(root)
        .map_err(|e| CertificateError::Untrusted(format!("the chain's root is unusable: {e:?}")))?;
    let leaf = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| CertificateError::Malformed(format!("{e:?}")))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        intermediates,
        UnixTime::since_unix_epoch(at),
        // Go's x509 (and so cosign) accepts a leaf without extended key usages for any use.
        webpki::KeyUsage::required_if_present(CODE_SIGNING),
        None,
        None,
    )
    .map(drop)
    .map_err(|e| CertificateError::Untrusted(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::vector;

    #[test]
    fn a_certificate_alone_is_its_key() {
        let c = CertificateSigner::from_pem(&vector("leaf-email.pem"), None, true).unwrap();
        assert!(c.chain.is_empty() && !c.sct, "no chain: no SCT, as cosign");
        assert_eq!(c.key.scheme(), "ecdsa-p256-sha256", "SHA-256, as cosign verifies a certificate's key");
        // The same key as the other leaves of the vectors (they share one).
        let uri = CertificateSigner::from_pem(&vector("leaf-uri.pem"), None, true).unwrap();
        assert_eq!(c.spki, uri.spki);
        assert_ne!(c.fingerprint(), uri.fingerprint());
    }

    #[test]
    fn with_a_chain_the_certificate_must_chain_to_its_root() {
        let c = CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&vector("chain.pem")), true).unwrap();
        assert_eq!(c.chain.len(), 2);
        assert!(c.sct);
        let ignore = CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&vector("chain.pem")), false);
        assert!(!ignore.unwrap().sct);
        // Another root; the root without the intermediate; the intermediate as the root
        // (the last certificate is the anchor, whatever it is, as in cosign).
        let err = CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&vector("other-root.pem")), true);
        assert!(matches!(err, Err(CertificateError::Untrusted(_))), "{err:?}");
        let err = CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&vector("root.pem")), true);
        assert!(matches!(err, Err(CertificateError::Untrusted(_))), "{err:?}");
        CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&vector("inter.pem")), true).unwrap();
        // A chain is not a list of anything: no certificates, too many, not PEM.
        let err = CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&vector("cosign.pub")), true);
        assert!(matches!(err, Err(CertificateError::EmptyChain)), "{err:?}");
        let long = vector("inter.pem").repeat(MAX_CHAIN_CERTS) + &vector("root.pem");
        let err = CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&long), true);
        assert!(matches!(err, Err(CertificateError::ChainTooLong(12))), "{err:?}");
    }

    #[test]
    fn what_is_not_a_certificate_is_refused_naming_it() {
        let err = CertificateSigner::from_pem(&vector("cosign.pub"), None, false).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
        let err =
            CertificateSigner::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None, false)
                .unwrap_err();
        assert!(err.to_string().starts_with("certificate: unreadable"), "{err}");
    }

    #[test]
    fn a_carried_certificate_must_be_for_the_key_and_valid_then() {
        let c = CertificateSigner::from_pem(&vector("leaf-email.pem"), None, false).unwrap();
        let now = crate::verify::Context::now_secs();
        assert!(c.carried(&vector("leaf-uri.pem")).unwrap().valid_at(now).is_ok(), "same key, another certificate");
        let err = c.carried(&vector("root.pem")).err().unwrap();
        assert_eq!(err, CarriedError::OtherKey);
        let err = c.carried(&vector("leaf-email.pem")).unwrap().valid_at(1_000_000_000).unwrap_err();
        assert!(matches!(err, CarriedError::Expired { at: 1_000_000_000, .. }), "{err}");
    }
}
