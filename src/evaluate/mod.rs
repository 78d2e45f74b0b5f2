//! Policy evaluation for one image digest: every matching policy must pass, each of its
//! requirements by enough authorities, over the evidence fetched for the digest.
//!
//! Vacuous truth never admits: no policy, no requirement, or a requirement that needs no
//! authority fails. Warn-mode failures are reported but do not deny.
//!
//! This floor stands on both [`crate::policy`] (what must hold) and [`crate::verify`] (which
//! signatures count), so neither of those reads the other's judgement.
//!
//! - [`cel`]: CEL validations (Kyverno ImageValidatingPolicy) over the evidence.
//! - [`explain`]: which policies match an image and what each asks, for `signet policy explain`.

pub mod cel;
pub mod explain;

use crate::conditions::Conditions;
use crate::policy::{AuthorityKind, Mode, Policy, SignedBy};
use crate::registry::{Referred, ReferredArtifact, RegistryError, Signatures};
use crate::verify::layers::{
    verify_attestations, verify_notary, verify_signatures, verify_simple_signing, LayerFailure,
};
use crate::verify::signer::{Attached, Signer};
use crate::verify::Context;

/// Everything fetched for one digest. `None`: not needed by the matching policies.
#[derive(Debug, Default)]
pub struct Evidence {
    /// The image the evidence is about, normalised (`registry/path:tag` or `@digest`).
    pub reference: String,
    /// The pod's namespace, when known: CEL validations may read it.
    pub namespace: Option<String>,
    /// The namespace's labels, when the cluster has told them (CEL's `namespaceObject`).
    pub namespace_labels: Option<std::sync::Arc<crate::policy::labels::Labels>>,
    /// The pod's labels and annotations, when the runtime told them (CEL's `object.metadata`).
    pub pod: Option<std::sync::Arc<crate::decision::PodMetadata>>,
    pub signatures: Option<Result<Signatures, RegistryError>>,
    pub attestations: Option<Result<Signatures, RegistryError>>,
    /// GPG simple-signing signatures from the lookaside store.
    pub simple_signing: Option<Result<Signatures, RegistryError>>,
    /// Notary (notation) JWS envelopes from the image's OCI referrers.
    pub notary: Option<Result<Signatures, RegistryError>>,
    /// Signatures and attestations for the digest kept in other repositories, by
    /// `registry/path`, for signers whose policy names one.
    pub elsewhere: std::collections::BTreeMap<Attached, Elsewhere>,
    /// Artifacts attached to the digest as OCI referrers (Kyverno's referrer attestations),
    /// by artifact type.
    pub referred: std::collections::BTreeMap<String, Result<Referred, RegistryError>>,
}

/// What was fetched from one other signature repository.
#[derive(Debug, Clone, Default)]
pub struct Elsewhere {
    pub signatures: Option<Result<Signatures, RegistryError>>,
    pub attestations: Option<Result<Signatures, RegistryError>>,
}

impl Evidence {
    /// The artifacts of `artifact_type` attached to the image, or why they are not here.
    pub(crate) fn referred_of(&self, artifact_type: &str) -> Result<&Referred, AuthorityFailure> {
        match self.referred.get(artifact_type) {
            None => Err(AuthorityFailure::ReferrersNotFetched(artifact_type.to_string())),
            Some(Err(e)) => Err(AuthorityFailure::Registry(e.clone())),
            Some(Ok(found)) => Ok(found),
        }
    }

    /// The image signatures (or, with `attestations`, the attestations) a signer reads: from
    /// its own signature repository when its policy names one, else the image's.
    pub fn for_signer(
        &self,
        source: Option<&Attached>,
        attestations: bool,
    ) -> &Option<Result<Signatures, RegistryError>> {
        const NONE: Option<Result<Signatures, RegistryError>> = None;
        match source {
            None if attestations => &self.attestations,
            None => &self.signatures,
            Some(repo) => match self.elsewhere.get(repo) {
                Some(e) if attestations => &e.attestations,
                Some(e) => &e.signatures,
                None => &NONE,
            },
        }
    }
}

