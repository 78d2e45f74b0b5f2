//! Attestations: DSSE envelopes holding in-toto statements, as `cosign attest` stores them.
//!
//! An attestation counts only if its envelope signature verifies over the DSSE
//! pre-authentication encoding (PAE), its statement names the running digest as a subject,
//! and its predicate type is the one the policy asks for. A valid attestation of another
//! type satisfies nothing.

use sigstore::crypto::Signature;

use super::pubkey::PublicKey;
use crate::encoding::b64;

pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type of cosign 3's image signatures (an empty predicate about the digest).
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum AttestationError {
    #[error("attestation envelope is malformed: {0}")]
    Malformed(String),
    #[error("attestation envelope is not signed by this signer")]
    NotSigned,
    #[error("attestation is for {found:?}, not {expected}")]
    OtherSubject { found: Vec<String>, expected: String },
    #[error("attestation has predicate type {found}, not {expected}")]
    OtherType { found: String, expected: String },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(serde::Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
    predicate_type: String,
}

#[derive(serde::Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE v1 pre-authentication encoding: what the envelope signature covers.
pub(crate) fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The long predicate type URI for cosign's short names, as `cosign attest --type` writes them.
pub fn predicate_type_uri(name: &str) -> &str {
    match name {
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "link" => "https://in-toto.io/Link/v1",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        other => other,
    }
}

/// An envelope read but not verified: its payload type, the decoded statement bytes and the
/// signature strings as written.
pub struct Opened {
    pub payload_type: String,
    pub body: Vec<u8>,
    pub signatures: Vec<String>,
}

/// Read an envelope without verifying it: what a transparency-log entry about the envelope is
/// compared with, and what [`verify`] checks.
pub fn open(envelope: &[u8]) -> Result<Opened, AttestationError> {
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| AttestationError::Malformed(format!("envelope: {e}")))?;
    let body = b64(&env.payload).map_err(|e| AttestationError::Malformed(e.to_string()))?;
    Ok(Opened { payload_type: env.payload_type, body, signatures: env.signatures.into_iter().map(|s| s.sig).collect() })
}

/// Is `envelope` an attestation by `key` of `predicate_type` about `digest`?
pub fn verify(envelope: &[u8], key: &PublicKey, digest: &str, predicate_type: &str) -> Result<(), AttestationError> {
    let Opened { payload_type, body, signatures } = open(envelope)?;
    let signed = pae(&payload_type, &body);
    if !signatures.iter().any(|s| key.verify_signature(Signature::Base64Encoded(s.as_bytes()), &signed).is_ok()) {
        return Err(AttestationError::NotSigned);
    }
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(AttestationError::Malformed(format!("payload type {payload_type:?} is not in-toto")));
    }
    // JSON is UTF-8; serde_json does not check strings it skips, and a statement other
    // parsers would read differently must not verify here.
    let text = std::str::from_utf8(&body).map_err(|e| AttestationError::Malformed(format!("statement: {e}")))?;
    let st: Statement =
        serde_json::from_str(text).map_err(|e| AttestationError::Malformed(format!("statement: {e}")))?;
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    if !st.subject.iter().any(|s| s.digest.get(alg).is_some_and(|d| d.eq_ignore_ascii_case(hex))) {
        let found = st.subject.iter().flat_map(|s| s.digest.iter().map(|(a, d)| format!("{a}:{d}"))).collect();
        return Err(AttestationError::OtherSubject { found, expected: digest.to_string() });
    }
    let expected = predicate_type_uri(predicate_type);
    if st.predicate_type != expected {
        return Err(AttestationError::OtherType { found: st.predicate_type, expected: expected.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TrustedKey;
    use crate::testutil::vector;

    const DIGEST: &str = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";

    fn key() -> PublicKey {
        TrustedKey::from_pem(vector("cosign.pub").as_bytes()).unwrap().key
    }

    #[test]
    fn a_cosign_attestation_of_the_asked_type_verifies() {
        let slsa = vector("att-slsa.json");
        verify(slsa.as_bytes(), &key(), DIGEST, "slsaprovenance").unwrap();
        verify(slsa.as_bytes(), &key(), DIGEST, "https://slsa.dev/provenance/v0.2").unwrap();
        verify(vector("att-custom.json").as_bytes(), &key(), DIGEST, "custom").unwrap();
    }

    #[test]
    fn another_type_subject_or_signer_never_satisfies() {
        let custom = vector("att-custom.json");
        let err = verify(custom.as_bytes(), &key(), DIGEST, "slsaprovenance").unwrap_err();
        assert!(matches!(err, AttestationError::OtherType { .. }), "{err}");
        let other = DIGEST.replace("479b", "579b");
        let err = verify(vector("att-slsa.json").as_bytes(), &key(), &other, "slsaprovenance").unwrap_err();
        assert!(matches!(err, AttestationError::OtherSubject { .. }), "{err}");
        let stranger = crate::testutil::TestSigner::new(9).trusted().key;
        assert_eq!(verify(custom.as_bytes(), &stranger, DIGEST, "custom"), Err(AttestationError::NotSigned));
        // The statement is covered by the signature: editing the type breaks it.
        let mut env: serde_json::Value = serde_json::from_str(&custom).unwrap();
        let st = String::from_utf8(b64(env["payload"].as_str().unwrap()).unwrap()).unwrap();
        let forged = st.replace("https://cosign.sigstore.dev/attestation/v1", "https://slsa.dev/provenance/v0.2");
        use base64::Engine;
        env["payload"] = base64::engine::general_purpose::STANDARD.encode(forged).into();
        let err = verify(env.to_string().as_bytes(), &key(), DIGEST, "slsaprovenance").unwrap_err();
        assert_eq!(err, AttestationError::NotSigned);
    }

    #[test]
    fn a_signed_statement_that_is_not_utf8_is_malformed() {
        // Found by the attestation fuzz target: invalid UTF-8 inside a field that is not
        // inspected used to pass, though other JSON parsers reject the statement.
        let signer = crate::testutil::TestSigner::new(3);
        let mut body = br#"{"predicateType": "custom", "subject": [{"digest": {"sha256": ""#.to_vec();
        body.extend_from_slice(&DIGEST.as_bytes()[7..]);
        body.extend_from_slice(b"\"}}], \"predicate\": {\"x\": \"\xff\"}}");
        let mut pae =
            format!("DSSEv1 {} {IN_TOTO_PAYLOAD_TYPE} {} ", IN_TOTO_PAYLOAD_TYPE.len(), body.len()).into_bytes();
        pae.extend_from_slice(&body);
        let sig = signer.sign_raw(&pae).signature;
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let env = serde_json::json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": b64.encode(&body),
                                     "signatures": [{"sig": sig}]});
        let err = verify(env.to_string().as_bytes(), &signer.trusted().key, DIGEST, "custom").unwrap_err();
        assert!(matches!(err, AttestationError::Malformed(_)), "{err}");
    }
}
