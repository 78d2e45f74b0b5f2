//! Notary Project signatures as notation 1.x writes them: a JWS envelope (JSON
//! serialisation, `application/jose+json`) or a COSE_Sign1 envelope (`application/cose`,
//! `--signature-format cose`) in a signature manifest whose config media type is
//! `application/vnd.cncf.notary.signature` and whose subject is the image.
//!
//! [`verify`] accepts an envelope only when: its protected header is the `notary.x509`
//! scheme with the notary payload type, an algorithm notation signs with and no critical
//! header it does not understand; the `x5c` chain leads from a code-signing leaf to one of
//! the policy's certificates, valid now; the signature over the protected header and
//! payload verifies with the leaf's key; an `io.cncf.notary.expiry`, if set, has not passed;
//! and the payload's target descriptor names the image's digest. Timestamp countersignatures
//! (`tsaCerts`) are not read: the certificate must be valid at verification time, which can
//! only refuse more than a timestamp would.
//!
//! [`NotaryTrust`] is a policy's trusted certificates (Kyverno ImageValidatingPolicy
//! `attestors[].notary.certs`); the registry brings the envelopes from the image's OCI
//! referrers, and [`super::layers::verify_notary`] runs this verifier over each.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;

use super::timestamp::{self, Authorities, TimestampError};

/// The artifact type of notation's signature manifests (referrers API and fallback tag).
pub const SIGNATURE_ARTIFACT_TYPE: &str = crate::registry::NOTARY_SIGNATURE_ARTIFACT_TYPE;
/// The media type of the signature manifest's JWS layer.
pub const JWS_MEDIA_TYPE: &str = crate::registry::NOTARY_JWS_MEDIA_TYPE;
const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const TIMESTAMP: &str = "io.cncf.notary.timestampSignature";
/// notation's envelopes are a few KiB; a certificate chain does not make one larger than this.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum NotaryError {
    #[error("notary envelope is larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    #[error("notary envelope is not a notation JWS: {0}")]
    Malformed(String),
    #[error("notary envelope: algorithm {0:?} is not one notation signs with")]
    Algorithm(String),
    #[error("notary envelope: content type {0:?} is not the notary payload type")]
    ContentType(String),
    #[error("notary envelope: signing scheme {0:?} is not notary.x509")]
    Scheme(String),
    #[error("notary envelope: critical header {0:?} is not understood")]
    Critical(String),
    #[error("notary envelope: {0} is missing")]
    Missing(&'static str),
    #[error("notary signature expired at {0}")]
    Expired(String),
    #[error("notary signing certificate is not trusted: {0}")]
    Untrusted(String),
    #[error("notary signature does not verify with its signing certificate")]
    BadSignature,
    #[error("notary signature is for {signed}, not for the image {image}")]
    WrongDigest { signed: String, image: String },
    #[error("notary timestamp countersignature: {0}")]
    Timestamp(TimestampError),
}

/// A policy's notary certificates that are not usable as trust anchors.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("notary certificates are not PEM: {0}")]
    NotPem(String),
    #[error("notary certificates: a PEM block is {0:?}, not CERTIFICATE")]
    NotCertificate(String),
    #[error("notary certificates: none given")]
    None,
    #[error("notary certificate {index} is not usable as a trust anchor: {message}")]
    Unusable { index: usize, message: String },
}

/// The certificates a policy trusts for notation signatures: roots, intermediates or the
/// signing certificates themselves, any one of which may anchor a chain.
#[derive(Clone)]
pub struct NotaryTrust {
    pub certs: Vec<CertificateDer<'static>>,
    /// First 16 hex chars of each certificate's SHA-256: for messages and policy identity.
    pub fingerprints: Vec<String>,
    /// The `tsa` trust store, when the policy gives one: timestamps are then required.
    pub tsa: Option<Authorities>,
}

