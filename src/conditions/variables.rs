//! `{{ … }}` variables in condition keys and values, substituted as Kyverno's engine does:
//! a string that is one variable becomes the value it names (typed); variables inside
//! longer strings are replaced by their text, innermost first, until none is left; a
//! leading `-` substitutes once (shallow). Each variable is a JMESPath query (jmespath.rs
//! with Kyverno's functions, [`super::functions`]) over the attestation's predicate.
//!
//! Kyverno's JMESPath (its go-jmespath fork) errors where a field is missing from an
//! object along a path (`a.b.c`, `a[0]`, the right of `&&`), and yields null elsewhere
//! (inside comparisons, function arguments, filters, projections, `||`, `!`, pipes); the
//! error fails the condition. [`search`] reproduces that on jmespath.rs, which always
//! yields null, by walking the same path first.
//!
//! Stricter than Kyverno, because the statement's text is the signer's but may carry
//! text the signer copied from elsewhere (a builder id, a component name): a value
//! substituted into a string that is read as an expression again may not carry quotes,
//! backslashes, backticks or braces, and a substituted value may not carry `{{` (Kyverno
//! substitutes conditions twice, so such a value would be evaluated as a variable).

use std::sync::LazyLock;

use jmespath::ast::Ast;
use jmespath::{Context, Rcvar, Runtime};
use regex::Regex;
use serde_json::Value;

use super::golang::go_json;

/// Kyverno's `RegexVariables`: a variable, with the character before it (not a backslash).
static VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").expect("variable regex"));

/// Why a variable could not be substituted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariableError {
    #[error("variable {variable:?}: {why}")]
    Query { variable: String, why: String },
    #[error("variable {variable:?}: field {field:?} not found")]
    NotFound { variable: String, field: String },
    #[error(
        "variable {variable:?}: its value {value:?} would be read as part of an expression, and carries \
         quotes, backslashes or braces"
    )]
    Injection { variable: String, value: String },
    #[error("variable {0:?}: `@` and references are not evaluated on the node")]
    Unsupported(String),
    #[error("object key {0:?}: variables in object keys are not evaluated on the node")]
    Key(String),
}

/// The variables of `text` as Kyverno finds them: (prefix character, the `{{ … }}` text).
fn find(text: &str) -> Vec<(String, String)> {
    VARIABLE.captures_iter(text).map(|c| (c.get(1).map_or("", |m| m.as_str()).to_string(), c[2].to_string())).collect()
}

/// The query a `{{ … }}` stands for, and whether it is shallow (`{{- … }}`).
fn query_of(var: &str) -> (String, bool) {
    let inner = var.replace("{{", "").replace("}}", "");
    let inner = inner.trim();
    match inner.strip_prefix('-') {
        Some(rest) => (rest.to_string(), true),
        None => (inner.to_string(), false),
    }
}

/// Every JMESPath query `text` would run, outer ones with their inner variables standing
/// as `x` (so `{{ f('{{ a }}') }}` gives `a` and `f('x')`); for checking a policy when it
/// is read.
pub fn queries(text: &str) -> Vec<String> {
    let mut value = text.to_string();
    let mut out = Vec::new();
    loop {
        let vars = find(&value);
        if vars.is_empty() {
            return out;
        }
        for (prefix, var) in vars {
            out.push(query_of(&var).0);
            // Each round removes a `{{`, so this ends.
            value = value.replacen(&format!("{prefix}{var}"), &format!("{prefix}x"), 1);
        }
    }
}

/// Does `text` spell anything the node does not substitute (`\{{`, which Kyverno's second
/// substitution would read as a variable; `$(…)` references)?
pub fn unsupported(text: &str) -> Option<String> {
    (text.contains("\\{{") || text.contains("$(")).then(|| text.to_string())
}

