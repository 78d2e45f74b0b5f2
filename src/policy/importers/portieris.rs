//! IBM Portieris `portieris.cloud.ibm.com/v1` ClusterImagePolicy and ImagePolicy.
//!
//! Portieris applies exactly one policy to an image (`GetPolicyToEnforce`): in a namespace
//! with any ImagePolicy, the best-matching repository of those, and no ClusterImagePolicy
//! at all; elsewhere the best-matching repository of the ClusterImagePolicies. When nothing
//! matches it denies. Best is an exact, wildcard-free name first, then the pattern with
//! the most characters that are not `*`; patterns are host anchored ([`ImageGlob::portieris`]).
//! Each repository entry becomes one policy in the exclusive group `portieris`, ranked
//! that way, and each object adds a stand-in ranked below all its repositories that
//! denies: namespaced ones in their namespace above every ClusterImagePolicy, cluster ones
//! everywhere. Inside a policy every `simple.requirements` entry must hold
//! (containers/image semantics). `signedBy` is GPG simple signing with the key in the
//! Secret `keySecret` (entry `key`), in `keySecretNamespace`, else the ImagePolicy's
//! namespace or Portieris's own for a ClusterImagePolicy; signatures come from the
//! lookaside store (registries.d). Notary `trust` and Vulnerability Advisor checks are not
//! verified on the node; they fail closed with that reason.
//!
//! [`ImageGlob::portieris`]: crate::policy::matching::ImageGlob::portieris

use serde::Deserialize;
use serde_json::Value;

use super::{parse_spec, Imported, Meta};
use crate::policy::model::{Exclusive, Namespaces};
use crate::policy::normal::{
    Check, GpgCheck, KeyRef, NormalAuthority, NormalPolicy, NormalRequirement, Pattern, StaticAction,
};

/// ImagePolicy ranks above every ClusterImagePolicy, whatever the pattern lengths (match
/// qualities stay below 2^31).
const NAMESPACE_RANK: u64 = 1 << 32;
/// A repository entry ranks above its object's no-match stand-in, even as `*` (quality 0).
const REPOSITORY_RANK: u64 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    repositories: Vec<Repository>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repository {
    name: String,
    /// `policy: null` (or absent) is the empty policy, which Portieris admits.
    #[serde(default, deserialize_with = "null_is_default")]
    policy: RepoPolicy,
}

fn null_is_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RepoPolicy, D::Error> {
    Ok(Option::<RepoPolicy>::deserialize(d)?.unwrap_or_default())
}

// Some fields are read only so the object parses strictly; they matter only to checks
// that fail closed today.
#[allow(dead_code)]
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RepoPolicy {
    #[serde(default)]
    trust: Option<Trust>,
    #[serde(default)]
    simple: Option<Simple>,
    #[serde(default)]
    vulnerability: Option<Value>,
    #[serde(default)]
    mutate_image: Option<bool>,
    /// Fields Portieris does not have: the API server prunes them and Portieris never sees
    /// them (its own tests carry a `simpleStore`).
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, Value>,
}

// Some fields are read only so the object parses strictly; they matter only to checks
// that fail closed today.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Trust {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    signer_secrets: Vec<Value>,
    #[serde(default)]
    trust_server: Option<String>,
}

// Some fields are read only so the object parses strictly; they matter only to checks
// that fail closed today.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Simple {
    #[serde(default)]
    requirements: Vec<SimpleRequirement>,
    #[serde(default, rename = "storeURL")]
    store_url: Option<String>,
    #[serde(default)]
    store_secret: Option<String>,
}

// Some fields are read only so the object parses strictly; they matter only to checks
// that fail closed today.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimpleRequirement {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    key_secret: Option<String>,
    #[serde(default)]
    key_secret_namespace: Option<String>,
    #[serde(default)]
    signed_identity: Option<Value>,
}