impl NotaryTrust {
    /// Parse a PEM bundle of certificates; each must be usable as a webpki trust anchor,
    /// so that a bad certificate is a policy error at load, not a denial at run time.
    pub fn from_pem(text: &str) -> Result<Self, CertsError> {
        let blocks = pem::parse_many(text).map_err(|e| CertsError::NotPem(e.to_string()))?;
        if blocks.is_empty() {
            return Err(CertsError::None);
        }
        let mut certs = Vec::new();
        let mut fingerprints = Vec::new();
        for (index, block) in blocks.into_iter().enumerate() {
            if block.tag() != "CERTIFICATE" {
                return Err(CertsError::NotCertificate(block.tag().to_string()));
            }
            let der = CertificateDer::from(block.into_contents());
            webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| CertsError::Unusable { index, message: format!("{e:?}") })?;
            use sha2::Digest;
            fingerprints.push(hex::encode(&sha2::Sha256::digest(der.as_ref())[..8]));
            certs.push(der);
        }
        Ok(Self { certs, fingerprints, tsa: None })
    }
}

impl std::fmt::Debug for NotaryTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NotaryTrust({} tsa {:?})", self.fingerprints.join(","), self.tsa)
    }
}

#[derive(Deserialize)]
struct Envelope {
    payload: String,
    protected: String,
    header: Unprotected,
    signature: String,
}

#[derive(Deserialize)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
    #[serde(default, rename = "io.cncf.notary.timestampSignature")]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Descriptor,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

/// What a verified envelope says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `io.cncf.notary.signingTime`, seconds since the epoch.
    pub signing_time: i64,
}

/// A notation envelope taken apart, JWS or COSE, before anything in it is trusted.
struct Opened {
    algorithm: Algorithm,
    expiry: Option<i64>,
    /// Leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// The bytes the signature covers (JWS signing input; COSE `Sig_structure`).
    signed: Vec<u8>,
    /// As notation wrote it (ECDSA as fixed-width `r || s`).
    signature: Vec<u8>,
    payload: Vec<u8>,
    signing_time: i64,
    /// The RFC 3161 countersignature (a DER TimeStampToken over `signature`), unverified.
    timestamp: Option<Vec<u8>>,
}

/// Verify one notation envelope (JWS, or COSE_Sign1) for `digest` against `trusted` (DER
/// certificates from the policy: roots or the signing certificates themselves), at `now`
/// (Unix seconds). The format is told by the first byte: a JSON object, or a CBOR array
/// (tagged 18 or not); each is then parsed strictly by its own rules.
pub fn verify(
    envelope: &[u8],
    trusted: &[CertificateDer<'_>],
    digest: &str,
    now: i64,
) -> Result<Verified, NotaryError> {
    verify_stamped(envelope, trusted, None, digest, now)
}

/// [`verify`] under a trust policy with a `tsa` trust store (Kyverno ImageValidatingPolicy
/// `notary.tsaCerts`), as notation-go verifies then: the envelope must carry a timestamp
/// countersignature that one of `tsa`'s certificates anchors, and the signing chain must have
/// been valid over the whole time it proves (genTime ± accuracy) instead of now.
pub fn verify_stamped(
    envelope: &[u8],
    trusted: &[CertificateDer<'_>],
    tsa: Option<&Authorities>,
    digest: &str,
    now: i64,
) -> Result<Verified, NotaryError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(NotaryError::TooLarge);
    }
    let opened = match envelope.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => open_jws(envelope)?,
        Some(0xd2 | 0x84) => open_cose(envelope)?,
        _ => return Err(NotaryError::Malformed("neither a JWS nor a COSE envelope".into())),
    };
    check(opened, trusted, tsa, digest, now)
}

