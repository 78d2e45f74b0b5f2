//! Trust material for keyless and transparency-log checks, read from local files only.
//!
//! A node may have no internet, so nothing here fetches: the Sigstore `trusted_root.json`
//! (the same file `cosign --trusted-root` takes, or a private instance's) is read from disk
//! and policies may add their own CA certificates and log keys. The content hash is the
//! trust root's version, which is part of every cache key.

use std::fmt;
use std::path::Path;

use prost_reflect::ReflectMessage;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use sigstore::crypto::CosignVerificationKey;
use sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TrustedRoot;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust root {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("trust root {path}: not a Sigstore trusted_root.json: {message}")]
    Parse { path: String, message: String },
    #[error("trust root {path}: {what}: {message}")]
    Entry { path: String, what: String, message: String },
}

/// CA certificates or a log key (a policy's, or the trust root's) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaterialError {
    #[error("not PEM: {0}")]
    NotPem(String),
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    #[error("no self-signed root certificate among the CA certificates")]
    NoRoot,
    #[error("not a PEM public key: {0}")]
    NotPemKey(String),
    #[error("PEM block is {0:?}, expected \"PUBLIC KEY\"")]
    NotPublicKey(String),
    #[error("unsupported log key: {0}")]
    UnsupportedLogKey(String),
}

/// Certificate authorities: self-signed roots are anchors, everything else an intermediate
/// that may be used to build a path but is never trusted on its own.
#[derive(Clone, Default)]
pub struct CaPool {
    pub roots: Vec<CertificateDer<'static>>,
    pub intermediates: Vec<CertificateDer<'static>>,
}

impl CaPool {
    /// Every certificate of a PEM bundle; self-signed ones become roots.
    pub fn from_pem(text: &str) -> Result<Self, MaterialError> {
        let blocks = pem::parse_many(text).map_err(|e| MaterialError::NotPem(e.to_string()))?;
        let mut pool = CaPool::default();
        for b in blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
            pool.add(b.into_contents())?;
        }
        if pool.roots.is_empty() {
            return Err(MaterialError::NoRoot);
        }
        Ok(pool)
    }

    fn add(&mut self, der: Vec<u8>) -> Result<(), MaterialError> {
        use x509_cert::der::Decode;
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| MaterialError::BadCertificate(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        if tbs.subject() == tbs.issuer() {
            self.roots.push(CertificateDer::from(der));
        } else {
            self.intermediates.push(CertificateDer::from(der));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Short identity for messages and the policy hash.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for c in self.roots.iter().chain(&self.intermediates) {
            h.update(c.as_ref());
        }
        hex::encode(&h.finalize()[..8])
    }
}

impl fmt::Debug for CaPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaPool({} roots, {})", self.roots.len(), self.fingerprint())
    }
}

/// When a trust-root entry may vouch for something, in seconds since the epoch, both ends
/// inclusive (the trusted_root.json `validFor`). Unbounded where the file says nothing, and
/// for material a policy brings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Validity {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Validity {
    pub fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }

    fn from_proto(range: Option<&sigstore_protobuf_specs::dev::sigstore::common::v1::TimeRange>) -> Self {
        range
            .map(|r| Self { start: r.start.as_ref().map(|t| t.seconds), end: r.end.as_ref().map(|t| t.seconds) })
            .unwrap_or_default()
    }
}

/// A log's public key, named the way log entries name it: hex SHA-256 of the key's DER.
#[derive(Clone)]
pub struct LogKey {
    pub id: String,
    pub key: CosignVerificationKey,
    /// A key retired from the trust root still verifies what it signed while it was valid,
    /// and nothing it signed after.
    pub valid: Validity,
}

impl LogKey {
    pub fn from_der(der: &[u8]) -> Result<Self, MaterialError> {
        let key =
            CosignVerificationKey::try_from_der(der).map_err(|e| MaterialError::UnsupportedLogKey(e.to_string()))?;
        Ok(Self { id: hex::encode(Sha256::digest(der)), key, valid: Validity::default() })
    }

    pub fn from_pem(text: &str) -> Result<Self, MaterialError> {
        let block = pem::parse(text).map_err(|e| MaterialError::NotPemKey(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(MaterialError::NotPublicKey(block.tag().to_string()));
        }
        Self::from_der(block.contents())
    }
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogKey({})", &self.id[..16])
    }
}