/// Does an authority set need image signatures, attestations, or neither?
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    pub signatures: bool,
    pub attestations: bool,
    pub simple_signing: bool,
    pub notary: bool,
    /// Other places to fetch from (another repository, a tag prefix), with (signatures,
    /// attestations).
    pub elsewhere: std::collections::BTreeMap<Attached, (bool, bool)>,
    /// Artifact types of referrers to fetch, each with whether their payloads are read.
    pub referred: std::collections::BTreeMap<String, bool>,
}

impl Needs {
    /// Signatures (or attestations) for a signer, from its repository or the image's.
    fn add(&mut self, source: Option<&Attached>, signatures: bool, attestations: bool) {
        match source {
            None => {
                self.signatures |= signatures;
                self.attestations |= attestations;
            }
            Some(repo) => {
                let e = self.elsewhere.entry(repo.clone()).or_default();
                e.0 |= signatures;
                e.1 |= attestations;
            }
        }
    }
}

/// A notary signer that verifies artifacts attached as referrers: what to fetch for it
/// ([`needs`]) and whose payloads to download ([`payload_wanted`]) both come from here.
struct ReferrerReader<'a> {
    artifact_type: &'a str,
    /// Its payload is read (`extractPayload`, a ClusterPolicy attestation).
    payload: bool,
    /// Only the first artifact of the type counts (Kyverno ClusterPolicy); else the first
    /// the signer verifies (ImageValidatingPolicy).
    first_only: bool,
    by: &'a SignedBy,
}

fn referrer_readers<'a>(policies: &'a [&'a Policy]) -> impl Iterator<Item = ReferrerReader<'a>> + 'a {
    policies.iter().flat_map(|p| p.authorities()).flat_map(|a| {
        let mut readers = Vec::new();
        match &a.kind {
            // Only a notary attestor verifies an artifact attached as a referrer.
            AuthorityKind::Cel(c) => {
                for (artifact_type, payload) in cel::referred(c) {
                    for k in c.attestors.values() {
                        if let AuthorityKind::Signed(by) = k {
                            if k.is_notary() {
                                readers.push(ReferrerReader { artifact_type, payload, first_only: false, by });
                            }
                        }
                    }
                }
            }
            // A ClusterPolicy notary attestation reads the first artifact of its type whole.
            AuthorityKind::Signed(by) if a.kind.is_notary() => {
                for artifact_type in &by.attestations {
                    readers.push(ReferrerReader { artifact_type, payload: true, first_only: true, by });
                }
            }
            _ => {}
        }
        readers
    })
}

/// Does a notary signer of `policies` verify `artifact`, at `position` among those of its
/// type, for a referrer attestation of `artifact_type` whose payload is read? Only those
/// payloads are downloaded ([`crate::registry::PayloadFilter`]); a later artifact where only
/// the first counts would only take budget from it.
pub fn payload_wanted(
    policies: &[&Policy],
    artifact_type: &str,
    position: usize,
    artifact: &ReferredArtifact,
    digest: &str,
    cx: Context<'_>,
) -> bool {
    referrer_readers(policies).any(|r| {
        r.artifact_type == artifact_type
            && r.payload
            && (position == 0 || !r.first_only)
            && crate::verify::referred::verifies(artifact, artifact_type, digest, &r.by.signer, cx)
    })
}

pub fn needs(policies: &[&Policy]) -> Needs {
    let mut n = Needs::default();
    for a in policies.iter().flat_map(|p| p.authorities()) {
        if let AuthorityKind::Cel(c) = &a.kind {
            let (signatures, attestations) = cel::needs(c);
            let has_notary = c.attestors.values().any(AuthorityKind::is_notary);
            // A notary attestor's image signatures are its referrers, not cosign's.
            n.notary |= signatures && has_notary;
            // Cosign attestors' signatures; one that can never pass (unsupported, a key that
            // could not be had) needs nothing fetched.
            for k in c.attestors.values().filter(|k| !k.is_notary()) {
                if let AuthorityKind::Signed(s) = k {
                    n.add(s.source.as_ref(), signatures, attestations);
                }
            }
        }
        if let AuthorityKind::Signed(s) = &a.kind {
            if matches!(s.signer, Signer::Notary(_)) {
                // Its attestations are referrers of their types (below); its image
                // signature, referrers of the image.
                n.notary |= s.attestations.is_empty();
            } else if matches!(s.signer, Signer::Gpg(_)) {
                n.simple_signing = true;
            } else {
                let attestations = !s.attestations.is_empty();
                n.add(s.source.as_ref(), !attestations, attestations);
            }
        }
    }
    for r in referrer_readers(policies) {
        *n.referred.entry(r.artifact_type.to_string()).or_default() |= r.payload;
    }
    n
}

