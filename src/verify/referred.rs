//! Kyverno's referrer attestations (`attestations[].referrer`, verified by a notary
//! attestor): which artifact attached to the image counts, and what `extractPayload` reads.
//!
//! The first artifact, in the registry's order, whose manifest names the image's digest as
//! its `subject` and that carries a notation signature naming the artifact's own digest and
//! chaining to the attestor's certificates ([`super::verify_notary`], as for an image). Its
//! payload is read as JSON. Kyverno also accepts an artifact that names no subject or
//! another one, since the referrers API lists by subject; but the fallback tag that
//! registries without that API use is written by clients, so a registry or anyone who can
//! push could list a signed artifact of another image there. The subject is inside the
//! signed manifest, so checking it binds the signature to this image.

use super::{verify_notary, Context, LayerFailure};
use crate::registry::Referred;
use crate::verify::signer::Signer;

/// Why no artifact of the type counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferredFailure {
    #[error("no artifact of type {artifact_type} is attached to the image ({location})")]
    None { artifact_type: String, location: String },
    #[error("no artifact of type {artifact_type} verifies: {}", .refused.join("; "))]
    Refused { artifact_type: String, refused: Vec<String> },
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
        let why = match artifact.subject.as_deref() {
            Some(s) if s == image_digest => match verify_notary(&artifact.signatures, &artifact.digest, signer, cx) {
                Ok(()) => {
                    let payload = artifact.payload.as_ref().map(|p| {
                        p.as_ref().map_err(ToString::to_string).and_then(|bytes| {
                            serde_json::from_slice(bytes).map_err(|e| format!("its payload is not JSON: {e}"))
                        })
                    });
                    return Ok(VerifiedArtifact { digest: artifact.digest.clone(), payload });
                }
                Err(LayerFailure::NoNotarySignatures { .. }) => "it has no notation signature".to_string(),
                Err(e) => e.to_string(),
            },
            Some(other) => format!("its manifest is attached to {other}, not to the image"),
            None => "its manifest names no subject, so nothing binds it to the image".to_string(),
        };
        refused.push(format!("{}: {why}", artifact.digest));
    }
    Err(ReferredFailure::Refused { artifact_type: artifact_type.to_string(), refused })
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
        // Among artifacts that do not verify, in the registry's order, the first that does.
        let unsigned = referred_artifact("sbom", &[]);
        let v = check(vec![unsigned, referred_artifact("sbom", &["untrusted.jws", "good.jws"])], "trusted.crt");
        assert!(v.is_ok(), "{v:?}");
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
        refused(vec![referred_artifact("sbom", &["elsewhere.jws"])], "not for the image");
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
