//! Notation envelopes come from the registry: JWS JSON and COSE_Sign1 CBOR parsing, the
//! certificate chain and the signature check must never panic or run away, whatever
//! arrives. Checked at a time inside the test certificate's validity, so inputs that
//! reach the signature check are checked there too.
#![no_main]
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;
use signet::verify::notary::verify;

const TRUSTED: &str = include_str!("../../testdata/notation/trusted.crt");
const GOOD: &[u8] = include_bytes!("../../testdata/notation/good.jws");

/// One minute after notation signed `good.jws`: inside the certificate's one-day validity.
fn when() -> i64 {
    let env: serde_json::Value = serde_json::from_slice(GOOD).unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(env["protected"].as_str().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    let time = header["io.cncf.notary.signingTime"].as_str().unwrap();
    signet::verify::notary::rfc3339(time).unwrap() + 60
}

fuzz_target!(|data: &[u8]| {
    let trusted = [CertificateDer::from(pem::parse(TRUSTED).unwrap().into_contents())];
    let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let _ = verify(data, &trusted, digest, when());
});
