//! RFC 3161 signed timestamps: proof from a timestamp authority (TSA) a policy trusts that a
//! signature existed at a time, so a short-lived certificate can be checked at that time.
//!
//! Pure over untrusted bytes (fuzzed). cosign keeps the TSA's `TimeStampResp` in the
//! `dev.sigstore.cosign/rfc3161timestamp` annotation and sigstore bundles keep it in
//! `timestampVerificationData`; both cover the raw signature bytes (for cosign's legacy
//! attestations, the payload). A timestamp counts only if all of this holds, as sigstore's
//! timestamp-authority verifier and RFC 3161 §2.4.2 require:
//! - the response was granted and holds a CMS SignedData whose content is a TSTInfo;
//! - the one signer's certificate (from the token or the policy's chain) chains to a root of
//!   the policy's TSA chain at the time it states, and is for time stamping (a critical
//!   extended key usage `timeStamping`);
//! - its signature over the signed attributes verifies, and those attributes name the TSTInfo
//!   content type and its digest;
//! - the TSTInfo's message imprint is the hash of exactly the bytes the caller timestamped.
//!
//! The RustCrypto `x509-tsp` and `cms` crates parse; `rustls-webpki` builds the path and checks
//! the signature, as for keyless certificates. Revocation (CRL, OCSP) is not checked, as
//! cosign does not.

use cms::cert::x509::der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString};
use cms::cert::x509::der::{Decode, Encode};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::Digest;
use webpki::aws_lc_rs as alg;
use x509_tsp::{TimeStampResp, TstInfo};

use super::trust::CaPool;

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// ESS signing-certificate attributes (RFC 2634 §5.4, RFC 5035 §3): the signed hash of the
/// certificate the TSA signed with.
const SIGNING_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
const SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-kp-timeStamping (1.3.6.1.5.5.7.3.8), as webpki takes it: the OID's value bytes.
const TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// Why a timestamp does not count; each names the part that failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum TimestampError {
    #[error("no RFC 3161 timestamp: a sigstore bundle verified against a timestamp authority must carry one")]
    Missing,
    #[error("timestamp is not base64: {0}")]
    NotBase64(String),
    #[error("timestamp is not an RFC 3161 response or token: {0}")]
    Malformed(String),
    #[error("timestamp response was not granted (PKIStatus {0})")]
    NotGranted(String),
    #[error("timestamp token is not CMS signed data over a TSTInfo")]
    NotTstInfo,
    #[error("timestamp token has {0} signers, not one")]
    Signers(usize),
    #[error("timestamp uses digest algorithm {0}, not SHA-256, SHA-384 or SHA-512")]
    Digest(String),
    #[error("timestamp covers other bytes than this signature")]
    OtherMessage,
    #[error("timestamp's signed attributes: {0}")]
    SignedAttributes(String),
    #[error("timestamp's signer certificate is neither in the token nor in the policy's TSA chain")]
    NoSignerCertificate,
    #[error("timestamp is signed by another certificate than the TSA certificate of the policy's chain")]
    OtherSigner,
    #[error("timestamp's signer certificate is not for time stamping (RFC 3161 requires a critical extended key usage timeStamping)")]
    NotTimeStamping,
    #[error("timestamp's signer certificate does not chain to the TSA roots at {at}: {message}")]
    Untrusted { at: i64, message: String },
    #[error("timestamp's signature does not verify under its signer certificate ({0})")]
    BadSignature(String),
    /// RFC 3161 §2.4.1 (RFC 5816): the signed ESS signing-certificate attribute names the
    /// certificate the TSA signed with, so a certificate substituted for it is refused.
    #[error("timestamp's signing-certificate attribute: {0}")]
    SigningCertificate(String),
}

/// Most certificates a TSA chain may hold (Kyverno's cap: one leaf, ten intermediates, a root).
pub const MAX_TSA_CHAIN: usize = 12;

/// A policy's TSA chain (`tsaCertChain`) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsaChainError {
    #[error("{0} certificates, more than {MAX_TSA_CHAIN}")]
    TooMany(usize),
    #[error("more than one TSA (non-CA) certificate")]
    TwoLeaves,
    #[error(transparent)]
    Material(#[from] super::trust::MaterialError),
}

