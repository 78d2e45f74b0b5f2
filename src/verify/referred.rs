//! Kyverno's referrer attestations (`attestations[].referrer`, verified by a notary
//! attestor): which artifact attached to the image counts, and what `extractPayload` reads.
//!
//! The first artifact, in the registry's order, whose manifest names the image's digest as
//! its `subject` and the attestation's type as its own, and that carries a notation
//! signature naming the artifact's own digest and chaining to the attestor's certificates
//! ([`super::verify_notary`], as for an image). Its payload is read as JSON. Kyverno takes
//! the subject and the type from the referrers list, which the referrers API builds from the
//! manifests; but the fallback tag that registries without that API use is written by
//! clients, so a registry or anyone who can push could list there a signed artifact of
//! another image, or of another type under this one. Both are inside the signed manifest, so
//! checking them binds the signature to this image and this attestation.

use super::notary::NotaryError;
use super::{verify_notary, Context, LayerFailure};
use crate::registry::{Referred, ReferredArtifact};
use crate::verify::signer::Signer;

/// Why no artifact of the type counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferredFailure {
    #[error("no artifact of type {artifact_type} is attached to the image ({location})")]
    None { artifact_type: String, location: String },
    #[error("no artifact of type {artifact_type} verifies: {}", .refused.join("; "))]
    Refused { artifact_type: String, refused: Vec<String> },
    #[error("the first artifact of type {artifact_type} attached to the image, {digest}, does not count: {why}")]
    First { artifact_type: String, digest: String, why: String },
}

/// The artifact that counted.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedArtifact {
    pub digest: String,
    /// Its payload as JSON, or why it cannot be read; `None` when it was not fetched.
    pub payload: Option<Result<serde_json::Value, String>>,
}

/// The first artifact of `found` (all of `artifact_type`, attached to `image_digest`) that
/// `signer` verifies.
pub fn verify_referred(
    found: &Referred,
    artifact_type: &str,
    image_digest: &str,
    signer: &Signer,
    cx: Context<'_>,
) -> Result<VerifiedArtifact, ReferredFailure> {
    if found.artifacts.is_empty() {
        return Err(ReferredFailure::None {
            artifact_type: artifact_type.to_string(),
            location: found.location.clone(),
        });
    }
    let mut refused = Vec::new();
    for artifact in &found.artifacts {
        match check(artifact, artifact_type, image_digest, signer, cx) {
            Ok(()) => {
                let payload = artifact.payload.as_ref().map(|p| {
                    p.as_ref().map_err(ToString::to_string).and_then(|bytes| {
                        serde_json::from_slice(bytes).map_err(|e| format!("its payload is not JSON: {e}"))
                    })
                });
                return Ok(VerifiedArtifact { digest: artifact.digest.clone(), payload });
            }
            Err(why) => refused.push(format!("{}: {why}", artifact.digest)),
        }
    }
    Err(ReferredFailure::Refused { artifact_type: artifact_type.to_string(), refused })
}

/// Kyverno ClusterPolicy `type: Notary` attestations: the first artifact of `found`, in the
/// registry's order, must be one `signer` verifies, and its payload a JSON object (Kyverno's
/// notary verifier stops at the first of the type, and reads its one layer into a map),
/// which is returned for the attestation's conditions.
pub fn verify_first(
    found: &Referred,
    artifact_type: &str,
    image_digest: &str,
    signer: &Signer,
    cx: Context<'_>,
) -> Result<serde_json::Value, ReferredFailure> {
    let Some(first) = found.artifacts.first() else {
        return Err(ReferredFailure::None {
            artifact_type: artifact_type.to_string(),
            location: found.location.clone(),
        });
    };
    let refuse = |why: String| ReferredFailure::First {
        artifact_type: artifact_type.to_string(),
        digest: first.digest.clone(),
        why,
    };
    check(first, artifact_type, image_digest, signer, cx).map_err(|e| refuse(e.to_string()))?;
    if first.spells_statement {
        // Kyverno would judge the manifest's own `predicate` and `type` instead of the
        // payload; rather than guess which one an admission would have read, none counts.
        return Err(refuse(
            "its manifest spells a `predicate` or `type` of its own, which the node does not read".into(),
        ));
    }
    match &first.payload {
        None => Err(refuse("its payload was not fetched".into())),
        Some(Err(e)) => Err(refuse(e.to_string())),
        Some(Ok(bytes)) => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(payload @ serde_json::Value::Object(_)) => Ok(payload),
            Ok(_) => Err(refuse("its payload is not a JSON object".into())),
            Err(e) => Err(refuse(format!("its payload is not JSON: {e}"))),
        },
    }
}