/// Substitute every variable in `value` (strings, array elements, object values).
pub fn substitute(value: &Value, root: &Rcvar, runtime: &Runtime) -> Result<Value, VariableError> {
    Ok(match value {
        Value::String(s) => substitute_string(s, root, runtime)?,
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute(v, root, runtime)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if k.contains("{{") {
                    return Err(VariableError::Key(k.clone()));
                }
                out.insert(k.clone(), substitute(v, root, runtime)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// At most 200 characters of attacker-written text in a denial or a log line.
fn clipped(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

fn carries_braces(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(items) => items.iter().any(carries_braces),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains("{{") || carries_braces(v)),
        _ => false,
    }
}

fn substitute_string(text: &str, root: &Rcvar, runtime: &Runtime) -> Result<Value, VariableError> {
    let mut value = text.to_string();
    let mut vars = find(&value);
    while !vars.is_empty() {
        let original = value.clone();
        let mut shallow = false;
        for (prefix, var) in vars {
            let (query, is_shallow) = query_of(&var);
            shallow = is_shallow;
            if query == "@" || query.contains("$(") {
                return Err(VariableError::Unsupported(query));
            }
            let found = search(&query, root, runtime)?;
            if carries_braces(&found) {
                let value = clipped(&go_json(&found));
                return Err(VariableError::Injection { variable: query, value });
            }
            // Kyverno compares the match without its prefix character to the string.
            if original == var {
                return Ok(found);
            }
            let inserted = match &found {
                Value::String(s) => s.clone(),
                other => go_json(other),
            };
            let written = format!("{prefix}{var}");
            let start = value.find(&written).map_or(0, |p| p + prefix.len());
            value = value.replacen(&written, &format!("{prefix}{inserted}"), 1);
            // Text that lands inside a variable still to be substituted is read as part of
            // that query: quotes or braces there would change the expression. Beside it, the
            // text is only text.
            let inside = |r: std::ops::Range<usize>| r.start < start + inserted.len() && start < r.end;
            if !shallow
                && inserted.contains(['\'', '"', '`', '\\', '{', '}'])
                && VARIABLE.captures_iter(&value).filter_map(|c| c.get(2)).any(|m| inside(m.range()))
            {
                return Err(VariableError::Injection { variable: query, value: clipped(&inserted) });
            }
        }
        vars = if shallow { Vec::new() } else { find(&value) };
    }
    Ok(Value::String(value.replace("\\{{", "{{")))
}

/// Run one query over `root`, failing where Kyverno's JMESPath fails on a missing field.
pub fn search(query: &str, root: &Rcvar, runtime: &Runtime) -> Result<Value, VariableError> {
    let err = |why: String| VariableError::Query { variable: query.to_string(), why };
    let ast = jmespath::parse(query).map_err(|e| err(e.to_string()))?;
    let mut cx = Context::new(query, runtime);
    if let Some(field) = missing(&ast, root, query, &mut cx).map_err(|e| err(e.to_string()))? {
        return Err(VariableError::NotFound { variable: query.to_string(), field });
    }
    let found = jmespath::interpret(root, &ast, &mut cx).map_err(|e| err(e.to_string()))?;
    serde_json::to_value(&*found).map_err(|e| err(e.to_string()))
}

/// The field Kyverno's JMESPath would report missing along `node`'s path, if any.
fn missing(
    node: &Ast,
    data: &Rcvar,
    query: &str,
    cx: &mut Context<'_>,
) -> Result<Option<String>, jmespath::JmespathError> {
    match node {
        Ast::Field { name, .. } => Ok(data.as_object().filter(|o| !o.contains_key(name)).map(|_| name.clone())),
        // A pipe parses as a subexpression too; Kyverno's fork forgives a missing field there.
        Ast::Subexpr { offset, .. } if query.as_bytes().get(*offset) == Some(&b'|') => Ok(None),
        Ast::Subexpr { lhs, rhs, .. } => {
            if let Some(f) = missing(lhs, data, query, cx)? {
                return Ok(Some(f));
            }
            let left = jmespath::interpret(data, lhs, cx)?;
            missing(rhs, &left, query, cx)
        }
        Ast::And { lhs, rhs, .. } => {
            if !jmespath::interpret(data, lhs, cx)?.is_truthy() {
                return Ok(None);
            }
            missing(rhs, data, query, cx)
        }
        _ => Ok(None),
    }
}

/// Every function `node` calls, and the root fields it reads first (for checking a query
/// when the policy is read).
pub fn walk(node: &Ast, functions: &mut Vec<String>) {
    match node {
        Ast::Function { name, args, .. } => {
            functions.push(name.clone());
            args.iter().for_each(|a| walk(a, functions));
        }
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => {
            walk(lhs, functions);
            walk(rhs, functions);
        }
        Ast::Condition { predicate, then, .. } => {
            walk(predicate, functions);
            walk(then, functions);
        }
        Ast::Expref { ast: node, .. }
        | Ast::Flatten { node, .. }
        | Ast::Not { node, .. }
        | Ast::ObjectValues { node, .. } => walk(node, functions),
        Ast::MultiList { elements, .. } => elements.iter().for_each(|a| walk(a, functions)),
        Ast::MultiHash { elements, .. } => elements.iter().for_each(|kv| walk(&kv.value, functions)),
        Ast::Identity { .. } | Ast::Field { .. } | Ast::Index { .. } | Ast::Literal { .. } | Ast::Slice { .. } => {}
    }
}

/// Every field a query reads from the root, as opposed to from a value it derived
/// (`request` and `a` in `request.x != a.y`, not `x` or `y`); `at_root` says whether `node`
/// is evaluated against the root.
pub fn root_fields<'a>(node: &'a Ast, at_root: bool, out: &mut Vec<&'a str>) {
    match node {
        Ast::Field { name, .. } if at_root => out.push(name),
        Ast::Subexpr { lhs, rhs, .. } | Ast::Projection { lhs, rhs, .. } => {
            root_fields(lhs, at_root, out);
            root_fields(rhs, false, out);
        }
        Ast::Comparison { lhs, rhs, .. } | Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            root_fields(lhs, at_root, out);
            root_fields(rhs, at_root, out);
        }
        Ast::Condition { predicate, then, .. } => {
            root_fields(predicate, false, out);
            root_fields(then, false, out);
        }
        Ast::Function { args, .. } => args.iter().for_each(|a| root_fields(a, at_root, out)),
        // An expression reference is applied to elements of a value, never to the root.
        Ast::Expref { ast, .. } => root_fields(ast, false, out),
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
            root_fields(node, at_root, out)
        }
        Ast::MultiList { elements, .. } => elements.iter().for_each(|a| root_fields(a, at_root, out)),
        Ast::MultiHash { elements, .. } => elements.iter().for_each(|kv| root_fields(&kv.value, at_root, out)),
        Ast::Field { .. } | Ast::Identity { .. } | Ast::Index { .. } | Ast::Literal { .. } | Ast::Slice { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root(v: Value) -> Rcvar {
        std::sync::Arc::new(jmespath::Variable::from_serializable(v).unwrap())
    }

    fn sub(text: &str, data: Value) -> Result<Value, VariableError> {
        substitute(&json!(text), &root(data), &super::super::functions::runtime(0))
    }

    #[test]
    fn a_whole_variable_is_typed_and_a_partial_one_is_text() {
        let data = json!({"a": {"n": 3, "list": [1, "x"], "s": "hi"}});
        assert_eq!(sub("{{ a.n }}", data.clone()), Ok(json!(3)));
        assert_eq!(sub("{{a.list}}", data.clone()), Ok(json!([1, "x"])));
        assert_eq!(sub("n={{ a.n }}, s={{ a.s }}", data.clone()), Ok(json!("n=3, s=hi")));
        assert_eq!(sub("l={{ a.list }}", data.clone()), Ok(json!("l=[1,\"x\"]")));
        assert_eq!(sub("no variables", data.clone()), Ok(json!("no variables")));
        assert_eq!(sub("escaped \\{{ a.n }}", data.clone()), Ok(json!("escaped {{ a.n }}")));
    }

    #[test]
    fn nested_variables_are_substituted_innermost_first() {
        let data = json!({"builder": {"id": "https://github.com/org/repo/.github/workflows/b.yml@refs/tags/v1"}});
        let r = sub("{{ regex_match('^https://github.com/org/','{{ builder.id}}') }}", data);
        assert_eq!(r, Ok(json!(true)));
    }

    #[test]
    fn a_missing_field_along_a_path_is_an_error_and_null_elsewhere() {
        let data = json!({"a": {"b": 1}, "list": [{"name": "x"}]});
        assert!(matches!(sub("{{ a.c }}", data.clone()), Err(VariableError::NotFound { field, .. }) if field == "c"));
        assert!(matches!(sub("{{ missing }}", data.clone()), Err(VariableError::NotFound { .. })));
        assert!(matches!(sub("{{ a.b && a.z }}", data.clone()), Err(VariableError::NotFound { .. })));
        assert_eq!(sub("{{ a.c || 'none' }}", data.clone()), Ok(json!("none")));
        assert_eq!(sub("{{ list[?name=='y'].version || 'none' }}", data.clone()), Ok(json!("none")));
        assert_eq!(sub("{{ list[].version }}", data.clone()), Ok(json!([])));
        assert_eq!(sub("{{ a.b.c }}", data.clone()), Ok(json!(null)), "a field of a number is null");
        assert!(sub("{{ length(a.z) || `0` }}", data.clone()).is_err(), "length(null) is a type error");
        assert_eq!(sub("{{ a | z }}", data), Ok(json!(null)), "a pipe forgives");
    }

    #[test]
    fn queries_are_listed_innermost_first_with_inner_ones_standing_as_x() {
        let q = queries("{{ regex_match('^a','{{ builder.id}}') }} and {{ b }}");
        assert_eq!(q, ["builder.id", "b", "regex_match('^a','x')"]);
        assert!(queries("plain").is_empty());
    }

    #[test]
    fn substituted_text_cannot_become_part_of_an_expression() {
        let data = json!({"id": "x') || true || ('", "braces": "{{ a }}", "ok": "github.com/org"});
        let r = sub("{{ regex_match('^github.com/org$', '{{ id }}') }}", data.clone());
        assert!(matches!(r, Err(VariableError::Injection { .. })), "{r:?}");
        assert!(matches!(sub("{{ braces }}", data.clone()), Err(VariableError::Injection { .. })));
        assert!(matches!(sub("x {{ braces }}", data.clone()), Err(VariableError::Injection { .. })));
        assert_eq!(sub("{{ regex_match('^github.com/org$', '{{ ok }}') }}", data.clone()), Ok(json!(true)));
        assert!(matches!(sub("{{ @ }}", data), Err(VariableError::Unsupported(_))));
    }

    /// Regression (review): a quote substituted beside a variable still to come, not inside
    /// it, was refused as an injection; Kyverno substitutes it as text.
    #[test]
    fn text_substituted_beside_a_later_variable_is_only_text() {
        let data = json!({"a": "O'Brien", "b": "x", "q": "'", "long": "'".repeat(5000)});
        assert_eq!(sub("{{ a }}/{{ b }}", data.clone()), Ok(json!("O'Brien/x")));
        let r = sub("{{ to_upper('{{ q }}') }}", data.clone());
        assert!(matches!(r, Err(VariableError::Injection { .. })), "{r:?}");
        let Err(VariableError::Injection { value, .. }) = sub("{{ to_upper('{{ long }}') }}", data) else {
            panic!("a quote inside a later query is an injection")
        };
        assert!(value.chars().count() <= 201, "the value is clipped in messages");
    }

    /// Regression (review): only a query's first field was checked for admission roots, so
    /// `request.x != 'prod'` under a comparison, a function or a multi-select slipped by.
    #[test]
    fn every_field_read_from_the_root_is_listed() {
        let fields = |q: &str| {
            let ast = jmespath::parse(q).unwrap();
            let mut out = Vec::new();
            root_fields(&ast, true, &mut out);
            out.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        assert_eq!(fields("request.object.metadata.namespace != 'prod'"), ["request"]);
        assert_eq!(fields("to_upper(images.x) || [a, b.c]"), ["images", "a", "b"]);
        assert_eq!(fields("list[?name == request].v | [0].w"), ["list"]);
        assert_eq!(fields("!x && {k: y}.k"), ["x", "y"]);
        assert_eq!(fields("map(&name, items)"), ["items"]);
    }
}
