//! Kyverno's condition operators over substituted keys and values, as its operator
//! handlers define them: every JSON number a Go float64, strings read as durations, then
//! quantities, then wildcards (Equals) or numbers and semantic versions (the numeric
//! operators), the `In` family on `fmt.Sprint` spellings with wildcards both ways.
//! What Kyverno answers by a type mismatch, these answer the same way (mostly `false`);
//! the few spellings whose meaning the node does not reproduce (range values such as
//! `1-10`) are errors, so the condition fails closed.

use serde_json::Value;

use super::golang::{parse_duration, parse_float, parse_quantity, sprint, wildcard};

/// A condition's operator (case-insensitive, as Kyverno's CRD accepts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Equals,
    NotEquals,
    AnyIn,
    AllIn,
    AnyNotIn,
    AllNotIn,
    GreaterThan,
    GreaterThanOrEquals,
    LessThan,
    LessThanOrEquals,
}

/// Why an operator cannot be judged on the node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OperatorError {
    #[error("operator {0:?} is not one Kyverno defines")]
    Unknown(String),
    #[error("operator {0:?} is deprecated in Kyverno and not evaluated on the node")]
    Deprecated(String),
    #[error("range value {0:?} is not evaluated on the node")]
    Range(String),
    #[error("{0} of an object or array is not evaluated on the node")]
    Composite(&'static str),
}

impl Operator {
    pub fn parse(text: &str) -> Result<Self, OperatorError> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "equal" | "equals" => Operator::Equals,
            "notequal" | "notequals" => Operator::NotEquals,
            "anyin" => Operator::AnyIn,
            "allin" => Operator::AllIn,
            "anynotin" => Operator::AnyNotIn,
            "allnotin" => Operator::AllNotIn,
            "greaterthan" => Operator::GreaterThan,
            "greaterthanorequals" => Operator::GreaterThanOrEquals,
            "lessthan" => Operator::LessThan,
            "lessthanorequals" => Operator::LessThanOrEquals,
            "in"
            | "notin"
            | "durationgreaterthanorequals"
            | "durationgreaterthan"
            | "durationlessthanorequals"
            | "durationlessthan" => return Err(OperatorError::Deprecated(text.to_string())),
            _ => return Err(OperatorError::Unknown(text.to_string())),
        })
    }

    /// Does `key` stand in this relation to `value`?
    pub fn holds(self, key: &Value, value: &Value) -> Result<bool, OperatorError> {
        match self {
            Operator::Equals => Ok(equals(key, value)),
            Operator::NotEquals => Ok(not_equals(key, value)),
            Operator::GreaterThan | Operator::GreaterThanOrEquals | Operator::LessThan | Operator::LessThanOrEquals => {
                Ok(numeric(self, key, value))
            }
            Operator::AnyIn | Operator::AllIn | Operator::AnyNotIn | Operator::AllNotIn => within(self, key, value),
        }
    }
}

/// Go's `parseDuration(key, value)`: at least one side a duration (not `0`), the other a
/// duration or a number of whole seconds; compared in seconds.
fn durations(key: &Value, value: &Value) -> Option<(f64, f64)> {
    let as_duration = |v: &Value| v.as_str().filter(|s| *s != "0").and_then(parse_duration);
    let (k, v) = (as_duration(key), as_duration(value));
    if k.is_none() && v.is_none() {
        return None;
    }
    let seconds = |d: Option<i64>, other: &Value| match d {
        Some(nanos) => Some(nanos as f64 / 1e9),
        None => other.as_f64().map(f64::trunc),
    };
    Some((seconds(k, key)?, seconds(v, value)?))
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Deep equality with every number a float64, as Go's decoded JSON compares.
fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| deep_equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| deep_equal(a, b)))
        }
        _ => a == b,
    }
}

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool() == Some(*k),
        Value::Number(_) => {
            let k = number(key).unwrap_or(f64::NAN);
            match value {
                Value::Number(_) => number(value) == Some(k),
                Value::String(s) => parse_float(s) == Some(k),
                _ => false,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = durations(key, value) {
                return a == b;
            }
            if let Some(kq) = parse_quantity(k) {
                if let Value::String(v) = value {
                    return parse_quantity(v) == Some(kq);
                }
            }
            value.as_str().is_some_and(|v| wildcard(v, k))
        }
        Value::Array(_) | Value::Object(_) => {
            std::mem::discriminant(key) == std::mem::discriminant(value) && deep_equal(key, value)
        }
        Value::Null => false,
    }
}