fn open_jws(envelope: &[u8]) -> Result<Opened, NotaryError> {
    let env: Envelope = serde_json::from_slice(envelope).map_err(|e| NotaryError::Malformed(e.to_string()))?;
    let b64 =
        |what: &str, s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|e| NotaryError::Malformed(format!("{what}: {e}")));
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&b64("protected header", &env.protected)?)
            .map_err(|e| NotaryError::Malformed(format!("protected header: {e}")))?;
    let text = |k: &str| header.get(k).and_then(|v| v.as_str());
    let alg = text("alg").ok_or(NotaryError::Missing("alg"))?;
    let cty = text("cty").ok_or(NotaryError::Missing("cty"))?;
    if cty != PAYLOAD_TYPE {
        return Err(NotaryError::ContentType(cty.to_string()));
    }
    let scheme = text(SCHEME).ok_or(NotaryError::Missing(SCHEME))?;
    let crit: Vec<&str> = header
        .get("crit")
        .and_then(|v| v.as_array())
        .ok_or(NotaryError::Missing("crit"))?
        .iter()
        .map(|v| v.as_str().ok_or_else(|| NotaryError::Malformed("crit holds a non-string".into())))
        .collect::<Result<_, _>>()?;
    check_scheme(scheme, &crit, header.contains_key(EXPIRY))?;
    let signing_time = text(SIGNING_TIME).ok_or(NotaryError::Missing(SIGNING_TIME))?;
    let signing_time =
        rfc3339(signing_time).ok_or_else(|| NotaryError::Malformed(format!("{SIGNING_TIME} {signing_time:?}")))?;
    let expiry = match header.get(EXPIRY) {
        Some(expiry) => {
            let expiry = expiry.as_str().unwrap_or_default();
            Some(rfc3339(expiry).ok_or_else(|| NotaryError::Malformed(format!("{EXPIRY} {expiry:?}")))?)
        }
        None => None,
    };
    let algorithm = algorithm(alg)?;
    // The chain: leaf first, as JWS x5c orders it, each entry standard base64 DER.
    let chain: Vec<CertificateDer<'static>> = env
        .header
        .x5c
        .iter()
        .map(|c| STANDARD.decode(c).map(CertificateDer::from))
        .collect::<Result<_, _>>()
        .map_err(|e| NotaryError::Malformed(format!("x5c: {e}")))?;
    Ok(Opened {
        algorithm,
        expiry,
        chain,
        signed: format!("{}.{}", env.protected, env.payload).into_bytes(),
        signature: b64("signature", &env.signature)?,
        payload: b64("payload", &env.payload)?,
        signing_time,
        timestamp: env
            .header
            .timestamp
            .map(|t| STANDARD.decode(t))
            .transpose()
            .map_err(|e| NotaryError::Malformed(format!("{TIMESTAMP}: {e}")))?,
    })
}

