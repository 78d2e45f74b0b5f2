//! sigstore policy-controller `policy.sigstore.dev/v1alpha1` and `v1beta1` ClusterImagePolicy.
//!
//! Same semantics as policy-controller: every matching policy must pass, any one authority
//! passes a policy, `mode: warn` reports instead of denying. `secretRef` names a Secret in
//! policy-controller's namespace (`cosign-system` unless the node is told otherwise). Globs
//! match as policy-controller matches them ([`ImageGlob::policy_controller`]), and what its
//! webhook refuses is refused: malformed KMS URIs, unknown hash algorithms, keyless with
//! both `url` and `ca-cert`, `match` resources it does not watch.
//!
//! [`ImageGlob::policy_controller`]: crate::policy::matching::ImageGlob::policy_controller

use serde::Deserialize;
use serde_json::Value;

use super::{parse_spec, Imported, Meta};
use crate::policy::crd::AuthoritySpec;
use crate::policy::model::Mode;
use crate::policy::normal::{Check, NormalAuthority, NormalPolicy, NormalRequirement, Pattern};

pub const DEFAULT_SECRET_NAMESPACE: &str = "cosign-system";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    images: Vec<Image>,
    #[serde(default)]
    authorities: Vec<Value>,
    #[serde(default)]
    mode: Option<Mode>,
    /// CUE/Rego evaluated over the verified image.
    #[serde(default)]
    policy: Option<Value>,
    /// Which resource kinds admission looks at; every container is checked on the node.
    #[serde(default, rename = "match")]
    match_: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(default)]
    glob: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