fn not_equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool() != Some(*k),
        Value::Number(_) => {
            let k = number(key).unwrap_or(f64::NAN);
            match value {
                Value::Number(_) => number(value) != Some(k),
                Value::String(s) => parse_float(s) != Some(k),
                _ => true,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = durations(key, value) {
                return a != b;
            }
            if let Some(kq) = parse_quantity(k) {
                if let Value::String(v) = value {
                    if v.is_empty() {
                        return !wildcard(v, k);
                    }
                    return parse_quantity(v) != Some(kq);
                }
            }
            value.as_str().is_none_or(|v| !wildcard(v, k))
        }
        Value::Array(_) | Value::Object(_) => {
            std::mem::discriminant(key) != std::mem::discriminant(value) || !deep_equal(key, value)
        }
        Value::Null => false,
    }
}

fn compare(op: Operator, key: f64, value: f64) -> bool {
    match op {
        Operator::GreaterThan => key > value,
        Operator::GreaterThanOrEquals => key >= value,
        Operator::LessThan => key < value,
        Operator::LessThanOrEquals => key <= value,
        _ => false,
    }
}

fn numeric(op: Operator, key: &Value, value: &Value) -> bool {
    match key {
        Value::Number(_) => numeric_float(op, number(key).unwrap_or(f64::NAN), key, value),
        Value::String(k) => {
            if let Some((a, b)) = durations(key, value) {
                return compare(op, a, b);
            }
            if let (Some(kq), Some(vq)) = (parse_quantity(k), value.as_str().and_then(parse_quantity)) {
                let ordering = kq.partial_cmp(&vq).map_or(f64::NAN, |o| o as i8 as f64);
                return compare(op, ordering, 0.0);
            }
            if let Some(kf) = parse_float(k) {
                return numeric_float(op, kf, key, value);
            }
            if let Ok(mut kv) = semver::Version::parse(k) {
                return match value.as_str().map(semver::Version::parse) {
                    Some(Ok(mut vv)) => {
                        // blang/semver, as semver 2.0.0 says, ignores build metadata in the
                        // order; Rust's semver does not.
                        kv.build = semver::BuildMetadata::EMPTY;
                        vv.build = semver::BuildMetadata::EMPTY;
                        compare(op, kv.cmp(&vv) as i8 as f64, 0.0)
                    }
                    _ => false,
                };
            }
            false
        }
        _ => false,
    }
}

/// A float key (Go's `validateValueWithFloatPattern`); `original` is the key as it was,
/// which the duration reading looks at.
fn numeric_float(op: Operator, k: f64, original: &Value, value: &Value) -> bool {
    match value {
        Value::Number(_) => compare(op, k, number(value).unwrap_or(f64::NAN)),
        Value::String(s) => {
            if let Some((a, b)) = durations(&serde_json::json!(k), value).or_else(|| durations(original, value)) {
                return compare(op, a, b);
            }
            parse_float(s).is_some_and(|v| compare(op, k, v))
        }
        _ => false,
    }
}

/// Kyverno's range values (`1-10`, `10Mi!-20Mi`), read by its pattern validator, which
/// the node does not reproduce.
fn is_range(text: &str) -> bool {
    static RANGE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^\s*[-+]?[0-9.]+[A-Za-z]*\s*!?-\s*[-+]?[0-9.]+[A-Za-z]*\s*$").expect("range regex")
    });
    RANGE.is_match(text)
}

/// The strings a string value stands for: a JSON array of strings, else itself; `None`
/// when it is JSON but not an array of strings (Kyverno: an invalid type, so `false`).
fn string_list(text: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => serde_json::from_value::<Vec<String>>(v).ok(),
        Err(_) => Some(vec![text.to_string()]),
    }
}

