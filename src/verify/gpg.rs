//! Red Hat "simple signing": an OpenPGP-signed JSON document naming the image digest, as
//! `skopeo copy --sign-by`, `podman` and Portieris use, kept in a lookaside store beside the
//! registry (`<base>/<repository>@sha256=<hex>/signature-N`).
//!
//! A signature counts only if one of the policy's OpenPGP keys (primary or subkey) verifies
//! it, and that key is valid now: a primary key neither revoked nor expired, a subkey bound
//! to it by a valid binding signature for signing (with the subkey's back-signature),
//! neither expired nor revoked (as gpgme, under containers/image, requires), the document is an `atomic container signature`, its digest is the digest that runs,
//! and its `docker-reference` matches the image the way the policy's `signedIdentity` says
//! (containers/image semantics; default `matchRepoDigestOrExact`). The signed content is
//! read with a size cap, so a compression bomb stops at the cap.

use std::fmt;
use std::io::Read;

use pgp::composed::{Deserializable, Message, SignedPublicKey};
use pgp::types::KeyDetails;
use serde::Deserialize;

/// The simple-signing type of container signatures (not cosign's type).
pub const ATOMIC_TYPE: &str = "atomic container signature";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum GpgError {
    #[error("signature is not an OpenPGP signed message: {0}")]
    Malformed(String),
    #[error("signed content is over the {0} byte limit")]
    TooLarge(usize),
    #[error("signature is not made by a trusted OpenPGP key")]
    NotSigned,
    #[error("signed document is unreadable: {0}")]
    BadPayload(String),
    #[error("signed document is for digest {signed}, not {expected}")]
    OtherDigest { signed: String, expected: String },
    #[error("signed document names {signed}, which does not match {expected} ({rule:?})")]
    OtherIdentity { signed: String, expected: String, rule: SignedIdentity },
}

/// OpenPGP key text a policy brings that yields no usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpgKeyError {
    #[error("not an armored OpenPGP public key: {0}")]
    NotArmored(String),
    #[error("bad OpenPGP public key: {0}")]
    BadKey(String),
    #[error("no OpenPGP public key in the text")]
    Empty,
}

/// How the signed `docker-reference` must relate to the image (containers/image names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignedIdentity {
    /// By digest: same repository; by tag: exactly the same reference.
    #[default]
    MatchRepoDigestOrExact,
    /// Same repository, any tag.
    MatchRepository,
    /// Exactly the same reference.
    MatchExact,
}

impl SignedIdentity {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "matchRepoDigestOrExact" => Some(Self::MatchRepoDigestOrExact),
            "matchRepository" => Some(Self::MatchRepository),
            "matchExact" => Some(Self::MatchExact),
            _ => None,
        }
    }
}

/// The keys and identity rule of a GPG authority.
#[derive(Clone, Debug)]
pub struct GpgSigner {
    pub keys: Vec<GpgKey>,
    pub identity: SignedIdentity,
}

/// An OpenPGP public key (certificate) a policy trusts.
#[derive(Clone)]
pub struct GpgKey {
    pub key: SignedPublicKey,
    pub fingerprint: String,
}

impl fmt::Debug for GpgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpgKey({})", self.fingerprint)
    }
}

impl GpgKey {
    /// Every key in ASCII-armored text (a keyring export may hold several).
    pub fn parse_armored(text: &str) -> Result<Vec<Self>, GpgKeyError> {
        let (keys, _) = SignedPublicKey::from_string_many(text).map_err(|e| GpgKeyError::NotArmored(e.to_string()))?;
        let keys = keys
            .map(|k| {
                let key = k.map_err(|e| GpgKeyError::BadKey(e.to_string()))?;
                let fingerprint = format!("{:X}", key.fingerprint());
                Ok(GpgKey { key, fingerprint })
            })
            .collect::<Result<Vec<_>, GpgKeyError>>()?;
        if keys.is_empty() {
            return Err(GpgKeyError::Empty);
        }
        Ok(keys)
    }
}

/// The primary key is not revoked (a verifying key revocation) and not past the expiry of
/// its newest valid self-certification.
fn key_valid(cert: &SignedPublicKey, now: u64) -> bool {
    use pgp::packet::SignatureType;
    let primary = &cert.primary_key;
    let revoked = cert
        .details
        .revocation_signatures
        .iter()
        .any(|sig| sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok());
    if revoked {
        return false;
    }
    let newest_self_cert = cert
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter().map(move |sig| (u, sig)))
        .filter(|(u, sig)| sig.verify_certification(primary, pgp::types::Tag::UserId, &u.id).is_ok())
        .map(|(_, sig)| sig)
        .max_by_key(|sig| sig.created().map(|t| t.as_secs()).unwrap_or(0));
    !newest_self_cert.is_some_and(|sig| expired(primary.created_at().as_secs(), sig.key_expiration_time(), now))
}

