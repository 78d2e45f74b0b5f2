//! Signature verification and policy evaluation for one image digest.
//!
//! Pure functions over data already fetched: the registry seam brings untrusted signature
//! layers, this module decides which of them count. A layer counts for a key only if
//! (1) the key verifies the signature over the exact payload bytes, (2) the payload is a
//! cosign simple-signing document, and (3) its `docker-manifest-digest` equals the digest
//! containerd will run. Point 3 is what binds a signature to content: a valid signature for
//! some other digest (a re-pointed tag, a copied `.sig`) must never pass.

use sigstore::cosign::payload::simple_signing::{SimpleSigning, CRITICAL_TYPE_NAME};
use sigstore::crypto::Signature;

use crate::policy::{AuthorityKind, Mode, Policy, TrustedKey};
use crate::registry::{RegistryError, Signatures};

/// Why no signature of a set satisfied a key. Ordered from least to most informative, so the
/// most telling reason across several layers is the one reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum KeyFailure {
    #[error("no signatures found at {location}")]
    NoSignatures { location: String },
    #[error("{count} signature(s) at {location}, none made by key {fingerprint}")]
    WrongKey { location: String, count: usize, fingerprint: String },
    #[error("signature by key {fingerprint} has an unreadable payload: {message}")]
    BadPayload { fingerprint: String, message: String },
    #[error("signature by key {fingerprint} is for digest {signed}, not {expected}")]
    OtherDigest { fingerprint: String, signed: String, expected: String },
}

/// Is there a signature in `sigs` made by `key` for exactly `digest`?
pub fn verify_key(sigs: &Signatures, digest: &str, key: &TrustedKey) -> Result<(), KeyFailure> {
    let mut worst = if sigs.layers.is_empty() {
        KeyFailure::NoSignatures { location: sigs.location.clone() }
    } else {
        KeyFailure::WrongKey {
            location: sigs.location.clone(),
            count: sigs.layers.len(),
            fingerprint: key.fingerprint.clone(),
        }
    };
    for layer in &sigs.layers {
        if key.key.verify_signature(Signature::Base64Encoded(layer.signature.as_bytes()), &layer.payload).is_err() {
            continue;
        }
        let failure = match serde_json::from_slice::<SimpleSigning>(&layer.payload) {
            Err(e) => KeyFailure::BadPayload { fingerprint: key.fingerprint.clone(), message: e.to_string() },
            Ok(p) if p.critical.type_name != CRITICAL_TYPE_NAME => KeyFailure::BadPayload {
                fingerprint: key.fingerprint.clone(),
                message: format!("critical.type is {:?}, not {CRITICAL_TYPE_NAME:?}", p.critical.type_name),
            },
            Ok(p) if p.critical.image.docker_manifest_digest != digest => KeyFailure::OtherDigest {
                fingerprint: key.fingerprint.clone(),
                signed: p.critical.image.docker_manifest_digest,
                expected: digest.to_string(),
            },
            Ok(_) => return Ok(()),
        };
        worst = worst.max(failure);
    }
    Err(worst)
}

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

/// Does this policy set need signatures from the registry at all?
pub fn needs_signatures(policies: &[&Policy]) -> bool {
    policies.iter().any(|p| p.authorities().any(|a| matches!(a.kind, AuthorityKind::Key(_))))
}

