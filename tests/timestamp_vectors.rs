//! `signet verify` under Kyverno policies with `ctlog.tsaCertChain` against what real cosign 2
//! and cosign 3 wrote when they signed with an RFC 3161 timestamp authority (testdata/cosign-tsa,
//! made by `integration/make-tsa-cosign-vectors.sh`, where cosign's own verify accepted each
//! under its TSA and refused it under the other): cosign 3's sigstore bundles
//! (`timestampVerificationData`) and cosign 2's `.sig`/`.att` layers (the
//! `dev.sigstore.cosign/rfc3161timestamp` annotation), served byte for byte from loopback.
//!
//! Every test also shows a refusal that only the timestamp check makes, so each fails when
//! that check is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::{serve, sha256, Objects, INDEX, MANIFEST};
use serde_json::{json, Value};

const ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
const ISSUER: &str = "https://issuer.example";
const SUBJECT: &str = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main";
const SLSA: &str = "https://slsa.dev/provenance/v0.2";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign-tsa")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(name: &str) -> String {
    String::from_utf8(read(name)).unwrap()
}

fn images() -> Value {
    serde_json::from_slice(&read("images.json")).unwrap()
}

fn digest(name: &str) -> String {
    images()[name]["digest"].as_str().unwrap().to_owned()
}

/// What a test may rewrite before the registry serves it: a bundle (`c3-key.0`) or a cosign 2
/// manifest (`c2-key.sig`), as JSON.
type Tamper<'a> = &'a dyn Fn(&str, &mut Value);

/// The registry's objects, as cosign left them but for `tamper`. A changed bundle is named
/// consistently by its manifest and the fallback-tag index, and a changed `.sig` manifest is
/// served under its (mutable) tag, as a hostile registry can.
fn objects(tamper: Tamper<'_>) -> Objects {
    let mut out = Objects::new();
    for (name, image) in images().as_object().unwrap() {
        let repo = format!("/v2/vectors/{name}");
        let hex = image["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
        let form = image["form"].as_str().unwrap();
        if form == "bundle" {
            let mut index: Value = serde_json::from_slice(&read(&format!("{name}.index.json"))).unwrap();
            for (i, entry) in index["manifests"].as_array_mut().unwrap().iter_mut().enumerate() {
                let original = read(&format!("{name}.{i}.bundle.json"));
                let mut parsed: Value = serde_json::from_slice(&original).unwrap();
                tamper(&format!("{name}.{i}"), &mut parsed);
                let bundle = if parsed == serde_json::from_slice::<Value>(&original).unwrap() {
                    original
                } else {
                    serde_json::to_vec(&parsed).unwrap()
                };
                let mut manifest: Value = serde_json::from_slice(&read(&format!("{name}.{i}.manifest.json"))).unwrap();
                manifest["layers"][0]["digest"] = Value::String(sha256(&bundle));
                manifest["layers"][0]["size"] = Value::from(bundle.len());
                let manifest = serde_json::to_vec(&manifest).unwrap();
                entry["digest"] = Value::String(sha256(&manifest));
                entry["size"] = Value::from(manifest.len());
                out.insert(format!("{repo}/manifests/{}", sha256(&manifest)), (MANIFEST, manifest));
                out.insert(format!("{repo}/blobs/{}", sha256(&bundle)), ("application/octet-stream", bundle));
            }
            out.insert(format!("{repo}/manifests/sha256-{hex}"), (INDEX, serde_json::to_vec(&index).unwrap()));
        } else {
            let original = read(&format!("{name}.{form}.manifest.json"));
            let mut manifest: Value = serde_json::from_slice(&original).unwrap();
            tamper(&format!("{name}.{form}"), &mut manifest);
            let layer = read(&format!("{name}.{form}.layer"));
            assert_eq!(manifest["layers"][0]["digest"].as_str().unwrap(), sha256(&layer), "{name}");
            let served = if manifest == serde_json::from_slice::<Value>(&original).unwrap() {
                original
            } else {
                serde_json::to_vec(&manifest).unwrap()
            };
            out.insert(format!("{repo}/manifests/sha256-{hex}.{form}"), (MANIFEST, served));
            out.insert(format!("{repo}/blobs/{}", sha256(&layer)), ("application/octet-stream", layer));
        }
    }
    out
}

fn untouched(_: &str, _: &mut Value) {}

// ------------------------------------------------------------------------------ timestamps

/// The DER TimeStampResp of a bundle, and of a cosign 2 layer's annotation.
fn bundle_stamp(bundle: &mut Value) -> &mut Value {
    &mut bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]
}

