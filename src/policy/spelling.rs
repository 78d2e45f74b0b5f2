//! The names each peer may have seen for the image the node runs.
//!
//! The node knows an image only by its canonical reference ([`crate::reference`]:
//! `docker.io/library/nginx:latest`); admission controllers saw what the pod spec said
//! (`nginx`, `docker.io/nginx`, `index.docker.io/library/nginx:latest`, ...) and most match
//! their patterns on that, or on their own normalisation of it. Each peer's patterns are
//! therefore matched on the names that peer would have computed for *some* spelling of this
//! reference, and the caller decides how the spellings combine so the node is never looser:
//! a pattern that adds checks applies when any spelling matches, one that removes checks
//! (Kyverno's `skipImageReferences`) only when every spelling does.
//!
//! Spellings vary only where containerd itself folds names: Docker Hub's host (absent or any
//! of its aliases), its `library/` prefix for official images, and an absent `:latest`.
//! Case and `:443` variants of other hosts are not enumerated: patterns have their literal
//! host canonicalised instead, as image names are.

/// Docker Hub's host names; the first is the canonical one.
const DOCKER_HUB_HOSTS: [&str; 4] = ["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

/// A canonical reference taken apart: `host/path[:tag][@digest]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> Parts<'a> {
    /// Split a canonical reference as [`crate::reference`] writes it (always with a host,
    /// a tag unless only a digest was given).
    pub fn of(full: &'a str) -> Self {
        let (name, digest) = match full.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (full, None),
        };
        let (host, rest) = name.split_once('/').unwrap_or(("", name));
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        Self { host, path, tag, digest }
    }

    fn is_docker_hub(&self) -> bool {
        self.host == DOCKER_HUB_HOSTS[0]
    }

    /// The path as written with and without Docker Hub's `library/`.
    fn paths(&self) -> Vec<&'a str> {
        let mut out = vec![self.path];
        if self.is_docker_hub() {
            if let Some(short) = self.path.strip_prefix("library/").filter(|s| !s.contains('/')) {
                out.push(short);
            }
        }
        out
    }

    /// The tag and digest as the reference has them, and nothing at all for `:latest`.
    fn suffixes(&self) -> Vec<String> {
        let mut canonical = String::new();
        if let Some(t) = self.tag {
            canonical.push(':');
            canonical.push_str(t);
        }
        if let Some(d) = self.digest {
            canonical.push('@');
            canonical.push_str(d);
        }
        let mut out = vec![canonical];
        if self.tag == Some("latest") && self.digest.is_none() {
            out.push(String::new());
        }
        out
    }

    /// The tag, or the digest without the tag when there is one (how policy-controller and
    /// Kyverno name a reference).
    fn tag_or_digest(&self) -> String {
        match (self.digest, self.tag) {
            (Some(d), _) => format!("@{d}"),
            (None, Some(t)) => format!(":{t}"),
            (None, None) => ":latest".to_string(),
        }
    }
}

