//! Attestations: the fuzzer's bytes are the in-toto statement of a DSSE envelope signed with
//! a trusted key, so every input reaches statement parsing. An attestation only verifies
//! when the statement names the digest being checked and has the predicate type asked for.
#![no_main]
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::{signature::Signer, DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use signet::policy::TrustedKey;
use signet::verify::dsse::{verify, IN_TOTO_PAYLOAD_TYPE};

const HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const WANTED: &str = "https://slsa.dev/provenance/v1";

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let trusted = TrustedKey::from_pem(pem.as_bytes()).unwrap();
    let mut pae = format!("DSSEv1 {} {IN_TOTO_PAYLOAD_TYPE} {} ", IN_TOTO_PAYLOAD_TYPE.len(), data.len()).into_bytes();
    pae.extend_from_slice(data);
    let sig: DerSignature = key.sign(&pae);
    let b64 = base64::engine::general_purpose::STANDARD;
    let envelope = serde_json::json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": b64.encode(data),
        "signatures": [{"keyid": "", "sig": b64.encode(sig.as_bytes())}],
    });
    if verify(envelope.to_string().as_bytes(), &trusted.key, &format!("sha256:{HEX}"), WANTED).is_ok() {
        let st: serde_json::Value = serde_json::from_slice(data).expect("a verified statement is JSON");
        assert_eq!(st["predicateType"], WANTED);
        let subjects = st["subject"].as_array().expect("subjects");
        assert!(subjects.iter().any(|s| s["digest"]["sha256"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(HEX))));
    }
    // Raw bytes as an envelope, or as a sigstore bundle (its envelope, certificates and log
    // entry are read from registry data), must never panic either.
    let _ = verify(data, &trusted.key, &format!("sha256:{HEX}"), WANTED);
    let _ = signet::registry::bundle_attestation(data);
});