/// notation's COSE_Sign1: `alg` by its COSE number, `cty` the notary payload type, the
/// notary headers under their text labels with times as CBOR epoch dates (tag 1), and the
/// chain in the unprotected `x5chain` (label 33), leaf first.
fn open_cose(envelope: &[u8]) -> Result<Opened, NotaryError> {
    use coset::iana::{self, EnumI64};
    use coset::{CborSerializable, CoseSign1, Label, RegisteredLabelWithPrivate, TaggedCborSerializable};
    let malformed = |e: coset::CoseError| NotaryError::Malformed(format!("COSE: {e}"));
    let sign1 = if envelope.first() == Some(&0xd2) {
        CoseSign1::from_tagged_slice(envelope).map_err(malformed)?
    } else {
        CoseSign1::from_slice(envelope).map_err(malformed)?
    };
    let header = &sign1.protected.header;
    let alg = match &header.alg {
        Some(coset::RegisteredLabelWithPrivate::Assigned(a)) => match a {
            iana::Algorithm::PS256 => "PS256",
            iana::Algorithm::PS384 => "PS384",
            iana::Algorithm::PS512 => "PS512",
            iana::Algorithm::ES256 => "ES256",
            iana::Algorithm::ES384 => "ES384",
            iana::Algorithm::ES512 => "ES512",
            other => return Err(NotaryError::Algorithm(format!("COSE {}", other.to_i64()))),
        },
        Some(other) => return Err(NotaryError::Algorithm(format!("COSE {other:?}"))),
        None => return Err(NotaryError::Missing("alg")),
    };
    match &header.content_type {
        Some(coset::ContentType::Text(t)) if t == PAYLOAD_TYPE => {}
        Some(other) => return Err(NotaryError::ContentType(format!("{other:?}"))),
        None => return Err(NotaryError::Missing("cty")),
    }
    let value =
        |label: &str| header.rest.iter().find_map(|(l, v)| matches!(l, Label::Text(t) if t == label).then_some(v));
    let scheme = value(SCHEME).and_then(|v| v.as_text()).ok_or(NotaryError::Missing(SCHEME))?;
    let crit: Vec<&str> = header
        .crit
        .iter()
        .map(|c| match c {
            RegisteredLabelWithPrivate::Text(t) => Ok(t.as_str()),
            other => Err(NotaryError::Critical(format!("{other:?}"))),
        })
        .collect::<Result<_, _>>()?;
    check_scheme(scheme, &crit, value(EXPIRY).is_some())?;
    let epoch = |label: &'static str, v: &ciborium::Value| {
        match v {
            ciborium::Value::Tag(1, t) => match t.as_ref() {
                ciborium::Value::Integer(i) => i64::try_from(*i).ok(),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| NotaryError::Malformed(format!("{label} is not a CBOR epoch date")))
    };
    let signing_time = epoch(SIGNING_TIME, value(SIGNING_TIME).ok_or(NotaryError::Missing(SIGNING_TIME))?)?;
    let expiry = value(EXPIRY).map(|v| epoch(EXPIRY, v)).transpose()?;
    let x5chain = iana::HeaderParameter::X5Chain.to_i64();
    let chain = match sign1.unprotected.rest.iter().find(|(l, _)| *l == Label::Int(x5chain)).map(|(_, v)| v) {
        Some(ciborium::Value::Bytes(one)) => vec![CertificateDer::from(one.clone())],
        Some(ciborium::Value::Array(many)) => many
            .iter()
            .map(|c| c.as_bytes().map(|b| CertificateDer::from(b.clone())))
            .collect::<Option<_>>()
            .ok_or_else(|| NotaryError::Malformed("x5chain holds a non-certificate".into()))?,
        _ => Vec::new(),
    };
    let payload = sign1.payload.clone().ok_or(NotaryError::Missing("payload"))?;
    let timestamp = match sign1.unprotected.rest.iter().find(|(l, _)| matches!(l, Label::Text(t) if t == TIMESTAMP)) {
        None => None,
        Some((_, ciborium::Value::Bytes(b))) => Some(b.clone()),
        Some(_) => return Err(NotaryError::Malformed(format!("{TIMESTAMP} is not a byte string"))),
    };
    Ok(Opened {
        algorithm: algorithm(alg)?,
        expiry,
        chain,
        signed: sign1.tbs_data(b""),
        signature: sign1.signature.clone(),
        payload,
        signing_time,
        timestamp,
    })
}

/// The `notary.x509` scheme, critical, and nothing critical besides what is understood.
fn check_scheme(scheme: &str, crit: &[&str], has_expiry: bool) -> Result<(), NotaryError> {
    if scheme != "notary.x509" {
        return Err(NotaryError::Scheme(scheme.to_string()));
    }
    if let Some(unknown) = crit.iter().find(|c| ![SCHEME, EXPIRY].contains(c)) {
        return Err(NotaryError::Critical(unknown.to_string()));
    }
    if !crit.contains(&SCHEME) || (has_expiry && !crit.contains(&EXPIRY)) {
        return Err(NotaryError::Malformed("crit must list the signing scheme and any expiry".into()));
    }
    Ok(())
}

