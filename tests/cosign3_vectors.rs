//! `signet verify` against what real cosign 3 wrote into a registry (testdata/cosign3, made by
//! `integration/make-cosign3-vectors.sh` and accepted there by cosign 3's own `verify`): the
//! `sha256-<hex>` fallback-tag index, each referrer manifest and each sigstore bundle, served
//! byte for byte by a registry on loopback that has no referrers API, as distribution 2.8.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{serve, sha256, Objects, INDEX, MANIFEST};
use serde_json::Value;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign3")
}

fn images() -> Value {
    serde_json::from_slice(&std::fs::read(vectors().join("images.json")).unwrap()).unwrap()
}

fn digest(name: &str) -> String {
    images()[name]["digest"].as_str().unwrap().to_owned()
}

/// The registry's objects by path, as cosign 3 left them. `tamper` may rewrite a bundle; the
/// registry then names it consistently, as a hostile registry can (the fallback tag is
/// mutable): the manifest names the new bundle's digest and the index the new manifest's.
fn objects(tamper: &dyn Fn(&str, Vec<u8>) -> Vec<u8>) -> Objects {
    let mut out = Objects::new();
    let read = |f: String| std::fs::read(vectors().join(f)).unwrap();
    for (name, image) in images().as_object().unwrap() {
        let repo = format!("/v2/vectors/{name}");
        let hex = image["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
        let mut index: Value = serde_json::from_slice(&read(format!("{name}.index.json"))).unwrap();
        for (i, entry) in index["manifests"].as_array_mut().unwrap().iter_mut().enumerate() {
            let original = read(format!("{name}.{i}.bundle.json"));
            let bundle = tamper(&format!("{name}.{i}"), original.clone());
            let mut manifest = read(format!("{name}.{i}.manifest.json"));
            if bundle != original {
                let mut m: Value = serde_json::from_slice(&manifest).unwrap();
                m["layers"][0]["digest"] = Value::String(sha256(&bundle));
                m["layers"][0]["size"] = Value::from(bundle.len());
                manifest = serde_json::to_vec(&m).unwrap();
                entry["digest"] = Value::String(sha256(&manifest));
                entry["size"] = Value::from(manifest.len());
            }
            out.insert(format!("{repo}/manifests/{}", sha256(&manifest)), (MANIFEST, manifest));
            out.insert(format!("{repo}/blobs/{}", sha256(&bundle)), ("application/octet-stream", bundle));
        }
        out.insert(format!("{repo}/manifests/sha256-{hex}"), (INDEX, serde_json::to_vec(&index).unwrap()));
    }
    out
}

struct World {
    host: String,
    dir: tempfile::TempDir,
}

impl World {
    fn new(tamper: &dyn Fn(&str, Vec<u8>) -> Vec<u8>) -> Self {
        World { host: serve(objects(tamper)), dir: tempfile::tempdir().unwrap() }
    }

    /// `signet verify` of the vector image `name` under one policy document; (exit code, output).
    fn verify(&self, name: &str, policy: &str) -> (i32, String) {
        let policies = self.dir.path().join(format!("policies-{}", rand_suffix()));
        std::fs::create_dir(&policies).unwrap();
        std::fs::write(policies.join("policy.yaml"), policy).unwrap();
        let config = self.dir.path().join("config.toml");
        std::fs::write(&config, format!("trust_root = \"{}\"\n", vectors().join("trusted_root.json").display()))
            .unwrap();
        let image = format!("{}/vectors/{name}@{}", self.host, digest(name));
        let out = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["verify", &image, "--policy-dir"])
            .arg(&policies)
            .arg("--config")
            .arg(&config)
            .args(["--insecure-registry", &self.host])
            .env("HOME", self.dir.path())
            .output()
            .expect("signet runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn images(&self, names: &[&str]) -> String {
        names.iter().map(|n| format!("{{glob: \"{}/vectors/{n}\"}}", self.host)).collect::<Vec<_>>().join(", ")
    }

    fn key_policy(&self, names: &[&str], key: &Path, attestation: Option<&str>) -> String {
        let attestations =
            attestation.map_or(String::new(), |t| format!("\n    attestations: [{{name: a, predicateType: \"{t}\"}}]"));
        format!(
            "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: c3}}\nspec:\n  \
             images: [{}]\n  authorities:\n  - name: key\n    key: {{path: {}}}{attestations}\n",
            self.images(names),
            key.display()
        )
    }

    fn keyless_policy(&self, subject: &str) -> String {
        format!(
            "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: c3-keyless}}\nspec:\n  \
             images: [{}]\n  authorities:\n  - name: release\n    keyless:\n      ca-cert: {{path: {}}}\n      \
             identities: [{{issuer: \"https://issuer.example\", subjectRegExp: '{subject}'}}]\n      \
             insecureIgnoreSCT: true\n",
            self.images(&["keyless"]),
            vectors().join("chain.pem").display()
        )
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

fn untouched(_: &str, b: Vec<u8>) -> Vec<u8> {
    b
}

fn the_key() -> PathBuf {
    vectors().join("cosign.pub")
}

#[test]
fn cosign_3_key_signatures_verify_and_other_keys_do_not() {
    let w = World::new(&untouched);
    let (code, out) = w.verify("key", &w.key_policy(&["key"], &the_key(), None));
    assert_eq!(code, 0, "{out}");
    let (code, out) = w.verify("attested", &w.key_policy(&["attested"], &the_key(), None));
    assert_eq!(code, 0, "{out}");
    // cosign 2.5's vector key is another key.
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign/cosign.pub");
    let (code, out) = w.verify("key", &w.key_policy(&["key"], &other, None));
    assert_eq!(code, 1, "{out}");
}

#[test]
fn a_cosign_3_attestation_alone_is_not_a_signature() {
    // cosign 3.1.1's own `verify --key` accepts this image (testdata/cosign3/README.md).
    let w = World::new(&untouched);
    let (code, out) = w.verify("att-only", &w.key_policy(&["att-only"], &the_key(), None));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not https://sigstore.dev/cosign/sign/v1"), "{out}");
}

#[test]
fn cosign_3_attestations_satisfy_a_policy_that_requires_them() {
    let w = World::new(&untouched);
    let slsa = "https://slsa.dev/provenance/v0.2";
    let (code, out) = w.verify("attested", &w.key_policy(&["attested"], &the_key(), Some(slsa)));
    assert_eq!(code, 0, "{out}");
    // The signed-only image lacks it; another predicate type is not it.
    let (code, out) = w.verify("key", &w.key_policy(&["key"], &the_key(), Some(slsa)));
    assert_eq!(code, 1, "{out}");
    let (code, out) = w.verify("attested", &w.key_policy(&["attested"], &the_key(), Some("https://spdx.dev/Document")));
    assert_eq!(code, 1, "{out}");
}

#[test]
fn cosign_3_keyless_signatures_are_held_to_the_identity() {
    let w = World::new(&untouched);
    let (code, out) = w.verify("keyless", &w.keyless_policy(r"^https://github\.com/example/"));
    assert_eq!(code, 0, "{out}");
    let (code, out) = w.verify("keyless", &w.keyless_policy(r"^https://github\.com/other-org/"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("matches no trusted identity"), "{out}");
}

#[test]
fn a_tampered_cosign_3_bundle_is_refused() {
    // The DSSE signature's first character changed, and the registry names the changed bundle
    // consistently, so only the signature check can catch it.
    let flip = |which: &str, bundle: Vec<u8>| {
        if which != "key.0" {
            return bundle;
        }
        let mut v: Value = serde_json::from_slice(&bundle).unwrap();
        let sig = v["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap().to_owned();
        let (first, rest) = sig.split_at(1);
        let swapped = format!("{}{rest}", if first == "M" { "N" } else { "M" });
        v["dsseEnvelope"]["signatures"][0]["sig"] = Value::String(swapped);
        serde_json::to_vec(&v).unwrap()
    };
    let w = World::new(&flip);
    let (code, out) = w.verify("key", &w.key_policy(&["key"], &the_key(), None));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("authority \"key\""), "{out}");
}
