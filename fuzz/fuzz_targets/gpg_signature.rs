//! GPG simple-signing signatures from a lookaside store are untrusted bytes: OpenPGP packet
//! parsing, decompression and verification must never panic or run away, whatever arrives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use signet::verify::gpg::{verify, GpgKey, GpgSigner, SignedIdentity};

const KEY: &str = include_str!("../../testdata/cosign/gpg.pub.asc");
const DIGEST: &str = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";

fuzz_target!(|data: &[u8]| {
    let signer = GpgSigner { keys: GpgKey::parse_armored(KEY).unwrap(), identity: SignedIdentity::default() };
    // Only skopeo's real signature verifies; anything else must be an error, not a crash.
    let _ = verify(data, &signer, "registry.example/team/app:v1", DIGEST, 64 << 10);
});
