//! Image references (`registry/repository:tag@digest`), parsed by hand.
//!
//! The accepted language is distribution's reference grammar, the one oci-spec's `Reference`
//! implements with a regular expression. That expression is Unicode-aware (`\w` in tags) and
//! took tens of milliseconds and ~10 MiB to compile on the first parse, on every start of
//! `signet verify` and on the daemon's start-up path. Every part of the grammar is ASCII and
//! regular enough to check in one pass, which is what this does. The public surface is the
//! one oci-spec's type offers and the rest of signet uses, so callers did not change.

use std::fmt;
use std::str::FromStr;

const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DEFAULT_TAG: &str = "latest";

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("invalid reference format")]
    ReferenceInvalidFormat,
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// A normalised image reference: Docker Hub names get their `docker.io/library/` parts, a
/// name with neither tag nor digest gets `latest`.
#[derive(Clone, Hash, PartialEq, Eq, Debug)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    pub fn with_tag(registry: String, repository: String, tag: String) -> Self {
        Self { registry, repository, tag: Some(tag), digest: None }
    }

    pub fn with_digest(registry: String, repository: String, digest: String) -> Self {
        Self { registry, repository, tag: None, digest: Some(digest) }
    }

    /// The same repository, by `digest`.
    pub fn clone_with_digest(&self, digest: String) -> Self {
        Self::with_digest(self.registry.clone(), self.repository.clone(), digest)
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The host that serves `docker.io` (Docker Hub's API is not at its name).
    pub fn resolve_registry(&self) -> &str {
        resolve_host(&self.registry)
    }

    pub fn whole(&self) -> String {
        self.to_string()
    }
}

/// Docker Hub's API host for its name; every other registry is its own host.
pub fn resolve_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = None;
        let parts = [(Some(&self.registry), "/"), (Some(&self.repository), ":"), (self.tag.as_ref(), "@")];
        for (part, next) in parts {
            if let Some(p) = part.filter(|p| !p.is_empty()) {
                write!(f, "{}{p}", sep.unwrap_or(""))?;
                sep = Some(next);
            } else if sep.is_some() && part.is_none() {
                // No tag: a digest follows the repository directly.
                sep = Some(next);
            }
        }
        if let Some(d) = &self.digest {
            write!(f, "{}{d}", sep.unwrap_or(""))?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl TryFrom<&str> for Reference {
    type Error = ParseError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        parse(s)
    }
}

impl TryFrom<String> for Reference {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse(&s)
    }
}

impl From<Reference> for String {
    fn from(r: Reference) -> Self {
        r.whole()
    }
}

fn parse(s: &str) -> Result<Reference, ParseError> {
    if s.is_empty() {
        return Err(ParseError::NameEmpty);
    }
    let invalid = ParseError::ReferenceInvalidFormat;
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    // A tag can only follow the last path component: a `:` before a `/` is a port.
    let last = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last..].find(':') {
        Some(i) => (&rest[..last + i], Some(&rest[last + i + 1..])),
        None => (rest, None),
    };
    if !valid_name(name) || !tag.is_none_or(valid_tag) || !digest.is_none_or(digest_shaped) {
        return Err(invalid);
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ParseError::NameTooLong);
    }
    if let Some(d) = digest {
        let (alg, hex) = d.split_once(':').ok_or(ParseError::DigestInvalidFormat)?;
        let want = match alg {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(ParseError::DigestUnsupported),
        };
        if hex.len() != want {
            return Err(ParseError::DigestInvalidLength);
        }
    }
    let tag = match (tag, digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (t, _) => t.map(String::from),
    };
    Ok(Reference { registry, repository, tag, digest: digest.map(String::from) })
}

/// `[domain/]component(/component)*`: the domain is tried only when the name has more than
/// one part, as in the grammar (a domain must be followed by `/`).
fn valid_name(name: &str) -> bool {
    let mut parts = name.split('/');
    let Some(first) = parts.next() else { return false };
    let rest_ok = parts.all(valid_component);
    rest_ok && (valid_component(first) || (name.contains('/') && valid_domain(first)))
}