/// The timestamp authorities a policy trusts, split as cosign splits a TSA chain: roots
/// (self-signed), intermediates, and the TSA's own certificate when the chain holds one —
/// then it alone may sign timestamps.
#[derive(Clone)]
pub struct Authorities {
    pub pool: CaPool,
    pub leaf: Option<CertificateDer<'static>>,
}

impl std::fmt::Debug for Authorities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authorities({}{})", self.pool.fingerprint(), if self.leaf.is_some() { " +leaf" } else { "" })
    }
}

impl Authorities {
    pub fn from_pem(text: &str) -> Result<Self, TsaChainError> {
        // Counted before anything is decoded, as Kyverno does.
        let count = text.matches("-----BEGIN CERTIFICATE-----").count();
        if count > MAX_TSA_CHAIN {
            return Err(TsaChainError::TooMany(count));
        }
        let mut pool = CaPool::from_pem(text)?;
        // As cosign splits it: a certificate that is not a CA is the TSA's, self-signed or
        // not; only self-signed CAs are roots.
        let mut leaves =
            pool.intermediates.iter().chain(&pool.roots).filter(|c| !is_ca(c.as_ref())).cloned().collect::<Vec<_>>();
        if leaves.len() > 1 {
            return Err(TsaChainError::TwoLeaves);
        }
        pool.intermediates.retain(|c| is_ca(c.as_ref()));
        pool.roots.retain(|c| is_ca(c.as_ref()));
        if pool.roots.is_empty() {
            return Err(TsaChainError::Material(super::trust::MaterialError::NoRoot));
        }
        Ok(Self { pool, leaf: leaves.pop() })
    }

    /// A Notary Project `tsa` trust store: every certificate is an anchor (notation-go puts
    /// them all in the root pool), and none is singled out as the TSA's own.
    pub fn anchors_from_pem(text: &str) -> Result<Self, TsaChainError> {
        let count = text.matches("-----BEGIN CERTIFICATE-----").count();
        if count > MAX_TSA_CHAIN {
            return Err(TsaChainError::TooMany(count));
        }
        let blocks = pem::parse_many(text).map_err(|e| super::trust::MaterialError::NotPem(e.to_string()))?;
        let mut pool = CaPool::default();
        for b in blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
            let der = CertificateDer::from(b.into_contents());
            webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| super::trust::MaterialError::BadCertificate(format!("{e:?}")))?;
            pool.roots.push(der);
        }
        if pool.roots.is_empty() {
            return Err(TsaChainError::Material(super::trust::MaterialError::NoRoot));
        }
        Ok(Self { pool, leaf: None })
    }
}

fn is_ca(der: &[u8]) -> bool {
    use cms::cert::x509::ext::pkix::BasicConstraints;
    let Ok(cert) = cms::cert::x509::Certificate::from_der(der) else { return false };
    cert.tbs_certificate.extensions.iter().flatten().any(|e| {
        e.extn_id == BASIC_CONSTRAINTS && BasicConstraints::from_der(e.extn_value.as_bytes()).is_ok_and(|b| b.ca)
    })
}

/// The time a timestamp proves, with the TSA's stated accuracy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// `genTime`, seconds since the epoch.
    pub at: i64,
    /// Whole seconds, rounded up: the time was within `at ± accuracy`.
    pub accuracy: i64,
}

/// The ETSI baseline time-stamp policy (0.4.0.2023.1.1): its TSAs are accurate to a second
/// when they state nothing (the Notary Project's rule, tspclient-go).
const BASELINE_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

/// The time `token` (a DER `TimeStampResp`, or a bare `TimeStampToken`) proves `message`
/// existed at, in seconds since the epoch, if the token is one `tsa`'s authorities made.
pub fn verify(token: &[u8], message: &[u8], tsa: &Authorities) -> Result<i64, TimestampError> {
    verify_stamp(token, message, tsa).map(|s| s.at)
}