pub fn import(meta: &Meta, spec: Value) -> Result<Imported, Vec<String>> {
    let spec: Spec = parse_spec(spec)?;
    let namespaced = meta.kind == "ImagePolicy";
    if namespaced && meta.namespace.is_none() {
        return Err(vec![super::NO_NAMESPACE.into()]);
    }
    let secret_namespace = match &meta.namespace {
        Some(ns) if namespaced => ns.as_str(),
        _ => PORTIERIS_NAMESPACE,
    };
    let mut errors = Vec::new();
    let mut policies = Vec::new();
    let scope = match &meta.namespace {
        Some(ns) if namespaced => format!("{ns}/{}", meta.name),
        _ => meta.name.clone(),
    };
    let namespaces = Namespaces {
        include: if namespaced { meta.namespace.iter().cloned().collect() } else { vec![] },
        exclude: vec![],
        selector: None,
        any: Vec::new(),
        all: Vec::new(),
    };
    let base = if namespaced { NAMESPACE_RANK } else { 0 };
    let policy = |name: String, pattern: Pattern, rank: u64, requirements: Vec<NormalRequirement>| NormalPolicy {
        name,
        origin: meta.origin(),
        images: vec![pattern],
        exclude_images: Vec::new(),
        namespaces: namespaces.clone(),
        mode: Default::default(),
        requirements,
        exclusive: Some(Exclusive { group: "portieris".into(), rank }),
        no_match_action: None,
        pull_secrets: Vec::new(),
    };
    let mut notes = Vec::new();
    for (i, repo) in spec.repositories.iter().enumerate() {
        let field = format!("spec.repositories[{i}] ({})", repo.name);
        let pattern = Pattern::PortierisRepository(repo.name.clone());
        if !repo.policy.other.is_empty() {
            let keys: Vec<&str> = repo.policy.other.keys().map(String::as_str).collect();
            let empty =
                repo.policy.trust.is_none() && repo.policy.simple.is_none() && repo.policy.vulnerability.is_none();
            if empty {
                // Ignored, they would leave the empty policy, which admits anything: a
                // misspelt `simple` must not open the repository.
                errors.push(format!("{field}: policy has only fields Portieris does not know ({})", keys.join(", ")));
                continue;
            }
            notes.push(format!(
                "{field}: policy fields {} are not Portieris fields; ignored, as Portieris does",
                keys.join(", ")
            ));
        }
        if let Err(e) = pattern.compile() {
            errors.push(format!("{field}: {e}"));
            continue;
        }
        let requirements = match requirements(&repo.policy, secret_namespace) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{field}: {e}"));
                continue;
            }
        };
        // `[` appears in no Kubernetes name and `/` in no cluster-scoped one, so the
        // scope and the pattern can never run into each other: with `scope/pattern`,
        // ClusterImagePolicy `payments` with pattern `strict/x` and ImagePolicy
        // `payments/strict` with pattern `x` had the same name.
        policies.push(policy(
            format!("portieris:{scope}[{}]", repo.name),
            pattern,
            base + REPOSITORY_RANK,
            requirements,
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // What none of the repositories match Portieris denies, and in a namespace with an
    // ImagePolicy it never falls back to the ClusterImagePolicies.
    let deny = NormalRequirement::any_of(vec![NormalAuthority::new(
        "no-repository-matches",
        Check::Static(StaticAction::Fail),
    )]);
    policies.push(policy(format!("portieris:{scope}"), Pattern::PortierisRepository("*".into()), base, vec![deny]));
    Ok(Imported { policies, notes })
}

/// A Portieris requirement the node refuses, or one it cannot apply (which fails closed).
#[derive(Debug, thiserror::Error)]
pub enum RequirementError {
    #[error("{name}: signedBy needs keySecret")]
    NoKeySecret { name: String },
    #[error("{name}: requirement type {kind:?} is not a Portieris simple requirement")]
    UnknownType { name: String, kind: String },
    #[error("signedIdentity {} is not applied on the node", .0.as_deref().unwrap_or("without a type"))]
    SignedIdentity(Option<String>),
}

/// containers/image `signedIdentity`: the rules the node applies, by name; others fail closed.
fn signed_identity(v: Option<&Value>) -> Result<Option<String>, RequirementError> {
    let Some(v) = v else { return Ok(None) };
    match v.get("type").and_then(Value::as_str) {
        Some(t @ ("matchRepoDigestOrExact" | "matchRepository" | "matchExact")) => Ok(Some(t.to_string())),
        other => Err(RequirementError::SignedIdentity(other.map(String::from))),
    }
}

/// Where Portieris looks for a policy's Secrets: the ImagePolicy's namespace, or its own.
pub const PORTIERIS_NAMESPACE: &str = "portieris";

fn requirements(p: &RepoPolicy, namespace: &str) -> Result<Vec<NormalRequirement>, RequirementError> {
    let one = |name: &str, check: Check| NormalRequirement::any_of(vec![NormalAuthority::new(name, check)]);
    let mut out = Vec::new();
    if p.trust.as_ref().and_then(|t| t.enabled).unwrap_or(false) {
        out.push(one("trust", Check::Unsupported("Notary v1 content trust is not verified on the node".into())));
    }
    let va_enabled = p.vulnerability.as_ref().is_some_and(|v| {
        v.as_object().is_some_and(|o| o.values().any(|x| x.get("enabled").and_then(Value::as_bool) == Some(true)))
    });
    if va_enabled {
        out.push(one(
            "vulnerability",
            Check::Unsupported("vulnerability-scan gates are not checked on the node".into()),
        ));
    }
    for (n, r) in p.simple.iter().flat_map(|s| s.requirements.iter()).enumerate() {
        let name = format!("simple.requirements[{n}]");
        let check = match r.type_.as_str() {
            "insecureAcceptAnything" => Check::Static(StaticAction::Pass),
            "reject" => Check::Static(StaticAction::Fail),
            "signedBy" => {
                let secret =
                    r.key_secret.as_deref().ok_or_else(|| RequirementError::NoKeySecret { name: name.clone() })?;
                let key = KeyRef::Secret {
                    namespace: r.key_secret_namespace.as_deref().unwrap_or(namespace).to_string(),
                    name: secret.to_string(),
                    key: Some("key".into()),
                };
                match signed_identity(r.signed_identity.as_ref()) {
                    Ok(signed_identity) => Check::Gpg(GpgCheck { key, signed_identity }),
                    Err(why) => Check::Unsupported(why.to_string()),
                }
            }
            other => return Err(RequirementError::UnknownType { name, kind: other.to_string() }),
        };
        out.push(one(&name, check));
    }
    if out.is_empty() {
        // Portieris admits images whose policy asks for nothing.
        out.push(one("empty-policy", Check::Static(StaticAction::Pass)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(repositories: &str) -> Result<Imported, Vec<String>> {
        let yaml = format!("apiVersion: portieris.cloud.ibm.com/v1\nkind: ImagePolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  repositories:\n{repositories}");
        super::super::import(&serde_yaml::from_str::<Value>(&yaml).unwrap())
    }

    #[test]
    fn key_secret_namespace_names_where_the_key_is() {
        let r = "  - name: icr.io/*\n    policy: {simple: {requirements: [{type: signedBy, keySecret: k, keySecretNamespace: keys}]}}\n";
        let p = import(r).unwrap();
        let Check::Gpg(g) = &p.policies[0].requirements[0].authorities[0].check else { panic!() };
        assert_eq!(g.key, KeyRef::Secret { namespace: "keys".into(), name: "k".into(), key: Some("key".into()) });
    }

    #[test]
    fn a_null_policy_is_the_empty_policy() {
        let p = import("  - name: icr.io/*\n    policy: null\n").unwrap();
        assert!(matches!(p.policies[0].requirements[0].authorities[0].check, Check::Static(StaticAction::Pass)));
    }

    /// The API server prunes fields Portieris does not have, so Portieris never sees them.
    /// Beside a real requirement they are noted; alone they would leave the empty policy,
    /// which admits anything, so a misspelt `simple` is refused instead.
    #[test]
    fn fields_portieris_does_not_have() {
        let r = "  - name: icr.io/*\n    policy:\n      simpleStore: {url: x}\n      simple: {requirements: [{type: reject}]}\n";
        let p = import(r).unwrap();
        assert!(p.notes[0].contains("simpleStore"), "{:?}", p.notes);
        let err = import("  - name: icr.io/*\n    policy: {simpel: {requirements: [{type: reject}]}}\n").unwrap_err();
        assert!(err[0].contains("simpel"), "{err:?}");
    }

    #[test]
    fn each_object_denies_what_its_repositories_do_not_match() {
        let p = import("  - {name: \"icr.io/*\", policy: {}}\n").unwrap();
        let last = p.policies.last().unwrap();
        assert_eq!(last.name, "portieris:ns/p");
        assert_eq!(
            last.exclusive.as_ref().unwrap().rank,
            NAMESPACE_RANK,
            "below its repositories, above any cluster policy"
        );
        assert!(matches!(last.requirements[0].authorities[0].check, Check::Static(StaticAction::Fail)));
    }
}
