//! Tanzu image-policy-webhook `signing.apps.tanzu.vmware.com/v1beta1` ClusterImagePolicy.
//!
//! `namePattern` is a plain wildcard (`*` crosses `/`), a pattern with no tag covers every
//! tag, keys are declared once and referenced by name, and at least one listed key must
//! verify. Each `images[]` entry becomes one policy, so an image matched by two entries must
//! satisfy both. Namespaces under `exclude.resources.namespaces` are not checked. An
//! image's `secretRef` names the registry credentials its signatures are fetched with.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_spec, pem_authorities, split_pem_keys, Imported, Meta};
use crate::policy::model::Namespaces;
use crate::policy::normal::{NormalPolicy, NormalRequirement, Pattern, SecretName};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    verification: Verification,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verification {
    #[serde(default)]
    exclude: Option<Exclude>,
    #[serde(default)]
    keys: Vec<Key>,
    #[serde(default)]
    images: Vec<Image>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Exclude {
    #[serde(default)]
    resources: Option<Resources>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resources {
    #[serde(default)]
    namespaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Key {
    name: String,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Image {
    name_pattern: String,
    #[serde(default)]
    keys: Vec<KeyName>,
    /// Registry credentials for fetching this pattern's signatures.
    #[serde(default)]
    secret_ref: Option<ImageSecret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSecret {
    name: String,
    /// The webhook reads the Secret where it names; without a namespace, in its own.
    #[serde(default)]
    namespace: Option<String>,
}

/// Where the image-policy webhook runs and reads Secrets without a namespace.
const WEBHOOK_NAMESPACE: &str = "image-policy-system";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyName {
    name: String,
}

pub fn import(meta: &Meta, spec: Value) -> Result<Imported, Vec<String>> {
    let spec: Spec = parse_spec(spec)?;
    let v = spec.verification;
    let mut errors = Vec::new();
    let mut keys: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (i, k) in v.keys.iter().enumerate() {
        match split_pem_keys(&k.public_key) {
            Ok(pems) => {
                if keys.insert(k.name.as_str(), pems).is_some() {
                    errors.push(format!("spec.verification.keys[{i}]: key name {:?} is declared twice", k.name));
                }
            }
            Err(e) => errors.push(format!("spec.verification.keys[{i}] ({}): publicKey: {e}", k.name)),
        }
    }
    let excluded = v.exclude.and_then(|e| e.resources).map(|r| r.namespaces).unwrap_or_default();
    let mut policies = Vec::new();
    for (i, image) in v.images.iter().enumerate() {
        if image.keys.is_empty() {
            errors.push(format!("spec.verification.images[{i}] ({}): lists no keys", image.name_pattern));
            continue;
        }
        let mut authorities = Vec::new();
        for k in &image.keys {
            match keys.get(k.name.as_str()) {
                Some(pems) => authorities.extend(pem_authorities(&k.name, pems, None)),
                None => errors.push(format!(
                    "spec.verification.images[{i}] ({}): key {:?} is not declared in spec.verification.keys",
                    image.name_pattern, k.name
                )),
            }
        }
        policies.push(NormalPolicy {
            name: format!("tanzu:{}/images[{i}]", meta.name),
            origin: meta.origin(),
            images: vec![Pattern::Wildcard(image.name_pattern.clone())],
            exclude_images: Vec::new(),
            namespaces: Namespaces {
                include: vec![],
                exclude: excluded.clone(),
                selector: None,
                any: Vec::new(),
                all: Vec::new(),
            },
            mode: Default::default(),
            requirements: vec![NormalRequirement::any_of(authorities)],
            exclusive: None,
            no_match_action: None,
            pull_secrets: image
                .secret_ref
                .iter()
                .map(|s| SecretName {
                    namespace: s.namespace.clone().unwrap_or_else(|| WEBHOOK_NAMESPACE.to_string()),
                    name: s.name.clone(),
                })
                .collect(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut notes = Vec::new();
    if policies.is_empty() {
        notes.push("spec.verification.images is empty: this policy checks nothing".into());
    }
    Ok(Imported { policies, notes })
}
