//! Signed payloads: the fuzzer's bytes are signed with a trusted key, so every input reaches
//! payload parsing. Whatever the payload says, a signature only verifies when the payload
//! binds exactly the digest being checked.
#![no_main]
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::{signature::Signer, DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use signet::policy::TrustedKey;
use signet::policy::{SignedBy, Signer as By, Tlog};
use signet::registry::{SignatureLayer, Signatures};
use signet::verify::trust::TrustRoot;
use signet::verify::{verify_signatures, Context};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let trusted = TrustedKey::from_pem(pem.as_bytes()).unwrap();
    let sig: DerSignature = key.sign(data);
    let layer = SignatureLayer {
        payload: data.to_vec(),
        signature: base64::engine::general_purpose::STANDARD.encode(sig.as_bytes()),
        ..Default::default()
    };
    let sigs = Signatures { location: "fuzz".into(), layers: vec![layer] };
    let by = SignedBy::new(By::Key(trusted), Tlog::Ignore);
    let trust = TrustRoot::empty();
    if verify_signatures(&sigs, DIGEST, &by, Context { trust: &trust, now: 0 }).is_ok() {
        let v: serde_json::Value = serde_json::from_slice(data).expect("a verified payload is JSON");
        assert_eq!(v["critical"]["image"]["docker-manifest-digest"], DIGEST);
    }
});
