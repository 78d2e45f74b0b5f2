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

/// Sandbox labels the pod object the API server admitted does not carry: the three kubelet
/// adds to every sandbox it asks for, and the one containerd adds to the sandbox container
/// (NRI's pod labels are the sandbox config's merged with that container's).
pub const RUNTIME_SANDBOX_LABELS: [&str; 4] =
    ["io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid", "io.cri-containerd.kind"];

/// The annotations containerd writes into the sandbox's OCI spec, which NRI merges into the
/// pod's annotations (containerd overwrites a pod's own value for these). Others under the
/// same prefix are the pod's (`io.kubernetes.cri.untrusted-workload` is one users set).
pub const CONTAINERD_SANDBOX_ANNOTATIONS: [&str; 11] = [
    "io.kubernetes.cri.container-type",
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri.sandbox-name",
    "io.kubernetes.cri.sandbox-namespace",
    "io.kubernetes.cri.sandbox-uid",
    "io.kubernetes.cri.sandbox-log-directory",
    "io.kubernetes.cri.podsandbox.image-name",
    "io.kubernetes.cri.sandbox-cpu-period",
    "io.kubernetes.cri.sandbox-cpu-quota",
    "io.kubernetes.cri.sandbox-cpu-shares",
    "io.kubernetes.cri.sandbox-memory",
];

/// Annotations kubelet adds to its own copy of every pod (when it first saw it, and from
/// where), which it passes to the sandbox: an API pod's object does not carry them.
const KUBELET_SEEN: &str = "kubernetes.io/config.seen";
const KUBELET_SOURCE: &str = "kubernetes.io/config.source";

/// The pod's metadata as the runtime was told it: what Kyverno reads as the pod object's
/// `metadata.labels` and `metadata.annotations`. Whoever creates the sandbox chooses them,
/// as with the namespace (a caller of the CRI directly chooses both). What the runtime adds
/// is removed, but for the labels of the sandbox (pause) image, which containerd merges in
/// and which only the node's configuration chooses (`registry.k8s.io/pause` has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PodMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl PodMetadata {
    /// From the sandbox's labels and annotations as NRI reports them, without what kubelet
    /// and containerd add.
    pub fn from_sandbox<'a>(
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
        annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let added_annotation = |k: &str, v: &str| {
            CONTAINERD_SANDBOX_ANNOTATIONS.contains(&k) || k == KUBELET_SEEN || (k == KUBELET_SOURCE && v == "api")
        };
        Self {
            labels: labels
                .into_iter()
                .filter(|(k, _)| !RUNTIME_SANDBOX_LABELS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            annotations: annotations
                .into_iter()
                .filter(|(k, v)| !added_annotation(k, v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
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
    fn what_kubelet_and_containerd_add_is_not_the_pods() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        // As NRI reported a kubelet pod's sandbox on containerd 1.7 and 2.x.
        let labels = map(&[
            ("app", "web"),
            ("io.kubernetes.pod.name", "web-0"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.uid", "u"),
            ("io.cri-containerd.kind", "sandbox"),
            ("io.kubernetes.pod.other", "kept"),
        ]);
        let annotations = map(&[
            ("example.com/owner", "team-a"),
            ("io.kubernetes.cri.container-type", "sandbox"),
            ("io.kubernetes.cri.sandbox-id", "8024d5"),
            ("io.kubernetes.cri.sandbox-name", "web-0"),
            ("kubernetes.io/config.seen", "2026-12-03T11:22:28.80Z"),
            ("kubernetes.io/config.source", "api"),
        ]);
        let pod = PodMetadata::from_sandbox(&labels, &annotations);
        assert_eq!(pod.labels, map(&[("app", "web"), ("io.kubernetes.pod.other", "kept")]));
        assert_eq!(pod.annotations, map(&[("example.com/owner", "team-a")]));
        // Under containerd's prefix, what containerd does not write is the pod's.
        let own = map(&[("io.kubernetes.cri.untrusted-workload", "true")]);
        assert_eq!(PodMetadata::from_sandbox(&labels, &own).annotations, own);
        // A static pod's source stays: its mirror pod in the API carries it.
        let pod = PodMetadata::from_sandbox(&labels, &map(&[("kubernetes.io/config.source", "file")]));
        assert_eq!(pod.annotations, map(&[("kubernetes.io/config.source", "file")]));
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
