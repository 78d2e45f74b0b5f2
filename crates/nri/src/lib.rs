//! A library for writing [NRI](https://github.com/containerd/nri) plugins in Rust: the
//! plugin side of containerd's (and CRI-O's) Node Resource Interface.
//!
//! Map of the crate:
//!
//! - [`protocol`]: the wire schema (`proto/nri.proto`, the `nri.pkg.api.v1alpha1` package as
//!   far as a validating plugin needs it) and the generated ttrpc services. [`api`] is the
//!   message types; [`Plugin`] is the service a plugin implements.
//! - [`mux`]: the multiplexer that carries NRI's two ttrpc conversations over one socket.
//! - [`plugin`]: registration and staying connected — [`run`] dials the runtime's socket (or
//!   takes the one a pre-installed plugin inherits), serves the plugin, registers, and
//!   reconnects with backoff; [`NriPlugin`] adds the connection hooks.
//! - `runtime_side` (feature `testing`): the runtime's end of the socket, to test a plugin the
//!   way containerd calls it.
//!
//! A plugin implements [`Plugin`] and [`NriPlugin`], then calls [`run`]. [`Plugin`]'s
//! methods default to a NOT_FOUND error; every plugin must implement `configure` (its reply
//! subscribes to events, see [`event::mask`]) and `synchronize` (NRI v0.6.1 never adds a
//! plugin whose Synchronize fails, and keeps its connection open, so it silently gets no
//! events). See `examples/allow-all-logger.rs`.
//!
//! Facts this crate encodes (checked against containerd 1.7.24 / NRI v0.6.1 and containerd
//! 2.1.9 / NRI v0.8.0): a plugin must register within 5 s of connecting; the runtime calls
//! Configure and Synchronize next, each under its request timeout (2 s by default); a
//! plugin that misses the timeout, crashes or closes is dropped, and the container it was
//! asked about is created without it.

pub mod mux;
pub mod plugin;
pub mod protocol;
#[cfg(any(test, feature = "testing"))]
pub mod runtime_side;

pub use plugin::{run, transport_from_env, NriError, NriPlugin, PluginIdentity, Transport, DEFAULT_SOCKET};
pub use protocol::nri as api;
pub use protocol::nri_ttrpc::Plugin;

/// The CRI annotation that carries the container's image name on containerd and CRI-O (the
/// only image identity before NRI v0.12's `Container.image`).
pub const CRI_IMAGE_NAME_ANNOTATION: &str = "io.kubernetes.cri.image-name";

/// NRI event numbers (the `Event` enum of the NRI API).
pub mod event {
    pub const RUN_POD_SANDBOX: u32 = 1;
    pub const STOP_POD_SANDBOX: u32 = 2;
    pub const REMOVE_POD_SANDBOX: u32 = 3;
    pub const CREATE_CONTAINER: u32 = 4;
    pub const POST_CREATE_CONTAINER: u32 = 5;
    pub const START_CONTAINER: u32 = 6;
    pub const POST_START_CONTAINER: u32 = 7;
    pub const UPDATE_CONTAINER: u32 = 8;
    pub const POST_UPDATE_CONTAINER: u32 = 9;
    pub const STOP_CONTAINER: u32 = 10;
    pub const REMOVE_CONTAINER: u32 = 11;

    /// The Configure reply's subscription mask for these events: bit `1 << (event - 1)`.
    /// A bit the runtime does not know gets the plugin rejected (NRI v0.6.1 knows 1..=11).
    pub fn mask(events: &[u32]) -> i32 {
        events.iter().fold(0, |m, e| m | (1 << (e - 1)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn create_container_mask_is_bit_three_and_inside_v0_6_1() {
        use super::event::{mask, CREATE_CONTAINER, REMOVE_CONTAINER};
        assert_eq!(mask(&[CREATE_CONTAINER]), 0x8);
        assert_eq!(mask(&(1..=REMOVE_CONTAINER).collect::<Vec<_>>()), 0x7FF);
    }
}