/// A subkey signs for the certificate only through its newest verifying binding signature
/// that grants signing and carries a verifying back-signature, and only while that
/// binding's expiry has not passed and no verifying revocation exists.
fn subkey_valid(primary: &pgp::packet::PublicKey, sub: &pgp::composed::SignedPublicSubKey, now: u64) -> bool {
    use pgp::packet::SignatureType;
    let revoked = sub.signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::SubkeyRevocation) && sig.verify_subkey_binding(primary, &sub.key).is_ok()
    });
    if revoked {
        return false;
    }
    let binding = sub
        .signatures
        .iter()
        .filter(|sig| sig.typ() == Some(SignatureType::SubkeyBinding))
        .filter(|sig| sig.verify_subkey_binding(primary, &sub.key).is_ok())
        .max_by_key(|sig| sig.created().map(|t| t.as_secs()).unwrap_or(0));
    let Some(binding) = binding else { return false };
    let back_signed =
        binding.embedded_signature().is_some_and(|back| back.verify_primary_key_binding(&sub.key, primary).is_ok());
    binding.key_flags().sign()
        && back_signed
        && !expired(sub.key.created_at().as_secs(), binding.key_expiration_time(), now)
}

/// OpenPGP expiry: a duration after the key's creation; none (or zero) never expires.
fn expired(created: u32, lifetime: Option<pgp::types::Duration>, now: u64) -> bool {
    match lifetime.map(|d| d.as_secs()) {
        None | Some(0) => false,
        Some(secs) => u64::from(created) + u64::from(secs) <= now,
    }
}

#[derive(Deserialize)]
struct Document {
    critical: Critical,
}
#[derive(Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    type_name: String,
    image: Image,
    identity: Identity,
}
#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}
#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    reference: String,
}

