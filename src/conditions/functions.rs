//! The JMESPath functions of Kyverno's that attestation conditions use, beside the
//! standard ones: string matching (`regex_match`, `pattern_match`, `equal_fold`), string
//! shaping (`to_upper`, `to_lower`, `trim`, `trim_prefix`, `split`) and time
//! (`time_since`, `time_after`, `time_before`, RFC 3339 only). Any other Kyverno function
//! is unknown here, and a condition naming it fails closed when the policy is read.

use std::sync::Arc;

use jmespath::functions::{ArgumentType, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, Variable};

use super::golang::{duration_string, format_float32, wildcard};

/// Kyverno's functions the node evaluates, by name.
pub const KYVERNO: &[&str] = &[
    "regex_match",
    "pattern_match",
    "equal_fold",
    "to_upper",
    "to_lower",
    "trim",
    "trim_prefix",
    "split",
    "time_since",
    "time_after",
    "time_before",
];

/// JMESPath's own functions (jmespath.rs registers these).
pub const STANDARD: &[&str] = &[
    "abs",
    "avg",
    "ceil",
    "contains",
    "ends_with",
    "floor",
    "join",
    "keys",
    "length",
    "map",
    "max",
    "max_by",
    "merge",
    "min",
    "min_by",
    "not_null",
    "reverse",
    "sort",
    "sort_by",
    "starts_with",
    "sum",
    "to_array",
    "to_number",
    "to_string",
    "type",
    "values",
];

fn fail(ctx: &Context<'_>, function: &str, why: impl std::fmt::Display) -> JmespathError {
    JmespathError::from_ctx(ctx, ErrorReason::Parse(format!("{function}: {why}")))
}

fn string(v: &str) -> Rcvar {
    Arc::new(Variable::String(v.to_string()))
}

fn boolean(b: bool) -> Rcvar {
    Arc::new(Variable::Bool(b))
}

fn text(args: &[Rcvar], i: usize) -> &str {
    args[i].as_string().map(String::as_str).unwrap_or_default()
}

/// Kyverno's `ifaceToString`: strings as they are, numbers as float32 spell them.
fn string_or_number(ctx: &Context<'_>, function: &str, v: &Rcvar) -> Result<String, JmespathError> {
    match &**v {
        Variable::String(s) => Ok(s.clone()),
        Variable::Number(n) => Ok(format_float32(n.as_f64().unwrap_or(f64::NAN))),
        Variable::Bool(b) => Ok(b.to_string()),
        _ => Err(fail(ctx, function, "argument 2 must be a string or a number")),
    }
}

fn rfc3339(ctx: &Context<'_>, function: &str, text: &str) -> Result<jiff::Timestamp, JmespathError> {
    text.parse::<jiff::Timestamp>().map_err(|e| fail(ctx, function, format!("{text:?} is not an RFC 3339 time: {e}")))
}

type Invoked = dyn Fn(&[Rcvar], &mut Context<'_>) -> Result<Rcvar, JmespathError> + Send + Sync;

fn register(rt: &mut Runtime, name: &str, inputs: Vec<ArgumentType>, f: Box<Invoked>) {
    rt.register_function(name, Box::new(CustomFunction::new(Signature::new(inputs, None), f)));
}

/// A runtime with the standard functions and Kyverno's, whose clock reads `now` (seconds
/// since the epoch) for `time_since` without a second time.
pub fn runtime(now: i64) -> Runtime {
    use ArgumentType::{Any, String as Str};
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    register(
        &mut rt,
        "regex_match",
        vec![Str, Any],
        Box::new(|args, ctx| {
            let subject = string_or_number(ctx, "regex_match", &args[1])?;
            let re = regex::RegexBuilder::new(&re2_classes(text(args, 0)))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| fail(ctx, "regex_match", e))?;
            Ok(boolean(re.is_match(&subject)))
        }),
    );
    register(
        &mut rt,
        "pattern_match",
        vec![Str, Any],
        Box::new(|args, ctx| {
            let subject = string_or_number(ctx, "pattern_match", &args[1])?;
            Ok(boolean(wildcard(text(args, 0), &subject)))
        }),
    );
    register(
        &mut rt,
        "equal_fold",
        vec![Str, Str],
        Box::new(|args, _| Ok(boolean(text(args, 0).to_lowercase() == text(args, 1).to_lowercase()))),
    );
    register(&mut rt, "to_upper", vec![Str], Box::new(|args, _| Ok(string(&text(args, 0).to_uppercase()))));
    register(&mut rt, "to_lower", vec![Str], Box::new(|args, _| Ok(string(&text(args, 0).to_lowercase()))));
    register(
        &mut rt,
        "trim",
        vec![Str, Str],
        Box::new(|args, _| {
            let cut: Vec<char> = text(args, 1).chars().collect();
            Ok(string(text(args, 0).trim_matches(|c| cut.contains(&c))))
        }),
    );
    register(
        &mut rt,
        "trim_prefix",
        vec![Str, Str],
        Box::new(|args, _| Ok(string(text(args, 0).strip_prefix(text(args, 1)).unwrap_or(text(args, 0))))),
    );
    register(
        &mut rt,
        "split",
        vec![Str, Str],
        Box::new(|args, _| {
            let (s, sep) = (text(args, 0), text(args, 1));
            // Go's strings.Split with an empty separator splits after each character.
            let parts: Vec<Rcvar> = if sep.is_empty() {
                s.chars().map(|c| string(&c.to_string())).collect()
            } else {
                s.split(sep).map(string).collect()
            };
            Ok(Arc::new(Variable::Array(parts)))
        }),
    );
    register(
        &mut rt,
        "time_since",
        vec![Str, Str, Str],
        Box::new(move |args, ctx| {
            if !text(args, 0).is_empty() {
                return Err(fail(ctx, "time_since", "only the RFC 3339 layout (\"\") is read on the node"));
            }
            let from = rfc3339(ctx, "time_since", text(args, 1))?;
            let to = match text(args, 2) {
                "" => jiff::Timestamp::from_second(now).map_err(|e| fail(ctx, "time_since", e))?,
                t => rfc3339(ctx, "time_since", t)?,
            };
            // Go's Duration saturates at about 292 years either way.
            let nanos = (to.as_nanosecond() - from.as_nanosecond()).clamp(i64::MIN as i128, i64::MAX as i128);
            Ok(string(&duration_string(nanos as i64)))
        }),
    );
    for (name, after) in [("time_after", true), ("time_before", false)] {
        register(
            &mut rt,
            name,
            vec![Str, Str],
            Box::new(move |args, ctx| {
                let (a, b) = (rfc3339(ctx, name, text(args, 0))?, rfc3339(ctx, name, text(args, 1))?);
                Ok(boolean(if after { a > b } else { a < b }))
            }),
        );
    }
    rt
}

/// Go's RE2 Perl classes are ASCII (`\d` is `[0-9]`), Rust's are Unicode (`\d` also takes
/// `١`): spelled out here, so a pattern matches what it matches in Kyverno. Escapes other
/// than these are kept as written.
fn re2_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('s') => out.push_str("[\\t\\n\\f\\r ]"),
            Some('S') => out.push_str("[^\\t\\n\\f\\r ]"),
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