/// Every name a pod spec could have given for this reference, the canonical one first.
pub fn pod_spellings(full: &str) -> Vec<String> {
    let p = Parts::of(full);
    let hosts: Vec<Option<&str>> = if p.is_docker_hub() {
        std::iter::once(None).chain(DOCKER_HUB_HOSTS.map(Some)).collect()
    } else {
        vec![Some(p.host)]
    };
    let mut out = vec![full.to_string()];
    for host in &hosts {
        for path in p.paths() {
            for suffix in p.suffixes() {
                let name = match host {
                    Some(h) => format!("{h}/{path}{suffix}"),
                    None => format!("{path}{suffix}"),
                };
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// policy-controller's `name.ParseReference(s).Name()` of each pod spelling, with the
/// spellings themselves (it also tries the name as written): the texts its globs see.
pub fn policy_controller_names(full: &str) -> Vec<String> {
    let p = Parts::of(full);
    let mut out = Vec::new();
    for spelling in pod_spellings(full) {
        let s = split_spelling(&spelling);
        // go-containerregistry names Docker Hub `index.docker.io` (from `docker.io` or no
        // host) and adds `library/` there; other aliases are registries of their own to it.
        let name = match s.host {
            None | Some("docker.io" | "index.docker.io") => {
                let path = if s.path.contains('/') { s.path.to_string() } else { format!("library/{}", s.path) };
                format!("index.docker.io/{path}{}", p.tag_or_digest())
            }
            Some(h) => format!("{h}/{}{}", s.path, p.tag_or_digest()),
        };
        for text in [name, spelling] {
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    out
}

/// Kyverno's `ImageInfo.String()` of each pod spelling: `docker.io/` when no host was
/// written, the path as written (no `library/` added), the tag dropped for a digest.
pub fn kyverno_names(full: &str) -> Vec<String> {
    let p = Parts::of(full);
    let hosts: &[&str] = if p.is_docker_hub() { &DOCKER_HUB_HOSTS } else { std::slice::from_ref(&p.host) };
    let mut out = Vec::new();
    for host in hosts {
        for path in p.paths() {
            let name = format!("{host}/{path}{}", p.tag_or_digest());
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// A name without its tag or digest: `reg.io/a:v1@sha256:…` → `reg.io/a`.
pub fn without_tag(name: &str) -> &str {
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    name[last_slash..].find(':').map_or(name, |i| &name[..last_slash + i])
}

/// A pod spelling taken apart; unlike a canonical reference it may lack the host.
struct Spelling<'a> {
    host: Option<&'a str>,
    path: &'a str,
}

fn split_spelling(s: &str) -> Spelling<'_> {
    let name = s.split_once('@').map_or(s, |(n, _)| n);
    let (host, rest) = match name.split_once('/') {
        Some((first, rest)) if crate::reference::is_domain(first) => (Some(first), rest),
        _ => (None, name),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let path = rest[last_slash..].find(':').map_or(rest, |i| &rest[..last_slash + i]);
    Spelling { host, path }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350";

    #[test]
    fn canonical_references_come_apart() {
        let p = Parts::of("reg.io:5000/a/b:v1");
        assert_eq!((p.host, p.path, p.tag, p.digest), ("reg.io:5000", "a/b", Some("v1"), None));
        let full = format!("reg.io/a:v1@{D}");
        let p = Parts::of(&full);
        assert_eq!((p.path, p.tag, p.digest), ("a", Some("v1"), Some(D)));
        let full = format!("reg.io/a@{D}");
        assert_eq!(Parts::of(&full).tag, None);
    }

    #[test]
    fn docker_hub_has_every_spelling_containerd_folds() {
        let s = pod_spellings("docker.io/library/nginx:latest");
        for want in
            ["nginx", "nginx:latest", "library/nginx", "docker.io/nginx", "index.docker.io/library/nginx:latest"]
        {
            assert!(s.contains(&want.to_string()), "{want} in {s:?}");
        }
        assert_eq!(pod_spellings("reg.io/a:v1"), ["reg.io/a:v1"]);
        assert_eq!(pod_spellings("reg.io/a:latest"), ["reg.io/a:latest", "reg.io/a"]);
    }

    #[test]
    fn peer_names_follow_each_peer() {
        let pc = policy_controller_names("docker.io/library/foo:latest");
        assert_eq!(pc[0], "index.docker.io/library/foo:latest");
        assert!(pc.contains(&"foo".to_string()), "the name as written is tried too");
        let full = format!("ghcr.io/foo:v1@{D}");
        assert!(policy_controller_names(&full).contains(&format!("ghcr.io/foo@{D}")), "tag dropped for a digest");
        let k = kyverno_names("docker.io/library/nginx:1.25");
        assert_eq!(k[..2], ["docker.io/library/nginx:1.25".to_string(), "docker.io/nginx:1.25".to_string()]);
        assert_eq!(kyverno_names(&full), [format!("ghcr.io/foo@{D}")]);
        assert_eq!(without_tag(&full), "ghcr.io/foo");
        assert_eq!(without_tag("reg.io:5000/a"), "reg.io:5000/a");
    }
}