/// Evaluate matching policies: all must pass (AND); a policy passes when each of its
/// requirements has `count` satisfied authorities (policy-controller: one requirement, count 1).
/// `sigs` is `None` only when [`needs_signatures`] was false.
pub fn evaluate(policies: &[&Policy], sigs: Option<&Result<Signatures, RegistryError>>, digest: &str) -> Evaluation {
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
        match evaluate_policy(policy, sigs, digest) {
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

fn evaluate_policy(
    policy: &Policy,
    sigs: Option<&Result<Signatures, RegistryError>>,
    digest: &str,
) -> Result<String, String> {
    // Vacuous truth must not admit anything: no requirement, or a requirement that needs
    // nothing, is a policy that fails.
    if policy.requirements.is_empty() {
        return Err("policy has no requirements".into());
    }
    let mut passed_by = Vec::new();
    for (i, req) in policy.requirements.iter().enumerate() {
        if req.count == 0 || req.authorities.is_empty() {
            return Err(format!("requirement {i} needs no authority, which never counts as passing"));
        }
        let mut ok = Vec::new();
        let mut reasons = Vec::new();
        for authority in &req.authorities {
            match check_authority(&authority.kind, sigs, digest) {
                Ok(()) => ok.push(authority.name.clone()),
                Err(r) => reasons.push(format!("authority {:?}: {r}", authority.name)),
            }
            if ok.len() >= req.count {
                break;
            }
        }
        if ok.len() < req.count {
            let need = if req.count == 1 {
                String::new()
            } else {
                format!("{} of {} authorities needed, {} satisfied: ", req.count, req.authorities.len(), ok.len())
            };
            return Err(format!("{need}{}", reasons.join("; ")));
        }
        passed_by.extend(ok);
    }
    Ok(passed_by.join(", "))
}

fn check_authority(
    kind: &AuthorityKind,
    sigs: Option<&Result<Signatures, RegistryError>>,
    digest: &str,
) -> Result<(), String> {
    match kind {
        AuthorityKind::StaticPass => Ok(()),
        AuthorityKind::StaticFail => Err("static authority always fails".to_string()),
        AuthorityKind::Unsupported(reason) => Err(format!("cannot be checked on this node: {reason}")),
        AuthorityKind::Key(key) => match sigs {
            None => Err("signatures were not fetched".to_string()),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(s)) => verify_key(s, digest, key).map_err(|e| e.to_string()),
        },
    }
}

#[cfg(test)]
pub(crate) mod testkit {
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
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::policy::matching::ImageGlob;
    use crate::policy::{Authority, Requirement};
    use crate::registry::SignatureLayer;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn sigs(layers: Vec<SignatureLayer>) -> Signatures {
        Signatures { location: "reg.io/app:sha256-1111.sig".into(), layers }
    }

    fn policy(name: &str, mode: Mode, kinds: Vec<AuthorityKind>) -> Policy {
        let authorities =
            kinds.into_iter().enumerate().map(|(i, kind)| Authority { name: format!("a{i}"), kind }).collect();
        Policy::any_of(name, vec![ImageGlob::new("reg.io/**").unwrap()], authorities, Mode::Enforce).with_mode(mode)
    }

    #[test]
    fn signature_by_the_key_for_the_digest_verifies() {
        let s = TestSigner::new(1);
        assert_eq!(verify_key(&sigs(vec![s.sign_digest("reg.io/app", D1)]), D1, &s.trusted()), Ok(()));
    }

    #[test]
    fn signature_for_another_digest_is_rejected() {
        let s = TestSigner::new(1);
        let err = verify_key(&sigs(vec![s.sign_digest("reg.io/app", D2)]), D1, &s.trusted()).unwrap_err();
        assert!(matches!(err, KeyFailure::OtherDigest { .. }), "{err}");
        assert!(err.to_string().contains(D2));
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let err = verify_key(&sigs(vec![a.sign_digest("reg.io/app", D1)]), D1, &b.trusted()).unwrap_err();
        assert!(matches!(err, KeyFailure::WrongKey { count: 1, .. }), "{err}");
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let s = TestSigner::new(1);
        let mut layer = s.sign_digest("reg.io/app", D2);
        // Swap the signed digest for ours, keep the signature: must not verify.
        layer.payload = payload("reg.io/app", D1, CRITICAL_TYPE_NAME).into_bytes();
        assert!(matches!(verify_key(&sigs(vec![layer]), D1, &s.trusted()), Err(KeyFailure::WrongKey { .. })));
    }

    #[test]
    fn wrong_payload_type_is_rejected() {
        let s = TestSigner::new(1);
        let layer = s.sign_raw(payload("reg.io/app", D1, "https://in-toto.io/Statement/v0.1").as_bytes());
        assert!(matches!(verify_key(&sigs(vec![layer]), D1, &s.trusted()), Err(KeyFailure::BadPayload { .. })));
    }

    #[test]
    fn one_good_signature_among_bad_ones_is_enough() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let layers =
            vec![a.sign_digest("reg.io/app", D1), b.sign_digest("reg.io/app", D2), b.sign_digest("reg.io/app", D1)];
        assert_eq!(verify_key(&sigs(layers), D1, &b.trusted()), Ok(()));
    }

    #[test]
    fn no_signatures_is_named() {
        let s = TestSigner::new(1);
        assert!(matches!(verify_key(&sigs(vec![]), D1, &s.trusted()), Err(KeyFailure::NoSignatures { .. })));
    }

    #[test]
    fn all_matching_policies_must_pass_and_any_authority_passes_one() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let found = Ok(sigs(vec![a.sign_digest("reg.io/app", D1)]));
        let p_or =
            policy("either", Mode::Enforce, vec![AuthorityKind::Key(b.trusted()), AuthorityKind::Key(a.trusted())]);
        let p_b = policy("only-b", Mode::Enforce, vec![AuthorityKind::Key(b.trusted())]);
        let e = evaluate(&[&p_or], Some(&found), D1);
        assert!(e.allowed && e.failures.is_empty(), "{e:?}");
        let e = evaluate(&[&p_or, &p_b], Some(&found), D1);
        assert!(!e.allowed);
        assert_eq!(e.failures.len(), 1);
        assert!(e.failures[0].contains("only-b"));
    }

    #[test]
    fn warn_mode_policy_failure_allows_but_is_reported() {
        let b = TestSigner::new(2);
        let p = policy("audit", Mode::Warn, vec![AuthorityKind::Key(b.trusted())]);
        let e = evaluate(&[&p], Some(&Ok(sigs(vec![]))), D1);
        assert!(e.allowed && e.warned);
        assert!(e.failures[0].contains("no signatures"));
    }

    #[test]
    fn registry_error_is_reported_as_such_not_as_unsigned() {
        let b = TestSigner::new(2);
        let p = policy("p", Mode::Enforce, vec![AuthorityKind::Key(b.trusted())]);
        let err =
            Err(RegistryError::Request { location: "reg.io/app:sig".into(), message: "connection refused".into() });
        let e = evaluate(&[&p], Some(&err), D1);
        assert!(!e.allowed);
        assert!(e.failures[0].contains("connection refused"), "{e:?}");
        assert!(!e.failures[0].contains("no signatures"));
    }

    #[test]
    fn empty_constraint_set_never_allows() {
        assert!(!evaluate(&[], None, D1).allowed);
        let empty = policy("empty", Mode::Enforce, vec![]);
        assert!(!evaluate(&[&empty], None, D1).allowed);
    }

    #[test]
    fn threshold_counts_distinct_authorities_and_all_requirements_must_hold() {
        let (a, b, c) = (TestSigner::new(1), TestSigner::new(2), TestSigner::new(3));
        let found = Ok(sigs(vec![a.sign_digest("reg.io/app", D1), b.sign_digest("reg.io/app", D1)]));
        let auth =
            |i: usize, s: &TestSigner| Authority { name: format!("k{i}"), kind: AuthorityKind::Key(s.trusted()) };
        let mut p = policy("kyverno", Mode::Enforce, vec![]);
        p.requirements = vec![Requirement { count: 2, authorities: vec![auth(0, &a), auth(1, &b), auth(2, &c)] }];
        assert!(evaluate(&[&p], Some(&found), D1).allowed);
        p.requirements[0].count = 3;
        let e = evaluate(&[&p], Some(&found), D1);
        assert!(!e.allowed);
        assert!(e.failures[0].contains("3 of 3 authorities needed, 2 satisfied"), "{e:?}");
        p.requirements = vec![
            Requirement { count: 1, authorities: vec![auth(0, &a)] },
            Requirement { count: 1, authorities: vec![auth(2, &c)] },
        ];
        assert!(!evaluate(&[&p], Some(&found), D1).allowed, "second requirement unmet");
        p.requirements[1].count = 0;
        assert!(!evaluate(&[&p], Some(&found), D1).allowed, "a requirement of zero never passes");
    }

    #[test]
    fn unsupported_authority_fails_closed_with_its_reason() {
        let p = policy("p", Mode::Enforce, vec![AuthorityKind::Unsupported("keyless is not verified".into())]);
        let e = evaluate(&[&p], None, D1);
        assert!(!e.allowed);
        assert!(e.failures[0].contains("keyless is not verified"), "{e:?}");
        let either =
            policy("q", Mode::Enforce, vec![AuthorityKind::Unsupported("gpg".into()), AuthorityKind::StaticPass]);
        assert!(evaluate(&[&either], None, D1).allowed, "OR still lets a checkable authority pass");
    }

    #[test]
    fn static_authorities() {
        let pass = policy("pass", Mode::Enforce, vec![AuthorityKind::StaticPass]);
        let fail = policy("fail", Mode::Enforce, vec![AuthorityKind::StaticFail]);
        assert!(!needs_signatures(&[&pass, &fail]));
        assert!(evaluate(&[&pass], None, D1).allowed);
        assert!(!evaluate(&[&fail], None, D1).allowed);
    }
}