/// `[a-z0-9]+` runs separated by `.`, `_`, `__` or any number of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `label(.label)*(:port)?`, labels of letters, digits and inner hyphens.
fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    host.split('.').all(label) && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit()))
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`: ASCII, where the regex's `\w` also took Unicode.
fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty() && b.len() <= TAG_LENGTH_MAX && word(b[0]) && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `algorithm:hex` with at least 32 hex digits; which algorithms is checked after.
fn digest_shaped(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else { return false };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|p| {
        let b = p.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|x| x.is_ascii_hexdigit())
}

/// distribution's `splitDomain`: a first part is a registry only if it looks like a host.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((left, right)) if left.contains(['.', ':']) || left == "localhost" => {
            (left.to_string(), right.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB.to_string();
    }
    if domain == DOCKER_HUB && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    (domain, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn the_grammar_cases_distribution_and_oci_spec_test() {
        let sha512 = format!("sha512:{F64}{F64}");
        type Case<'a> = (String, &'a str, &'a str, Option<&'a str>, Option<String>);
        let cases: Vec<Case> = vec![
            ("busybox".into(), "docker.io", "library/busybox", Some("latest"), None),
            ("test.com:tag".into(), "docker.io", "library/test.com", Some("tag"), None),
            ("test.com:5000".into(), "docker.io", "library/test.com", Some("5000"), None),
            ("test.com/repo:tag".into(), "test.com", "repo", Some("tag"), None),
            ("test:5000/repo".into(), "test:5000", "repo", Some("latest"), None),
            (format!("test:5000/repo@sha256:{F64}"), "test:5000", "repo", None, Some(format!("sha256:{F64}"))),
            (
                format!("test:5000/repo:tag@sha256:{F64}"),
                "test:5000",
                "repo",
                Some("tag"),
                Some(format!("sha256:{F64}")),
            ),
            ("lowercase:Uppercase".into(), "docker.io", "library/lowercase", Some("Uppercase"), None),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
                "sub-dom1.foo.com",
                "bar/baz/quux",
                Some("some-long-tag"),
                None,
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com".into(),
                "b.gcr.io",
                "test.example.com/my-app",
                Some("test.example.com"),
                None,
            ),
            (
                format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"),
                "xn--7o8h.com",
                "myimage",
                Some("xn--7o8h.com"),
                Some(sha512.clone()),
            ),
            ("foo_bar.com:8080".into(), "docker.io", "library/foo_bar.com", Some("8080"), None),
            ("foo/foo_bar.com:8080".into(), "docker.io", "foo/foo_bar.com", Some("8080"), None),
            ("index.docker.io/nginx".into(), "docker.io", "library/nginx", Some("latest"), None),
            ("localhost/a__b/c---d".into(), "localhost", "a__b/c---d", Some("latest"), None),
            ("Upper.Host:1/x".into(), "Upper.Host:1", "x", Some("latest"), None),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (r.registry(), r.repository(), r.tag(), r.digest()),
                (registry, repository, tag, digest.as_deref()),
                "{input}"
            );
            let again: Reference = r.whole().parse().unwrap();
            assert_eq!(again, r, "{input}: whole() parses back to itself");
        }
        assert_eq!("busybox".parse::<Reference>().unwrap().whole(), "docker.io/library/busybox:latest");
    }

    #[test]
    fn what_the_grammar_refuses() {
        let bad = [
            ("", ParseError::NameEmpty),
            (":justtag", ParseError::ReferenceInvalidFormat),
            ("@sha256:ffff", ParseError::ReferenceInvalidFormat),
            ("validname@invaliddigest:ffffffffffffffffffffffffffffffff", ParseError::DigestUnsupported),
            ("Uppercase:tag", ParseError::ReferenceInvalidFormat),
            ("test:5000/Uppercase/lowercase:tag", ParseError::ReferenceInvalidFormat),
            ("aa/asdf$$^/aa", ParseError::ReferenceInvalidFormat),
            ("a/a.-b", ParseError::ReferenceInvalidFormat),
            ("a/a___b", ParseError::ReferenceInvalidFormat),
            ("a//b", ParseError::ReferenceInvalidFormat),
            ("a/b/", ParseError::ReferenceInvalidFormat),
            ("-host.io/a", ParseError::ReferenceInvalidFormat),
            ("host.io:/a", ParseError::ReferenceInvalidFormat),
            ("repo:-tag", ParseError::ReferenceInvalidFormat),
            ("repo:tag:more", ParseError::ReferenceInvalidFormat),
            ("repo:täg", ParseError::ReferenceInvalidFormat),
            ("repo@sha256:abc", ParseError::ReferenceInvalidFormat),
            ("repo@sha256:ffffffffffffffffffffffffffffffffff", ParseError::DigestInvalidLength),
            (
                "repo@sha256:gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
                ParseError::ReferenceInvalidFormat,
            ),
        ];
        for (input, want) in bad {
            assert_eq!(input.parse::<Reference>(), Err(want.clone()), "{input:?}");
        }
        let long_tag = format!("repo:{}", "a".repeat(129));
        assert_eq!(long_tag.parse::<Reference>(), Err(ParseError::ReferenceInvalidFormat));
        assert!(format!("repo:{}", "a".repeat(128)).parse::<Reference>().is_ok());
        let long_name = format!("reg.io/{}", "a".repeat(256));
        assert_eq!(long_name.parse::<Reference>(), Err(ParseError::NameTooLong));
    }

    #[test]
    fn docker_hub_is_reached_at_its_api_host() {
        assert_eq!("nginx".parse::<Reference>().unwrap().resolve_registry(), "registry-1.docker.io");
        assert_eq!("r.io/x".parse::<Reference>().unwrap().resolve_registry(), "r.io");
        let d = Reference::with_digest("r.io".into(), "x".into(), format!("sha256:{F64}"));
        assert_eq!(d.whole(), format!("r.io/x@sha256:{F64}"));
        assert_eq!(d.clone_with_digest("sha256:1".into()).whole(), "r.io/x@sha256:1");
    }
}

/// The parser against the grammar it replaces (oci-spec 0.10's expression, verbatim), on
/// random strings over an alphabet of the grammar's edge cases. Run once with 400,000
/// strings when written; a smaller run keeps the check in the suite.
#[cfg(test)]
mod differential {
    use super::*;
    const RE: &str = r"^((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?/)?[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?)(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?$";
    #[test]
    fn against_the_regex() {
        let re = regex::RegexBuilder::new(RE).size_limit(10 * (1 << 21)).build().unwrap();
        let alphabet: Vec<&str> = vec![
            "a",
            "b",
            "Z",
            "0",
            "9",
            ".",
            "_",
            "__",
            "-",
            "--",
            "/",
            ":",
            "@",
            "sha256:",
            "ffffffffffffffffffffffffffffffff",
            "localhost",
            "x.io",
            ":5000",
            "é",
            "+",
            "A",
        ];
        let mut seed: u64 = 0x1234_5678;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let n = (next() % 9) as usize + 1;
            let s: String = (0..n).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let want = re.captures(&s).map(|c| {
                (c[1].to_string(), c.get(2).map(|m| m.as_str().to_string()), c.get(3).map(|m| m.as_str().to_string()))
            });
            let got = s.parse::<Reference>();
            match (&want, &got) {
                (None, Err(_)) => {}
                (Some(_), _) if !s.is_ascii() => assert!(got.is_err(), "{s:?}"),
                (Some((name, tag, digest)), _) => {
                    let (reg, repo) = split_domain(name);
                    let ok_digest = digest.as_deref().is_none_or(|d| {
                        matches!(d.split_once(':'), Some(("sha256", h)) if h.len() == 64)
                            || matches!(d.split_once(':'), Some(("sha384", h)) if h.len() == 96)
                            || matches!(d.split_once(':'), Some(("sha512", h)) if h.len() == 128)
                    });
                    if !ok_digest || repo.len() > 255 {
                        assert!(got.is_err(), "{s:?}: {got:?}");
                        continue;
                    }
                    let r = got.as_ref().unwrap_or_else(|e| panic!("{s:?} accepted by regex, refused: {e}"));
                    let t = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag.clone() };
                    assert_eq!(
                        (r.registry(), r.repository(), r.tag().map(String::from), r.digest().map(String::from)),
                        (reg.as_str(), repo.as_str(), t, digest.clone()),
                        "{s:?}"
                    );
                    accepted += 1;
                }
                (None, Ok(r)) => panic!("{s:?} refused by regex, accepted: {r:?}"),
            }
        }
        assert!(accepted > 1000, "the alphabet reaches valid references: {accepted}");
    }
}
