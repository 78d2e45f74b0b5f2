//! The NRI wire types and ttrpc service glue, generated from `proto/nri.proto`.
#![allow(
    clippy::all,
    dead_code,
    unused_attributes,
    unknown_lints,
    missing_docs,
    unused_imports,
    unused_mut,
    nonstandard_style
)]

pub mod nri {
    include!(concat!(env!("OUT_DIR"), "/nri.rs"));
}
pub mod nri_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/nri_ttrpc.rs"));
}