/// Simple-signing documents are a few hundred bytes; this bounds decompression.
const GPG_CONTENT_LIMIT: usize = 64 << 10;

/// Outcome of evaluating every matching policy for one image digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// False if any enforcing policy failed.
    pub allowed: bool,
    /// Per failing policy: `policy "name": reason`. Warn-mode failures are listed too.
    pub failures: Vec<String>,
    /// Per passing policy: which authority satisfied it.
    pub satisfied: Vec<String>,
    /// True when only warn-mode policies failed.
    pub warned: bool,
}

/// Evaluate matching policies: all must pass (AND); a policy passes when each of its
/// requirements has `count` satisfied authorities (policy-controller: one requirement, count 1).
pub fn evaluate(policies: &[&Policy], evidence: &Evidence, digest: &str, cx: Context<'_>) -> Evaluation {
    // An empty set of constraints must never read as "allowed": callers apply the no-match
    // action before getting here, so reaching this with nothing is a bug we fail closed on.
    if policies.is_empty() {
        return Evaluation {
            allowed: false,
            failures: vec!["no policy to evaluate".into()],
            satisfied: vec![],
            warned: false,
        };
    }
    let mut eval = Evaluation { allowed: true, failures: vec![], satisfied: vec![], warned: false };
    for policy in policies {
        match evaluate_policy(policy, evidence, digest, cx) {
            Ok(authority) => {
                eval.satisfied.push(format!("policy {:?} satisfied by authority {authority:?}", policy.name))
            }
            Err(reason) => {
                eval.failures.push(format!("policy {:?}: {reason}", policy.name));
                match policy.mode {
                    Mode::Enforce => eval.allowed = false,
                    Mode::Warn => eval.warned = true,
                }
            }
        }
    }
    eval
}

/// Why one authority is not satisfied for the digest.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityFailure {
    #[error("static authority always fails")]
    StaticFail,
    #[error("cannot be checked on this node: {0}")]
    Unsupported(String),
    #[error("attestations signed with OpenPGP keys are not supported")]
    GpgAttestations,
    #[error(transparent)]
    Referred(#[from] crate::verify::referred::ReferredFailure),
    #[error("referrers of type {0} were not fetched")]
    ReferrersNotFetched(String),
    #[error("signatures were not fetched")]
    NotFetched,
    /// The fetch failed: said as such, never as "unsigned".
    #[error(transparent)]
    Registry(RegistryError),
    #[error(transparent)]
    Layer(#[from] LayerFailure),
    /// A CEL validation that failed or could not be evaluated, in its own words.
    #[error(transparent)]
    Cel(cel::CelFailure),
    /// A verified attestation whose statement fails the policy's conditions, or on which
    /// they cannot be judged (a missing field, a bad time).
    #[error("attestation {attested}: {why}")]
    Conditions { attested: String, why: String },
}

/// Why a policy does not pass.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFailure {
    #[error("policy has no requirements")]
    NoRequirements,
    #[error("requirement {index} needs no authority, which never counts as passing")]
    EmptyRequirement { index: usize },
    /// Fewer than `count` of a requirement's authorities were satisfied; `failed` holds each
    /// tried authority's name and reason.
    #[error("{}", unmet(*.count, *.of, *.satisfied, .failed))]
    Unmet { count: usize, of: usize, satisfied: usize, failed: Vec<(String, AuthorityFailure)> },
}