fn annotation(manifest: &mut Value) -> &mut Value {
    &mut manifest["layers"][0]["annotations"][ANNOTATION]
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn unb64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Rewrites a base64 DER timestamp in place.
fn rewrite(stamp: &mut Value, f: &dyn Fn(&mut [u8])) {
    let mut der = b64(stamp.as_str().expect("a timestamp"));
    f(&mut der);
    *stamp = Value::String(unb64(&der));
}

/// Rewrites the timestamp inside cosign 2's annotation (`{"SignedRFC3161Timestamp": b64}`).
fn rewrite_annotation(manifest: &mut Value, f: &dyn Fn(&mut [u8])) {
    let mut inner: Value = serde_json::from_str(annotation(manifest).as_str().expect("annotated")).unwrap();
    rewrite(&mut inner["SignedRFC3161Timestamp"], f);
    *annotation(manifest) = Value::String(inner.to_string());
}

/// The TSTInfo's genTime moved by a second (a GeneralizedTime `YYYYMMDDHHMMSSZ`, the first in
/// the token): what the TSA signed no longer matches.
fn shift_time(der: &mut [u8]) {
    let at = der
        .windows(17)
        .position(|w| w[0] == 0x18 && w[1] == 15 && w[2..16].iter().all(u8::is_ascii_digit) && w[16] == b'Z')
        .expect("a GeneralizedTime");
    let second = at + 15;
    der[second] = if der[second] == b'0' { b'1' } else { b'0' };
}

/// The last byte flipped: inside the SignerInfo's signature, the token's last field.
fn flip_signature(der: &mut [u8]) {
    *der.last_mut().unwrap() ^= 1;
}

// ------------------------------------------------------------------------------ policies

/// A ClusterPolicy whose one `verifyImages` entry covers the vectors, with `checks`
/// (`attestors` or `attestations`) merged in.
fn kyverno(host: &str, checks: Value) -> String {
    let mut verify = json!({"imageReferences": [format!("{host}/vectors/*")]});
    verify.as_object_mut().unwrap().extend(checks.as_object().unwrap().clone());
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "tsa"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "timestamped",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [verify],
            }],
        },
    })
    .to_string()
}

/// Kyverno's `ctlog` with the TSA chain file `chain` (none: no timestamp is checked).
fn ctlog(chain: Option<&str>) -> Value {
    match chain {
        Some(c) => json!({"ignoreSCT": true, "tsaCertChain": text(c)}),
        None => json!({"ignoreSCT": true}),
    }
}

fn key_entry(chain: Option<&str>) -> Value {
    json!({"keys": {"publicKeys": text("cosign.pub"), "rekor": {"ignoreTlog": true}, "ctlog": ctlog(chain)}})
}

fn keyless_entry(chain: Option<&str>) -> Value {
    json!({"keyless": {
        "subject": SUBJECT, "issuer": ISSUER, "roots": text("chain.pem"),
        "rekor": {"ignoreTlog": true}, "ctlog": ctlog(chain),
    }})
}

fn signed_by(entry: Value) -> Value {
    json!({"attestors": [{"entries": [entry]}]})
}

fn attested_by(entry: Value) -> Value {
    json!({"attestations": [{"type": SLSA, "attestors": [{"entries": [entry]}]}]})
}

fn ivp(host: &str, chain: Option<&str>) -> String {
    let mut ctlog = json!({"insecureIgnoreTlog": true});
    if let Some(c) = chain {
        ctlog["tsaCertChain"] = Value::String(text(c));
    }
    json!({
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "tsa"},
        "spec": {
            "validationActions": ["Deny"],
            "matchImageReferences": [{"glob": format!("{host}/vectors/*")}],
            "attestors": [{"name": "cosign", "cosign": {"ctlog": ctlog, "key": {"data": text("cosign.pub")}}}],
            "validations": [{
                "expression": "images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)",
                "message": "not signed with a trusted timestamp",
            }],
        },
    })
    .to_string()
}

// ------------------------------------------------------------------------------ the world

struct World {
    host: String,
    dir: tempfile::TempDir,
}

impl World {
    fn new(tamper: Tamper<'_>) -> Self {
        World { host: serve(objects(tamper)), dir: tempfile::tempdir().unwrap() }
    }

