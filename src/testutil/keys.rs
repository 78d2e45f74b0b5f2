//! Freshly generated ECDSA and RSA signers (aws-lc-rs), for the signature schemes KMS keys use.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as s, EcdsaKeyPair, KeyPair, RsaKeyPair};

/// A freshly generated signer and its SubjectPublicKeyInfo DER.
pub enum TestKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl TestKey {
    pub fn ec(alg: &'static s::EcdsaSigningAlgorithm) -> Self {
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        TestKey::Ec(EcdsaKeyPair::from_pkcs8(alg, doc.as_ref()).unwrap())
    }
    pub fn rsa(bits: aws_lc_rs::rsa::KeySize) -> Self {
        TestKey::Rsa(RsaKeyPair::generate(bits).unwrap())
    }
    pub fn spki(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        match self {
            TestKey::Ec(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            TestKey::Rsa(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
        }
    }
    pub fn pem(&self) -> String {
        crate::kms::spki_pem(&self.spki())
    }
    /// `rsa` is the padding/hash for RSA keys; EC keys sign with the algorithm they
    /// were made for.
    pub fn sign(&self, msg: &[u8], rsa: &'static dyn s::RsaEncoding) -> Vec<u8> {
        match self {
            TestKey::Ec(k) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
            TestKey::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(rsa, &SystemRandom::new(), msg, &mut sig).unwrap();
                sig
            }
        }
    }
}
