//! Kyverno ImageValidatingPolicy referrer attestations end to end in process: imported,
//! compiled and evaluated over what the registry seam brings (the notation-signed SBOM of
//! `testdata/notation-referrer`), with Kyverno's own sample validations
//! (test/cli/test-image-validating-policy/sample-policy in its repository).

use std::path::Path;
use std::sync::Arc;

use crate::evaluate::{evaluate, needs, Evaluation, Evidence};
use crate::policy::compile::{compile, FilesOnly};
use crate::policy::file::parse_documents;
use crate::policy::{NoMatchAction, PolicySet};
use crate::registry::{Form, Referred, RegistryError, SignatureLayer, Signatures};
use crate::testutil::vectors::{
    notation_referrer, notation_referrer_digest, notation_referrer_time, referred_artifact,
};
use crate::verify::trust::TrustRoot;
use crate::verify::Context;

const SBOM: &str = "sbom/cyclone-dx";

fn indent(text: &str, n: usize) -> String {
    text.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
}

/// Kyverno's sample policy with `cert` as the notary attestor's certificate, and `more`
/// attestors spliced in.
fn sample(cert: &str, more: &str, validations: &str) -> String {
    format!(
        "apiVersion: policies.kyverno.io/v1beta1\nkind: ImageValidatingPolicy\nmetadata: {{name: ivpol-sample}}\nspec:\n  \
         validationConfigurations: {{verifyDigest: false}}\n  matchImageReferences: [{{glob: \"reg.io/*\"}}]\n  \
         attestors:\n  - name: notary\n    notary:\n      certs:\n        value: |-\n{}{more}  attestations:\n  \
         - name: sbom\n    referrer:\n      type: {SBOM}\n  - name: provenance\n    intoto:\n      type: \
         https://slsa.dev/provenance/v1\n  validations:\n{validations}",
        indent(&notation_referrer(cert), 10)
    )
}

const KYVERNO_SAMPLE: &str = "  - expression: >-\n      images.containers.map(image, verifyImageSignatures(image, \
     [attestors.notary])).all(e, e > 0)\n    message: failed to verify image with notary cert\n  - expression: >-\n      \
     images.containers.map(image, verifyAttestationSignatures(image, attestations.sbom ,[attestors.notary])).all(e, e \
     > 0)\n    message: failed to verify attestation with notary cer\n  - expression: >-\n      \
     images.containers.map(image, extractPayload(image, attestations.sbom).bomFormat == 'CycloneDX').all(e, e)\n    \
     message: sbom is not a cyclone dx sbom\n";

fn set(yaml: &str) -> Arc<PolicySet> {
    let mut policies = Vec::new();
    for doc in parse_documents(Path::new("t.yaml"), yaml).unwrap() {
        for p in super::import(&doc).unwrap().policies {
            let c = compile(&p, &FilesOnly(Path::new("/"))).unwrap();
            assert!(c.warnings.is_empty(), "nothing fails closed: {:?}", c.warnings);
            policies.push(c.policy);
        }
    }
    PolicySet::assemble(policies, NoMatchAction::Deny)
}

/// The image notation-signed, with these SBOM artifacts attached.
fn evidence(artifacts: Vec<crate::registry::ReferredArtifact>) -> Evidence {
    let image = SignatureLayer {
        payload: notation_referrer("image.jws").into_bytes(),
        form: Form::Notary,
        ..Default::default()
    };
    Evidence {
        reference: "reg.io/app:1".into(),
        notary: Some(Ok(Signatures { location: "reg.io/app:sha256-x".into(), layers: vec![image] })),
        referred: [(SBOM.to_string(), Ok(Referred { location: "reg.io/app:sha256-x".into(), artifacts }))].into(),
        ..Default::default()
    }
}

fn eval(s: &PolicySet, ev: &Evidence) -> Evaluation {
    let matched = s.matching(&ev.reference, "reg.io/app", None);
    assert_eq!(matched.len(), 1);
    let trust = TrustRoot::empty();
    let cx = Context { trust: &trust, now: notation_referrer_time() };
    evaluate(&matched, ev, &notation_referrer_digest("image"), cx)
}

fn refused(s: &PolicySet, ev: &Evidence, why: &[&str]) {
    let e = eval(s, ev);
    assert!(!e.allowed, "admitted: {e:?}");
    for w in why {
        assert!(e.failures[0].contains(w), "{w:?} not in {e:?}");
    }
}

