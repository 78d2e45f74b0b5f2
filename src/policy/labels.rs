//! Kubernetes label selectors over namespaces, and the snapshot of namespace labels the
//! cluster sync publishes with the policies.
//!
//! A selector is evaluated as Kubernetes' `metav1.LabelSelectorAsSelector` does: every
//! `matchLabels` pair and every `matchExpressions` requirement must hold (`NotIn` and
//! `DoesNotExist` hold for a missing key), and an empty selector selects everything.
//!
//! The node knows a namespace's labels only from the API server. Where it does not (local
//! files without a cluster, a namespace not seen yet, a watch not allowed by RBAC) the
//! answer is unknown and a selector is taken to *select* the namespace: the policy applies,
//! which can only refuse more than the cluster's admission would.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One object's labels.
pub type Labels = BTreeMap<String, String>;

/// The label the API server sets on every namespace to its name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("matchExpressions[{index}] ({key}): operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist")]
    Operator { index: usize, key: String, operator: String },
    #[error("matchExpressions[{index}] ({key}): operator {operator} needs at least one value")]
    NoValues { index: usize, key: String, operator: &'static str },
    #[error("matchExpressions[{index}] ({key}): operator {operator} takes no values")]
    Values { index: usize, key: String, operator: &'static str },
    #[error("not a label selector: {0}")]
    Shape(String),
    #[error(
        "matchLabels ({key}): wildcards are not label syntax (Kyverno has expanded them against the object's labels \
         in some versions and not in others), so the node does not narrow by them"
    )]
    Wildcard { key: String },
}

/// A selector as the Kubernetes API writes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    match_labels: Option<Labels>,
    #[serde(default)]
    match_expressions: Option<Vec<WireRequirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Operator {
    fn name(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A validated label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// Build from a policy's text, refusing what the API server would refuse.
    pub fn parse(match_labels: &Labels, expressions: &[(String, String, Vec<String>)]) -> Result<Self, LabelError> {
        // Taken literally, `app: web-*` would select no pod where Kyverno's expansion selects
        // `app: web-1`: narrower on the node than at admission.
        if let Some((key, _)) = match_labels.iter().find(|(k, v)| k.contains(['*', '?']) || v.contains(['*', '?'])) {
            return Err(LabelError::Wildcard { key: key.clone() });
        }
        let mut match_expressions = Vec::new();
        for (index, (key, operator, values)) in expressions.iter().enumerate() {
            let op = match operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => return Err(LabelError::Operator { index, key: key.clone(), operator: operator.clone() }),
            };
            match op {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    return Err(LabelError::NoValues { index, key: key.clone(), operator: op.name() })
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    return Err(LabelError::Values { index, key: key.clone(), operator: op.name() })
                }
                _ => {}
            }
            match_expressions.push(Requirement { key: key.clone(), operator: op, values: values.clone() });
        }
        Ok(Self { match_labels: match_labels.clone(), match_expressions })
    }

    /// Read a selector in the API's JSON form (`matchLabels`, `matchExpressions`).
    pub fn from_value(v: &serde_json::Value) -> Result<Self, LabelError> {
        let w: Wire = serde_json::from_value(v.clone()).map_err(|e| LabelError::Shape(e.to_string()))?;
        let expressions: Vec<(String, String, Vec<String>)> = w
            .match_expressions
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.key, r.operator, r.values.unwrap_or_default()))
            .collect();
        Self::parse(&w.match_labels.unwrap_or_default(), &expressions)
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Does this selector select an object with `labels`?
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// Namespace name → labels, as last listed and watched; swapped whole, never edited in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceLabels {
    /// `None`: no cluster, or the namespaces have not been listed (yet).
    known: Option<BTreeMap<String, Arc<Labels>>>,
}

impl NamespaceLabels {
    /// No labels are known: every selector selects.
    pub fn unknown() -> Self {
        Self { known: None }
    }

    /// A complete listing. Each namespace carries its name label, as the API server sets it.
    pub fn listed(namespaces: impl IntoIterator<Item = (String, Labels)>) -> Self {
        let known = namespaces
            .into_iter()
            .map(|(name, mut labels)| {
                labels.entry(NAME_LABEL.to_string()).or_insert_with(|| name.clone());
                (name, Arc::new(labels))
            })
            .collect();
        Self { known: Some(known) }
    }

    pub fn is_known(&self) -> bool {
        self.known.is_some()
    }

    /// The labels of `namespace`, when the cluster has told them.
    pub fn get(&self, namespace: Option<&str>) -> Option<&Arc<Labels>> {
        self.known.as_ref()?.get(namespace?)
    }