/// Verify one lookaside signature for the image `reference` (normalised, as it will run) at
/// `digest`.
pub fn verify(blob: &[u8], signer: &GpgSigner, reference: &str, digest: &str, limit: usize) -> Result<(), GpgError> {
    let keys = &signer.keys;
    let malformed = |e: pgp::errors::Error| GpgError::Malformed(e.to_string());
    let mut msg = if blob.starts_with(b"-----BEGIN") {
        Message::from_armor(blob).map_err(malformed)?.0
    } else {
        Message::from_bytes(blob).map_err(malformed)?
    };
    if msg.is_compressed() {
        msg = msg.decompress().map_err(malformed)?;
    }
    let mut content = Vec::new();
    (&mut msg).take(limit as u64 + 1).read_to_end(&mut content).map_err(|e| GpgError::Malformed(e.to_string()))?;
    if content.len() > limit {
        return Err(GpgError::TooLarge(limit));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let signed = keys.iter().any(|k| {
        let primary = &k.key.primary_key;
        // A revoked or expired certificate signs through none of its keys.
        key_valid(&k.key, now)
            && (msg.verify(primary).is_ok()
                || k.key.public_subkeys.iter().any(|s| subkey_valid(primary, s, now) && msg.verify(s).is_ok()))
    });
    if !signed {
        return Err(GpgError::NotSigned);
    }
    // JSON is UTF-8; serde_json does not check the strings it skips.
    let text = std::str::from_utf8(&content).map_err(|e| GpgError::BadPayload(e.to_string()))?;
    let doc: Document = serde_json::from_str(text).map_err(|e| GpgError::BadPayload(e.to_string()))?;
    if doc.critical.type_name != ATOMIC_TYPE {
        return Err(GpgError::BadPayload(format!(
            "critical.type is {:?}, not {ATOMIC_TYPE:?}",
            doc.critical.type_name
        )));
    }
    if doc.critical.image.digest != digest {
        return Err(GpgError::OtherDigest { signed: doc.critical.image.digest, expected: digest.to_string() });
    }
    let bad_ref = |r: &str| GpgError::BadPayload(format!("docker-reference {r:?} is not an image reference"));
    let signed = crate::reference::parse(&doc.critical.identity.reference)
        .map_err(|_| bad_ref(&doc.critical.identity.reference))?;
    let image = crate::reference::parse(reference).map_err(|_| bad_ref(reference))?;
    let same_repo = crate::reference::repository(&signed) == crate::reference::repository(&image);
    let ok = match signer.identity {
        SignedIdentity::MatchRepository => same_repo,
        SignedIdentity::MatchExact => signed.whole() == image.whole(),
        SignedIdentity::MatchRepoDigestOrExact if image.digest().is_some() => same_repo,
        SignedIdentity::MatchRepoDigestOrExact => signed.whole() == image.whole(),
    };
    if !ok {
        return Err(GpgError::OtherIdentity { signed: signed.whole(), expected: image.whole(), rule: signer.identity });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::vector;

    const IMAGE: &str = "registry.example/team/app:v1";
    const DIGEST: &str = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";

    fn blob(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign").join(name);
        std::fs::read(path).unwrap()
    }

    fn keys(name: &str) -> GpgSigner {
        GpgSigner { keys: GpgKey::parse_armored(&vector(name)).unwrap(), identity: SignedIdentity::default() }
    }

    #[test]
    fn a_skopeo_signature_verifies_for_its_digest_and_repository() {
        verify(&blob("gpg-signature-1"), &keys("gpg.pub.asc"), IMAGE, DIGEST, 64 << 10).unwrap();
    }

    #[test]
    fn other_key_digest_repository_or_garbage_fail() {
        let sig = blob("gpg-signature-1");
        assert_eq!(verify(&sig, &keys("gpg-other.pub.asc"), IMAGE, DIGEST, 64 << 10), Err(GpgError::NotSigned));
        let other = DIGEST.replace("479b", "0000");
        assert!(matches!(
            verify(&sig, &keys("gpg.pub.asc"), IMAGE, &other, 64 << 10),
            Err(GpgError::OtherDigest { .. })
        ));
        assert!(matches!(
            verify(&sig, &keys("gpg.pub.asc"), "registry.example/team/other:v1", DIGEST, 64 << 10),
            Err(GpgError::OtherIdentity { .. })
        ));
        // The signature names tag v1: by default another tag does not match, by digest it does.
        let v2 = "registry.example/team/app:v2";
        assert!(matches!(
            verify(&sig, &keys("gpg.pub.asc"), v2, DIGEST, 64 << 10),
            Err(GpgError::OtherIdentity { .. })
        ));
        let by_digest = format!("registry.example/team/app@{DIGEST}");
        verify(&sig, &keys("gpg.pub.asc"), &by_digest, DIGEST, 64 << 10).unwrap();
        let any_tag = GpgSigner { identity: SignedIdentity::MatchRepository, ..keys("gpg.pub.asc") };
        verify(&sig, &any_tag, v2, DIGEST, 64 << 10).unwrap();
        assert_eq!(verify(&sig, &keys("gpg.pub.asc"), IMAGE, DIGEST, 10), Err(GpgError::TooLarge(10)));
        assert!(matches!(
            verify(b"garbage", &keys("gpg.pub.asc"), IMAGE, DIGEST, 64 << 10),
            Err(GpgError::Malformed(_))
        ));
        let mut flipped = sig.clone();
        let n = flipped.len() - 20;
        flipped[n] ^= 0x55;
        assert!(verify(&flipped, &keys("gpg.pub.asc"), IMAGE, DIGEST, 64 << 10).is_err());
        assert!(GpgKey::parse_armored("not a key").is_err());
    }

    /// Regression (#13.7): a subkey signs only while validly bound, unexpired and
    /// unrevoked. Vectors from integration/make-gpg-subkey-vectors.sh (real gpg).
    #[test]
    fn subkeys_count_only_while_bound_unexpired_and_unrevoked() {
        let signer = keys("gpg-subkeys.pub.asc");
        verify(&blob("gpg-subkeys-sig-good"), &signer, IMAGE, DIGEST, 64 << 10).unwrap();
        for name in ["gpg-subkeys-sig-expired", "gpg-subkeys-sig-revoked"] {
            assert_eq!(verify(&blob(name), &signer, IMAGE, DIGEST, 64 << 10), Err(GpgError::NotSigned), "{name}");
        }
        // The same subkeys grafted onto another primary key: their bindings are by someone
        // else, so they sign for nobody here.
        let mut grafted = keys("gpg-other.pub.asc");
        grafted.keys[0].key.public_subkeys = signer.keys[0].key.public_subkeys.clone();
        assert_eq!(verify(&blob("gpg-subkeys-sig-good"), &grafted, IMAGE, DIGEST, 64 << 10), Err(GpgError::NotSigned));
    }
}
