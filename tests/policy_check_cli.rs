//! `signet policy check` as a user runs it on namespaced policy written for `kubectl -n`.

use std::process::Command;

const IMAGE_POLICY: &str = "apiVersion: portieris.cloud.ibm.com/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  repositories:\n  - {name: \"icr.io/*\", policy: {}}\n";

fn check(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signet")).arg("policy").arg("check").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_namespaced_policy_without_namespace_needs_one_and_takes_the_flag() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("p.yaml");
    std::fs::write(&file, IMAGE_POLICY).unwrap();
    let path = file.to_str().unwrap();
    let (ok, _, stderr) = check(&[path]);
    assert!(!ok && stderr.contains("metadata.namespace is missing") && stderr.contains("--namespace"), "{stderr}");
    let (ok, stdout, stderr) = check(&["--namespace", "payments", path]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("portieris:payments/p[icr.io/*]"), "{stdout}");
}