    /// Why a selector could not be evaluated for `namespace`, for `explain`.
    pub fn why_unknown(&self, namespace: Option<&str>) -> Option<String> {
        match (&self.known, namespace) {
            (_, None) => Some("the pod's namespace is not known".into()),
            (None, _) => Some("namespace labels are not known on this node (no cluster sync)".into()),
            (Some(k), Some(ns)) if !k.contains_key(ns) => Some(format!("namespace {ns} has not been seen yet")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> (String, String, Vec<String>) {
        (key.into(), op.into(), values.iter().map(|v| v.to_string()).collect())
    }

    fn selector(ml: &[(&str, &str)], exprs: &[(String, String, Vec<String>)]) -> LabelSelector {
        LabelSelector::parse(&labels(ml), exprs).unwrap()
    }

    /// The cases of apimachinery's labels.TestRequirementMatches / selector tests, as
    /// metav1.LabelSelectorAsSelector evaluates them.
    #[test]
    fn requirements_follow_kubernetes_semantics() {
        let team_a = labels(&[("team", "a"), ("env", "prod")]);
        let none = labels(&[]);
        let cases: Vec<(LabelSelector, &Labels, bool)> = vec![
            (selector(&[], &[]), &none, true),
            (selector(&[("team", "a")], &[]), &team_a, true),
            (selector(&[("team", "b")], &[]), &team_a, false),
            (selector(&[("team", "a"), ("env", "dev")], &[]), &team_a, false),
            (selector(&[("team", "a")], &[]), &none, false),
            (selector(&[], &[expr("team", "In", &["a", "b"])]), &team_a, true),
            (selector(&[], &[expr("team", "In", &["b"])]), &team_a, false),
            (selector(&[], &[expr("team", "In", &["a"])]), &none, false),
            (selector(&[], &[expr("team", "NotIn", &["b"])]), &team_a, true),
            (selector(&[], &[expr("team", "NotIn", &["a"])]), &team_a, false),
            // NotIn holds where the key is missing.
            (selector(&[], &[expr("team", "NotIn", &["a"])]), &none, true),
            (selector(&[], &[expr("team", "Exists", &[])]), &team_a, true),
            (selector(&[], &[expr("team", "Exists", &[])]), &none, false),
            (selector(&[], &[expr("team", "DoesNotExist", &[])]), &team_a, false),
            (selector(&[], &[expr("team", "DoesNotExist", &[])]), &none, true),
            // All requirements must hold.
            (selector(&[("env", "prod")], &[expr("team", "In", &["b"])]), &team_a, false),
            (
                selector(&[("env", "prod")], &[expr("team", "In", &["a"]), expr("x", "DoesNotExist", &[])]),
                &team_a,
                true,
            ),
        ];
        for (i, (s, l, want)) in cases.into_iter().enumerate() {
            assert_eq!(s.matches(l), want, "case {i}: {s:?} on {l:?}");
        }
    }

    #[test]
    fn what_the_api_server_refuses_is_refused() {
        let e = LabelSelector::parse(&Labels::new(), &[expr("team", "Equals", &["a"])]).unwrap_err();
        assert!(e.to_string().contains("\"Equals\""), "{e}");
        let e = LabelSelector::parse(&Labels::new(), &[expr("team", "In", &[])]).unwrap_err();
        assert!(e.to_string().contains("needs at least one value"), "{e}");
        let e = LabelSelector::parse(&Labels::new(), &[expr("team", "Exists", &["a"])]).unwrap_err();
        assert!(e.to_string().contains("takes no values"), "{e}");
    }

    /// A wildcard in matchLabels, taken literally, would select no object where Kyverno's
    /// expansion selects some: it is refused, and callers do not narrow by the selector.
    #[test]
    fn wildcards_in_match_labels_are_refused() {
        for (k, v) in [("app", "web-*"), ("app", "w?b"), ("team-*", "a")] {
            let labels: Labels = [(k.to_string(), v.to_string())].into();
            let e = LabelSelector::parse(&labels, &[]).unwrap_err();
            assert!(matches!(&e, LabelError::Wildcard { key } if key == k), "{e}");
            assert!(e.to_string().contains("does not narrow by them"), "{e}");
        }
    }

    #[test]
    fn labels_are_known_only_for_listed_namespaces() {
        assert_eq!(NamespaceLabels::unknown().get(Some("a")), None);
        let n = NamespaceLabels::listed([("a".to_string(), labels(&[("team", "x")]))]);
        let a = n.get(Some("a")).unwrap();
        assert_eq!(a.get("team").map(String::as_str), Some("x"));
        assert_eq!(a.get(NAME_LABEL).map(String::as_str), Some("a"), "the name label is always there");
        assert_eq!(n.get(Some("b")), None);
        assert_eq!(n.get(None), None);
        assert!(n.why_unknown(Some("b")).unwrap().contains("not been seen"));
        assert!(n.why_unknown(Some("a")).is_none());
    }
}