fn either_way(a: &str, b: &str) -> bool {
    wildcard(a, b) || wildcard(b, a)
}

fn within(op: Operator, key: &Value, value: &Value) -> Result<bool, OperatorError> {
    let negated = matches!(op, Operator::AnyNotIn | Operator::AllNotIn);
    match key {
        Value::Array(items) => {
            let keys = items.iter().map(sprint).collect::<Option<Vec<_>>>().ok_or(OperatorError::Composite("a key"))?;
            let values = match value {
                Value::Array(vs) => {
                    vs.iter().map(sprint).collect::<Option<Vec<_>>>().ok_or(OperatorError::Composite("a value"))?
                }
                Value::Number(_) | Value::Bool(_) if matches!(op, Operator::AnyIn | Operator::AnyNotIn) => {
                    vec![sprint(value).unwrap_or_default()]
                }
                Value::String(v) => {
                    if keys.len() == 1 && keys[0] == *v {
                        return Ok(!negated);
                    }
                    if is_range(v) {
                        return Err(OperatorError::Range(v.clone()));
                    }
                    match string_list(v) {
                        Some(list) => list,
                        None => return Ok(false),
                    }
                }
                _ => return Ok(false),
            };
            let found = |k: &String| values.iter().any(|v| either_way(k, v));
            Ok(match op {
                Operator::AnyIn => keys.iter().any(found),
                Operator::AllIn => keys.iter().all(found),
                Operator::AnyNotIn => keys.iter().any(|k| !found(k)),
                _ => !keys.iter().any(found),
            })
        }
        Value::Object(_) => Ok(false),
        scalar => {
            let Some(k) = sprint(scalar).filter(|_| !scalar.is_null()) else {
                return Ok(false);
            };
            let exists = match value {
                Value::Array(vs) => {
                    let values =
                        vs.iter().map(sprint).collect::<Option<Vec<_>>>().ok_or(OperatorError::Composite("a value"))?;
                    values.iter().any(|v| either_way(v, &k))
                }
                Value::String(v) => {
                    if wildcard(v, &k) {
                        true
                    } else if is_range(v) {
                        return Err(OperatorError::Range(v.clone()));
                    } else {
                        match string_list(v) {
                            Some(list) => list.contains(&k),
                            None => return Ok(false),
                        }
                    }
                }
                _ => return Ok(false),
            };
            Ok(exists != negated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(op: &str, key: Value, value: Value) -> bool {
        Operator::parse(op).unwrap().holds(&key, &value).unwrap()
    }

    #[test]
    fn operators_are_case_insensitive_and_deprecated_ones_fail_closed() {
        assert_eq!(Operator::parse("equals"), Ok(Operator::Equals));
        assert_eq!(Operator::parse("Equal"), Ok(Operator::Equals));
        assert_eq!(Operator::parse("ANYNOTIN"), Ok(Operator::AnyNotIn));
        assert!(matches!(Operator::parse("In"), Err(OperatorError::Deprecated(_))));
        assert!(matches!(Operator::parse("DurationLessThan"), Err(OperatorError::Deprecated(_))));
        assert!(matches!(Operator::parse("Matches"), Err(OperatorError::Unknown(_))));
    }

    #[test]
    fn equals_reads_strings_as_durations_then_quantities_then_wildcards() {
        assert!(holds("Equals", json!("https://slsa.dev/x"), json!("https://slsa.dev/*")));
        assert!(!holds("Equals", json!("https://slsa.dev/*"), json!("https://slsa.dev/x")), "the value is the pattern");
        assert!(holds("Equals", json!("1h"), json!("60m")));
        assert!(holds("Equals", json!("1h"), json!(3600)));
        assert!(holds("Equals", json!("1Ki"), json!("1024")));
        assert!(!holds("Equals", json!("1Ki"), json!("x")));
        assert!(holds("Equals", json!(3), json!("3")));
        assert!(holds("Equals", json!(3), json!(3.0)));
        assert!(!holds("Equals", json!("3"), json!(3)), "a string key against a number value is false in Kyverno");
        assert!(holds("Equals", json!(true), json!(true)));
        assert!(!holds("Equals", json!(true), json!("true")));
        assert!(holds("Equals", json!({"a": [1]}), json!({"a": [1.0]})));
        assert!(!holds("Equals", json!(null), json!(null)));
        assert!(holds("NotEquals", json!("a"), json!("b")));
        assert!(!holds("NotEquals", json!("abc"), json!("a*")));
        assert!(holds("NotEquals", json!(true), json!("true")));
        assert!(!holds("NotEquals", json!(null), json!("x")));
        assert!(holds("NotEquals", json!("5"), json!("")));
        assert!(holds("NotEquals", json!([1]), json!({"a": 1})));
    }

    #[test]
    fn numeric_operators_read_durations_quantities_numbers_and_versions() {
        assert!(holds("LessThanOrEquals", json!("72h3m0.5s"), json!("168h")));
        assert!(!holds("LessThanOrEquals", json!("200h"), json!("168h")));
        assert!(holds("GreaterThan", json!(5), json!(3)));
        assert!(holds("GreaterThan", json!(5), json!("3")));
        assert!(holds("GreaterThan", json!("5"), json!(3)));
        assert!(holds("LessThan", json!("1Gi"), json!("2Gi")));
        assert!(holds("GreaterThanOrEquals", json!("1.10.0"), json!("1.9.3")));
        assert!(!holds("GreaterThan", json!("1.10.0"), json!(1)));
        assert!(!holds("GreaterThan", json!("abc"), json!("abd")), "strings that are nothing else do not compare");
        assert!(holds("GreaterThan", json!(7200), json!("1h")), "a number against a duration is seconds");
        assert!(!holds("GreaterThan", json!(true), json!(false)));
    }

    #[test]
    fn in_operators_compare_sprint_spellings_with_wildcards_both_ways() {
        assert!(holds("AnyIn", json!("b"), json!(["a", "b"])));
        assert!(holds("AnyIn", json!("bar"), json!(["b*"])));
        assert!(holds("AnyIn", json!("b*"), json!(["bar"])));
        assert!(holds("AnyIn", json!(3), json!(["3"])));
        assert!(holds("AllIn", json!("x"), json!("[\"x\", \"y\"]")), "a JSON array in a string");
        assert!(!holds("AnyIn", json!("x"), json!("[1, 2]")), "a JSON array of numbers in a string is invalid");
        assert!(holds("AllNotIn", json!("c"), json!(["a", "b"])));
        assert!(holds("AnyNotIn", json!("c"), json!(["a", "b"])));
        assert!(!holds("AnyIn", json!({"a": 1}), json!(["a"])));
        assert!(holds("AllIn", json!(["MIT", "Apache-2.0"]), json!(["MIT", "Apache-*", "BSD"])));
        assert!(!holds("AllIn", json!(["MIT", "GPL-3.0"]), json!(["MIT", "Apache-*"])));
        assert!(holds("AnyNotIn", json!(["MIT", "GPL-3.0"]), json!(["MIT", "Apache-*"])));
        assert!(holds("AllNotIn", json!(["none"]), json!(["1.5.0", "1.6.0"])));
        assert!(!holds("AllNotIn", json!(["1.5.0"]), json!(["1.5.0", "1.6.0"])));
        assert!(holds("AnyIn", json!(["a"]), json!("a")), "one key equal to a string value");
        assert!(!holds("AnyNotIn", json!(["a"]), json!("a")));
        assert!(holds("AnyIn", json!([1, 2]), json!(2)), "AnyIn reads a number value");
        assert!(!holds("AllIn", json!([2]), json!(2)), "AllIn does not");
        assert!(holds("AllIn", json!([]), json!(["a"])), "no keys are all in (Kyverno counts found == len)");
        let range = Operator::AnyIn.holds(&json!("5"), &json!("1-10"));
        assert_eq!(range, Err(OperatorError::Range("1-10".into())));
        let nested = Operator::AllIn.holds(&json!([{"a": 1}]), &json!(["a"]));
        assert!(matches!(nested, Err(OperatorError::Composite(_))));
    }
}