    /// `signet verify` of the vector image `name` under one policy document; (exit code, output).
    fn verify(&self, name: &str, policy: &str) -> (i32, String) {
        let policies = tempfile::tempdir_in(self.dir.path()).unwrap();
        std::fs::write(policies.path().join("policy.yaml"), policy).unwrap();
        let image = format!("{}/vectors/{name}@{}", self.host, digest(name));
        let out = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["verify", &image, "--policy-dir"])
            .arg(policies.path())
            .args(["--insecure-registry", &self.host])
            .env("HOME", self.dir.path())
            .output()
            .expect("signet runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn allowed(&self, name: &str, policy: &str) {
        let (code, out) = self.verify(name, policy);
        assert_eq!(code, 0, "{name}: {out}");
    }

    /// Denied (exit 1), the output naming each of `why`.
    fn denied(&self, name: &str, policy: &str, why: &[&str]) {
        let (code, out) = self.verify(name, policy);
        assert_eq!(code, 1, "{name}: {out}");
        for w in why {
            assert!(out.contains(w), "{name}: no {w:?} in: {out}");
        }
    }
}

const OTHER_SIGNER: &str = "timestamp is signed by another certificate than the TSA certificate of the policy's chain";
const BAD_SIGNATURE: &str = "timestamp's signature does not verify under its signer certificate";
/// Another TSA made by the same script has the same issuer name and serial: the signed ESS
/// attribute names a certificate other than the one the signer identifier finds.
const OTHER_CERTIFICATE: &str =
    "timestamp's signing-certificate attribute: the certificate hash is not that of the signer certificate";

// ------------------------------------------------------------------------------ cosign 3

#[test]
fn a_cosign_3_bundle_timestamped_by_the_policys_tsa_verifies_and_another_tsas_does_not() {
    let w = World::new(&untouched);
    let under_tsa = kyverno(&w.host, signed_by(key_entry(Some("tsa-chain.pem"))));
    w.allowed("c3-key", &under_tsa);
    // cosign 3 asks for no certificate in the token (sigstore-go), so the chain's leaf is the
    // signer; the other TSA's token does not verify under it.
    w.denied("c3-key-other", &under_tsa, &["authority \"attestors[0].entries[0]\"", OTHER_CERTIFICATE]);
    let under_other = kyverno(&w.host, signed_by(key_entry(Some("other-chain.pem"))));
    w.denied("c3-key", &under_other, &[OTHER_CERTIFICATE]);
    w.allowed("c3-key-other", &under_other);
    // The key signature itself is good: without a TSA in the policy both pass.
    let no_tsa = kyverno(&w.host, signed_by(key_entry(None)));
    w.allowed("c3-key-other", &no_tsa);
}

#[test]
fn a_tampered_timestamp_in_a_cosign_3_bundle_is_refused() {
    let under_tsa = |w: &World| kyverno(&w.host, signed_by(key_entry(Some("tsa-chain.pem"))));
    let moved = World::new(&|which, b| {
        if which == "c3-key.0" {
            rewrite(bundle_stamp(b), &shift_time);
        }
    });
    moved.denied("c3-key", &under_tsa(&moved), &["timestamp's signed attributes"]);
    let flipped = World::new(&|which, b| {
        if which == "c3-key.0" {
            rewrite(bundle_stamp(b), &flip_signature);
        }
    });
    flipped.denied("c3-key", &under_tsa(&flipped), &[BAD_SIGNATURE]);
    // The same TSA's genuine timestamp of another signature (the keyless image's).
    let other_stamp = {
        let mut b: Value = serde_json::from_slice(&read("c3-keyless.0.bundle.json")).unwrap();
        bundle_stamp(&mut b).clone()
    };
    let swapped = World::new(&move |which, b| {
        if which == "c3-key.0" {
            *bundle_stamp(b) = other_stamp.clone();
        }
    });
    swapped.denied("c3-key", &under_tsa(&swapped), &["timestamp covers other bytes than this signature"]);
}

#[test]
fn a_cosign_3_bundle_without_its_timestamp_is_refused_under_a_tsa() {
    let w = World::new(&|which, b| {
        if which == "c3-key.0" {
            b["verificationMaterial"].as_object_mut().unwrap().remove("timestampVerificationData");
        }
    });
    w.denied(
        "c3-key",
        &kyverno(&w.host, signed_by(key_entry(Some("tsa-chain.pem")))),
        &["no RFC 3161 timestamp: a sigstore bundle verified against a timestamp authority must carry one"],
    );
    // Only the TSA makes it required.
    w.allowed("c3-key", &kyverno(&w.host, signed_by(key_entry(None))));
}

