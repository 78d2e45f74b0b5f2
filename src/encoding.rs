//! Standard base64 as Sigstore material spells it (bundles, log entries, envelopes): one
//! decoder on the ground floor, for the registry's bundle conversion and for verification.

use base64::Engine;

/// A base64 field that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad base64: {0}")]
pub struct Base64Error(base64::DecodeError);

/// Decode standard base64, ignoring surrounding white space.
pub fn b64(s: &str) -> Result<Vec<u8>, Base64Error> {
    base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(Base64Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_trimmed_standard_base64_and_names_bad_input() {
        assert_eq!(b64(" aGk=\n").unwrap(), b"hi");
        assert!(b64("a*b").unwrap_err().to_string().starts_with("bad base64: "));
    }
}
