//! A public key together with the signature scheme it is trusted under.
//!
//! sigstore's [`CosignVerificationKey`] fixes the digest by key type (P-256 with SHA-256,
//! P-384 with SHA-384, RSA PKCS#1 v1.5 with SHA-256). Keys held in a KMS, and policies that
//! set `hashAlgorithm`, name other combinations: RSA-PSS, or RSA and ECDSA over SHA-384 or
//! SHA-512. Those verify here through aws-lc-rs with exactly the named scheme; everything
//! else keeps sigstore's verifier, so keys without a stated scheme behave as before.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sigstore::crypto::{CosignVerificationKey, Signature};

/// The digest a signature is made over (policy-controller `key.hashAlgorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashAlgorithmError {
    #[error("{field} {value:?} is not a hash algorithm (sha224, sha256, sha384 or sha512)")]
    Invalid { field: String, value: String },
    #[error("{field} {value:?} is not supported on the node (sha256, sha384 or sha512)")]
    Unsupported { field: String, value: String },
}

/// A public key that cannot verify under the scheme asked of it, or a signature it does not
/// accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM public key: {0}")]
    NotPem(String),
    #[error("PEM block is {0:?}, expected \"PUBLIC KEY\"")]
    NotPublicKey(String),
    #[error("unsupported public key: {0}")]
    Unsupported(String),
    #[error("RSA padding is set for a key that is not RSA")]
    PaddingWithoutRsa,
    #[error("no stated scheme for a {0} key")]
    NoScheme(String),
    #[error("signature is not base64: {0}")]
    SignatureNotBase64(String),
    #[error("signature does not verify")]
    BadSignature,
    /// sigstore's verifier refused the signature, in its words.
    #[error("{0}")]
    Refused(String),
}

impl HashAlgorithm {
    /// Parse a policy's value; `field` names it in the error (`key.hashAlgorithm`).
    pub fn parse(value: &str, field: &str) -> Result<Self, HashAlgorithmError> {
        match value.to_ascii_lowercase().as_str() {
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            // policy-controller accepts it; no KMS signs with it and aws-lc-rs has no
            // ECDSA over SHA-224, so the authority fails closed rather than the load.
            "sha224" => Err(HashAlgorithmError::Unsupported { field: field.into(), value: value.into() }),
            _ => Err(HashAlgorithmError::Invalid { field: field.into(), value: value.into() }),
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        })
    }
}

/// RSA signature padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    Pkcs1v15,
    /// Salt as long as the digest (what GCP, AWS, Azure and Vault use).
    Pss,
}

/// How signatures by a key are made; unset parts take the key type's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Signing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashAlgorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<Padding>,
}

impl Signing {
    pub fn is_default(&self) -> bool {
        self.hash.is_none() && self.padding.is_none()
    }
}

type Algorithm = &'static dyn aws_lc_rs::signature::VerificationAlgorithm;

/// A key that verifies signatures under one scheme.
#[derive(Clone)]
pub enum PublicKey {
    /// Type-default scheme, sigstore's verifier.
    Default(CosignVerificationKey),
    /// A stated scheme; `der` is the SubjectPublicKeyInfo.
    Stated { der: Vec<u8>, algorithm: Algorithm, scheme: String },
}

impl From<CosignVerificationKey> for PublicKey {
    fn from(k: CosignVerificationKey) -> Self {
        PublicKey::Default(k)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme())
    }
}