/// [`verify`], with the accuracy the token states.
pub fn verify_stamp(token: &[u8], message: &[u8], tsa: &Authorities) -> Result<Stamp, TimestampError> {
    let malformed = |e: cms::cert::x509::der::Error| TimestampError::Malformed(e.to_string());
    let content = match TimeStampResp::from_der(token) {
        Ok(resp) => {
            use cmpv2::status::PkiStatus;
            if !matches!(resp.status.status, PkiStatus::Accepted | PkiStatus::GrantedWithMods) {
                return Err(TimestampError::NotGranted(format!("{:?}", resp.status.status)));
            }
            resp.time_stamp_token.ok_or(TimestampError::NotTstInfo)?
        }
        Err(_) => ContentInfo::from_der(token).map_err(malformed)?,
    };
    if content.content_type != SIGNED_DATA {
        return Err(TimestampError::NotTstInfo);
    }
    let signed: SignedData = content.content.decode_as().map_err(malformed)?;
    if signed.encap_content_info.econtent_type != TST_INFO {
        return Err(TimestampError::NotTstInfo);
    }
    let econtent = signed.encap_content_info.econtent.as_ref().ok_or(TimestampError::NotTstInfo)?;
    let tst_der = econtent.decode_as::<OctetString>().map_err(malformed)?.into_bytes();
    let tst = TstInfo::from_der(&tst_der).map_err(malformed)?;

    // The imprint first: a valid timestamp of other bytes proves nothing about these.
    let imprint = Hash::of_oid(&tst.message_imprint.hash_algorithm.oid)?;
    if imprint.digest(message) != tst.message_imprint.hashed_message.as_bytes() {
        return Err(TimestampError::OtherMessage);
    }

    let signers = signed.signer_infos.0.as_slice();
    let [signer] = signers else { return Err(TimestampError::Signers(signers.len())) };
    let hash = Hash::of_oid(&signer.digest_alg.oid)?;
    let signed_attrs = check_signed_attributes(signer, hash, &tst_der)?;

    let token_certs: Vec<Vec<u8>> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => c.to_der().ok(),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let at = time_of(&tst.gen_time);
    let pool = &tsa.pool;
    let leaf = token_certs
        .iter()
        .map(Vec::as_slice)
        .chain(tsa.leaf.iter().map(|c| c.as_ref()))
        .find(|der| identifies(&signer.sid, der))
        .ok_or(TimestampError::NoSignerCertificate)?
        .to_vec();
    // The chain names the TSA: a certificate in the token must be that one (as sigstore's
    // verifier compares the embedded certificate with the given one).
    if tsa.leaf.as_ref().is_some_and(|l| l.as_ref() != leaf.as_slice()) {
        return Err(TimestampError::OtherSigner);
    }
    if !critical_time_stamping(&leaf) {
        return Err(TimestampError::NotTimeStamping);
    }
    names_its_certificate(signer, &leaf)?;

    let anchor_itself = pool.roots.iter().any(|r| r.as_ref() == leaf.as_slice());
    let leaf = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| TimestampError::Untrusted { at, message: format!("{e:?}") })?;
    if anchor_itself {
        // A trust store may hold the TSA's own certificate (notation's `tsa` stores are all
        // anchors): then there is no path to build, only its validity then.
        valid_at(leaf.as_ref(), at)?;
    } else {
        path(&ee, &token_certs, pool, at)?;
    }

    let algorithms = signature_algorithms(&signer.signature_algorithm.oid, hash)?;
    let signature = signer.signature.as_bytes();
    let verified = algorithms.iter().any(|a| ee.verify_signature(*a, &signed_attrs, signature).is_ok());
    if !verified {
        return Err(TimestampError::BadSignature(signer.signature_algorithm.oid.to_string()));
    }
    Ok(Stamp { at, accuracy: accuracy(&tst)? })
}

