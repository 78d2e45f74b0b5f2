//! CreateContainer requests off the wire: parsing and extracting the image claim must never
//! panic, whatever the runtime (or something pretending to be it) sends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nri::api::{CreateContainerRequest, SynchronizeRequest};
use protobuf::Message;
use signet::plugin::image_claim;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = CreateContainerRequest::parse_from_bytes(data) {
        let claim = image_claim(&req);
        let _ = claim.name.len();
    }
    let _ = SynchronizeRequest::parse_from_bytes(data);
});