pub fn import(meta: &Meta, spec: Value) -> Result<Imported, Vec<String>> {
    let spec: Spec = parse_spec(spec)?;
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut images = Vec::new();
    for (i, image) in spec.images.iter().enumerate() {
        match (&image.glob, &image.regex) {
            (Some(g), None) => images.push(Pattern::PolicyControllerGlob(g.clone())),
            (_, Some(_)) => {
                errors.push(format!("spec.images[{i}].regex: policy-controller dropped regex patterns; use glob"))
            }
            (None, None) => errors.push(format!("spec.images[{i}]: glob is missing")),
        }
    }
    let mut authorities = Vec::new();
    let mut specs = Vec::new();
    for (i, raw) in spec.authorities.iter().enumerate() {
        let (a, unsupported) = match authority_spec(raw) {
            Ok(x) => x,
            Err(e) => {
                errors.push(format!("spec.authorities[{i}]: {e}"));
                continue;
            }
        };
        specs.push(a.clone());
        match super::signet::named_authority(i, &a, DEFAULT_SECRET_NAMESPACE) {
            Ok(mut a) => {
                if let Some(reason) = unsupported {
                    a.check = Check::Unsupported(reason);
                }
                authorities.push(a);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(m) = &spec.match_ {
        check_match(m).map_err(|e| vec![e.to_string()])?;
        notes.push("spec.match is ignored: on the node every container's image is checked".into());
    }
    let mut requirements = Vec::new();
    if !authorities.is_empty() {
        requirements.push(NormalRequirement::any_of(authorities));
    }
    if spec.policy.is_some() {
        requirements.push(NormalRequirement::any_of(vec![NormalAuthority::new(
            "spec.policy",
            Check::Unsupported("CUE/Rego policies (spec.policy) are not evaluated on the node".into()),
        )]));
    }
    let policy = NormalPolicy {
        name: format!("sigstore:{}", meta.name),
        origin: meta.origin(),
        images,
        exclude_images: Vec::new(),
        namespaces: Default::default(),
        mode: spec.mode.unwrap_or_default(),
        requirements,
        exclusive: None,
        no_match_action: None,
        pull_secrets: super::signet::pull_secrets(&specs, DEFAULT_SECRET_NAMESPACE),
    };
    Ok(Imported { policies: vec![policy], notes })
}

/// What policy-controller itself would refuse in a ClusterImagePolicy.
#[derive(Debug, thiserror::Error)]
pub enum SigstoreError {
    #[error("an authority must be an object")]
    AuthorityNotObject,
    #[error("{0} is a signet field; policy-controller has no such field")]
    SignetField(&'static str),
    #[error("{0}")]
    Authority(serde_json::Error),
    #[error("key.kms: {uri:?} is not a KMS URI of a supported provider ({})", KMS_PROVIDERS.join(", "))]
    KmsProvider { uri: String },
    #[error("key.kms: {uri:?} is not awskms://[HOST:PORT]/ARN: {why}")]
    AwsKms { uri: String, why: &'static str },
    #[error("keyless: url and ca-cert are exclusive; give one")]
    UrlAndCaCert,
    #[error("spec.match must be a list")]
    MatchNotList,
    #[error("spec.match[{index}].resource {resource:?} is not one of {}", MATCH_RESOURCES.join(", "))]
    MatchResource { index: usize, resource: String },
}

/// The KMS providers policy-controller accepts.
const KMS_PROVIDERS: [&str; 4] = ["awskms://", "azurekms://", "hashivault://", "gcpkms://"];

/// Read one authority with signet's types after taking out what only policy-controller has;
/// the second value says why the authority cannot be checked, if so.
fn authority_spec(raw: &Value) -> Result<(AuthoritySpec, Option<String>), SigstoreError> {
    let mut raw = raw.clone();
    let obj = raw.as_object_mut().ok_or(SigstoreError::AuthorityNotObject)?;
    let mut reason = None;
    if obj.remove("rfc3161timestamp").is_some() {
        reason = Some("rfc3161timestamp: signed timestamps are not verified on the node yet".to_string());
    }
    if let Some(format) = obj.remove("signatureFormat") {
        if format.as_str() != Some("simplesigning") {
            reason = Some(format!("signatureFormat {format}: only simplesigning is verified on the node yet"));
        }
    }
    // An attestation's CUE/Rego policy narrows what passes; dropping it would widen.
    for att in obj.get_mut("attestations").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(policy) = att.as_object_mut().and_then(|a| a.remove("policy")) {
            let kind = policy.get("type").and_then(Value::as_str).unwrap_or("a");
            reason = Some(format!("attestation policies ({kind}) are not evaluated on the node"));
        }
    }
    if obj.contains_key("gpg") {
        return Err(SigstoreError::SignetField("gpg"));
    }
    if obj.get("key").and_then(|k| k.get("path")).is_some() {
        return Err(SigstoreError::SignetField("key.path"));
    }
    let spec: AuthoritySpec = serde_json::from_value(raw).map_err(SigstoreError::Authority)?;
    if let Some(kms) = spec.key.as_ref().and_then(|k| k.kms.as_deref()) {
        check_kms(kms)?;
    }
    if spec.keyless.as_ref().is_some_and(|k| k.url.is_some() && k.ca_cert.is_some()) {
        return Err(SigstoreError::UrlAndCaCert);
    }
    Ok((spec, reason))
}

/// The resource kinds policy-controller's webhook admits for `spec.match[].resource`.
const MATCH_RESOURCES: [&str; 7] =
    ["replicasets", "deployments", "pods", "cronjobs", "jobs", "statefulsets", "daemonsets"];

/// policy-controller refuses `spec.match` entries naming a resource it does not watch.
fn check_match(m: &Value) -> Result<(), SigstoreError> {
    for (i, entry) in m.as_array().ok_or(SigstoreError::MatchNotList)?.iter().enumerate() {
        match entry.get("resource").and_then(Value::as_str) {
            Some(r) if !r.is_empty() && !MATCH_RESOURCES.contains(&r) => {
                return Err(SigstoreError::MatchResource { index: i, resource: r.to_string() })
            }
            _ => {}
        }
    }
    Ok(())
}

/// A KMS URI as policy-controller accepts it: a provider it supports, and for AWS an
/// optional `host:port` endpoint and a key or alias ARN (other AWS forms need settings
/// from the environment, which it refuses).
fn check_kms(uri: &str) -> Result<(), SigstoreError> {
    if !KMS_PROVIDERS.iter().any(|p| uri.starts_with(p)) {
        return Err(SigstoreError::KmsProvider { uri: uri.to_string() });
    }
    let Some(rest) = uri.strip_prefix("awskms://") else { return Ok(()) };
    let malformed = |why: &'static str| Err(SigstoreError::AwsKms { uri: uri.to_string(), why });
    let Some((endpoint, key)) = rest.split_once('/') else { return malformed("no key") };
    if !endpoint.is_empty() {
        let port = endpoint.rsplit_once(':').map(|(_, p)| p);
        if endpoint.starts_with("arn") || endpoint.starts_with("alias") || port.is_none_or(str::is_empty) {
            return malformed("the endpoint must be host:port");
        }
    }
    let sections: Vec<&str> = key.splitn(6, ':').collect();
    let resource = sections.get(5).copied().unwrap_or_default();
    if sections.len() < 6 || sections[0] != "arn" || !(resource.starts_with("key/") || resource.starts_with("alias/")) {
        return malformed("the key must be a key or alias ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(authority: &str, extra: &str) -> Result<Imported, Vec<String>> {
        let yaml = format!("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: p}}\nspec:\n  images: [{{glob: \"reg.io/**\"}}]\n{extra}  authorities:\n  - {authority}\n");
        super::super::import(&serde_yaml::from_str::<Value>(&yaml).unwrap())
    }

    #[test]
    fn kms_uris_are_refused_where_policy_controller_refuses_them() {
        for good in [
            "awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd",
            "awskms://localhost:4566/arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias",
            "hashivault://key/path",
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
        ] {
            assert!(check_kms(good).is_ok(), "{good}");
            assert!(import(&format!("key: {{kms: \"{good}\"}}"), "").is_ok(), "{good}");
        }
        for bad in [
            "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms://localhost:4566/alias/ExampleAlias",
            "awskms://arn:aws:kms:us-east-2:111122223333:key/1234abcd",
            "awskms://localhost/arn:aws:kms:us-east-2:111122223333:key/1234abcd",
            "fookms://x",
        ] {
            assert!(check_kms(bad).is_err(), "{bad}");
        }
    }

    /// `source[].oci`: the authority's signatures are read from that repository. Before, the
    /// authority failed closed.
    #[test]
    fn an_authoritys_oci_source_is_where_its_signatures_are_read() {
        use crate::policy::normal::Check;
        let check =
            |authority: &str| import(authority, "").unwrap().policies[0].requirements[0].authorities[0].check.clone();
        let c = check("key: {data: x}\n    source: [{oci: registry.example/sigs}]");
        assert!(matches!(&c, Check::Key(k) if k.repository.as_deref() == Some("registry.example/sigs")), "{c:?}");
        let c = check("key: {data: x}\n    source: [{oci: a.example/s}, {oci: b.example/s}]");
        assert!(matches!(&c, Check::Unsupported(why) if why.contains("several signature sources")), "{c:?}");
        let c = check("static: {action: pass}\n    source: [{oci: registry.example/sigs}]");
        assert!(matches!(c, Check::Static(_)), "{c:?}");
    }

    #[test]
    fn other_fields_policy_controller_refuses() {
        let err = import("key: {data: x, hashAlgorithm: shaINVALID}", "").unwrap_err();
        assert!(err[0].contains("hashAlgorithm"), "{err:?}");
        let keyless =
            "keyless: {url: \"https://fulcio.example\", ca-cert: {data: x}, identities: [{issuer: i, subject: s}]}";
        assert!(import(keyless, "").unwrap_err()[0].contains("url and ca-cert"));
        let err =
            import("static: {action: pass}", "  match: [{resource: apple, version: v1, group: apps}]\n").unwrap_err();
        assert!(err[0].contains("\"apple\""), "{err:?}");
        assert!(import("static: {action: pass}", "  match: [{resource: pods, version: v1}]\n").is_ok());
    }

    #[test]
    fn globs_are_policy_controllers() {
        let p = import("static: {action: pass}", "").unwrap();
        assert_eq!(p.policies[0].images, [Pattern::PolicyControllerGlob("reg.io/**".into())]);
    }
}