/// The TSTInfo's accuracy in whole seconds, rounded up; none stated is none, but a second
/// under the baseline policy.
fn accuracy(tst: &TstInfo) -> Result<i64, TimestampError> {
    let Some(a) = &tst.accuracy else {
        return Ok(i64::from(tst.policy == BASELINE_POLICY));
    };
    // RFC 3161: millis and micros are 1..=999 when present.
    if [a.millis, a.micros].iter().flatten().any(|v| !(1..=999).contains(v)) {
        return Err(TimestampError::Malformed("accuracy millis or micros outside 1..999".into()));
    }
    let micros = a.seconds.unwrap_or(0) as i128 * 1_000_000
        + i128::from(a.millis.unwrap_or(0)) * 1_000
        + i128::from(a.micros.unwrap_or(0));
    if micros == 0 && tst.policy == BASELINE_POLICY {
        return Ok(1);
    }
    Ok(((micros.max(0) + 999_999) / 1_000_000).min(i64::MAX as i128) as i64)
}

fn valid_at(der: &[u8], at: i64) -> Result<(), TimestampError> {
    let cert = cms::cert::x509::Certificate::from_der(der)
        .map_err(|e| TimestampError::Untrusted { at, message: e.to_string() })?;
    let v = &cert.tbs_certificate.validity;
    let secs = |t: cms::cert::x509::time::Time| t.to_unix_duration().as_secs() as i64;
    if at < secs(v.not_before) || at > secs(v.not_after) {
        return Err(TimestampError::Untrusted { at, message: "the TSA certificate was not valid then".into() });
    }
    Ok(())
}

/// The signer's path to one of the roots, valid at the time the token states.
fn path(ee: &webpki::EndEntityCert<'_>, token_certs: &[Vec<u8>], pool: &CaPool, at: i64) -> Result<(), TimestampError> {
    let mut intermediates: Vec<CertificateDer<'_>> =
        token_certs.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    intermediates.extend(pool.intermediates.iter().cloned());
    let anchors = pool
        .roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TimestampError::Untrusted { at, message: format!("bad TSA root: {e:?}") })?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        time,
        // Intermediates without the extension are not limited (as Go's verifier, and Kyverno
        // relaxes cosign for); the leaf's own purpose is checked above.
        webpki::KeyUsage::required_if_present(TIME_STAMPING),
        None,
        None,
    )
    .map_err(|e| TimestampError::Untrusted { at, message: format!("{e:?}") })?;
    Ok(())
}

/// The DER of the signed attributes (what the signature covers, tagged as a SET) once they
/// name the TSTInfo content type and its digest.
fn check_signed_attributes(signer: &SignerInfo, hash: Hash, tst_der: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let bad = |m: &str| TimestampError::SignedAttributes(m.to_string());
    let attrs = signer.signed_attrs.as_ref().ok_or_else(|| bad("absent"))?;
    let single = |oid: ObjectIdentifier, name: &str| {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (Some(a), None) if a.values.len() == 1 => Ok(a.values.get(0).expect("one value").clone()),
            _ => Err(bad(&format!("no single {name} attribute"))),
        }
    };
    let content_type: ObjectIdentifier =
        single(CONTENT_TYPE, "content-type")?.decode_as().map_err(|e| bad(&e.to_string()))?;
    if content_type != TST_INFO {
        return Err(bad("content-type is not TSTInfo"));
    }
    let digest: OctetString = single(MESSAGE_DIGEST, "message-digest")?.decode_as().map_err(|e| bad(&e.to_string()))?;
    if digest.as_bytes() != hash.digest(tst_der).as_slice() {
        return Err(bad("message-digest is not the TSTInfo's digest"));
    }
    attrs.to_der().map_err(|e| bad(&e.to_string()))
}

