//! NRI mux frame headers: any 8 bytes decode to a frame or a named error, never a panic,
//! and never a length beyond the cap; a decoded frame re-encodes to the same header.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nri::mux::{decode_header, encode_frame, HEADER_LEN, MAX_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let header: [u8; HEADER_LEN] = data[..HEADER_LEN].try_into().unwrap();
    if let Ok((conn, len)) = decode_header(&header) {
        assert!(len <= MAX_PAYLOAD);
        let body = &data[HEADER_LEN..];
        if body.len() == len {
            assert_eq!(encode_frame(conn, body), data);
        }
    }
});
