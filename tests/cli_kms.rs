//! `signet policy check` and `policy explain` say which KMS keys resolved, and from where.

use std::process::Command;

const PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nhEhaiVh+bIH3LE3x1ae2+Rsdom
n6jj4T408Ki/F10p17R/R2YobGd7XDaa6PR2vfSDiAfBvxSCmvFGmEf35w==
-----END PUBLIC KEY-----
";
const URI: &str = "awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn signet(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signet")).args(args).output().expect("signet runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn policy_check_and_explain_name_each_kms_key_and_its_source() {
    let d = tempfile::tempdir().unwrap();
    let policies = d.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let file = policies.join("kms.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: kms}}\nspec:\n  \
             images: [{{glob: \"reg.example.com/**\"}}]\n  authorities: [{{key: {{kms: \"{URI}\"}}}}]\n"
        ),
    )
    .unwrap();
    let state = d.path().join("state");
    let state_arg = state.to_str().unwrap();
    let file_arg = file.to_str().unwrap();

    // Nothing cached and no provider asked: the key is named as unresolved, failing closed.
    let (_, err) = signet(&["policy", "check", "--offline", "--state-dir", state_arg, file_arg]);
    assert!(err.contains(&format!("kms: {URI}: not resolved, its authorities fail closed")), "{err}");

    // The daemon's resolved-key cache: the check reports it, with the source.
    std::fs::create_dir(&state).unwrap();
    let cache = serde_json::json!({"format": 1, "keys": {URI: {
        "pem": PUB, "version": "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "signing": {"hash": "sha256"}, "source": "AWS KMS GetPublicKey (https://kms.us-east-2.amazonaws.com)"}}});
    std::fs::write(state.join("kms-keys.json"), cache.to_string()).unwrap();
    let (out, err) = signet(&["policy", "check", "--offline", "--state-dir", state_arg, file_arg]);
    assert!(err.contains(&format!("kms: {URI}: resolved, version arn:aws:kms:")), "{err}");
    assert!(
        err.contains("ecdsa-p256-sha256, from AWS KMS GetPublicKey (https://kms.us-east-2.amazonaws.com) (cached in")
    );
    assert!(err.contains("0 part(s) fail closed"), "{err}");
    assert!(
        out.contains("resolved:") && out.contains("MFkwEwYHKoZIzj0CAQYI"),
        "the normal form carries the key: {out}"
    );

    let (out, err) = signet(&[
        "policy",
        "explain",
        "reg.example.com/app:1",
        "--policy-dir",
        policies.to_str().unwrap(),
        "--offline",
        "--state-dir",
        state_arg,
    ]);
    assert!(out.contains(&format!("KMS key {URI} (resolved: version arn:aws:kms:")), "{out}{err}");
    assert!(out.contains("from AWS KMS GetPublicKey"), "{out}");
}
