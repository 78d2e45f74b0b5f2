//! Test support shared by the in-process tests (compiled only for tests): fixtures live
//! here, not in other modules' `tests` modules.
//!
//! - [`http`]: reading HTTP/1.1 requests, for tests that play a server (fake API server,
//!   fake registries).
//! - [`signer`]: ECDSA P-256 keys and cosign-shaped signatures.
//! - [`keys`]: generated ECDSA and RSA signers for the schemes KMS keys use.
//! - [`policy`]: a normal-form policy built from the parts a test is about.
//! - [`vectors`]: the checked-in vectors, a fixed public key and a notary attestor.
//! - [`verify`]: a verification context, a signature set and digests.

pub mod http;
pub mod keys;
pub mod policy;
pub mod signer;
pub mod vectors;
pub mod verify;

pub use http::{read_request, Request};
pub use keys::TestKey;
pub use policy::normal_policy;
pub use signer::{payload, TestSigner};
pub use vectors::{vector, TEST_PUB};