fn unmet(count: usize, of: usize, satisfied: usize, failed: &[(String, AuthorityFailure)]) -> String {
    let need =
        if count == 1 { String::new() } else { format!("{count} of {of} authorities needed, {satisfied} satisfied: ") };
    let reasons: Vec<String> = failed.iter().map(|(name, r)| format!("authority {name:?}: {r}")).collect();
    format!("{need}{}", reasons.join("; "))
}

fn evaluate_policy(
    policy: &Policy,
    evidence: &Evidence,
    digest: &str,
    cx: Context<'_>,
) -> Result<String, PolicyFailure> {
    // Vacuous truth must not admit anything: no requirement, or a requirement that needs
    // nothing, is a policy that fails.
    if policy.requirements.is_empty() {
        return Err(PolicyFailure::NoRequirements);
    }
    let mut passed_by = Vec::new();
    for (index, req) in policy.requirements.iter().enumerate() {
        if req.count == 0 || req.authorities.is_empty() {
            return Err(PolicyFailure::EmptyRequirement { index });
        }
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for authority in &req.authorities {
            match check_authority(&authority.kind, evidence, digest, cx) {
                Ok(()) => ok.push(authority.name.clone()),
                Err(r) => failed.push((authority.name.clone(), r)),
            }
            if ok.len() >= req.count {
                break;
            }
        }
        if ok.len() < req.count {
            return Err(PolicyFailure::Unmet {
                count: req.count,
                of: req.authorities.len(),
                satisfied: ok.len(),
                failed,
            });
        }
        passed_by.extend(ok);
    }
    Ok(passed_by.join(", "))
}

/// What was fetched for an authority, or why there is nothing to check.
fn fetched(found: &Option<Result<Signatures, RegistryError>>) -> Result<&Signatures, AuthorityFailure> {
    match found {
        None => Err(AuthorityFailure::NotFetched),
        Some(Err(e)) => Err(AuthorityFailure::Registry(e.clone())),
        Some(Ok(s)) => Ok(s),
    }
}

pub(crate) fn check_authority(
    kind: &AuthorityKind,
    evidence: &Evidence,
    digest: &str,
    cx: Context<'_>,
) -> Result<(), AuthorityFailure> {
    match kind {
        AuthorityKind::StaticPass => Ok(()),
        AuthorityKind::StaticFail => Err(AuthorityFailure::StaticFail),
        AuthorityKind::Unsupported(reason) => Err(AuthorityFailure::Unsupported(reason.clone())),
        AuthorityKind::Cel(c) => cel::check(c, evidence, digest, cx).map_err(AuthorityFailure::Cel),
        AuthorityKind::Signed(by) if matches!(by.signer, Signer::Gpg(_)) => {
            if !by.attestations.is_empty() {
                return Err(AuthorityFailure::GpgAttestations);
            }
            let sigs = fetched(&evidence.simple_signing)?;
            Ok(verify_simple_signing(sigs, &evidence.reference, digest, &by.signer, GPG_CONTENT_LIMIT)?)
        }
        AuthorityKind::Signed(by) if matches!(by.signer, Signer::Notary(_)) => {
            if by.attestations.is_empty() {
                return Ok(verify_notary(fetched(&evidence.notary)?, digest, &by.signer, cx)?);
            }
            for artifact_type in &by.attestations {
                let found = evidence.referred_of(artifact_type)?;
                let payload = crate::verify::referred::verify_first(found, artifact_type, digest, &by.signer, cx)?;
                if let Some(c) = &by.conditions {
                    // Kyverno's notary statement: the artifact's type, its payload the predicate
                    // (unless the referrer manifest spells a `predicate` of its own, which the
                    // node does not read).
                    let statement = serde_json::json!({"type": artifact_type, "predicate": payload});
                    judge(c, &statement, artifact_type, cx.now)?;
                }
            }
            Ok(())
        }
        AuthorityKind::Signed(by) if by.attestations.is_empty() => {
            Ok(verify_signatures(fetched(evidence.for_signer(by.source.as_ref(), false))?, digest, by, cx)?)
        }
        AuthorityKind::Signed(by) => {
            let atts = fetched(evidence.for_signer(by.source.as_ref(), true))?;
            let Some(c) = &by.conditions else {
                return Ok(verify_attestations(atts, digest, by, cx)?);
            };
            for predicate in &by.attestations {
                for statement in crate::verify::layers::verified_statements(atts, digest, predicate, by, cx)? {
                    judge(c, &statement, predicate, cx.now)?;
                }
            }
            Ok(())
        }
    }
}

