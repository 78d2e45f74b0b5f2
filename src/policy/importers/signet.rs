//! `signet.dev/v1alpha1` ClusterImagePolicy, and the authority translation it shares with
//! sigstore policy-controller's kind (same field names).

use serde_json::Value;

use super::{parse_spec, Imported, Meta};
use crate::policy::crd::{AuthoritySpec, ClusterImagePolicySpec, KeySpec};
use crate::policy::normal::{
    Check, GpgCheck, KeyCheck, KeyRef, KeylessCheck, KmsKey, NormalAuthority, NormalIdentity, NormalPolicy,
    NormalRequirement, Pattern, SecretName, StaticAction,
};
use crate::verify::keyless::MatcherError;
use crate::verify::pubkey::{HashAlgorithm, HashAlgorithmError};

/// Where a `secretRef` without namespace is looked up for signet's own kind.
pub const DEFAULT_SECRET_NAMESPACE: &str = "signet-system";

pub fn import(meta: &Meta, spec: Value) -> Result<Imported, Vec<String>> {
    let spec: ClusterImagePolicySpec = parse_spec(spec)?;
    let mut errors = Vec::new();
    let authorities = authorities(&spec.authorities, DEFAULT_SECRET_NAMESPACE, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let policy = NormalPolicy {
        name: meta.name.clone(),
        origin: meta.origin(),
        images: spec.images.iter().map(|i| Pattern::Glob(i.glob.clone())).collect(),
        exclude_images: Vec::new(),
        namespaces: spec.namespaces.map(Into::into).unwrap_or_default(),
        mode: spec.mode.unwrap_or_default(),
        requirements: if authorities.is_empty() { vec![] } else { vec![NormalRequirement::any_of(authorities)] },
        exclusive: None,
        no_match_action: spec.no_match_action,
        pull_secrets: pull_secrets(&spec.authorities, DEFAULT_SECRET_NAMESPACE),
    };
    Ok(Imported { policies: vec![policy], notes: Vec::new() })
}

/// The `source.signaturePullSecrets` of every authority, in `namespace`.
pub(crate) fn pull_secrets(specs: &[AuthoritySpec], namespace: &str) -> Vec<SecretName> {
    let mut out: Vec<SecretName> = specs
        .iter()
        .flat_map(|a| &a.source)
        .flat_map(|s| &s.signature_pull_secrets)
        .map(|r| SecretName { namespace: namespace.to_string(), name: r.name.clone() })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Translate policy-controller-style authorities (OR). Problems are appended to `errors`.
pub(crate) fn authorities(
    specs: &[AuthoritySpec],
    secret_namespace: &str,
    errors: &mut Vec<String>,
) -> Vec<NormalAuthority> {
    let mut out = Vec::new();
    for (i, a) in specs.iter().enumerate() {
        match named_authority(i, a, secret_namespace) {
            Ok(a) => out.push(a),
            Err(e) => errors.push(e.to_string()),
        }
    }
    out
}

/// An authority (signet's, or policy-controller's read with signet's types) that is not well
/// formed; [`AuthorityError::At`] names it by index and name.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("spec.authorities[{index}] ({name}): {source}")]
    At { index: usize, name: String, source: Box<AuthorityError> },
    #[error("exactly one of key, keyless, gpg or static must be set")]
    Kinds,
    #[error("exactly one of {field}.data, {field}.path, {field}.secretRef or {field}.kms must be set")]
    KeySources { field: &'static str },
    #[error("static.action {0:?} is neither \"pass\" nor \"fail\"")]
    StaticAction(String),
    #[error("keyless.identities[{index}]: {source}")]
    Identity { index: usize, source: MatcherError },
    #[error("keyless needs identities (issuer and subject) or a ca-cert")]
    AnyHolder,
    #[error(transparent)]
    HashAlgorithm(HashAlgorithmError),
}

/// One authority; the error names it by index and name.
pub(crate) fn named_authority(
    i: usize,
    a: &AuthoritySpec,
    secret_namespace: &str,
) -> Result<NormalAuthority, AuthorityError> {
    let name = a.name.clone().unwrap_or_else(|| format!("authority-{i}"));
    authority(a, secret_namespace)
        .map(|check| NormalAuthority::new(name.clone(), check))
        .map_err(|e| AuthorityError::At { index: i, name, source: Box::new(e) })
}

/// An authority's check, reading signatures from its `source[].oci` repository when it names
/// one (policy-controller's `source`; cosign's `COSIGN_REPOSITORY`).
fn authority(a: &AuthoritySpec, secret_namespace: &str) -> Result<Check, AuthorityError> {
    let oci: Vec<&String> = a.source.iter().filter_map(|s| s.oci.as_ref()).filter(|o| !o.is_empty()).collect();
    let check = authority_check(a, secret_namespace)?;
    Ok(match oci[..] {
        // A static action reads nothing; OpenPGP signatures come from the lookaside store.
        [] => check,
        [_] if matches!(check, Check::Static(_) | Check::Gpg(_)) => check,
        [one] => check.from_repository(one),
        _ => Check::Unsupported(format!(
            "several signature sources ({}): only one repository per authority is read on the node",
            oci.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )),
    })
}

fn authority_check(a: &AuthoritySpec, secret_namespace: &str) -> Result<Check, AuthorityError> {
    let kinds = [a.key.is_some(), a.keyless.is_some(), a.static_.is_some(), a.gpg.is_some()];
    if kinds.iter().filter(|b| **b).count() != 1 {
        return Err(AuthorityError::Kinds);
    }
    if let Some(g) = &a.gpg {
        let spec = KeySpec {
            data: g.data.clone(),
            path: g.path.clone(),
            secret_ref: g.secret_ref.clone(),
            ..Default::default()
        };
        let key = match key_ref(&spec, secret_namespace, "gpg")? {
            Ok(k) => k,
            Err(unsupported) => return Ok(unsupported),
        };
        return Ok(Check::Gpg(GpgCheck { key, signed_identity: g.signed_identity.clone() }));
    }
    if let Some(s) = &a.static_ {
        return match s.action.as_str() {
            "pass" => Ok(Check::Static(StaticAction::Pass)),
            "fail" => Ok(Check::Static(StaticAction::Fail)),
            other => Err(AuthorityError::StaticAction(other.to_string())),
        };
    }
    // Requirements the node cannot check yet turn the authority into one that never passes.
    if let Some(prefix) = a.source.iter().find_map(|s| s.tag_prefix.as_ref()) {
        return Ok(Check::Unsupported(format!("signature tag prefix {prefix:?} is not supported yet")));
    }
    // policy-controller checks the transparency log only when the authority names one.
    let rekor = a.ctlog.as_ref().and_then(|c| c.url.clone());
    let attestations: Vec<String> = a.attestations.iter().map(|t| t.predicate_type.clone()).collect();
    if let Some(keyless) = &a.keyless {
        if let Some(root) = &keyless.trust_root_ref {
            return Ok(Check::Unsupported(format!(
                "keyless.trustRootRef {root:?}: TrustRoot resources are not read on the node; give the CA as \
                 keyless.ca-cert, or leave both out to use the node's trust_root"
            )));
        }
        let ca = match &keyless.ca_cert {
            None => None,
            Some(k) => match key_ref(k, secret_namespace, "keyless.ca-cert")? {
                Ok(r) => Some(r),
                Err(unsupported) => return Ok(unsupported),
            },
        };
        let identities: Vec<NormalIdentity> = keyless
            .identities
            .iter()
            .map(|id| NormalIdentity {
                issuer: id.issuer.clone(),
                issuer_reg_exp: id.issuer_reg_exp.clone(),
                subject: id.subject.clone(),
                subject_reg_exp: id.subject_reg_exp.clone(),
                extensions: Default::default(),
            })
            .collect();
        // Checked here so a bad regexp is reported against the object that holds it.
        for (i, id) in identities.iter().enumerate() {
            id.compile().map_err(|source| AuthorityError::Identity { index: i, source })?;
        }
        if identities.is_empty() && ca.is_none() {
            return Err(AuthorityError::AnyHolder);
        }
        return Ok(Check::Keyless(KeylessCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            identities,
            ca,
            rekor,
            rekor_keys: Vec::new(),
            ignore_sct: keyless.insecure_ignore_sct.unwrap_or(false),
            ct_log_keys: Vec::new(),
            attestations,
            tsa_cert_chain: None,
            repository: None,
            trust_root_timestamps: false,
            trusted_root: None,
        }));
    }
    let key = a.key.as_ref().expect("counted above");
    let hash_algorithm = match key.hash_algorithm.as_deref().map(|a| HashAlgorithm::parse(a, "key.hashAlgorithm")) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(e @ HashAlgorithmError::Unsupported { .. })) => return Ok(Check::Unsupported(e.to_string())),
        Some(Err(e)) => return Err(AuthorityError::HashAlgorithm(e)),
    };
    match key_ref(key, secret_namespace, "key")? {
        Ok(key) => Ok(Check::Key(KeyCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            key,
            rekor,
            rekor_keys: Vec::new(),
            attestations,
            hash_algorithm,
            tsa_cert_chain: None,
            repository: None,
            trusted_root: None,
        })),
        Err(unsupported) => Ok(unsupported),
    }
}

