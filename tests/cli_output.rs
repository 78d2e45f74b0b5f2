//! The command-line binary as a user runs it: output into a pipe that closes early.

use std::process::{Command, Stdio};

/// Regression (#13.11): `signet crd | head -1` panicked with "failed printing to stdout:
/// Broken pipe". The reader here closes before the first byte is written.
#[test]
fn output_into_a_closed_pipe_exits_quietly_with_the_usual_status() {
    for args in [&["crd"][..], &["version"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("signet runs");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("signet exits");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
