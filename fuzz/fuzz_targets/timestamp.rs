//! RFC 3161 timestamps come from the registry (a `.sig` annotation, a bundle): the DER
//! parsing of the response, its CMS signed data and TSTInfo, the signer lookup, the path and
//! the signature check must never panic or run away, whatever arrives. The message is the
//! vectors' own, so inputs that keep its imprint reach the certificate and signature checks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use signet::verify::timestamp::{verify, Authorities};

const CHAIN: &str = include_str!("../../testdata/tsa/tsa-chain.pem");
const MESSAGE: &[u8] = include_bytes!("../../testdata/tsa/message");

fuzz_target!(|data: &[u8]| {
    let tsa = Authorities::from_pem(CHAIN).unwrap();
    let _ = verify(data, MESSAGE, &tsa);
});