#[test]
fn an_expired_cosign_3_keyless_certificate_counts_only_at_the_time_its_timestamp_proves() {
    let w = World::new(&untouched);
    // The certificate lived 40 seconds when the vectors were made; the TSA's time is inside them.
    w.allowed("c3-keyless", &kyverno(&w.host, signed_by(keyless_entry(Some("tsa-chain.pem")))));
    w.denied("c3-keyless", &kyverno(&w.host, signed_by(keyless_entry(None))), &["CertExpired"]);
    w.denied("c3-keyless", &kyverno(&w.host, signed_by(keyless_entry(Some("other-chain.pem")))), &[OTHER_CERTIFICATE]);
}

#[test]
fn an_image_validating_policy_checks_a_cosign_3_timestamp_against_its_tsa() {
    let w = World::new(&untouched);
    w.allowed("c3-key", &ivp(&w.host, Some("tsa-chain.pem")));
    w.denied("c3-key-other", &ivp(&w.host, Some("tsa-chain.pem")), &["policy \"kyverno-ivp:tsa\"", OTHER_CERTIFICATE]);
    w.allowed("c3-key-other", &ivp(&w.host, None));
}

// ------------------------------------------------------------------------------ cosign 2

#[test]
fn a_cosign_2_sig_timestamped_by_the_policys_tsa_verifies_and_another_tsas_does_not() {
    let w = World::new(&untouched);
    let under_tsa = kyverno(&w.host, signed_by(key_entry(Some("tsa-chain.pem"))));
    w.allowed("c2-key", &under_tsa);
    // cosign 2 asks for the certificate in the token: the other TSA's is not the chain's leaf.
    w.denied("c2-key-other", &under_tsa, &[OTHER_SIGNER]);
    w.denied("c2-key", &kyverno(&w.host, signed_by(key_entry(Some("other-chain.pem")))), &[OTHER_SIGNER]);
    w.allowed("c2-key-other", &kyverno(&w.host, signed_by(key_entry(None))));
}

#[test]
fn a_tampered_cosign_2_timestamp_is_refused_and_a_removed_one_is_not_required() {
    let under_tsa = |w: &World| kyverno(&w.host, signed_by(key_entry(Some("tsa-chain.pem"))));
    let moved = World::new(&|which, m| {
        if which == "c2-key.sig" {
            rewrite_annotation(m, &shift_time);
        }
    });
    moved.denied("c2-key", &under_tsa(&moved), &["timestamp's signed attributes"]);
    let flipped = World::new(&|which, m| {
        if which == "c2-key.sig" {
            rewrite_annotation(m, &flip_signature);
        }
    });
    flipped.denied("c2-key", &under_tsa(&flipped), &[BAD_SIGNATURE]);
    // Not base64 DER at all.
    let garbage = World::new(&|which, m| {
        if which == "c2-key.sig" {
            *annotation(m) = Value::String(json!({"SignedRFC3161Timestamp": "bm90IGEgdGltZXN0YW1w"}).to_string());
        }
    });
    garbage.denied("c2-key", &under_tsa(&garbage), &["timestamp is not an RFC 3161 response or token"]);
    // cosign 2 verifies a .sig without a timestamp under a TSA chain (testdata/cosign-tsa/README.md).
    let removed = World::new(&|which, m| {
        if which == "c2-key.sig" {
            m["layers"][0]["annotations"].as_object_mut().unwrap().remove(ANNOTATION);
        }
    });
    removed.allowed("c2-key", &under_tsa(&removed));
}

#[test]
fn an_expired_cosign_2_keyless_certificate_counts_only_at_the_time_its_timestamp_proves() {
    let w = World::new(&untouched);
    w.allowed("c2-keyless", &kyverno(&w.host, signed_by(keyless_entry(Some("tsa-chain.pem")))));
    w.denied("c2-keyless", &kyverno(&w.host, signed_by(keyless_entry(None))), &["CertExpired"]);
    w.denied("c2-keyless", &kyverno(&w.host, signed_by(keyless_entry(Some("other-chain.pem")))), &[OTHER_SIGNER]);
}

#[test]
fn a_cosign_2_attestations_timestamp_covers_its_envelope() {
    let w = World::new(&untouched);
    w.allowed("c2-att", &kyverno(&w.host, attested_by(key_entry(Some("tsa-chain.pem")))));
    w.denied("c2-att", &kyverno(&w.host, attested_by(key_entry(Some("other-chain.pem")))), &[OTHER_SIGNER]);
    let moved = World::new(&|which, m| {
        if which == "c2-att.att" {
            rewrite_annotation(m, &shift_time);
        }
    });
    moved.denied("c2-att", &kyverno(&moved.host, attested_by(key_entry(Some("tsa-chain.pem")))), &["timestamp"]);
}
