//! Image references as the node resolves them: parsed, bounded, and with the registry part
//! in the one spelling the runtime treats as the same registry.
//!
//! Matching runs on this canonical form. Names that reach the same registry must never
//! look different to a policy: `REG.IO/team/x`, `reg.io:443/team/x` and `reg.io/team/x` are
//! one repository to containerd (host names are case-insensitive, 443 is the https
//! default), and Docker Hub answers as `docker.io`, `index.docker.io`,
//! `registry-1.docker.io` and `registry.hub.docker.com`. Without this, a `reg.io/team/**`
//! policy under `no_match = allow` lets `Reg.io/team/x` run unchecked.

mod grammar;

pub use grammar::{resolve_host, ParseError, Reference};

/// Longer names are refused before any parsing or matching: the reference grammar bounds a
/// repository at 255 characters, a tag at 128 and a digest well below this.
pub const MAX_NAME_BYTES: usize = 1024;

/// The registry host every Docker Hub alias is folded into.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("image name is {len} bytes long, more than the {MAX_NAME_BYTES} any valid reference has")]
    TooLong { len: usize },
    #[error("image name {name:?} is not a valid reference: {message}")]
    Invalid { name: String, message: String },
}

/// Parse an image name into its canonical reference.
pub fn parse(name: &str) -> Result<Reference, ReferenceError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(ReferenceError::TooLong { len: name.len() });
    }
    // containerd reads an upper-case first part as a registry host (`Myorg/x` is pulled from
    // a host named `Myorg`), the grammar as a Docker Hub path: such a name is refused (so
    // denied) rather than matched as the Docker Hub image it is not.
    if let Some((first, _)) = name.split_once('/') {
        let host_only_by_case = first.chars().any(|c| c.is_ascii_uppercase())
            && !first.contains(['.', ':'])
            && !first.eq_ignore_ascii_case("localhost");
        if host_only_by_case {
            return Err(ReferenceError::Invalid {
                name: name.to_string(),
                message: format!("{first:?} is a registry host to containerd only by its upper case"),
            });
        }
    }
    let canonical = canonical_name(name);
    Reference::try_from(canonical.as_str())
        .map_err(|e| ReferenceError::Invalid { name: name.to_string(), message: e.to_string() })
}

/// The name as containerd normalises it, without signet's canonical host: what the image
/// store may hold it under (`docker.io/library/` and `:latest` added, `index.docker.io`
/// folded, case and port kept). Only for looking a name up, never for matching policy.
pub fn parse_as_written(name: &str) -> Result<Reference, ReferenceError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(ReferenceError::TooLong { len: name.len() });
    }
    Reference::try_from(name).map_err(|e| ReferenceError::Invalid { name: name.to_string(), message: e.to_string() })
}

/// The name with its registry part canonical; the rest (path, tag, digest) is untouched,
/// since the grammar already refuses upper case there. A first part that is a host only by
/// its upper case (`Myorg/x`: containerd pulls from a host named `Myorg`) is left as it is,
/// (and [`parse`] refuses it): lower-casing it would turn it into Docker Hub's `myorg/x`.
pub fn canonical_name(name: &str) -> String {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first.eq_ignore_ascii_case("localhost") => {
            format!("{}/{rest}", canonical_host(first))
        }
        _ => name.to_string(),
    }
}

/// The registry host in its canonical spelling: lower case, without the https default
/// port, Docker Hub's aliases folded into `docker.io`.
pub fn canonical_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    let bare = lower.strip_suffix(":443").unwrap_or(&lower);
    if DOCKER_HUB_ALIASES.contains(&bare) {
        return DOCKER_HUB.to_string();
    }
    bare.to_string()
}

/// The reference grammar's rule for whether a name's first component is a registry host:
/// it has a dot or a port, is `localhost`, or has upper case (which a path never has).
pub fn is_domain(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase())
}

/// `registry/repository` of a reference: the repository's identity without tag or digest.
pub fn repository(r: &Reference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_reach_the_same_registry_are_one_name() {
        for name in ["REG.IO/team/x:v1", "Reg.io/team/x:v1", "reg.io:443/team/x:v1", "reg.io/team/x:v1"] {
            assert_eq!(parse(name).unwrap().whole(), "reg.io/team/x:v1", "{name}");
        }
        for name in [
            "registry-1.docker.io/myorg/x:v1",
            "registry.hub.docker.com/myorg/x:v1",
            "index.docker.io/myorg/x:v1",
            "docker.io/myorg/x:v1",
            "myorg/x:v1",
        ] {
            assert_eq!(parse(name).unwrap().whole(), "docker.io/myorg/x:v1", "{name}");
        }
        assert_eq!(parse("registry-1.docker.io/nginx:1").unwrap().whole(), "docker.io/library/nginx:1");
    }

    #[test]
    fn other_ports_and_paths_stay_distinct() {
        assert_eq!(parse("reg.io:5000/team/x:v1").unwrap().whole(), "reg.io:5000/team/x:v1");
        assert_eq!(parse("localhost/x:v1").unwrap().whole(), "localhost/x:v1");
        assert!(parse("reg.io/Team/x:v1").is_err(), "upper case in the path is not a valid reference");
    }

    /// Review finding: an upper-case single label is a host to containerd, never Docker Hub.
    #[test]
    fn an_upper_case_single_label_host_is_refused_not_folded_into_docker_hub() {
        assert!(parse("Myorg/x:v1").is_err(), "containerd pulls it from a host named Myorg");
        assert!(parse("myorg/x:v1").is_ok_and(|r| r.registry() == "docker.io"));
        assert_eq!(parse("LOCALHOST/x:v1").unwrap().whole(), "localhost/x:v1");
    }

    #[test]
    fn as_written_keeps_case_and_port_like_containerd() {
        assert_eq!(parse_as_written("reg.io:443/app").unwrap().whole(), "reg.io:443/app:latest");
        assert_eq!(parse_as_written("REG.IO/app").unwrap().whole(), "REG.IO/app:latest");
        assert_eq!(
            parse_as_written("registry-1.docker.io/org/app").unwrap().whole(),
            "registry-1.docker.io/org/app:latest"
        );
        assert_eq!(parse_as_written("nginx").unwrap().whole(), "docker.io/library/nginx:latest");
    }

    #[test]
    fn overlong_names_are_refused_before_parsing() {
        let name = format!("reg.io/{}:v1", "a/".repeat(600));
        assert!(matches!(parse(&name), Err(ReferenceError::TooLong { len }) if len == name.len()));
    }
}