/// What both formats must meet once opened: not expired, a code-signing leaf chaining to a
/// trusted certificate and valid now, its signature over the signed bytes, and the payload
/// naming the image's digest.
fn check(
    o: Opened,
    trusted: &[CertificateDer<'_>],
    tsa: Option<&Authorities>,
    digest: &str,
    now: i64,
) -> Result<Verified, NotaryError> {
    if let Some(at) = o.expiry {
        if at <= now {
            return Err(NotaryError::Expired(format!("{at} (seconds since the epoch)")));
        }
    }
    let (leaf, intermediates) = o.chain.split_first().ok_or(NotaryError::Missing("x5c"))?;
    // With a TSA the chain is held to the time the timestamp proves; without, to now.
    let chain_time = match tsa {
        None => now,
        Some(tsa) => {
            let token = o.timestamp.as_deref().ok_or(NotaryError::Missing(TIMESTAMP))?;
            let stamp = timestamp::verify_stamp(token, &o.signature, tsa).map_err(NotaryError::Timestamp)?;
            within_validity(&o.chain, stamp)?;
            stamp.at
        }
    };
    let anchors = trusted
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NotaryError::Untrusted(format!("a policy certificate is unusable: {e:?}")))?;
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| NotaryError::Malformed(format!("x5c[0]: {e:?}")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(chain_time.max(0) as u64));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        time,
        webpki::KeyUsage::required(CODE_SIGNING),
        None,
        None,
    )
    .map_err(|e| NotaryError::Untrusted(format!("{e:?}")))?;
    signs_digitally(leaf)?;
    let signature = match o.algorithm.1 {
        Some(half) => fixed_to_der(&o.signature, half).ok_or(NotaryError::BadSignature)?,
        None => o.signature,
    };
    ee.verify_signature(o.algorithm.0, &o.signed, &signature).map_err(|_| NotaryError::BadSignature)?;
    let payload: Payload =
        serde_json::from_slice(&o.payload).map_err(|e| NotaryError::Malformed(format!("payload: {e}")))?;
    if payload.target_artifact.digest != digest {
        return Err(NotaryError::WrongDigest { signed: payload.target_artifact.digest, image: digest.to_string() });
    }
    Ok(Verified { signing_time: o.signing_time })
}

