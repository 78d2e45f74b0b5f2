//! Generates the NRI message and ttrpc service code from this crate's `proto/nri.proto`.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    ttrpc_codegen::Codegen::new()
        .out_dir(&out)
        .inputs(["proto/nri.proto"])
        .include("proto")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize { async_all: true, ..Default::default() })
        .rust_protobuf_customize(ttrpc_codegen::ProtobufCustomize::default().gen_mod_rs(false))
        .run()
        .expect("generate NRI ttrpc code from proto/nri.proto");
    // The generated files open with inner attributes and docs (`#![allow(..)]`, `//!`), which
    // `include!` cannot take; the including module carries equivalent attributes instead.
    for name in ["nri.rs", "nri_ttrpc.rs"] {
        let path = out.join(name);
        let text = std::fs::read_to_string(&path).expect("read generated code");
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("#!["))
            .map(|l| match l.strip_prefix("//!") {
                Some(rest) => format!("//{rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&path, kept).expect("write generated code");
    }
    println!("cargo:rerun-if-changed=proto/nri.proto");
}
