//! Offline transparency-log evidence: the Rekor entry cosign stores beside a signature.
//!
//! cosign puts the log's answer in the `dev.sigstore.cosign/bundle` annotation: the entry
//! body, its index and time, and the Signed Entry Timestamp (SET), the log's signature over
//! those. Checking the SET with the log's public key proves the log accepted the entry,
//! with no call to the log. The entry must also be about *this* signature: same signature
//! bytes, same payload hash, same signer; otherwise any genuine entry could be replayed.
//! For attestations the entry is an `intoto` one (cosign 2's `.att` annotation), and sigstore
//! bundles (v0.3) carry a `dsse` one in `tlogEntries`, which the registry module hands over in
//! the annotation's shape; either must name the envelope's payload, a signature and the signer.

use sha2::{Digest, Sha256};
use sigstore::cosign::bundle::Bundle;
use sigstore::crypto::Signature;

use super::trust::LogKey;
use crate::encoding::b64;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum TlogError {
    #[error("the signature carries no transparency-log entry (bundle)")]
    Missing,
    #[error("the transparency-log entry is malformed: {0}")]
    Malformed(String),
    #[error(
        "the transparency-log entry has no signed entry timestamp (a Rekor v2 entry); inclusion proofs and \
         checkpoints are not verified on the node"
    )]
    NoPromise,
    #[error("the transparency-log entry is from log {0}, which is not a trusted log")]
    UnknownLog(String),
    #[error("the transparency-log entry's signed timestamp (SET) does not verify with log {0}'s key")]
    BadSet(String),
    #[error("the transparency-log entry is for another {0}")]
    Mismatch(&'static str),
    #[error("the transparency-log entry is dated outside the validity of log {0}'s key in the trust root")]
    KeyNotValid(String),
}

/// What a verified entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry {
    /// When the log accepted the entry (seconds since the epoch); keyless certificates
    /// must have been valid at this moment.
    pub integrated_time: i64,
}

