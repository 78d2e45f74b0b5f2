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