/// A trust root's timestamp authority: its chain's roots and intermediates, its own
/// certificate (the chain's first, when not self-signed), and when it was trusted.
#[derive(Clone, Default)]
pub struct TsaEntry {
    pub valid: Validity,
    pub pool: CaPool,
    pub leaf: Option<CertificateDer<'static>>,
}

/// The node's trust root. Empty unless configured: then keyless and transparency-log
/// checks have nothing to trust and fail closed, unless a policy brings its own material.
#[derive(Clone, Default)]
pub struct TrustRoot {
    /// Each certificate authority with the time it may have issued certificates in.
    pub fulcio: Vec<(Validity, CaPool)>,
    pub rekor: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
    /// Timestamp authorities (`timestampAuthorities`), each with the time it may have stamped in.
    pub tsas: Vec<TsaEntry>,
    /// Content hash of the file, or `none`.
    pub version: String,
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustRoot({})", self.version)
    }
}

impl TrustRoot {
    pub fn empty() -> Self {
        Self { version: "none".into(), ..Default::default() }
    }

    /// The certificate authorities that were valid at `t`: a certificate must chain to one of
    /// them for a signature made then.
    pub fn fulcio_at(&self, t: i64) -> CaPool {
        let mut pool = CaPool::default();
        for (_, ca) in self.fulcio.iter().filter(|(valid, _)| valid.contains(t)) {
            pool.roots.extend(ca.roots.iter().cloned());
            pool.intermediates.extend(ca.intermediates.iter().cloned());
        }
        pool
    }

    pub fn has_fulcio(&self) -> bool {
        self.fulcio.iter().any(|(_, ca)| !ca.is_empty())
    }