impl PublicKey {
    /// A SubjectPublicKeyInfo under `signing`.
    pub fn from_der(der: &[u8], signing: Signing) -> Result<Self, KeyError> {
        use aws_lc_rs::signature as s;
        let default = CosignVerificationKey::try_from_der(der).map_err(|e| KeyError::Unsupported(e.to_string()))?;
        if signing.is_default() {
            return Ok(PublicKey::Default(default));
        }
        let h = signing.hash;
        let (algorithm, scheme): (Algorithm, String) = match (&default, signing.padding) {
            (CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_), None) => match h.unwrap_or(HashAlgorithm::Sha256) {
                HashAlgorithm::Sha256 => (&s::ECDSA_P256_SHA256_ASN1, "ecdsa-p256-sha256".into()),
                HashAlgorithm::Sha384 => (&s::ECDSA_P256_SHA384_ASN1, "ecdsa-p256-sha384".into()),
                HashAlgorithm::Sha512 => (&s::ECDSA_P256_SHA512_ASN1, "ecdsa-p256-sha512".into()),
            },
            (CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_), None) => match h.unwrap_or(HashAlgorithm::Sha384) {
                HashAlgorithm::Sha256 => (&s::ECDSA_P384_SHA256_ASN1, "ecdsa-p384-sha256".into()),
                HashAlgorithm::Sha384 => (&s::ECDSA_P384_SHA384_ASN1, "ecdsa-p384-sha384".into()),
                HashAlgorithm::Sha512 => (&s::ECDSA_P384_SHA512_ASN1, "ecdsa-p384-sha512".into()),
            },
            (CosignVerificationKey::ECDSA_P521_SHA512_ASN1(_), None) => match h.unwrap_or(HashAlgorithm::Sha512) {
                HashAlgorithm::Sha256 => (&s::ECDSA_P521_SHA256_ASN1, "ecdsa-p521-sha256".into()),
                HashAlgorithm::Sha384 => (&s::ECDSA_P521_SHA384_ASN1, "ecdsa-p521-sha384".into()),
                HashAlgorithm::Sha512 => (&s::ECDSA_P521_SHA512_ASN1, "ecdsa-p521-sha512".into()),
            },
            (CosignVerificationKey::RSA_PKCS1_SHA256(_), padding) => {
                let pss = padding == Some(Padding::Pss);
                match (pss, h.unwrap_or(HashAlgorithm::Sha256)) {
                    (false, HashAlgorithm::Sha256) => (&s::RSA_PKCS1_2048_8192_SHA256, "rsa-pkcs1v15-sha256".into()),
                    (false, HashAlgorithm::Sha384) => (&s::RSA_PKCS1_2048_8192_SHA384, "rsa-pkcs1v15-sha384".into()),
                    (false, HashAlgorithm::Sha512) => (&s::RSA_PKCS1_2048_8192_SHA512, "rsa-pkcs1v15-sha512".into()),
                    (true, HashAlgorithm::Sha256) => (&s::RSA_PSS_2048_8192_SHA256, "rsa-pss-sha256".into()),
                    (true, HashAlgorithm::Sha384) => (&s::RSA_PSS_2048_8192_SHA384, "rsa-pss-sha384".into()),
                    (true, HashAlgorithm::Sha512) => (&s::RSA_PSS_2048_8192_SHA512, "rsa-pss-sha512".into()),
                }
            }
            // Ed25519 hashes internally: policy-controller ignores hashAlgorithm for it too.
            (CosignVerificationKey::ED25519(_), None) => return Ok(PublicKey::Default(default)),
            (_, Some(_)) => return Err(KeyError::PaddingWithoutRsa),
            (other, None) => return Err(KeyError::NoScheme(format!("{other:?}"))),
        };
        Ok(PublicKey::Stated { der: der.to_vec(), algorithm, scheme })
    }

    /// The scheme, for messages and policy identities.
    pub fn scheme(&self) -> String {
        match self {
            PublicKey::Default(k) => match k {
                CosignVerificationKey::RSA_PSS_SHA256(_) => "rsa-pss-sha256",
                CosignVerificationKey::RSA_PKCS1_SHA256(_) => "rsa-pkcs1v15-sha256",
                CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_) => "ecdsa-p256-sha256",
                CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_) => "ecdsa-p384-sha384",
                CosignVerificationKey::ECDSA_P521_SHA512_ASN1(_) => "ecdsa-p521-sha512",
                CosignVerificationKey::ED25519(_) => "ed25519",
            }
            .to_string(),
            PublicKey::Stated { scheme, .. } => scheme.clone(),
        }
    }

    /// Whether `signature` over `msg` was made by this key under its scheme.
    pub fn verify_signature(&self, signature: Signature<'_>, msg: &[u8]) -> Result<(), KeyError> {
        match self {
            PublicKey::Default(k) => k.verify_signature(signature, msg).map_err(|e| KeyError::Refused(e.to_string())),
            PublicKey::Stated { der, algorithm, .. } => {
                let decoded;
                let raw = match signature {
                    Signature::Raw(r) => r,
                    Signature::Base64Encoded(b) => {
                        decoded = base64::engine::general_purpose::STANDARD
                            .decode(b.trim_ascii())
                            .map_err(|e| KeyError::SignatureNotBase64(e.to_string()))?;
                        &decoded
                    }
                };
                aws_lc_rs::signature::UnparsedPublicKey::new(*algorithm, der)
                    .verify(msg, raw)
                    .map_err(|_| KeyError::BadSignature)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestKey;
    use aws_lc_rs::signature as s;

    fn verifies(key: &PublicKey, sig: &[u8], msg: &[u8]) -> bool {
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
        key.verify_signature(Signature::Base64Encoded(b64.as_bytes()), msg).is_ok()
    }

    fn signing(hash: Option<HashAlgorithm>, padding: Option<Padding>) -> Signing {
        Signing { hash, padding }
    }

    #[test]
    fn ecdsa_keys_verify_under_the_stated_digest_only() {
        use HashAlgorithm::*;
        let cases: [(&'static s::EcdsaSigningAlgorithm, HashAlgorithm, HashAlgorithm); 4] = [
            (&s::ECDSA_P256_SHA256_ASN1_SIGNING, Sha256, Sha384),
            (&s::ECDSA_P256_SHA256_ASN1_SIGNING, Sha256, Sha512),
            (&s::ECDSA_P384_SHA384_ASN1_SIGNING, Sha384, Sha512),
            (&s::ECDSA_P384_SHA384_ASN1_SIGNING, Sha384, Sha256),
        ];
        for (alg, hash, other) in cases {
            let k = TestKey::ec(alg);
            let sig = k.sign(b"payload", &s::RSA_PKCS1_SHA256);
            let good = PublicKey::from_der(&k.spki(), signing(Some(hash), None)).unwrap();
            assert!(verifies(&good, &sig, b"payload"), "{}", good.scheme());
            assert!(!verifies(&good, &sig, b"other"), "{}", good.scheme());
            let wrong = PublicKey::from_der(&k.spki(), signing(Some(other), None)).unwrap();
            assert!(!verifies(&wrong, &sig, b"payload"), "{} must not verify a {hash} signature", wrong.scheme());
        }
    }

    #[test]
    fn rsa_keys_verify_pkcs1_and_pss_at_each_size_and_digest() {
        use aws_lc_rs::rsa::KeySize;
        let cases: [(KeySize, &'static dyn s::RsaEncoding, Padding, HashAlgorithm); 5] = [
            (KeySize::Rsa2048, &s::RSA_PKCS1_SHA256, Padding::Pkcs1v15, HashAlgorithm::Sha256),
            (KeySize::Rsa2048, &s::RSA_PSS_SHA256, Padding::Pss, HashAlgorithm::Sha256),
            (KeySize::Rsa3072, &s::RSA_PKCS1_SHA384, Padding::Pkcs1v15, HashAlgorithm::Sha384),
            (KeySize::Rsa4096, &s::RSA_PSS_SHA512, Padding::Pss, HashAlgorithm::Sha512),
            (KeySize::Rsa4096, &s::RSA_PKCS1_SHA512, Padding::Pkcs1v15, HashAlgorithm::Sha512),
        ];
        for (size, enc, padding, hash) in cases {
            let k = TestKey::rsa(size);
            let sig = k.sign(b"payload", enc);
            let good = PublicKey::from_der(&k.spki(), signing(Some(hash), Some(padding))).unwrap();
            assert!(verifies(&good, &sig, b"payload"), "{}", good.scheme());
            let other_padding = if padding == Padding::Pss { Padding::Pkcs1v15 } else { Padding::Pss };
            let wrong = PublicKey::from_der(&k.spki(), signing(Some(hash), Some(other_padding))).unwrap();
            assert!(!verifies(&wrong, &sig, b"payload"), "{} must not verify", wrong.scheme());
        }
    }

    #[test]
    fn a_key_without_a_stated_scheme_keeps_sigstores_default() {
        let k = TestKey::ec(&s::ECDSA_P256_SHA256_ASN1_SIGNING);
        let key = PublicKey::from_der(&k.spki(), Signing::default()).unwrap();
        assert!(matches!(key, PublicKey::Default(_)));
        assert!(verifies(&key, &k.sign(b"m", &s::RSA_PKCS1_SHA256), b"m"));
        let err = PublicKey::from_der(&k.spki(), signing(None, Some(Padding::Pss))).unwrap_err();
        assert!(err.to_string().contains("not RSA"), "{err}");
    }

    #[test]
    fn hash_algorithm_values_are_checked_with_the_field_named() {
        assert_eq!(HashAlgorithm::parse("sha384", "key.hashAlgorithm"), Ok(HashAlgorithm::Sha384));
        let e = HashAlgorithm::parse("shaINVALID", "key.hashAlgorithm").unwrap_err();
        assert!(matches!(e, HashAlgorithmError::Invalid { .. }));
        assert!(e.to_string().contains("key.hashAlgorithm \"shaINVALID\""), "{e}");
        assert!(matches!(HashAlgorithm::parse("sha224", "f"), Err(HashAlgorithmError::Unsupported { .. })));
    }
}
