//! The policy documents users write, and their compilation into the model.
//!
//! A document is a Kubernetes-style object, `apiVersion: signet.dev/v1alpha1`,
//! `kind: ClusterImagePolicy`, whose `spec` uses sigstore policy-controller's field names
//! (`images[].glob`, `authorities[].key.data`, `authorities[].static.action`, `mode`), plus
//! `key.path` for a key file on the node. Several documents may share one file (`---`).
//! Unknown fields are errors: a typo in a security policy must not silently weaken it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::matching::ImageGlob;
use super::model::{Authority, AuthorityKind, Mode, Policy, TrustedKey};
use super::PolicyError;

pub const API_VERSION: &str = "signet.dev/v1alpha1";
pub const KIND: &str = "ClusterImagePolicy";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    pub images: Vec<ImagePattern>,
    #[serde(default)]
    pub authorities: Vec<AuthoritySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePattern {
    pub glob: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthoritySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<serde_yaml::Value>,
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_: Option<StaticSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    pub action: String,
}

/// Parse every document in one file's text. Empty documents (a trailing `---`) are skipped.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Document>, PolicyError> {
    let mut out = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(de).map_err(|e| PolicyError::Parse {
            path: path.to_path_buf(),
            index: index + 1,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let doc: Document = serde_yaml::from_value(value).map_err(|e| PolicyError::Parse {
            path: path.to_path_buf(),
            index: index + 1,
            message: e.to_string(),
        })?;
        out.push(doc);
    }
    Ok(out)
}

/// Turn a document into a policy, loading key files relative to `base_dir`.
/// Every problem is reported, not just the first.
pub fn compile(path: &Path, base_dir: &Path, doc: &Document) -> Result<Policy, Vec<PolicyError>> {
    let name = doc.metadata.name.clone();
    let mut errors = Vec::new();
    let invalid = |message: String| PolicyError::Invalid { path: path.to_path_buf(), policy: name.clone(), message };

    if doc.api_version != API_VERSION {
        errors.push(invalid(format!("apiVersion {:?} is not {API_VERSION:?}", doc.api_version)));
    }
    if doc.kind != KIND {
        errors.push(invalid(format!("kind {:?} is not {KIND:?}", doc.kind)));
    }
    if name.is_empty() {
        errors.push(invalid("metadata.name is empty".into()));
    }
    if doc.spec.images.is_empty() {
        errors.push(invalid("spec.images is empty: the policy would cover nothing".into()));
    }
    let mut images = Vec::new();
    for (i, p) in doc.spec.images.iter().enumerate() {
        match ImageGlob::new(&p.glob) {
            Ok(g) => images.push(g),
            Err(e) => errors.push(invalid(format!("spec.images[{i}]: {e}"))),
        }
    }
    // An empty authority list would make "any authority passes" vacuous; policy-controller
    // rejects it too.
    if doc.spec.authorities.is_empty() {
        errors.push(invalid("spec.authorities is empty: a policy needs at least one authority".into()));
    }
    let mut authorities = Vec::new();
    for (i, a) in doc.spec.authorities.iter().enumerate() {
        let label = a.name.clone().unwrap_or_else(|| format!("authority-{i}"));
        match compile_authority(base_dir, a) {
            Ok(kind) => authorities.push(Authority { name: label, kind }),
            Err(m) => errors.push(invalid(format!("spec.authorities[{i}] ({label}): {m}"))),
        }
    }
    if errors.is_empty() {
        Ok(Policy { name, images, authorities, mode: doc.spec.mode.unwrap_or_default() })
    } else {
        Err(errors)
    }
}

