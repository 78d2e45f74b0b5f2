//! The checked-in test vectors (`testdata/cosign`, made by integration/make-vectors.sh) and
//! a fixed public key.

use std::path::Path;

/// A vector file's text.
pub fn vector(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A P-256 public key no test holds the private half of.
pub const TEST_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nhEhaiVh+bIH3LE3x1ae2+Rsdom
n6jj4T408Ki/F10p17R/R2YobGd7XDaa6PR2vfSDiAfBvxSCmvFGmEf35w==
-----END PUBLIC KEY-----
";

/// An ImageValidatingPolicy notary attestor named `name` trusting the notation vectors'
/// `trusted.crt` (`testdata/notation`), as a YAML flow mapping: an attestor that compiles and
/// verifies nothing a test signs with cosign.
pub fn notary_attestor(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation/trusted.crt");
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{{name: {name}, notary: {{certs: {{value: {}}}}}}}", serde_json::to_string(&pem).unwrap())
}