/// Does `signer` count `artifact` for the image? What the fetch asks before it downloads
/// the artifact's payload (its payload plays no part).
pub fn verifies(
    artifact: &ReferredArtifact,
    artifact_type: &str,
    image_digest: &str,
    signer: &Signer,
    cx: Context<'_>,
) -> bool {
    check(artifact, artifact_type, image_digest, signer, cx).is_ok()
}

/// Why a signer does not count one artifact as its attestation for the image.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("its manifest is attached to {0}, not to the image")]
    OtherSubject(String),
    #[error("its manifest names no subject, so nothing binds it to the image")]
    NoSubject,
    #[error("its manifest says its type is {said}, not {wanted}")]
    OtherType { said: String, wanted: String },
    #[error("it has no notation signature")]
    Unsigned,
    // The notary verifier speaks of images; here the target is the artifact.
    #[error("its notation signature is for {0}, not for this artifact")]
    SignedOther(String),
    #[error(transparent)]
    Signature(LayerFailure),
}

fn check(
    artifact: &ReferredArtifact,
    artifact_type: &str,
    image_digest: &str,
    signer: &Signer,
    cx: Context<'_>,
) -> Result<(), Refusal> {
    if artifact.subject.as_deref() != Some(image_digest) {
        return Err(match &artifact.subject {
            Some(other) => Refusal::OtherSubject(other.clone()),
            None => Refusal::NoSubject,
        });
    }
    if artifact.artifact_type.as_deref() != Some(artifact_type) {
        let said = artifact.artifact_type.as_deref().unwrap_or("none").to_string();
        return Err(Refusal::OtherType { said, wanted: artifact_type.to_string() });
    }
    verify_notary(&artifact.signatures, &artifact.digest, signer, cx).map_err(|e| match e {
        LayerFailure::NoNotarySignatures { .. } => Refusal::Unsigned,
        LayerFailure::Notary(NotaryError::WrongDigest { signed, .. }) => Refusal::SignedOther(signed),
        e => Refusal::Signature(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::vectors::{
        notation_referrer, notation_referrer_digest, notation_referrer_time, referred_artifact,
    };
    use crate::verify::notary::NotaryTrust;
    use crate::verify::trust::TrustRoot;

    fn signer(cert: &str) -> Signer {
        Signer::Notary(NotaryTrust::from_pem(&notation_referrer(cert)).unwrap())
    }

    fn check(
        artifacts: Vec<crate::registry::ReferredArtifact>,
        cert: &str,
    ) -> Result<VerifiedArtifact, ReferredFailure> {
        let found = Referred { location: "reg.io/app:sha256-x".into(), artifacts };
        let trust = TrustRoot::empty();
        let cx = Context { trust: &trust, now: notation_referrer_time() };
        verify_referred(&found, "sbom/cyclone-dx", &notation_referrer_digest("image"), &signer(cert), cx)
    }

    fn refused(artifacts: Vec<crate::registry::ReferredArtifact>, why: &str) {
        let e = check(artifacts, "trusted.crt").unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }

    #[test]
    fn a_notation_signed_sbom_attached_to_the_image_verifies_with_its_payload() {
        let v = check(vec![referred_artifact("sbom", &["good.jws"])], "trusted.crt").unwrap();
        assert_eq!(v.digest, notation_referrer_digest("sbom"));
        assert_eq!(v.payload.unwrap().unwrap()["bomFormat"], "CycloneDX");
        // Among artifacts that do not verify, in the registry's order, the first that does:
        // its digest and its payload, never another's.
        let mut unsigned = referred_artifact("elsewhere", &[]);
        unsigned.subject = Some(notation_referrer_digest("image"));
        unsigned.payload = Some(Ok(br#"{"bomFormat":"unsigned"}"#.to_vec()));
        let mut untrusted = referred_artifact("sbom", &["untrusted.jws"]);
        untrusted.payload = Some(Ok(br#"{"bomFormat":"untrusted"}"#.to_vec()));
        let good = referred_artifact("sbom", &["elsewhere.jws", "good.jws"]);
        let v = check(vec![unsigned.clone(), untrusted, good], "trusted.crt").unwrap();
        assert_eq!(v.digest, notation_referrer_digest("sbom"));
        assert_eq!(v.payload.unwrap().unwrap()["bomFormat"], "CycloneDX");
        let mut later = referred_artifact("sbom", &["good.jws"]);
        later.payload = Some(Ok(br#"{"bomFormat":"later"}"#.to_vec()));
        let v = check(vec![referred_artifact("sbom", &["good.jws"]), later], "trusted.crt").unwrap();
        assert_eq!(v.payload.unwrap().unwrap()["bomFormat"], "CycloneDX", "the first that verifies");
        // The other certificate verifies its own signer only.
        assert!(check(vec![referred_artifact("sbom", &["untrusted.jws"])], "other.crt").is_ok());
    }

    #[test]
    fn artifacts_that_do_not_verify_are_refused_each_with_its_reason() {
        let found = Referred { location: "reg.io/app:sha256-x".into(), artifacts: vec![] };
        let trust = TrustRoot::empty();
        let cx = Context { trust: &trust, now: notation_referrer_time() };
        let e = verify_referred(&found, "sbom/cyclone-dx", "sha256:x", &signer("trusted.crt"), cx).unwrap_err();
        assert_eq!(e.to_string(), "no artifact of type sbom/cyclone-dx is attached to the image (reg.io/app:sha256-x)");
        refused(vec![referred_artifact("sbom", &[])], "it has no notation signature");
        refused(vec![referred_artifact("sbom", &["untrusted.jws"])], "notary signing certificate is not trusted");
        // A signature over another artifact does not sign this one.
        let e = check(vec![referred_artifact("sbom", &["elsewhere.jws"])], "trusted.crt").unwrap_err().to_string();
        let other = notation_referrer_digest("elsewhere");
        assert!(e.contains(&format!("its notation signature is for {other}, not for this artifact")), "{e}");
        let mut no_subject = referred_artifact("sbom", &["good.jws"]);
        no_subject.subject = None;
        refused(vec![no_subject], "names no subject");
    }

    /// An SBOM the trusted signer signed for another image, listed among this image's
    /// referrers (a fallback tag is written by whoever pushes): its signature verifies, but
    /// the signed manifest names the other image as its subject. Without the subject check
    /// it counted for this image.
    #[test]
    fn a_signed_artifact_of_another_image_does_not_count_for_this_one() {
        let moved = referred_artifact("elsewhere", &["elsewhere.jws"]);
        assert_eq!(moved.subject.as_deref(), Some(notation_referrer_digest("other-image").as_str()));
        refused(vec![moved], "is attached to sha256:");
    }

    /// Review finding: the type was read only from the unsigned list. A signed artifact of
    /// another type (the same signer's SPDX document, say) listed under this type counted.
    #[test]
    fn a_signed_artifact_of_another_type_does_not_count_for_this_one() {
        let mut relabelled = referred_artifact("sbom", &["good.jws"]);
        assert_eq!(relabelled.artifact_type.as_deref(), Some("sbom/cyclone-dx"));
        let found = Referred { location: "reg.io/app:sha256-x".into(), artifacts: vec![relabelled.clone()] };
        let trust = TrustRoot::empty();
        let cx = Context { trust: &trust, now: notation_referrer_time() };
        let image = notation_referrer_digest("image");
        let e = verify_referred(&found, "vuln/scan", &image, &signer("trusted.crt"), cx).unwrap_err();
        assert!(e.to_string().contains("its manifest says its type is sbom/cyclone-dx, not vuln/scan"), "{e}");
        relabelled.artifact_type = None;
        refused(vec![relabelled], "its manifest says its type is none");
    }

    #[test]
    fn a_verified_artifact_whose_payload_is_not_json_still_verifies_but_cannot_be_read() {
        let mut a = referred_artifact("sbom", &["good.jws"]);
        a.payload = Some(Ok(b"not json".to_vec()));
        let v = check(vec![a.clone()], "trusted.crt").unwrap();
        assert!(v.payload.unwrap().unwrap_err().contains("not JSON"));
        a.payload = Some(Err(crate::registry::PayloadError::Layers(2)));
        let why = check(vec![a.clone()], "trusted.crt").unwrap().payload.unwrap().unwrap_err();
        assert_eq!(why, "the artifact has 2 layers; only the payload of a one-layer artifact is read");
        a.payload = None;
        assert!(check(vec![a], "trusted.crt").unwrap().payload.is_none());
    }
}