    /// Read a Sigstore `trusted_root.json`. Every entry must parse: a trust root that is
    /// half understood would silently trust less, or more, than its author meant.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let shown = path.display().to_string();
        let data = std::fs::read(path).map_err(|source| TrustError::Read { path: shown.clone(), source })?;
        Self::parse(&data, &shown)
    }

    pub fn parse(data: &[u8], path: &str) -> Result<Self, TrustError> {
        // Fields a newer Sigstore release adds are skipped, not fatal: the entries read here
        // are all checked below, and a node must keep starting after its trust root is
        // refreshed from a newer release.
        let parse = |message: String| TrustError::Parse { path: path.to_string(), message };
        let options = prost_reflect::DeserializeOptions::new().deny_unknown_fields(false);
        let mut de = serde_json::Deserializer::from_slice(data);
        let dynamic = prost_reflect::DynamicMessage::deserialize_with_options(
            TrustedRoot::default().descriptor(),
            &mut de,
            &options,
        )
        .map_err(|e| parse(e.to_string()))?;
        de.end().map_err(|e| parse(e.to_string()))?;
        let root: TrustedRoot = dynamic.transcode_to().map_err(|e| parse(e.to_string()))?;
        let entry = |what: String, message: String| TrustError::Entry { path: path.to_string(), what, message };
        let mut out = TrustRoot { version: hex::encode(&Sha256::digest(data)[..8]), ..Default::default() };
        for (i, ca) in root.certificate_authorities.iter().enumerate() {
            let chain = ca.cert_chain.as_ref().map(|c| c.certificates.as_slice()).unwrap_or_default();
            if chain.is_empty() {
                return Err(entry(format!("certificateAuthorities[{i}]"), "empty certChain".into()));
            }
            let mut pool = CaPool::default();
            for c in chain {
                pool.add(c.raw_bytes.clone())
                    .map_err(|m| entry(format!("certificateAuthorities[{i}]"), m.to_string()))?;
            }
            out.fulcio.push((Validity::from_proto(ca.valid_for.as_ref()), pool));
        }
        let logs = |list: &[sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TransparencyLogInstance],
                    field: &str|
         -> Result<Vec<LogKey>, TrustError> {
            let mut keys = Vec::new();
            for (i, log) in list.iter().enumerate() {
                let der = log
                    .public_key
                    .as_ref()
                    .and_then(|k| k.raw_bytes.as_ref())
                    .ok_or_else(|| entry(format!("{field}[{i}]"), "no publicKey.rawBytes".into()))?;
                let mut key = LogKey::from_der(der).map_err(|m| entry(format!("{field}[{i}]"), m.to_string()))?;
                key.valid = Validity::from_proto(log.public_key.as_ref().and_then(|k| k.valid_for.as_ref()));
                keys.push(key);
            }
            Ok(keys)
        };
        for (i, tsa) in root.timestamp_authorities.iter().enumerate() {
            let what = || format!("timestampAuthorities[{i}]");
            let chain = tsa.cert_chain.as_ref().map(|c| c.certificates.as_slice()).unwrap_or_default();
            let mut pool = CaPool::default();
            for c in chain {
                pool.add(c.raw_bytes.clone()).map_err(|m| entry(what(), m.to_string()))?;
            }
            if pool.roots.is_empty() {
                return Err(entry(what(), "no self-signed root in certChain".into()));
            }
            // sigstore orders a TSA's chain leaf first.
            let leaf = match chain.first() {
                Some(first) if chain.len() > 1 && pool.intermediates.iter().any(|c| c.as_ref() == first.raw_bytes) => {
                    pool.intermediates.retain(|c| c.as_ref() != first.raw_bytes);
                    Some(CertificateDer::from(first.raw_bytes.clone()))
                }
                _ => None,
            };
            out.tsas.push(TsaEntry { valid: Validity::from_proto(tsa.valid_for.as_ref()), pool, leaf });
        }
        out.rekor = logs(&root.tlogs, "tlogs")?;
        out.ctlogs = logs(&root.ctlogs, "ctlogs")?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::vector;

    #[test]
    fn reads_a_trusted_root_json() {
        let t = TrustRoot::parse(vector("trusted_root.json").as_bytes(), "t.json").unwrap();
        assert_eq!(t.fulcio.len(), 1);
        let now = 1_800_000_000;
        assert_eq!(t.fulcio_at(now).roots.len(), 1);
        assert_eq!(t.fulcio_at(now).intermediates.len(), 1);
        assert_eq!(t.rekor.len(), 1);
        assert_eq!(t.rekor[0].id, LogKey::from_pem(&vector("rekor.pub")).unwrap().id);
        assert_ne!(t.version, "none");
    }

    #[test]
    fn valid_for_windows_bound_what_each_entry_vouches_for() {
        let mut v: serde_json::Value = serde_json::from_str(&vector("trusted_root.json")).unwrap();
        v["certificateAuthorities"][0]["validFor"] =
            serde_json::json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
        v["tlogs"][0]["publicKey"]["validFor"] = serde_json::json!({"start": "2020-01-01T00:00:00Z"});
        let t = TrustRoot::parse(v.to_string().as_bytes(), "t.json").unwrap();
        let (in_2020, in_2022) = (1_590_000_000, 1_650_000_000);
        assert_eq!(t.fulcio_at(in_2020).roots.len(), 1);
        assert!(t.fulcio_at(in_2022).is_empty(), "a retired CA vouches for nothing issued after its end");
        assert!(t.rekor[0].valid.contains(in_2022) && !t.rekor[0].valid.contains(1_500_000_000));
        assert_eq!(t.rekor[0].valid, Validity { start: Some(1_577_836_800), end: None });
        assert!(t.has_fulcio());
    }

    #[test]
    fn a_broken_trust_root_names_the_entry() {
        let mut v: serde_json::Value = serde_json::from_str(&vector("trusted_root.json")).unwrap();
        v["tlogs"][0]["publicKey"]["rawBytes"] = "AAAA".into();
        let err = TrustRoot::parse(v.to_string().as_bytes(), "t.json").unwrap_err().to_string();
        assert!(err.contains("t.json") && err.contains("tlogs[0]"), "{err}");
        let err = TrustRoot::parse(b"{\"tlogs\": 3}", "t.json").unwrap_err().to_string();
        assert!(err.contains("not a Sigstore trusted_root.json"), "{err}");
    }

    #[test]
    fn fields_from_newer_trusted_roots_do_not_break_loading() {
        let mut v: serde_json::Value = serde_json::from_str(&vector("trusted_root.json")).unwrap();
        v["someFutureField"] = serde_json::json!({"x": 1});
        v["tlogs"][0]["operator"] = "example".into();
        let t = TrustRoot::parse(v.to_string().as_bytes(), "t.json").unwrap();
        assert_eq!(t.rekor.len(), 1);
    }

    #[test]
    fn ca_pool_needs_a_root() {
        assert!(CaPool::from_pem(&vector("chain.pem")).unwrap().roots.len() == 1);
        assert!(CaPool::from_pem(&vector("inter.pem")).unwrap_err().to_string().contains("no self-signed root"));
    }
}
