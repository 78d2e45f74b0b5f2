//! `.sig` manifests from a hostile registry: size cap first, count cap always, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use signet::registry::{signature_layers, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(layers) = signature_layers(data, &limits, "fuzz") {
        assert!(layers.len() <= limits.max_signatures);
        assert!(data.len() <= limits.max_manifest_bytes);
    }
});
