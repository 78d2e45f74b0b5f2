//! Verification fixtures: a context over an empty trust root, a signature set at a fixed
//! location, and two distinct digests.

use std::sync::LazyLock;

use crate::registry::{SignatureLayer, Signatures};
use crate::verify::trust::TrustRoot;
use crate::verify::Context;

pub const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Verification as of now, trusting nothing but the policies' own keys and CAs.
pub fn context() -> Context<'static> {
    static EMPTY: LazyLock<TrustRoot> = LazyLock::new(TrustRoot::empty);
    Context { trust: &EMPTY, now: Context::now_secs() }
}

/// The layers as found at one `.sig` tag.
pub fn sigs(layers: Vec<SignatureLayer>) -> Signatures {
    Signatures { location: "reg.io/app:sha256-1111.sig".into(), layers }
}