fn compile_authority(base_dir: &Path, a: &AuthoritySpec) -> Result<AuthorityKind, String> {
    let kinds = [a.key.is_some(), a.keyless.is_some(), a.static_.is_some()].iter().filter(|b| **b).count();
    if kinds != 1 {
        return Err("exactly one of key, keyless or static must be set".into());
    }
    if let Some(s) = &a.static_ {
        return match s.action.as_str() {
            "pass" => Ok(AuthorityKind::StaticPass),
            "fail" => Ok(AuthorityKind::StaticFail),
            other => Err(format!("static.action {other:?} is neither \"pass\" nor \"fail\"")),
        };
    }
    if a.keyless.is_some() {
        return Err("keyless authorities are not supported yet; use a key".into());
    }
    let key = a.key.as_ref().expect("counted above");
    if key.secret_ref.is_some() {
        return Err("key.secretRef is not supported in local policy files; use key.path or key.data".into());
    }
    if let Some(kms) = &key.kms {
        return Err(format!("key.kms {kms:?}: KMS keys are not supported on the node"));
    }
    if let Some(alg) = &key.hash_algorithm {
        if alg != "sha256" {
            return Err(format!("key.hashAlgorithm {alg:?} is not supported (only sha256)"));
        }
    }
    let pem = match (&key.data, &key.path) {
        (Some(data), None) => data.as_bytes().to_vec(),
        (None, Some(p)) => {
            let full = if p.is_absolute() { p.clone() } else { base_dir.join(p) };
            std::fs::read(&full).map_err(|e| format!("key.path {}: {e}", full.display()))?
        }
        _ => return Err("exactly one of key.data or key.path must be set".into()),
    };
    TrustedKey::from_pem(&pem).map(AuthorityKind::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const TEST_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nhEhaiVh+bIH3LE3x1ae2+Rsdom
n6jj4T408Ki/F10p17R/R2YobGd7XDaa6PR2vfSDiAfBvxSCmvFGmEf35w==
-----END PUBLIC KEY-----
";

    fn doc(spec: &str) -> String {
        format!("apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: p\nspec:\n{spec}")
    }

    fn compile_text(text: &str) -> Result<Policy, Vec<PolicyError>> {
        let path = Path::new("t.yaml");
        let docs = parse_documents(path, text).map_err(|e| vec![e])?;
        compile(path, Path::new("/nonexistent"), &docs[0])
    }

    #[test]
    fn key_data_policy_compiles() {
        let key = TEST_PUB.replace('\n', "\n          ");
        let text = doc(&format!(
            "  images: [{{glob: \"reg.io/**\"}}]\n  authorities:\n    - name: k\n      key:\n        data: |\n          {key}\n"
        ));
        let p = compile_text(&text).unwrap();
        assert_eq!(p.name, "p");
        assert!(matches!(p.authorities[0].kind, AuthorityKind::Key(_)));
        assert_eq!(p.mode, Mode::Enforce);
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let text = doc("  images: [{glob: x}]\n  authorites: []\n");
        let err = compile_text(&text).unwrap_err();
        assert!(err[0].to_string().contains("authorites"), "{}", err[0]);
    }

    #[test]
    fn every_problem_is_listed() {
        let text = doc("  images: []\n  authorities: []\n");
        let err = compile_text(&text).unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].to_string().contains("spec.images is empty"));
        assert!(err[1].to_string().contains("spec.authorities is empty"));
    }

    #[test]
    fn missing_key_file_is_named() {
        let text = doc("  images: [{glob: x}]\n  authorities: [{key: {path: missing.pub}}]\n");
        let err = compile_text(&text).unwrap_err();
        assert!(err[0].to_string().contains("/nonexistent/missing.pub"), "{}", err[0]);
    }

    #[test]
    fn unsupported_authorities_fail_closed_with_reason() {
        let text = doc("  images: [{glob: x}]\n  authorities: [{key: {kms: \"gcpkms://k\"}}]\n");
        assert!(compile_text(&text).unwrap_err()[0].to_string().contains("KMS"));
        let text = doc("  images: [{glob: x}]\n  authorities: [{keyless: {url: \"https://f\"}}]\n");
        assert!(compile_text(&text).unwrap_err()[0].to_string().contains("keyless"));
        let text = doc("  images: [{glob: x}]\n  authorities: [{static: {action: maybe}}]\n");
        assert!(compile_text(&text).unwrap_err()[0].to_string().contains("maybe"));
    }

    #[test]
    fn garbage_key_is_rejected() {
        let text = doc("  images: [{glob: x}]\n  authorities: [{key: {data: \"not a key\"}}]\n");
        assert!(compile_text(&text).unwrap_err()[0].to_string().contains("PEM"));
    }
}