/// Who the entry must name as the signer: the DER of a public key or of a certificate.
pub enum EntrySigner<'a> {
    PublicKey(&'a [u8]),
    Certificate(&'a [u8]),
}

/// Verify the bundle annotation of one signature layer against the trusted logs.
pub fn verify(
    bundle: Option<&str>,
    signature_b64: &str,
    payload: &[u8],
    signer: EntrySigner<'_>,
    logs: &[&LogKey],
) -> Result<LogEntry, TlogError> {
    let raw = bundle.ok_or(TlogError::Missing)?;
    let bundle: Bundle = serde_json::from_str(raw).map_err(|e| {
        let v: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
        if v.get("inclusionProof").is_some() && v.get("inclusionPromise").is_none() {
            TlogError::NoPromise
        } else {
            TlogError::Malformed(e.to_string())
        }
    })?;
    let log = logs
        .iter()
        .find(|l| l.id == bundle.payload.log_id)
        .ok_or_else(|| TlogError::UnknownLog(short(&bundle.payload.log_id)))?;
    let canonical =
        serde_json_canonicalizer::to_vec(&bundle.payload).map_err(|e| TlogError::Malformed(e.to_string()))?;
    log.key
        .verify_signature(Signature::Base64Encoded(bundle.signed_entry_timestamp.as_bytes()), &canonical)
        .map_err(|_| TlogError::BadSet(short(&log.id)))?;
    if !log.valid.contains(bundle.payload.integrated_time) {
        return Err(TlogError::KeyNotValid(short(&log.id)));
    }
    check_body(&bundle.payload.body, signature_b64, payload, signer)?;
    Ok(LogEntry { integrated_time: bundle.payload.integrated_time })
}

fn short(id: &str) -> String {
    id.chars().take(16).collect()
}

#[derive(serde::Deserialize)]
struct Body {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    spec: serde_json::Value,
}
#[derive(serde::Deserialize)]
struct HashedSpec {
    data: Data,
    signature: SigSpec,
}
#[derive(serde::Deserialize)]
struct Data {
    hash: Hash,
}
#[derive(serde::Deserialize)]
struct Hash {
    algorithm: String,
    value: String,
}
#[derive(serde::Deserialize)]
struct SigSpec {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: Content,
}
#[derive(serde::Deserialize)]
struct Content {
    content: String,
}
#[derive(serde::Deserialize)]
struct IntotoSpec {
    content: IntotoContent,
}
#[derive(serde::Deserialize)]
struct IntotoContent {
    envelope: IntotoEnvelope,
    #[serde(rename = "payloadHash")]
    payload_hash: Hash,
}
#[derive(serde::Deserialize)]
struct IntotoEnvelope {
    signatures: Vec<IntotoSignature>,
}
/// Both fields are base64 of bytes: `sig` of the envelope's (already base64) signature
/// string, `publicKey` of the signer's PEM.
#[derive(serde::Deserialize)]
struct IntotoSignature {
    sig: String,
    #[serde(rename = "publicKey")]
    public_key: String,
}
#[derive(serde::Deserialize)]
struct DsseSpec {
    #[serde(rename = "payloadHash")]
    payload_hash: Hash,
    signatures: Vec<DsseSignature>,
}
#[derive(serde::Deserialize)]
struct DsseSignature {
    signature: String,
    verifier: String,
}

/// The entry must be about this signature, payload and signer: a `hashedrekord` for a
/// detached signature over `payload`, or a `dsse` or `intoto` entry when `payload` is a DSSE envelope
/// (then `signature_b64` is unused: the signatures are inside).
fn check_body(body_b64: &str, signature_b64: &str, payload: &[u8], signer: EntrySigner<'_>) -> Result<(), TlogError> {
    let malformed = |e: crate::encoding::Base64Error| TlogError::Malformed(e.to_string());
    let body: Body = serde_json::from_slice(&b64(body_b64).map_err(malformed)?)
        .map_err(|e| TlogError::Malformed(format!("entry body: {e}")))?;
    let spec_error = |e: serde_json::Error| TlogError::Malformed(format!("entry body: {e}"));
    match (body.kind.as_str(), body.api_version.as_str()) {
        ("hashedrekord", "0.0.1") => {
            let spec: HashedSpec = serde_json::from_value(body.spec).map_err(spec_error)?;
            check_hash(&spec.data.hash, payload)?;
            if b64(&spec.signature.content).map_err(malformed)? != b64(signature_b64).map_err(malformed)? {
                return Err(TlogError::Mismatch("signature"));
            }
            check_signer(&spec.signature.public_key.content, &signer)
        }
        ("dsse", "0.0.1") => {
            let spec: DsseSpec = serde_json::from_value(body.spec).map_err(spec_error)?;
            let envelope = open_envelope(payload)?;
            check_hash(&spec.payload_hash, &envelope.body)?;
            let logged = spec.signatures.iter().map(|s| (Some(s.signature.clone()), s.verifier.as_str()));
            check_logged_signatures(logged, &envelope.signatures, &signer)
        }
        // What cosign 2 logs for `cosign attest`.
        ("intoto", "0.0.2") => {
            let spec: IntotoSpec = serde_json::from_value(body.spec).map_err(spec_error)?;
            let envelope = open_envelope(payload)?;
            check_hash(&spec.content.payload_hash, &envelope.body)?;
            let logged = spec.content.envelope.signatures.iter().map(|s| {
                let sig = b64(&s.sig).ok().and_then(|raw| String::from_utf8(raw).ok());
                (sig, s.public_key.as_str())
            });
            check_logged_signatures(logged, &envelope.signatures, &signer)
        }
        (kind, version) => Err(TlogError::Malformed(format!(
            "entry kind {kind} {version} is not supported (hashedrekord 0.0.1, dsse 0.0.1 and intoto 0.0.2 are)"
        ))),
    }
}

fn open_envelope(payload: &[u8]) -> Result<super::dsse::Opened, TlogError> {
    super::dsse::open(payload).map_err(|e| TlogError::Malformed(e.to_string()))
}

/// One of the envelope's signatures must be logged with this signer as its verifier.
/// `logged`: (signature string as in the envelope, base64 PEM of its verifier).
fn check_logged_signatures<'a>(
    logged: impl Iterator<Item = (Option<String>, &'a str)>,
    envelope_signatures: &[String],
    signer: &EntrySigner<'_>,
) -> Result<(), TlogError> {
    let mut last = Err(TlogError::Mismatch("signature"));
    for (_, verifier) in logged.filter(|(sig, _)| sig.as_ref().is_some_and(|s| envelope_signatures.contains(s))) {
        last = check_signer(verifier, signer);
        if last.is_ok() {
            break;
        }
    }
    last
}

fn check_hash(hash: &Hash, payload: &[u8]) -> Result<(), TlogError> {
    if hash.algorithm != "sha256" || !hash.value.eq_ignore_ascii_case(&hex::encode(Sha256::digest(payload))) {
        return Err(TlogError::Mismatch("payload"));
    }
    Ok(())
}

/// `logged_b64` is the base64 PEM the log recorded as the signer.
fn check_signer(logged_b64: &str, signer: &EntrySigner<'_>) -> Result<(), TlogError> {
    let pem_text = b64(logged_b64).map_err(|e| TlogError::Malformed(e.to_string()))?;
    let block = pem::parse(&pem_text).map_err(|e| TlogError::Malformed(format!("entry signer: {e}")))?;
    let same = match signer {
        EntrySigner::PublicKey(der) => block.tag() == "PUBLIC KEY" && block.contents() == *der,
        EntrySigner::Certificate(der) => block.tag() == "CERTIFICATE" && block.contents() == *der,
    };
    if !same {
        return Err(TlogError::Mismatch("signer"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::vector;

    fn key_der(name: &str) -> Vec<u8> {
        pem::parse(vector(name)).unwrap().into_contents()
    }

    fn run(bundle: &str, sig: &str, payload: &[u8], signer: &[u8]) -> Result<LogEntry, TlogError> {
        let log = LogKey::from_pem(&vector("rekor.pub")).unwrap();
        verify(Some(bundle), sig, payload, EntrySigner::PublicKey(signer), &[&log])
    }

    #[test]
    fn a_set_made_for_this_signature_verifies() {
        let (bundle, sig, payload) = (vector("bundle-key.json"), vector("payload.sig"), vector("payload.json"));
        let entry = run(&bundle, &sig, payload.as_bytes(), &key_der("cosign.pub")).unwrap();
        assert!(entry.integrated_time > 1_700_000_000);
    }

    #[test]
    fn forged_replayed_or_missing_entries_fail() {
        let (sig, payload, signer) = (vector("payload.sig"), vector("payload.json"), key_der("cosign.pub"));
        // Signed by a key that is not the trusted log's (same log id claimed).
        let forged = vector("bundle-forged.json");
        assert!(matches!(run(&forged, &sig, payload.as_bytes(), &signer), Err(TlogError::UnknownLog(_))));
        let mut relabelled: serde_json::Value = serde_json::from_str(&forged).unwrap();
        relabelled["Payload"]["logID"] = LogKey::from_pem(&vector("rekor.pub")).unwrap().id.into();
        assert!(matches!(run(&relabelled.to_string(), &sig, payload.as_bytes(), &signer), Err(TlogError::BadSet(_))));
        // A genuine entry replayed for another payload, signature or signer.
        let bundle = vector("bundle-key.json");
        assert_eq!(run(&bundle, &sig, b"other", &signer), Err(TlogError::Mismatch("payload")));
        let leaf_sig = vector("payload-leaf.sig");
        assert_eq!(run(&bundle, &leaf_sig, payload.as_bytes(), &signer), Err(TlogError::Mismatch("signature")));
        assert_eq!(run(&bundle, &sig, payload.as_bytes(), b"not this key"), Err(TlogError::Mismatch("signer")));
        // Changing the signed time breaks the SET.
        let mut later: serde_json::Value = serde_json::from_str(&bundle).unwrap();
        later["Payload"]["integratedTime"] = 1.into();
        assert!(matches!(run(&later.to_string(), &sig, payload.as_bytes(), &signer), Err(TlogError::BadSet(_))));
        let log = LogKey::from_pem(&vector("rekor.pub")).unwrap();
        assert_eq!(
            verify(None, &sig, payload.as_bytes(), EntrySigner::PublicKey(&signer), &[&log]),
            Err(TlogError::Missing)
        );
    }
}
