//! Kyverno's conditions language, as ClusterPolicy `verifyImages[].attestations[].conditions`
//! use it over a verified attestation: a list of `{any, all}` sets of `{key, operator,
//! value, message}`, whose keys and values carry `{{ JMESPath }}` variables over the
//! statement's predicate. Pure; it knows nothing of signatures or policy kinds.
//!
//! Semantics follow Kyverno's engine (`EvaluateAnyAllConditions`): every set must hold;
//! in a set, `any` holds when one of its conditions does (absent: holds; present and
//! empty: does not) and `all` when every one does, each stopping at the first that
//! decides; a variable that cannot be substituted is an error, not a false condition.
//! The message of a failed set is its false conditions' messages.
//!
//! - [`operators`]: the operators and how they read keys and values.
//! - [`variables`]: `{{ }}` substitution and JMESPath with Kyverno's missing-field rule.
//! - [`functions`]: the Kyverno JMESPath functions the node evaluates.
//! - [`golang`]: Go's spellings of durations, numbers, quantities and wildcards.

pub mod functions;
pub mod golang;
pub mod operators;
pub mod variables;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use operators::{Operator, OperatorError};
use variables::VariableError;

/// Why conditions cannot be read or judged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConditionError {
    #[error("{at}: {why}")]
    Malformed { at: String, why: String },
    #[error("{at}: {source}")]
    Operator {
        at: String,
        #[source]
        source: OperatorError,
    },
    #[error("{at}: {source}")]
    Variable {
        at: String,
        #[source]
        source: VariableError,
    },
    #[error("{at}: function {function:?} is not evaluated on the node")]
    Function { at: String, function: String },
    #[error("{at}: {field:?} is read from the admission request or the rule context, which the node does not have")]
    Admission { at: String, field: String },
    #[error("the statement's predicate is not a JSON object")]
    NotAnObject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    #[serde(default)]
    any: Option<Vec<RawCondition>>,
    #[serde(default)]
    all: Option<Vec<RawCondition>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(default)]
    key: Value,
    operator: String,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    message: String,
}

#[derive(Debug, PartialEq)]
struct Condition {
    /// Where it is written (`conditions[0].all[1]`), for messages.
    at: String,
    key: Value,
    operator: Operator,
    value: Value,
    /// A string, which may hold variables.
    message: Value,
}

#[derive(Debug, PartialEq)]
struct Set {
    any: Option<Vec<Condition>>,
    all: Vec<Condition>,
}

/// Conditions read and checked for what the node can evaluate.
#[derive(Debug, PartialEq)]
pub struct Conditions {
    sets: Vec<Set>,
}

/// Fields of Kyverno's rule context besides the predicate: a condition reading them
/// judges the admission request, which the node does not have.
const ADMISSION: &[&str] =
    &["request", "images", "serviceAccountName", "serviceAccountNamespace", "element", "elementIndex", "target"];

/// The result of judging conditions over one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub holds: bool,
    /// The messages of the conditions that decided, joined with `; `.
    pub message: String,
}

impl Conditions {
    /// Read a `conditions` list as written in the policy, refusing what the node cannot
    /// evaluate (unknown or deprecated operators and functions, `@`, references, request
    /// fields) with the place it is written.
    pub fn parse(list: &[Value]) -> Result<Arc<Self>, ConditionError> {
        Self::parse_beside(list, &[])
    }