/// notation-go's rule: every certificate of the signing chain was valid over the whole range
/// the timestamp allows, its lower bound after each `notBefore`, its upper before each `notAfter`.
fn within_validity(chain: &[CertificateDer<'_>], stamp: timestamp::Stamp) -> Result<(), NotaryError> {
    use x509_cert::der::Decode;
    let (low, high) = (stamp.at.saturating_sub(stamp.accuracy), stamp.at.saturating_add(stamp.accuracy));
    for (i, c) in chain.iter().enumerate() {
        let cert = x509_cert::Certificate::from_der(c.as_ref())
            .map_err(|e| NotaryError::Malformed(format!("x5c[{i}]: {e}")))?;
        let v = cert.tbs_certificate().validity();
        let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        if low < secs(v.not_before) || high > secs(v.not_after) {
            return Err(NotaryError::Untrusted(format!(
                "certificate x5c[{i}] was not valid over the whole timestamp range {low}..{high}"
            )));
        }
    }
    Ok(())
}

/// The Notary Project's signing-certificate requirement webpki does not check: a KeyUsage
/// extension with digitalSignature (notation-go refuses a leaf without it).
fn signs_digitally(leaf: &CertificateDer<'_>) -> Result<(), NotaryError> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::KeyUsage;
    let cert =
        x509_cert::Certificate::from_der(leaf.as_ref()).map_err(|e| NotaryError::Malformed(format!("x5c[0]: {e}")))?;
    let usage = cert
        .tbs_certificate()
        .get_extension::<KeyUsage>()
        .map_err(|e| NotaryError::Malformed(format!("x5c[0] KeyUsage: {e}")))?;
    match usage {
        Some((_, ku)) if ku.digital_signature() => Ok(()),
        Some(_) => Err(NotaryError::Untrusted("the signing certificate's KeyUsage lacks digitalSignature".into())),
        None => Err(NotaryError::Untrusted("the signing certificate has no KeyUsage (digitalSignature)".into())),
    }
}

/// The webpki algorithm for a JWS `alg` notation uses, and for ECDSA the size of one half
/// of its fixed-width signature.
type Algorithm = (&'static dyn rustls_pki_types::SignatureVerificationAlgorithm, Option<usize>);

fn algorithm(alg: &str) -> Result<Algorithm, NotaryError> {
    use webpki::aws_lc_rs as a;
    Ok(match alg {
        "PS256" => (a::RSA_PSS_2048_8192_SHA256_LEGACY_KEY, None),
        "PS384" => (a::RSA_PSS_2048_8192_SHA384_LEGACY_KEY, None),
        "PS512" => (a::RSA_PSS_2048_8192_SHA512_LEGACY_KEY, None),
        "ES256" => (a::ECDSA_P256_SHA256, Some(32)),
        "ES384" => (a::ECDSA_P384_SHA384, Some(48)),
        "ES512" => (a::ECDSA_P521_SHA512, Some(66)),
        other => return Err(NotaryError::Algorithm(other.to_string())),
    })
}

/// JWS ECDSA signatures are `r || s`, each `half` bytes; webpki reads ASN.1 DER.
fn fixed_to_der(sig: &[u8], half: usize) -> Option<Vec<u8>> {
    if sig.len() != 2 * half {
        return None;
    }
    let integer = |x: &[u8]| {
        let x = &x[x.iter().take_while(|b| **b == 0).count().min(x.len() - 1)..];
        let mut out = vec![0x02];
        let pad = x[0] & 0x80 != 0;
        der_len(&mut out, x.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(x);
        out
    };
    let body = [integer(&sig[..half]), integer(&sig[half..])].concat();
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend(body);
    Some(out)
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend([0x81, len as u8]);
    }
}

/// Seconds since the epoch of an RFC 3339 time (`2026-12-01T13:08:18Z`, fractions and
/// offsets allowed); `None` for anything else.
pub fn rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn cert(name: &str) -> CertificateDer<'static> {
        CertificateDer::from(pem::parse(vector(name)).unwrap().into_contents())
    }

    fn digest(which: &str) -> String {
        let text = String::from_utf8(vector("digests")).unwrap();
        text.lines().find_map(|l| l.strip_prefix(&format!("{which} "))).unwrap().to_string()
    }

    /// Inside the test certificates' one-day validity: one minute after signing.
    fn when(envelope: &[u8]) -> i64 {
        let env: serde_json::Value = serde_json::from_slice(envelope).unwrap();
        let header = URL_SAFE_NO_PAD.decode(env["protected"].as_str().unwrap()).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        rfc3339(header[SIGNING_TIME].as_str().unwrap()).unwrap() + 60
    }

    #[test]
    fn a_real_notation_signature_verifies() {
        let jws = vector("good.jws");
        let v = verify(&jws, &[cert("trusted.crt")], &digest("image"), when(&jws)).unwrap();
        assert_eq!(v.signing_time, when(&jws) - 60, "{v:?}");
    }

    #[test]
    fn an_untrusted_signer_is_refused() {
        let jws = vector("untrusted.jws");
        let e = verify(&jws, &[cert("trusted.crt")], &digest("image"), when(&jws)).unwrap_err();
        assert!(matches!(e, NotaryError::Untrusted(_)), "{e}");
        // The same envelope with its own certificate trusted verifies: the refusal was trust.
        verify(&jws, &[cert("other.crt")], &digest("image"), when(&jws)).unwrap();
    }

    #[test]
    fn a_signature_for_another_digest_is_refused() {
        let jws = vector("other-digest.jws");
        let e = verify(&jws, &[cert("trusted.crt")], &digest("image"), when(&jws)).unwrap_err();
        assert!(matches!(&e, NotaryError::WrongDigest { signed, .. } if *signed == digest("other-image")), "{e}");
    }

    #[test]
    fn a_forged_payload_or_signature_is_refused() {
        let jws = vector("good.jws");
        let mut env: serde_json::Value = serde_json::from_slice(&jws).unwrap();
        // The other image's payload under the good envelope's signature.
        let other: serde_json::Value = serde_json::from_slice(&vector("other-digest.jws")).unwrap();
        env["payload"] = other["payload"].clone();
        let forged = serde_json::to_vec(&env).unwrap();
        let e = verify(&forged, &[cert("trusted.crt")], &digest("other-image"), when(&jws)).unwrap_err();
        assert_eq!(e, NotaryError::BadSignature);
        let mut env: serde_json::Value = serde_json::from_slice(&jws).unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(env["signature"].as_str().unwrap()).unwrap();
        sig[10] ^= 1;
        env["signature"] = URL_SAFE_NO_PAD.encode(sig).into();
        let e = verify(&serde_json::to_vec(&env).unwrap(), &[cert("trusted.crt")], &digest("image"), when(&jws))
            .unwrap_err();
        assert_eq!(e, NotaryError::BadSignature);
    }

    /// Review finding: a leaf whose KeyUsage lacks digitalSignature (notation-go refuses it
    /// as a signing certificate) was accepted when its chain and EKU checked out.
    #[test]
    fn a_signing_certificate_without_digital_signature_is_refused() {
        let jws = vector("no-digital-signature.jws");
        let e = verify(&jws, &[cert("no-digital-signature.crt")], &digest("image"), when(&jws)).unwrap_err();
        assert!(matches!(&e, NotaryError::Untrusted(m) if m.contains("digitalSignature")), "{e}");
    }

    #[test]
    fn the_certificate_must_be_valid_now() {
        let jws = vector("good.jws");
        let later = when(&jws) + 2 * 86_400;
        let e = verify(&jws, &[cert("trusted.crt")], &digest("image"), later).unwrap_err();
        assert!(matches!(e, NotaryError::Untrusted(_)), "{e}");
    }

    #[test]
    fn oversized_and_malformed_envelopes_are_refused() {
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(verify(&big, &[], "sha256:x", 0).unwrap_err(), NotaryError::TooLarge);
        assert!(matches!(verify(b"{}", &[], "sha256:x", 0).unwrap_err(), NotaryError::Malformed(_)));
    }

    /// notation's other format. Before, only JWS was read: a COSE-signed image never
    /// verified under a notary attestor (and its envelopes were not even fetched).
    #[test]
    fn a_real_notation_cose_signature_verifies() {
        let (cose, at) = (vector("good.cose"), when(&vector("good.jws")));
        let v = verify(&cose, &[cert("trusted.crt")], &digest("image"), at).unwrap();
        assert!((v.signing_time - (at - 60)).abs() < 3600, "{v:?}");
        // JWS still goes through the same door.
        verify(&vector("good.jws"), &[cert("trusted.crt")], &digest("image"), at).unwrap();
    }

    #[test]
    fn cose_is_held_to_what_jws_is() {
        let at = when(&vector("good.jws"));
        let e = verify(&vector("untrusted.cose"), &[cert("trusted.crt")], &digest("image"), at).unwrap_err();
        assert!(matches!(e, NotaryError::Untrusted(_)), "{e}");
        verify(&vector("untrusted.cose"), &[cert("other.crt")], &digest("image"), at).unwrap();
        let e = verify(&vector("other-digest.cose"), &[cert("trusted.crt")], &digest("image"), at).unwrap_err();
        assert!(matches!(&e, NotaryError::WrongDigest { signed, .. } if *signed == digest("other-image")), "{e}");
        let e = verify(&vector("good.cose"), &[cert("trusted.crt")], &digest("image"), at + 2 * 86_400).unwrap_err();
        assert!(matches!(e, NotaryError::Untrusted(_)), "{e}");
    }

    #[test]
    fn a_forged_cose_payload_or_signature_is_refused() {
        use coset::{CoseSign1, TaggedCborSerializable};
        let at = when(&vector("good.jws"));
        let good = CoseSign1::from_tagged_slice(&vector("good.cose")).unwrap();
        let other = CoseSign1::from_tagged_slice(&vector("other-digest.cose")).unwrap();
        let mut forged = good.clone();
        forged.payload = other.payload.clone();
        let e =
            verify(&forged.to_tagged_vec().unwrap(), &[cert("trusted.crt")], &digest("other-image"), at).unwrap_err();
        assert_eq!(e, NotaryError::BadSignature);
        let mut flipped = good;
        flipped.signature[10] ^= 1;
        let e = verify(&flipped.to_tagged_vec().unwrap(), &[cert("trusted.crt")], &digest("image"), at).unwrap_err();
        assert_eq!(e, NotaryError::BadSignature);
        assert!(matches!(verify(b"\x00\x01", &[], "sha256:x", 0), Err(NotaryError::Malformed(_))));
        assert!(matches!(verify(&[0xd2, 0x84, 0x40], &[], "sha256:x", 0), Err(NotaryError::Malformed(_))));
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2026-12-01T13:08:18Z"), Some(1_796_130_498));
        assert_eq!(rfc3339("2026-12-01T14:08:18.5+01:00"), Some(1_796_130_498));
        assert_eq!(rfc3339("2026-12-01 13:08:18"), None);
        assert_eq!(rfc3339("2026-13-01T13:08:18Z"), None);
    }

    /// Timestamp countersignatures by real notation 1.3.2 (`--timestamp-url`, a test TSA made
    /// by testpki.sh and answered by openssl), verified under a `tsa` store as notation-go does.
    mod timestamped {
        use super::*;

        fn tsa(name: &str) -> Authorities {
            Authorities::anchors_from_pem(&String::from_utf8(vector(name)).unwrap()).unwrap()
        }

        /// A day after the test certificate expired (it is valid for one day).
        fn long_after() -> i64 {
            use x509_cert::der::Decode;
            let c = x509_cert::Certificate::from_der(cert("timestamped.crt").as_ref()).unwrap();
            c.tbs_certificate().validity().not_after.to_unix_duration().as_secs() as i64 + 86_400
        }

        fn check_all(f: impl Fn(&[u8], &str)) {
            for name in ["timestamped.jws", "timestamped.cose"] {
                f(&vector(name), name);
            }
        }

        #[test]
        fn a_timestamp_shows_the_signing_certificate_was_valid_then() {
            check_all(|env, name| {
                let root = tsa("tsa-root.crt");
                verify_stamped(env, &[cert("timestamped.crt")], Some(&root), &digest("image"), long_after())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                // Without the tsa store the certificate is held to now, and has expired.
                let e = verify(env, &[cert("timestamped.crt")], &digest("image"), long_after()).unwrap_err();
                assert!(matches!(e, NotaryError::Untrusted(_)), "{name}: {e}");
            });
        }

        #[test]
        fn under_a_tsa_store_a_timestamp_is_required_and_must_be_anchored() {
            let root = tsa("tsa-root.crt");
            // An envelope without a countersignature, though its certificate is valid now.
            let jws = vector("good.jws");
            let e =
                verify_stamped(&jws, &[cert("trusted.crt")], Some(&root), &digest("image"), when(&jws)).unwrap_err();
            assert_eq!(e, NotaryError::Missing(TIMESTAMP));
            check_all(|env, name| {
                let other = tsa("other-tsa-root.crt");
                let e = verify_stamped(env, &[cert("timestamped.crt")], Some(&other), &digest("image"), long_after())
                    .unwrap_err();
                assert!(matches!(e, NotaryError::Timestamp(TimestampError::Untrusted { .. })), "{name}: {e}");
            });
        }

        #[test]
        fn a_countersignature_of_another_signature_does_not_count() {
            // good.jws's signature with timestamped.jws's countersignature moved onto it.
            let mut good: serde_json::Value = serde_json::from_slice(&vector("good.jws")).unwrap();
            let stamped: serde_json::Value = serde_json::from_slice(&vector("timestamped.jws")).unwrap();
            good["header"][TIMESTAMP] = stamped["header"][TIMESTAMP].clone();
            let moved = serde_json::to_vec(&good).unwrap();
            let root = tsa("tsa-root.crt");
            let e = verify_stamped(&moved, &[cert("trusted.crt")], Some(&root), &digest("image"), when(&moved))
                .unwrap_err();
            assert_eq!(e, NotaryError::Timestamp(TimestampError::OtherMessage));
        }
    }
}
