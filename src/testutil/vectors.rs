//! The checked-in test vectors (`testdata/cosign`, made by integration/make-vectors.sh;
//! `testdata/notation`, by integration/make-notation-vectors.sh) and a fixed public key.

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

/// A notation vector file's text (`testdata/notation`, README there).
pub fn notation(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The digest of the notation vectors' `image` or `other-image`.
pub fn notation_digest(which: &str) -> String {
    notation("digests").lines().find_map(|l| l.strip_prefix(&format!("{which} "))).unwrap().to_string()
}

/// Inside the notation vectors' one-day certificate validity: one minute after good.jws was
/// signed, in seconds since the epoch.
pub fn notation_signing_time_plus_a_minute() -> i64 {
    signing_time_plus_a_minute(&notation("good.jws"))
}

fn signing_time_plus_a_minute(jws: &str) -> i64 {
    use base64::Engine;
    let env: serde_json::Value = serde_json::from_str(jws).unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(env["protected"].as_str().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    let t = header["io.cncf.notary.signingTime"].as_str().unwrap();
    // RFC 3339 UTC, as notation writes it: seconds since the epoch by the civil calendar.
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + d - 719_469;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19) + 60
}

/// A file of `testdata/notation-referrer` (an SBOM attached to an image, signed by notation).
pub fn notation_referrer(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation-referrer").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The digest of the referrer vectors' `image`, `other-image`, `sbom` or `elsewhere`.
pub fn notation_referrer_digest(which: &str) -> String {
    notation_referrer("digests").lines().find_map(|l| l.strip_prefix(&format!("{which} "))).unwrap().to_string()
}

/// Inside the referrer vectors' certificate validity.
pub fn notation_referrer_time() -> i64 {
    signing_time_plus_a_minute(&notation_referrer("good.jws"))
}

/// The referrer vectors as the registry brings them: the artifact `which` (`sbom` or
/// `elsewhere`) with its manifest's subject, the SBOM as payload, and these envelopes.
pub fn referred_artifact(which: &str, envelopes: &[&str]) -> crate::registry::ReferredArtifact {
    let manifest: serde_json::Value =
        serde_json::from_str(&notation_referrer(&format!("{which}.manifest.json"))).unwrap();
    let layers = envelopes
        .iter()
        .map(|e| crate::registry::SignatureLayer {
            payload: notation_referrer(e).into_bytes(),
            form: crate::registry::Form::Notary,
            ..Default::default()
        })
        .collect();
    let digest = notation_referrer_digest(which);
    crate::registry::ReferredArtifact {
        artifact_type: manifest["artifactType"].as_str().map(str::to_string),
        subject: manifest["subject"]["digest"].as_str().map(str::to_string),
        payload: Some(Ok(notation_referrer("sbom.json").into_bytes())),
        signatures: crate::registry::Signatures {
            location: format!("reg.io/app:{}", digest.replace(':', "-")),
            layers,
        },
        spells_statement: manifest.get("predicate").is_some() || manifest.get("type").is_some(),
        digest,
    }
}