    /// [`Conditions::parse`] for conditions written beside a rule `context` defining
    /// `context` names: Kyverno would read those from the context, which the node does not
    /// build, so a query reading one from its root is refused rather than read from the
    /// signed statement (where whoever signs could supply it).
    pub fn parse_beside(list: &[Value], context: &[&str]) -> Result<Arc<Self>, ConditionError> {
        let mut sets = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let at = format!("conditions[{i}]");
            let set: RawSet = serde_json::from_value(raw.clone())
                .map_err(|e| ConditionError::Malformed { at: at.clone(), why: e.to_string() })?;
            let read = |which: &str, list: Vec<RawCondition>| {
                list.into_iter()
                    .enumerate()
                    .map(|(j, c)| Condition::read(format!("{at}.{which}[{j}]"), c, context))
                    .collect::<Result<Vec<_>, _>>()
            };
            sets.push(Set {
                any: set.any.map(|l| read("any", l)).transpose()?,
                all: set.all.map(|l| read("all", l)).transpose()?.unwrap_or_default(),
            });
        }
        Ok(Arc::new(Self { sets }))
    }

    /// Judge the conditions over a statement (its `predicate` is the variables' root), at
    /// `now` (seconds since the epoch) for the time functions.
    pub fn judge(&self, statement: &Value, now: i64) -> Result<Verdict, ConditionError> {
        let predicate = statement.get("predicate").filter(|p| p.is_object()).ok_or(ConditionError::NotAnObject)?;
        let root: jmespath::Rcvar =
            Arc::new(jmespath::Variable::from_serializable(predicate).map_err(|_| ConditionError::NotAnObject)?);
        let runtime = functions::runtime(now);
        let mut passed = Vec::new();
        for set in &self.sets {
            let mut failed = Vec::new();
            let mut holds = true;
            if let Some(any) = &set.any {
                holds = false;
                for c in any {
                    let (held, message) = c.holds(&root, &runtime)?;
                    if held {
                        holds = true;
                        passed.push(message);
                        break;
                    }
                    failed.push(message);
                }
            }
            for c in &set.all {
                let (held, message) = c.holds(&root, &runtime)?;
                if !held {
                    holds = false;
                    failed.push(message);
                    break;
                }
                passed.push(message);
            }
            if !holds {
                return Ok(Verdict { holds, message: join(&failed) });
            }
        }
        Ok(Verdict { holds: true, message: join(&passed) })
    }
}

fn join(messages: &[String]) -> String {
    messages.iter().filter(|m| !m.is_empty()).cloned().collect::<Vec<_>>().join("; ")
}

/// Check every string in a key or value for what the node cannot substitute.
fn check_text(at: &str, v: &Value, reserved: &[&str]) -> Result<(), ConditionError> {
    match v {
        Value::String(s) => {
            if let Some(text) = variables::unsupported(s) {
                return Err(ConditionError::Variable { at: at.to_string(), source: VariableError::Unsupported(text) });
            }
            for query in variables::queries(s) {
                let ast = jmespath::parse(&query).map_err(|e| ConditionError::Variable {
                    at: at.to_string(),
                    source: VariableError::Query { variable: query.clone(), why: e.to_string() },
                })?;
                let mut called = Vec::new();
                variables::walk(&ast, &mut called);
                if let Some(f) = called
                    .into_iter()
                    .find(|f| !functions::KYVERNO.contains(&f.as_str()) && !functions::STANDARD.contains(&f.as_str()))
                {
                    return Err(ConditionError::Function { at: at.to_string(), function: f });
                }
                let mut roots = Vec::new();
                variables::root_fields(&ast, true, &mut roots);
                if let Some(root) = roots.into_iter().find(|r| ADMISSION.contains(r) || reserved.contains(r)) {
                    return Err(ConditionError::Admission { at: at.to_string(), field: root.to_string() });
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|i| check_text(at, i, reserved)),
        Value::Object(map) => map.values().try_for_each(|i| check_text(at, i, reserved)),
        _ => Ok(()),
    }
}

impl Condition {
    fn read(at: String, c: RawCondition, reserved: &[&str]) -> Result<Self, ConditionError> {
        let operator =
            Operator::parse(&c.operator).map_err(|source| ConditionError::Operator { at: at.clone(), source })?;
        check_text(&at, &c.key, reserved)?;
        check_text(&at, &c.value, reserved)?;
        let message = Value::String(c.message);
        check_text(&at, &message, reserved)?;
        Ok(Self { at, key: c.key, operator, value: c.value, message })
    }

    /// Whether the condition holds, and its message. Kyverno substitutes the whole condition,
    /// its message too, before judging it: a message variable that cannot be substituted
    /// is an error however the operator would have answered.
    fn holds(&self, root: &jmespath::Rcvar, runtime: &jmespath::Runtime) -> Result<(bool, String), ConditionError> {
        let at = || self.at.clone();
        let substitute = |v: &Value| {
            variables::substitute(v, root, runtime).map_err(|source| ConditionError::Variable { at: at(), source })
        };
        let key = substitute(&self.key)?;
        let value = substitute(&self.value)?;
        let message = match substitute(&self.message)? {
            Value::String(s) => s,
            other => golang::go_json(&other),
        };
        let holds =
            self.operator.holds(&key, &value).map_err(|source| ConditionError::Operator { at: at(), source })?;
        Ok((holds, message))
    }
}

#[cfg(test)]
mod tests;