/// Where a key (or CA bundle) is, written under `field`; `Ok(Err(check))` when it is
/// somewhere the node cannot use.
fn key_ref(
    key: &KeySpec,
    secret_namespace: &str,
    field: &'static str,
) -> Result<Result<KeyRef, Check>, AuthorityError> {
    let set = [key.data.is_some(), key.path.is_some(), key.secret_ref.is_some(), key.kms.is_some()];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err(AuthorityError::KeySources { field });
    }
    if let Some(kms) = &key.kms {
        // The policy languages decide which URIs a policy may hold (policy-controller accepts
        // `hashivault://key/path`); one the node's resolver cannot read fails closed.
        return Ok(match KmsKey::parse(kms, "key.kms") {
            Ok(k) => Ok(KeyRef::Kms(k)),
            Err(e) => Err(Check::Unsupported(format!("{e}; this node cannot resolve it"))),
        });
    }
    Ok(Ok(if let Some(data) = &key.data {
        KeyRef::Pem(data.clone())
    } else if let Some(path) = &key.path {
        KeyRef::Path(path.clone())
    } else {
        let r = key.secret_ref.as_ref().expect("counted above");
        KeyRef::Secret {
            namespace: r.namespace.clone().unwrap_or_else(|| secret_namespace.to_string()),
            name: r.name.clone(),
            key: None,
        }
    }))
}