/// Regression (#19): a referrer attestation was "not verified on the node", so Kyverno's
/// sample policy refused every image. A notation-signed CycloneDX SBOM attached to the image
/// now passes it, and its payload is what `extractPayload` reads.
#[test]
fn kyverno_sample_admits_an_image_with_a_notation_signed_cyclonedx_sbom() {
    let s = set(&sample("trusted.crt", "", KYVERNO_SAMPLE));
    let e = eval(&s, &evidence(vec![referred_artifact("sbom", &["good.jws"])]));
    assert!(e.allowed, "{e:?}");
    // The policy asks for the SBOM referrers, with their payloads (extractPayload reads one).
    let matched = s.matching("reg.io/app:1", "reg.io/app", None);
    let n = needs(&matched);
    assert_eq!(n.referred, [(SBOM.to_string(), true)].into());
    assert!(n.notary, "{n:?}");
}

#[test]
fn kyverno_sample_refuses_an_sbom_that_does_not_verify_or_is_not_cyclonedx() {
    let s = set(&sample("trusted.crt", "", KYVERNO_SAMPLE));
    let why = "failed to verify attestation with notary cer";
    refused(&s, &evidence(vec![referred_artifact("sbom", &[])]), &[why, "it has no notation signature"]);
    refused(&s, &evidence(vec![referred_artifact("sbom", &["untrusted.jws"])]), &[why, "not trusted"]);
    refused(&s, &evidence(vec![]), &[why, "no artifact of type sbom/cyclone-dx is attached"]);
    refused(&s, &evidence(vec![referred_artifact("elsewhere", &["elsewhere.jws"])]), &[why, "not to the image"]);
    // Verified, but not a CycloneDX document: the third validation's message.
    let mut spdx = referred_artifact("sbom", &["good.jws"]);
    spdx.payload = Some(Ok(br#"{"spdxVersion":"SPDX-2.3","bomFormat":"SPDX"}"#.to_vec()));
    refused(&s, &evidence(vec![spdx]), &["sbom is not a cyclone dx sbom"]);
    // Verified, but its payload unreadable: extractPayload is an error, which refuses.
    let mut unreadable = referred_artifact("sbom", &["good.jws"]);
    unreadable.payload = Some(Err(crate::registry::PayloadError::Layers(2)));
    refused(&s, &evidence(vec![unreadable]), &["the artifact has 2 layers"]);
    // A registry error is said as such.
    let mut ev = evidence(vec![]);
    ev.referred.insert(
        SBOM.into(),
        Err(RegistryError::Request { location: "reg.io/app:sha256-x".into(), message: "connection refused".into() }),
    );
    refused(&s, &ev, &[why, "connection refused"]);
    // Not fetched at all (the evidence lacks it): refused, never passed.
    let mut ev = evidence(vec![referred_artifact("sbom", &["good.jws"])]);
    ev.referred.clear();
    refused(&s, &ev, &[why, "referrers of type sbom/cyclone-dx were not fetched"]);
    // The policy trusting the other certificate takes that signer's SBOM, not this one's.
    let other = set(&sample(
        "other.crt",
        "",
        KYVERNO_SAMPLE.split("  - expression").nth(2).map(|v| format!("  - expression{v}")).unwrap().as_str(),
    ));
    assert!(eval(&other, &evidence(vec![referred_artifact("sbom", &["untrusted.jws"])])).allowed);
    refused(&other, &evidence(vec![referred_artifact("sbom", &["good.jws"])]), &[why]);
}

/// Kyverno reads an unverified referrer's payload in `extractPayload`; the node does not:
/// whoever can push to the registry would choose what the validation sees.
#[test]
fn extract_payload_reads_only_a_verified_sbom() {
    let only_extract = "  - expression: >-\n      images.containers.map(image, extractPayload(image, \
                        attestations.sbom).bomFormat == 'CycloneDX').all(e, e)\n    message: not cyclonedx\n";
    let s = set(&sample("trusted.crt", "", only_extract));
    refused(&s, &evidence(vec![referred_artifact("sbom", &["good.jws"])]), &["cannot be read before it is verified"]);
}

/// As in Kyverno: a cosign attestor verifies no referrer attestation (it does not count),
/// and a notary attestor asked about an in-toto attestation is an error.
#[test]
fn attestors_verify_only_the_attestations_of_their_kind() {
    let k = crate::testutil::TestSigner::new(1);
    let cosign = format!(
        "  - name: cosign\n    cosign:\n      ctlog: {{insecureIgnoreTlog: true}}\n      key:\n        data: |\n{}",
        indent(&k.public_pem(), 10)
    );
    let count = "  - expression: >-\n      images.containers.map(image, verifyAttestationSignatures(image, \
                 attestations.sbom, [attestors.notary, attestors.cosign])).all(e, e == 2)\n    message: both\n";
    let s = set(&sample("trusted.crt", &cosign, count));
    refused(
        &s,
        &evidence(vec![referred_artifact("sbom", &["good.jws"])]),
        &["both", "a cosign attestor does not verify referrer attestations"],
    );
    let one = count.replace("e == 2", "e > 0");
    assert!(
        eval(&set(&sample("trusted.crt", &cosign, &one)), &evidence(vec![referred_artifact("sbom", &["good.jws"])]))
            .allowed
    );
    let intoto = "  - expression: >-\n      images.containers.map(image, verifyAttestationSignatures(image, \
                  attestations.provenance, [attestors.notary])).all(e, e > 0)\n    message: none\n";
    let s = set(&sample("trusted.crt", "", intoto));
    refused(&s, &evidence(vec![]), &["a notary attestor verifies only OCI 1.1 referrers as attestations"]);
}

/// Without a notary attestor nothing verifies a referrer, and nothing is fetched for it;
/// without extractPayload, no payload is.
#[test]
fn referrers_are_fetched_only_for_a_notary_attestor_and_payloads_only_when_read() {
    let verify_only = KYVERNO_SAMPLE.split("  - expression").nth(2).map(|v| format!("  - expression{v}")).unwrap();
    let s = set(&sample("trusted.crt", "", &verify_only));
    let matched = s.matching("reg.io/app:1", "reg.io/app", None);
    assert_eq!(needs(&matched).referred, [(SBOM.to_string(), false)].into());
    assert!(eval(&s, &evidence(vec![referred_artifact("sbom", &["good.jws"])])).allowed);
}

/// Review findings: `extractPayload` read the first verification's payload, so a
/// validation verifying the SBOM under the dev signer, then one verifying it under the
/// release signer and reading it, read dev's; and read the latest instead, a variable never
/// used (Kyverno evaluates variables only when used; the node evaluates them all first)
/// verifying dev's after release's made it read dev's. Verified payloads that disagree now
/// make `extractPayload` an error, whichever order they came in.
#[test]
fn extract_payload_refuses_verified_payloads_that_disagree() {
    let dev = format!(
        "  - name: dev\n    notary:\n      certs:\n        value: |-\n{}",
        indent(&notation_referrer("other.crt"), 10)
    );
    let release_reads = "  - expression: >-\n      images.containers.all(i, verifyAttestationSignatures(i, \
                         attestations.sbom, [attestors.notary]) > 0 && extractPayload(i, attestations.sbom).approved)\n    \
                         message: not approved by release\n";
    let dev_first = format!(
        "  - expression: images.containers.all(i, verifyAttestationSignatures(i, attestations.sbom, \
         [attestors.dev]) > 0)\n{release_reads}"
    );
    // The reviewer's case: `release` verifies and is used; `dev`, evaluated after it, is not.
    let gated = "  - expression: >-\n      variables.release && images.containers.all(i, extractPayload(i, \
                 attestations.sbom).approved)\n    message: not approved by release\n";
    let unused_variable = sample("trusted.crt", &dev, gated).replace(
        "  validations:\n",
        "  variables:\n  - name: release\n    expression: verifyAttestationSignatures('reg.io/app:1', \
         attestations.sbom, [attestors.notary]) > 0\n  - name: dev\n    expression: \
         verifyAttestationSignatures('reg.io/app:1', attestations.sbom, [attestors.dev]) > 0\n  validations:\n",
    );
    let by = |cert: &str, approved: bool| {
        let mut a = referred_artifact("sbom", &[cert]);
        a.payload = Some(Ok(format!(r#"{{"approved":{approved}}}"#).into_bytes()));
        a
    };
    for doc in [sample("trusted.crt", &dev, &dev_first), unused_variable] {
        let s = set(&doc);
        for (dev_approves, release_approves) in [(true, false), (false, true)] {
            let ev = evidence(vec![by("untrusted.jws", dev_approves), by("good.jws", release_approves)]);
            refused(&s, &ev, &["verified by attestors with different payloads"]);
        }
        // The same payload under both: read.
        let ev = evidence(vec![by("untrusted.jws", true), by("good.jws", true)]);
        assert!(eval(&s, &ev).allowed, "{doc}");
    }
}

/// Review finding: nothing showed that only a notary attestor makes referrers be fetched.
#[test]
fn cosign_attestors_alone_fetch_no_referrers() {
    let k = crate::testutil::TestSigner::new(1);
    let doc = format!(
        "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: c}}\nspec:\n  \
         matchImageReferences: [{{glob: \"reg.io/*\"}}]\n  attestors:\n  - name: cosign\n    cosign:\n      \
         ctlog: {{insecureIgnoreTlog: true}}\n      key:\n        data: |\n{}  attestations:\n  - name: sbom\n    \
         referrer: {{type: {SBOM}}}\n  validations:\n  - expression: images.containers.all(i, \
         verifyAttestationSignatures(i, attestations.sbom, [attestors.cosign]) > 0)\n",
        indent(&k.public_pem(), 10)
    );
    let s = set(&doc);
    let matched = s.matching("reg.io/app:1", "reg.io/app", None);
    assert!(needs(&matched).referred.is_empty(), "{:?}", needs(&matched));
    refused(
        &s,
        &evidence(vec![referred_artifact("sbom", &["good.jws"])]),
        &["a cosign attestor does not verify referrer attestations"],
    );
}

/// What the fetch asks before it downloads a payload (#19, left open by the referrer work:
/// every listed-as-signed artifact's payload was downloaded): only an artifact the policy's
/// notary attestor verifies, for the image, for a referrer attestation whose payload is read.
#[test]
fn only_payloads_a_policy_signer_verifies_are_wanted() {
    use crate::evaluate::payload_wanted;
    let trust = TrustRoot::empty();
    let cx = Context { trust: &trust, now: notation_referrer_time() };
    let image = notation_referrer_digest("image");
    let wanted = |s: &PolicySet, a: &crate::registry::ReferredArtifact| {
        let matched = s.matching("reg.io/app:1", "reg.io/app", None);
        // An IVP reads the first verified artifact, wherever it is listed.
        payload_wanted(&matched, SBOM, 3, a, &image, cx)
    };
    let s = set(&sample("trusted.crt", "", KYVERNO_SAMPLE));
    assert!(wanted(&s, &referred_artifact("sbom", &["good.jws"])));
    for refused in [
        referred_artifact("sbom", &["untrusted.jws"]),
        referred_artifact("sbom", &[]),
        referred_artifact("elsewhere", &["elsewhere.jws"]),
    ] {
        assert!(!wanted(&s, &refused), "{refused:?}");
    }
    // The trusted signer's artifact, of a type no attestation names, or read by no
    // validation: not wanted.
    let matched = s.matching("reg.io/app:1", "reg.io/app", None);
    let mut spdx = referred_artifact("sbom", &["good.jws"]);
    spdx.artifact_type = Some("application/spdx+json".into());
    assert!(!payload_wanted(&matched, "application/spdx+json", 0, &spdx, &image, cx));
    let verify_only = KYVERNO_SAMPLE.split("  - expression").nth(2).map(|v| format!("  - expression{v}")).unwrap();
    let s = set(&sample("trusted.crt", "", &verify_only));
    assert!(!wanted(&s, &referred_artifact("sbom", &["good.jws"])));
}

/// Review finding (#19): a notary attestor the node cannot check (its certificates an
/// expression) was taken for a cosign one: the image's cosign signatures and attestations
/// were fetched for it, and a referrer attestation it was asked about was refused as "a
/// cosign attestor does not verify referrer attestations" instead of with its own reason.
/// An attestor that never passes needs nothing fetched and says why it cannot.
#[test]
fn an_attestor_the_node_cannot_check_fetches_nothing_and_says_why() {
    // Only the attestation's validation, so that its refusal is the one said.
    let verify_only = KYVERNO_SAMPLE.split("  - expression").nth(2).map(|v| format!("  - expression{v}")).unwrap();
    let inline = format!("certs:\n        value: |-\n{}", indent(&notation_referrer("trusted.crt"), 10));
    let doc = sample("trusted.crt", "", &verify_only).replace(&inline, "certs:\n        expression: variables.certs\n");
    let mut policies = Vec::new();
    for d in parse_documents(Path::new("t.yaml"), &doc).unwrap() {
        for p in super::import(&d).unwrap().policies {
            let c = compile(&p, &FilesOnly(Path::new("/"))).unwrap();
            assert!(c.warnings.iter().any(|w| w.contains("not a string literal")), "{:?}", c.warnings);
            policies.push(c.policy);
        }
    }
    let s = PolicySet::assemble(policies, NoMatchAction::Deny);
    let matched = s.matching("reg.io/app:1", "reg.io/app", None);
    assert_eq!(needs(&matched), crate::evaluate::Needs::default());
    let e = eval(&s, &evidence(vec![referred_artifact("sbom", &["good.jws"])]));
    assert!(!e.allowed);
    let why = &e.failures[0];
    assert!(why.contains("failed to verify attestation with notary cer"), "{why}");
    assert!(why.contains("not a string literal") && !why.contains("cosign"), "{why}");
}