/// The signed ESS signing-certificate attribute (V2, else v1) must hold the hash of `leaf`,
/// the certificate the signer identifier names (tspclient-go compares it the same way; the
/// identifier itself is not signed).
fn names_its_certificate(signer: &SignerInfo, leaf: &[u8]) -> Result<(), TimestampError> {
    use cms::cert::x509::der::{Any, Tag, Tagged};
    let bad = |m: &str| TimestampError::SigningCertificate(m.to_string());
    let malformed = |e: cms::cert::x509::der::Error| bad(&e.to_string());
    let attrs = signer.signed_attrs.as_ref().ok_or_else(|| bad("absent"))?;
    let find = |oid| attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.get(0));
    let (value, v2) = match (find(SIGNING_CERTIFICATE_V2), find(SIGNING_CERTIFICATE)) {
        (Some(v), _) => (v, true),
        (None, Some(v)) => (v, false),
        (None, None) => return Err(bad("absent")),
    };
    // SigningCertificate(V2) ::= SEQUENCE { certs SEQUENCE OF ESSCertID(v2), policies OPTIONAL }
    let outer: Vec<Any> = value.decode_as().map_err(malformed)?;
    let certs: Vec<Any> = outer.first().ok_or_else(|| bad("no certs"))?.decode_as().map_err(malformed)?;
    let first: Vec<Any> = certs.first().ok_or_else(|| bad("no certificate named"))?.decode_as().map_err(malformed)?;
    // ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash, issuerSerial OPTIONAL };
    // ESSCertID ::= SEQUENCE { certHash (SHA-1), issuerSerial OPTIONAL }.
    let mut fields = first.iter().peekable();
    let algorithm = match fields.peek() {
        Some(a) if v2 && a.tag() == Tag::Sequence => {
            let alg: Vec<Any> = fields.next().expect("peeked").decode_as().map_err(malformed)?;
            let oid: ObjectIdentifier =
                alg.first().ok_or_else(|| bad("empty hash algorithm"))?.decode_as().map_err(malformed)?;
            Some(
                Hash::of_oid(&oid)
                    .map_err(|_| bad(&format!("hash algorithm {oid} is not SHA-256, SHA-384 or SHA-512")))?,
            )
        }
        _ if v2 => Some(Hash::Sha256),
        _ => None,
    };
    let hash: OctetString = fields.next().ok_or_else(|| bad("no certificate hash"))?.decode_as().map_err(malformed)?;
    let expected = match algorithm {
        Some(h) => h.digest(leaf),
        None => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf).as_ref().to_vec(),
    };
    if hash.as_bytes() != expected.as_slice() {
        return Err(bad("the certificate hash is not that of the signer certificate"));
    }
    Ok(())
}

/// Does `sid` name the certificate `der`?
fn identifies(sid: &SignerIdentifier, der: &[u8]) -> bool {
    let Ok(cert) = cms::cert::x509::Certificate::from_der(der) else { return false };
    let tbs = &cert.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => tbs.issuer == id.issuer && tbs.serial_number == id.serial_number,
        SignerIdentifier::SubjectKeyIdentifier(ski) => tbs.extensions.iter().flatten().any(|e| {
            e.extn_id == SUBJECT_KEY_ID
                && OctetString::from_der(e.extn_value.as_bytes()).is_ok_and(|v| v.as_bytes() == ski.0.as_bytes())
        }),
    }
}

/// RFC 3161 §2.3: the TSA's certificate has one extended key usage extension, critical,
/// holding timeStamping alone.
fn critical_time_stamping(der: &[u8]) -> bool {
    use cms::cert::x509::ext::pkix::ExtendedKeyUsage;
    let Ok(cert) = cms::cert::x509::Certificate::from_der(der) else { return false };
    let mut eku = cert.tbs_certificate.extensions.iter().flatten().filter(|e| e.extn_id == EXTENDED_KEY_USAGE);
    let (Some(e), None) = (eku.next(), eku.next()) else { return false };
    let only_time_stamping = ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
        .is_ok_and(|u| u.0.len() == 1 && u.0[0].as_bytes() == TIME_STAMPING);
    e.critical && only_time_stamping
}

