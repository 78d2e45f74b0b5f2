//! The vocabulary of a decision, shared by the pipeline ([`crate::enforce`]), the NRI
//! plugin ([`crate::plugin`]) and the metrics ([`crate::metrics`]): what the runtime claims
//! about an image, and the answer for it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What the runtime told us about the container's image.
#[derive(Debug, Clone, Default)]
pub struct ImageClaim {
    /// `io.kubernetes.cri.image-name` or the runtime's image name field.
    pub name: String,
    /// The digest the runtime resolved, when it says (NRI >= v0.12 `Container.image.digest`).
    pub digest: Option<String>,
    /// The pod's Kubernetes namespace, for namespace-scoped policy; `None` when unknown.
    pub namespace: Option<String>,
    /// The pod's labels and annotations, when the runtime says (CEL's `object.metadata`).
    pub pod: Option<Arc<PodMetadata>>,
    /// For a Kubernetes image volume: where it is mounted in the container. Its image is
    /// known only by the digest containerd mounted (`digest`), never by a name.
    pub volume: Option<String>,
    /// The container being created, whose root filesystem must be this image's content
    /// (`None` where there is no container: `signet verify`, a volume).
    pub container: Option<String>,
}

impl ImageClaim {
    pub fn named(name: &str) -> Self {
        Self { name: name.to_string(), ..Default::default() }
    }
}

/// Labels kubelet adds to every pod sandbox it asks the runtime for; the pod object the
/// API server admitted does not carry them.
pub const KUBELET_SANDBOX_LABELS: [&str; 3] =
    ["io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid"];

/// The pod's metadata as the runtime was told it: what Kyverno reads as the pod object's
/// `metadata.labels` and `metadata.annotations`. Whoever creates the sandbox chooses them,
/// as with the namespace (a caller of the CRI directly chooses both).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PodMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl PodMetadata {
    /// From the sandbox's labels and annotations, without the labels kubelet adds.
    pub fn from_sandbox<'a>(
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
        annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        Self {
            labels: labels
                .into_iter()
                .filter(|(k, _)| !KUBELET_SANDBOX_LABELS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            annotations: annotations.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// A digest of the whole, for cache keys: annotations may be large (256 KiB in the
    /// API), so a key must not hold them.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for map in [&self.labels, &self.annotations] {
            h.update((map.len() as u64).to_le_bytes());
            for (k, v) in map {
                for part in [k, v] {
                    h.update((part.len() as u64).to_le_bytes());
                    h.update(part.as_bytes());
                }
            }
        }
        h.finalize().into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Checked and allowed by policy.
    Allowed,
    /// Allowed only because a policy (or the node) is in warn mode; would have been denied.
    Warned,
    /// Denied.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Warned => "warned",
            Outcome::Denied => "denied",
        }
    }
}

/// The answer for one container, and everything a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub image: String,
    pub digest: Option<String>,
    /// Whether the container may run follows from the outcome alone ([`Decision::allowed`]),
    /// so no decision can say "allowed" and "denied" at once.
    pub outcome: Outcome,
    /// Names of the policies that matched the image.
    pub policies: Vec<String>,
    pub reason: String,
    /// Served from the cache (no verification work on this request).
    pub cached: bool,
    /// The check could not be completed (no policy, image not resolvable, registry failure,
    /// out of time): the denial says nothing about the image's signatures.
    pub indeterminate: bool,
}

impl Decision {
    /// A denial of `image` whose check could not be completed (yet): the starting point of
    /// every decision, so nothing is allowed without a completed check.
    pub fn undetermined(image: &str) -> Self {
        Self {
            image: image.to_string(),
            digest: None,
            outcome: Outcome::Denied,
            policies: Vec::new(),
            reason: String::new(),
            cached: false,
            indeterminate: true,
        }
    }

    /// May the container run (allowed, or only warned about)?
    pub fn allowed(&self) -> bool {
        self.outcome != Outcome::Denied
    }
}

/// The JSON form (`signet verify --output json`) has `allowed` beside `outcome`, both read
/// from the one field, and `error` for an indeterminate check.
impl serde::Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            image: &'a str,
            digest: &'a Option<String>,
            allowed: bool,
            outcome: Outcome,
            policies: &'a [String],
            reason: &'a str,
            error: bool,
        }
        let json = Json {
            image: &self.image,
            digest: &self.digest,
            allowed: self.allowed(),
            outcome: self.outcome,
            policies: &self.policies,
            reason: &self.reason,
            error: self.indeterminate,
        };
        json.serialize(s)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.outcome {
            Outcome::Allowed => "allowed",
            Outcome::Warned => "allowed (warn mode)",
            Outcome::Denied => "denied",
        };
        write!(f, "signet: image {}", self.image)?;
        if let Some(d) = &self.digest {
            write!(f, " ({d})")?;
        }
        write!(f, " {verb}")?;
        if !self.policies.is_empty() {
            write!(f, " by policy {}", self.policies.join(", "))?;
        }
        write!(f, ": {}", self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_kubelet_adds_are_not_the_pods() {
        let labels: BTreeMap<String, String> = [
            ("app", "web"),
            ("io.kubernetes.pod.name", "web-0"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.uid", "u"),
            ("io.kubernetes.pod.other", "kept"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let annotations: BTreeMap<String, String> = [("io.kubernetes.pod.name".to_string(), "x".to_string())].into();
        let pod = PodMetadata::from_sandbox(&labels, &annotations);
        assert_eq!(pod.labels.keys().collect::<Vec<_>>(), ["app", "io.kubernetes.pod.other"]);
        assert_eq!(pod.annotations, annotations, "annotations are the pod's as they are");
    }

    #[test]
    fn fingerprints_tell_labels_annotations_and_boundaries_apart() {
        let pod = |l: &[(&str, &str)], a: &[(&str, &str)]| {
            let m = |x: &[(&str, &str)]| x.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            PodMetadata { labels: m(l), annotations: m(a) }.fingerprint()
        };
        let all = [
            pod(&[], &[]),
            pod(&[("a", "b")], &[]),
            pod(&[], &[("a", "b")]),
            pod(&[("ab", "")], &[]),
            pod(&[("a", "b"), ("c", "d")], &[]),
            pod(&[("a", "bc"), ("", "d")], &[]),
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(pod(&[("a", "b")], &[]), pod(&[("a", "b")], &[]));
    }
}