/// Kyverno ClusterPolicy attestation conditions over one verified statement of `attested`.
fn judge(c: &Conditions, statement: &serde_json::Value, attested: &str, now: i64) -> Result<(), AuthorityFailure> {
    let fail = |why: String| AuthorityFailure::Conditions { attested: attested.to_string(), why };
    match c.judge(statement, now) {
        Ok(v) if v.holds => Ok(()),
        Ok(v) if v.message.is_empty() => Err(fail("the conditions do not hold".into())),
        Ok(v) => Err(fail(format!("the conditions do not hold: {}", v.message))),
        Err(e) => Err(fail(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::matching::ImageGlob;
    use crate::policy::{Authority, Requirement};
    use crate::testutil::verify::{context as cx, sigs, D1};
    use crate::testutil::TestSigner;

    fn ev(found: Result<Signatures, RegistryError>) -> Evidence {
        Evidence { signatures: Some(found), ..Default::default() }
    }

    fn policy(name: &str, mode: Mode, kinds: Vec<AuthorityKind>) -> Policy {
        let authorities =
            kinds.into_iter().enumerate().map(|(i, kind)| Authority { name: format!("a{i}"), kind }).collect();
        Policy::any_of(name, vec![ImageGlob::new("reg.io/**").unwrap()], authorities, Mode::Enforce).with_mode(mode)
    }

    /// Regression: Kyverno ClusterPolicy attestation conditions failed closed on every
    /// image. As Kyverno judges them: every statement of the type the attestor signed
    /// must satisfy them (one failing refuses, even beside one that holds); statements
    /// by others, of other types, or about other digests are not judged.
    #[test]
    fn every_attested_statement_by_the_signer_must_satisfy_the_conditions() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let slsa = "https://slsa.dev/provenance/v1";
        let written: Vec<serde_json::Value> = serde_yaml::from_str(
            "- all:\n  - {key: '{{ buildDefinition.buildType }}', operator: Equals, value: 'https://example.com/*', message: untrusted build}\n",
        )
        .unwrap();
        let by = SignedBy {
            attestations: vec![slsa.into()],
            conditions: Some(Conditions::parse(&written).unwrap()),
            ..SignedBy::new(Signer::Key(a.trusted()), crate::verify::signer::Tlog::Ignore)
        };
        let p = policy("slsa", Mode::Enforce, vec![AuthorityKind::Signed(Box::new(by))]);
        let build = |t: &str| serde_json::json!({"buildDefinition": {"buildType": t}});
        let judged = |layers: Vec<crate::registry::SignatureLayer>| {
            let ev = Evidence { attestations: Some(Ok(sigs(layers))), ..Default::default() };
            evaluate(&[&p], &ev, D1, cx())
        };
        let good = a.attest(D1, slsa, build("https://example.com/v1"));
        let bad = a.attest(D1, slsa, build("https://evil.example/v1"));
        assert!(judged(vec![good.clone()]).allowed);
        let e = judged(vec![good.clone(), bad.clone()]);
        assert!(!e.allowed, "one failing statement refuses: {e:?}");
        assert!(
            e.failures[0].contains(&format!("attestation {slsa}: the conditions do not hold: untrusted build")),
            "{e:?}"
        );
        // Not judged: another signer's, another type's, another digest's.
        let others = vec![
            good.clone(),
            b.attest(D1, slsa, build("https://evil.example/v1")),
            a.attest(D1, "https://spdx.dev/Document", build("https://evil.example/v1")),
            a.attest(crate::testutil::verify::D2, slsa, build("x")),
        ];
        assert!(judged(others).allowed);
        // None by the signer is the usual failure, not a condition's.
        let e = judged(vec![b.attest(D1, slsa, build("https://example.com/v1"))]);
        assert!(!e.allowed && !e.failures[0].contains("conditions"), "{e:?}");
        // A statement lacking the field fails closed, naming it.
        let e = judged(vec![a.attest(D1, slsa, serde_json::json!({"other": 1}))]);
        assert!(!e.allowed && e.failures[0].contains("\"buildDefinition\" not found"), "{e:?}");
    }

    #[test]
    fn all_matching_policies_must_pass_and_any_authority_passes_one() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let found = Ok(sigs(vec![a.sign_digest("reg.io/app", D1)]));
        let p_or =
            policy("either", Mode::Enforce, vec![AuthorityKind::key(b.trusted()), AuthorityKind::key(a.trusted())]);
        let p_b = policy("only-b", Mode::Enforce, vec![AuthorityKind::key(b.trusted())]);
        let e = evaluate(&[&p_or], &ev(found.clone()), D1, cx());
        assert!(e.allowed && e.failures.is_empty(), "{e:?}");
        let e = evaluate(&[&p_or, &p_b], &ev(found.clone()), D1, cx());
        assert!(!e.allowed);
        assert_eq!(e.failures.len(), 1);
        assert!(e.failures[0].contains("only-b"));
    }

    #[test]
    fn warn_mode_policy_failure_allows_but_is_reported() {
        let b = TestSigner::new(2);
        let p = policy("audit", Mode::Warn, vec![AuthorityKind::key(b.trusted())]);
        let e = evaluate(&[&p], &ev(Ok(sigs(vec![]))), D1, cx());
        assert!(e.allowed && e.warned);
        assert!(e.failures[0].contains("no signatures"));
    }

    #[test]
    fn registry_error_is_reported_as_such_not_as_unsigned() {
        let b = TestSigner::new(2);
        let p = policy("p", Mode::Enforce, vec![AuthorityKind::key(b.trusted())]);
        let err =
            Err(RegistryError::Request { location: "reg.io/app:sig".into(), message: "connection refused".into() });
        let e = evaluate(&[&p], &ev(err.clone()), D1, cx());
        assert!(!e.allowed);
        assert!(e.failures[0].contains("connection refused"), "{e:?}");
        assert!(!e.failures[0].contains("no signatures"));
    }

    #[test]
    fn empty_constraint_set_never_allows() {
        assert!(!evaluate(&[], &Evidence::default(), D1, cx()).allowed);
        let empty = policy("empty", Mode::Enforce, vec![]);
        assert!(!evaluate(&[&empty], &Evidence::default(), D1, cx()).allowed);
    }

    #[test]
    fn threshold_counts_distinct_authorities_and_all_requirements_must_hold() {
        let (a, b, c) = (TestSigner::new(1), TestSigner::new(2), TestSigner::new(3));
        let found = Ok(sigs(vec![a.sign_digest("reg.io/app", D1), b.sign_digest("reg.io/app", D1)]));
        let auth =
            |i: usize, s: &TestSigner| Authority { name: format!("k{i}"), kind: AuthorityKind::key(s.trusted()) };
        let mut p = policy("kyverno", Mode::Enforce, vec![]);
        p.requirements = vec![Requirement { count: 2, authorities: vec![auth(0, &a), auth(1, &b), auth(2, &c)] }];
        assert!(evaluate(&[&p], &ev(found.clone()), D1, cx()).allowed);
        p.requirements[0].count = 3;
        let e = evaluate(&[&p], &ev(found.clone()), D1, cx());
        assert!(!e.allowed);
        assert!(e.failures[0].contains("3 of 3 authorities needed, 2 satisfied"), "{e:?}");
        p.requirements = vec![
            Requirement { count: 1, authorities: vec![auth(0, &a)] },
            Requirement { count: 1, authorities: vec![auth(2, &c)] },
        ];
        assert!(!evaluate(&[&p], &ev(found.clone()), D1, cx()).allowed, "second requirement unmet");
        p.requirements[1].count = 0;
        assert!(!evaluate(&[&p], &ev(found.clone()), D1, cx()).allowed, "a requirement of zero never passes");
    }

    #[test]
    fn unsupported_authority_fails_closed_with_its_reason() {
        let p = policy("p", Mode::Enforce, vec![AuthorityKind::Unsupported("keyless is not verified".into())]);
        let e = evaluate(&[&p], &Evidence::default(), D1, cx());
        assert!(!e.allowed);
        assert!(e.failures[0].contains("keyless is not verified"), "{e:?}");
        let either =
            policy("q", Mode::Enforce, vec![AuthorityKind::Unsupported("gpg".into()), AuthorityKind::StaticPass]);
        assert!(
            evaluate(&[&either], &Evidence::default(), D1, cx()).allowed,
            "OR still lets a checkable authority pass"
        );
    }

    /// A notary authority outside CEL (the model's own kind): the referrers' envelopes are
    /// what it reads, never cosign's signatures, and it verifies no attestations.
    #[test]
    fn a_notary_authority_reads_the_notation_envelopes() {
        let file = |n: &str| {
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation").join(n))
                .unwrap()
        };
        let digest = file("digests").lines().find_map(|l| l.strip_prefix("image ")).unwrap().to_string();
        let trust = crate::verify::notary::NotaryTrust::from_pem(&file("trusted.crt")).unwrap();
        let by = |attestations: Vec<String>| {
            AuthorityKind::Signed(Box::new(crate::verify::signer::SignedBy {
                attestations,
                ..crate::verify::signer::SignedBy::new(
                    Signer::Notary(trust.clone()),
                    crate::verify::signer::Tlog::Ignore,
                )
            }))
        };
        let p = policy("notary", Mode::Enforce, vec![by(vec![])]);
        assert_eq!(needs(&[&p]), Needs { notary: true, ..Default::default() });
        let jws = crate::registry::SignatureLayer {
            payload: file("good.jws").into_bytes(),
            form: crate::registry::Form::Notary,
            ..Default::default()
        };
        let found = Signatures { location: "reg.io/app:sha256-x".into(), layers: vec![jws] };
        let ev = Evidence { notary: Some(Ok(found.clone())), ..Default::default() };
        // Inside the test certificate's one-day validity: a minute after signing.
        let env: serde_json::Value = serde_json::from_str(&file("good.jws")).unwrap();
        let header = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            env["protected"].as_str().unwrap(),
        )
        .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        let signed = header["io.cncf.notary.signingTime"].as_str().unwrap();
        let trust_root = crate::verify::trust::TrustRoot::empty();
        let now = crate::verify::notary::rfc3339(signed).unwrap() + 60;
        let cx = Context { trust: &trust_root, now };
        assert!(evaluate(&[&p], &ev, &digest, cx).allowed);
        let in_the_sig_tag =
            Evidence { signatures: Some(Ok(found)), notary: Some(Ok(sigs(vec![]))), ..Default::default() };
        let e = evaluate(&[&p], &in_the_sig_tag, &digest, cx);
        assert!(!e.allowed && e.failures[0].contains("no notation signatures found"), "{e:?}");
        let e = evaluate(&[&p], &Evidence::default(), &digest, cx);
        assert!(!e.allowed && e.failures[0].contains("signatures were not fetched"), "{e:?}");
        let attests = policy("notary", Mode::Enforce, vec![by(vec!["https://slsa.dev/provenance/v1".into()])]);
        // Its attestations are referrers of that type, not the image's notation signatures.
        let provenance = "https://slsa.dev/provenance/v1".to_string();
        assert_eq!(needs(&[&attests]), Needs { referred: [(provenance, true)].into(), ..Default::default() });
        let e = evaluate(&[&attests], &ev, &digest, cx);
        assert!(
            !e.allowed && e.failures[0].contains("referrers of type https://slsa.dev/provenance/v1 were not fetched"),
            "{e:?}"
        );
    }

    #[test]
    fn static_authorities() {
        let pass = policy("pass", Mode::Enforce, vec![AuthorityKind::StaticPass]);
        let fail = policy("fail", Mode::Enforce, vec![AuthorityKind::StaticFail]);
        assert_eq!(needs(&[&pass, &fail]), Needs::default());
        assert!(evaluate(&[&pass], &Evidence::default(), D1, cx()).allowed);
        assert!(!evaluate(&[&fail], &Evidence::default(), D1, cx()).allowed);
    }
}
