//! Real ECDSA P-256 keys and cosign-shaped signatures for tests.
use base64::Engine;
use p256::ecdsa::{signature::Signer, DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

use crate::policy::TrustedKey;
use crate::registry::SignatureLayer;

pub struct TestSigner {
    key: SigningKey,
}

impl TestSigner {
    pub fn new(seed: u8) -> Self {
        let mut bytes = [7u8; 32];
        bytes[0] = seed.max(1);
        Self { key: SigningKey::from_slice(&bytes).unwrap() }
    }
    pub fn public_pem(&self) -> String {
        self.key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    }
    pub fn trusted(&self) -> TrustedKey {
        TrustedKey::from_pem(self.public_pem().as_bytes()).unwrap()
    }
    pub fn sign_raw(&self, payload: &[u8]) -> SignatureLayer {
        let sig: DerSignature = self.key.sign(payload);
        SignatureLayer {
            payload: payload.to_vec(),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.as_bytes()),
            ..Default::default()
        }
    }
    /// A DSSE envelope (as cosign attaches attestations) of an in-toto statement about
    /// `digest` with `predicate` of `predicate_type`, signed.
    pub fn attest(&self, digest: &str, predicate_type: &str, predicate: serde_json::Value) -> SignatureLayer {
        let b64 = base64::engine::general_purpose::STANDARD;
        let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "reg.io/app", "digest": {alg: hex}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        });
        let body = serde_json::to_vec(&statement).unwrap();
        let payload_type = crate::verify::dsse::IN_TOTO_PAYLOAD_TYPE;
        let sig: DerSignature = self.key.sign(&crate::verify::dsse::pae(payload_type, &body));
        let envelope = serde_json::json!({
            "payloadType": payload_type,
            "payload": b64.encode(&body),
            "signatures": [{"keyid": "", "sig": b64.encode(sig.as_bytes())}],
        });
        SignatureLayer {
            payload: serde_json::to_vec(&envelope).unwrap(),
            form: crate::registry::Form::Envelope,
            ..Default::default()
        }
    }
    /// A cosign simple-signing payload for `digest`, signed.
    pub fn sign_digest(&self, repo: &str, digest: &str) -> SignatureLayer {
        self.sign_raw(payload(repo, digest, "cosign container image signature").as_bytes())
    }
}

pub fn payload(repo: &str, digest: &str, type_name: &str) -> String {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{type_name}"}},"optional":null}}"#
    )
}