fn time_of(t: &GeneralizedTime) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn of_oid(oid: &ObjectIdentifier) -> Result<Self, TimestampError> {
        match oid.to_string().as_str() {
            "2.16.840.1.101.3.4.2.1" => Ok(Hash::Sha256),
            "2.16.840.1.101.3.4.2.2" => Ok(Hash::Sha384),
            "2.16.840.1.101.3.4.2.3" => Ok(Hash::Sha512),
            other => Err(TimestampError::Digest(other.to_string())),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// The webpki algorithms a SignerInfo's signature algorithm may stand for with `hash`
/// (webpki refuses those whose key type is not the certificate's).
fn signature_algorithms(
    oid: &ObjectIdentifier,
    hash: Hash,
) -> Result<Vec<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm>, TimestampError> {
    let by_hash = |h: Hash| match h {
        Hash::Sha256 => {
            vec![
                alg::ECDSA_P256_SHA256,
                alg::ECDSA_P384_SHA256,
                alg::ECDSA_P521_SHA256,
                alg::RSA_PKCS1_2048_8192_SHA256,
            ]
        }
        Hash::Sha384 => {
            vec![
                alg::ECDSA_P256_SHA384,
                alg::ECDSA_P384_SHA384,
                alg::ECDSA_P521_SHA384,
                alg::RSA_PKCS1_2048_8192_SHA384,
            ]
        }
        Hash::Sha512 => {
            vec![
                alg::ECDSA_P256_SHA512,
                alg::ECDSA_P384_SHA512,
                alg::ECDSA_P521_SHA512,
                alg::RSA_PKCS1_2048_8192_SHA512,
            ]
        }
    };
    let ecdsa = |v: Vec<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm>| v.into_iter().take(3).collect();
    let rsa = |v: Vec<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm>| v.into_iter().skip(3).collect();
    Ok(match oid.to_string().as_str() {
        // ecdsa-with-SHA256/384/512: the hash is the algorithm's own.
        "1.2.840.10045.4.3.2" => ecdsa(by_hash(Hash::Sha256)),
        "1.2.840.10045.4.3.3" => ecdsa(by_hash(Hash::Sha384)),
        "1.2.840.10045.4.3.4" => ecdsa(by_hash(Hash::Sha512)),
        // id-ecPublicKey and rsaEncryption leave the hash to the digest algorithm.
        "1.2.840.10045.2.1" => ecdsa(by_hash(hash)),
        "1.2.840.113549.1.1.1" => rsa(by_hash(hash)),
        "1.2.840.113549.1.1.11" => rsa(by_hash(Hash::Sha256)),
        "1.2.840.113549.1.1.12" => rsa(by_hash(Hash::Sha384)),
        "1.2.840.113549.1.1.13" => rsa(by_hash(Hash::Sha512)),
        "1.3.101.112" => vec![alg::ED25519],
        other => return Err(TimestampError::BadSignature(format!("unsupported signature algorithm {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tsa").join(name)).unwrap()
    }

    fn pool(name: &str) -> Authorities {
        Authorities::from_pem(&String::from_utf8(read(name)).unwrap()).unwrap()
    }

    fn message() -> Vec<u8> {
        read("message")
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn openssl_timestamps_verify_under_their_chain_and_give_their_time() {
        let chain = pool("tsa-chain.pem");
        for f in ["good.tsr", "good.token", "sha512.tsr", "no-cert.tsr"] {
            let at = verify(&read(f), &message(), &chain).unwrap_or_else(|e| panic!("{f}: {e}"));
            // Made when the vectors were, which is before now and after 2026-01-01.
            assert!(at > 1_767_225_600 && at <= now(), "{f}: {at}");
        }
        // The root alone is enough when the token carries its signer and intermediate
        // (openssl puts the `certs` of its config in the token too).
        verify(&read("good.tsr"), &message(), &pool("tsa-root.pem")).unwrap();
    }

    #[test]
    fn a_chain_naming_the_tsa_certificate_admits_only_it() {
        let chain = pool("tsa-chain.pem");
        assert!(chain.leaf.is_some() && chain.pool.intermediates.len() == 1 && chain.pool.roots.len() == 1);
        // rsa.tsr is signed by another TSA certificate under the same intermediate.
        assert_eq!(verify(&read("rsa.tsr"), &message(), &chain), Err(TimestampError::OtherSigner));
        let no_leaf = format!(
            "{}{}",
            String::from_utf8(read("tsa-inter.pem")).unwrap(),
            String::from_utf8(read("tsa-root.pem")).unwrap()
        );
        verify(&read("rsa.tsr"), &message(), &Authorities::from_pem(&no_leaf).unwrap()).unwrap();
    }

    #[test]
    fn chains_are_refused_as_kyverno_refuses_them() {
        let text = |n: &str| String::from_utf8(read(n)).unwrap();
        let two_leaves = format!("{}{}", text("tsa-chain.pem"), text("tsa-noncritical.pem"));
        assert_eq!(Authorities::from_pem(&two_leaves).unwrap_err(), TsaChainError::TwoLeaves);
        let many = text("tsa-inter.pem").repeat(MAX_TSA_CHAIN) + &text("tsa-root.pem");
        assert_eq!(Authorities::from_pem(&many).unwrap_err(), TsaChainError::TooMany(MAX_TSA_CHAIN + 1));
        assert!(matches!(Authorities::from_pem(&text("tsa-inter.pem")), Err(TsaChainError::Material(_))));
        // A self-signed certificate that is not a CA is a TSA's own, never a root (as cosign
        // splits a chain; review finding): alone it leaves no root.
        let self_signed = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign/sha512-signer.pem"),
        )
        .unwrap();
        assert!(matches!(Authorities::from_pem(&self_signed), Err(TsaChainError::Material(_))));
        let with_root = Authorities::from_pem(&format!("{self_signed}{}", text("tsa-root.pem"))).unwrap();
        assert!(with_root.leaf.is_some() && with_root.pool.roots.len() == 1);
    }

    #[test]
    fn a_timestamp_of_other_bytes_does_not_count() {
        let mut other = message();
        other.push(b'!');
        for f in ["good.tsr", "sha512.tsr", "rsa.tsr"] {
            assert_eq!(verify(&read(f), &other, &pool("tsa-root.pem")), Err(TimestampError::OtherMessage), "{f}");
        }
    }

    #[test]
    fn another_authoritys_roots_do_not_trust_it() {
        // Its chain names its own TSA certificate.
        let e = verify(&read("good.tsr"), &message(), &pool("other-chain.pem")).unwrap_err();
        assert_eq!(e, TimestampError::OtherSigner);
        let other_root = pem::encode(pem::parse_many(read("other-chain.pem")).unwrap().last().unwrap());
        let e = verify(&read("good.tsr"), &message(), &Authorities::from_pem(&other_root).unwrap()).unwrap_err();
        assert!(matches!(e, TimestampError::Untrusted { .. }), "{e}");
        // Without the certificate in the token, only the chain's own leaf can have signed; the
        // other authority's leaf has the same issuer name and serial (both made by testpki.sh),
        // and it is not the certificate the signed ESS attribute names (nor did its key sign).
        let e = verify(&read("no-cert.tsr"), &message(), &pool("other-chain.pem")).unwrap_err();
        assert!(matches!(e, TimestampError::SigningCertificate(_)), "{e}");
        // Without the TSA certificate in the token or the chain, nothing names the signer.
        let e = verify(&read("no-cert.tsr"), &message(), &pool("tsa-root.pem")).unwrap_err();
        assert_eq!(e, TimestampError::NoSignerCertificate);
    }

    /// `bytes` with the first occurrence of `part` changed in its last byte.
    fn flip(bytes: &[u8], part: &[u8]) -> Vec<u8> {
        let at = bytes.windows(part.len()).position(|w| w == part).expect("part present") + part.len() - 1;
        let mut out = bytes.to_vec();
        out[at] ^= 1;
        out
    }

    fn parts(token: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let resp = TimeStampResp::from_der(token).unwrap();
        let signed: SignedData = resp.time_stamp_token.unwrap().content.decode_as().unwrap();
        let tst = signed.encap_content_info.econtent.unwrap().decode_as::<OctetString>().unwrap().into_bytes();
        let signer = &signed.signer_infos.0.as_slice()[0];
        let attrs = signer.signed_attrs.as_ref().unwrap().to_der().unwrap();
        (tst, attrs[attrs.len() - 8..].to_vec(), signer.signature.as_bytes().to_vec())
    }

    #[test]
    fn tampered_tokens_fail_naming_what_broke() {
        let chain = pool("tsa-chain.pem");
        for (f, chain) in [("good.tsr", &chain), ("rsa.tsr", &pool("tsa-root.pem"))] {
            let token = read(f);
            let (tst, attrs_tail, signature) = parts(&token);
            // The TSTInfo's time changed: its digest no longer matches the signed attribute.
            let gen_time = &tst[tst.len() / 2..tst.len() / 2 + 6];
            verify(&token, &message(), chain).unwrap();
            let e = verify(&flip(&token, gen_time), &message(), chain).unwrap_err();
            assert!(matches!(e, TimestampError::SignedAttributes(_) | TimestampError::OtherMessage), "{f}: {e}");
            // The signed attributes changed: the signature no longer covers them.
            let e = verify(&flip(&token, &attrs_tail), &message(), chain).unwrap_err();
            assert!(
                matches!(
                    e,
                    TimestampError::SignedAttributes(_)
                        | TimestampError::SigningCertificate(_)
                        | TimestampError::BadSignature(_)
                ),
                "{f}: {e}"
            );
            let e = verify(&flip(&token, &signature[signature.len() - 8..]), &message(), chain).unwrap_err();
            assert!(matches!(e, TimestampError::BadSignature(_)), "{f}: {e}");
        }
    }

    fn ess(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tsa-ess").join(name)).unwrap()
    }

    /// `token` with its embedded certificates replaced by `pem`'s.
    fn with_certificate(token: &[u8], pem: &[u8]) -> Vec<u8> {
        use cms::cert::x509::der::Any;
        use cms::cert::CertificateChoices;
        let mut resp = TimeStampResp::from_der(token).unwrap();
        let mut content = resp.time_stamp_token.take().unwrap();
        let mut signed: SignedData = content.content.decode_as().unwrap();
        let der = pem::parse(pem).unwrap().contents().to_vec();
        let cert = cms::cert::x509::Certificate::from_der(&der).unwrap();
        signed.certificates = Some(vec![CertificateChoices::Certificate(cert)].try_into().unwrap());
        content.content = Any::encode_from(&signed).unwrap();
        resp.time_stamp_token = Some(content);
        resp.to_der().unwrap()
    }

    /// The roots and intermediates of the ESS vectors' chain, without its leaf.
    fn ess_roots() -> Authorities {
        let chain = String::from_utf8(ess("tsa-chain.pem")).unwrap();
        let certs = pem::parse_many(&chain).unwrap();
        Authorities::from_pem(&pem::encode_many(&certs[1..])).unwrap()
    }

    /// The ESS signing-certificate attribute (V2 and v1) names the certificate the TSA signed
    /// with; another certificate for the same key, issuer and serial swapped into the token
    /// keeps the signature valid and is refused only by it. Before, the swap verified.
    #[test]
    fn the_signed_signing_certificate_attribute_must_name_the_signer_certificate() {
        let message = ess("message");
        for token in ["good.tsr", "v1.tsr"] {
            verify(&ess(token), &message, &ess_roots()).unwrap_or_else(|e| panic!("{token}: {e}"));
            let swapped = with_certificate(&ess(token), &ess("reissued.pem"));
            let e = verify(&swapped, &message, &ess_roots()).unwrap_err();
            assert!(
                matches!(&e, TimestampError::SigningCertificate(m) if m.contains("not that of the signer")),
                "{token}: {e}"
            );
        }
    }

    #[test]
    fn the_time_stamping_purpose_must_be_critical() {
        let der = |name: &str| pem::parse(read(name)).unwrap().into_contents();
        assert!(critical_time_stamping(&der("tsa.pem")));
        assert!(!critical_time_stamping(&der("tsa-noncritical.pem")));
        assert!(!critical_time_stamping(&der("tsa-inter.pem")));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let chain = pool("tsa-chain.pem");
        for bytes in [&b""[..], b"\x30\x03\x02\x01\x00", b"not der at all", &read("message")] {
            assert!(matches!(verify(bytes, &message(), &chain), Err(TimestampError::Malformed(_))), "{bytes:?}");
        }
        // Cut anywhere, a response is refused.
        let token = read("good.tsr");
        for n in (0..token.len()).step_by(37) {
            assert!(verify(&token[..n], &message(), &chain).is_err());
        }
    }
}
