//! The CEL language as the node accepts it (Kyverno ImageValidatingPolicy): parsing, and
//! the check that decides, expression by expression, whether the node evaluates it or it
//! fails closed.
//!
//! The policy forms hold the expressions: [`super::normal::CelCheck`] as text,
//! [`super::model::CompiledCel`] compiled by [`super::compile`], which calls [`condition`],
//! [`expression`] and [`validation`] here for each part. This module names neither form, so
//! it is the floor both stand on. The node only knows the image of the container being
//! created and the evidence fetched for it, so an expression is evaluated only in shapes
//! whose per-container result is never looser than Kyverno's per-pod result:
//!
//! - `images` appears only as `images.<list>.all(i, …)` or `images.<list>.map(i, …).all(e, …)`,
//!   combined only by `&&`, or by `||` with a side that does not use `images`: a pod passes
//!   in Kyverno only if every image passes, and each container's image is checked when it
//!   is created (`X || ∀i P(i)` holds for the pod exactly when `X || P(i)` holds for each);
//! - of `object`, `namespaceObject` and `request` only what NRI and the cluster sync tell
//!   ([`REQUEST_PATHS`]): the namespace's name (`object.metadata.namespace`,
//!   `namespaceObject.metadata.name`, `request.namespace`), its labels
//!   (`namespaceObject.metadata.labels`, from the cluster sync) and, where the policy's
//!   object is the pod, the pod's `object.metadata.labels` and `.annotations` (the
//!   sandbox's, which kubelet copies from the pod; for a pod controller Kyverno's autogen
//!   reads its pod template's, which become the pod's). Reading one where it is not known
//!   is an error, which fails closed;
//! - only functions the node implements ([`FUNCTIONS`]);
//! - bounded size, nesting and comprehension depth, so evaluation stays inside the request
//!   budget (CEL has no loops besides comprehensions over finite lists).
//!
//! Everything else compiles into a part that fails, naming the expression and the reason.
//! Evaluation is [`crate::evaluate::cel`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cel::common::ast::{operators as op, ComprehensionExpr, EntryExpr, Expr, IdedEntryExpr};
use cel::common::value::CelVal;
use cel::IdedExpr;

/// Longest expression accepted; Kyverno's own examples stay well under 1 KiB.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest bracket nesting: the parser recurses on it.
const MAX_NESTING: usize = 32;
/// Most AST nodes in one expression.
const MAX_NODES: usize = 1024;
/// Nested comprehensions multiply their work: one level over a payload's list (besides the
/// one-element image list) keeps evaluation linear in the payload.
const MAX_COMPREHENSION_DEPTH: usize = 1;

/// The functions and operators the node implements. Anything else fails closed.
pub const FUNCTIONS: &[&str] = &[
    op::CONDITIONAL,
    op::LOGICAL_AND,
    op::LOGICAL_OR,
    op::LOGICAL_NOT,
    op::SUBSTRACT,
    op::ADD,
    op::MULTIPLY,
    op::DIVIDE,
    op::MODULO,
    op::EQUALS,
    op::NOT_EQUALS,
    op::GREATER_EQUALS,
    op::LESS_EQUALS,
    op::GREATER,
    op::LESS,
    op::NEGATE,
    op::INDEX,
    op::NOT_STRICTLY_FALSE,
    op::IN,
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "int",
    "uint",
    "double",
    "max",
    "min",
    VERIFY_IMAGE_SIGNATURES,
    VERIFY_ATTESTATION_SIGNATURES,
    EXTRACT_PAYLOAD,
];

pub const VERIFY_IMAGE_SIGNATURES: &str = "verifyImageSignatures";
pub const VERIFY_ATTESTATION_SIGNATURES: &str = "verifyAttestationSignatures";
pub const EXTRACT_PAYLOAD: &str = "extractPayload";

/// Admission data the node does not have, but for [`REQUEST_PATHS`].
const UNKNOWN_ON_NODE: &[&str] = &["object", "oldObject", "namespaceObject", "request"];

/// One thing the node knows of the admission request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFact {
    /// The namespace's name.
    Namespace,
    /// The namespace's labels, where the cluster sync has told them.
    NamespaceLabels,
    /// The pod's labels, where the policy's object is the pod.
    PodLabels,
    /// The pod's annotations, where the policy's object is the pod.
    PodAnnotations,
}

impl RequestFact {
    fn of_pod(self) -> bool {
        matches!(self, RequestFact::PodLabels | RequestFact::PodAnnotations)
    }
}

/// The paths by which CEL reads what the node knows of the request; nothing else of
/// `object`, `namespaceObject` or `request` is bound.
pub const REQUEST_PATHS: &[(&[&str], RequestFact)] = &[
    (&["object", "metadata", "namespace"], RequestFact::Namespace),
    (&["namespaceObject", "metadata", "name"], RequestFact::Namespace),
    (&["request", "namespace"], RequestFact::Namespace),
    (&["namespaceObject", "metadata", "labels"], RequestFact::NamespaceLabels),
    (&["object", "metadata", "labels"], RequestFact::PodLabels),
    (&["object", "metadata", "annotations"], RequestFact::PodAnnotations),
];

/// Why an expression is not evaluated on the node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    #[error("{field}: expression does not parse: {message}")]
    Parse { field: String, message: String },
    #[error("{field}: expression is longer than {MAX_EXPRESSION_BYTES} bytes")]
    TooLong { field: String },
    #[error("{field}: expression is too complex to evaluate within the request budget ({what})")]
    TooComplex { field: String, what: &'static str },
    #[error("{field}: {name} is not known on the node (NRI does not carry it)")]
    UnknownData { field: String, name: String },
    #[error(
        "{field}: {path} is not known on the node: the policy's object is not the pod (its \
         matchConstraints.resourceRules name no pods), and the node sees only pods"
    )]
    ObjectNotPod { field: String, path: String },
    #[error("{field}: function {name} is not available on the node")]
    UnknownFunction { field: String, name: String },
    #[error("{field}: {name} is not defined by the policy")]
    Undefined { field: String, name: String },
    #[error(
        "{field}: images may only be checked as images.<list>.all(…) or images.<list>.map(…).all(…), combined by \
         && or by || with a side that does not use images: the node sees one container at a time"
    )]
    ImagesShape { field: String },
    #[error("{field}: {message}")]
    Unsupported { field: String, message: String },
}

/// A parsed expression, with its text for messages and the cache identity.
#[derive(Clone)]
pub struct Expression {
    pub field: String,
    pub source: String,
    pub program: Arc<cel::Program>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expression({}: {:?})", self.field, self.source)
    }
}

/// An image-matching expression (`matchImageReferences[].expression`): `ref` is the image.
#[derive(Clone, Debug)]
pub struct ImageExpression(pub Expression);

/// Compile one `matchImageReferences` expression; only `ref` and pure functions are allowed.
pub fn image_expression(field: &str, source: &str) -> Result<ImageExpression, CelError> {
    let e = parse(field, source)?;
    let scope = Scope { roots: BTreeSet::from(["ref"]), ..Default::default() };
    check(field, e.program.expression(), &scope, 0)?;
    Ok(ImageExpression(e))
}

/// The names a policy defines, which its expressions may read, and what its `object` is.
#[derive(Clone, Debug, Default)]
pub struct Names<'a> {
    pub attestors: BTreeSet<&'a str>,
    pub attestations: BTreeSet<&'a str>,
    pub variables: BTreeSet<&'a str>,
    /// The policy's object is the pod (its resource rules name pods, or none are given):
    /// `object.metadata.labels` and `.annotations` are the pod's.
    pub object_is_pod: bool,
}

impl<'a> Names<'a> {
    fn scope(&self) -> Scope<'a> {
        Scope {
            attestors: self.attestors.clone(),
            attestations: self.attestations.clone(),
            variables: self.variables.clone(),
            object_is_pod: self.object_is_pod,
            ..Default::default()
        }
    }
}

/// Compile a match condition. Kyverno evaluates conditions before binding attestors,
/// attestations, variables and images: reading them is an error there, so it may not
/// narrow here. Of `names` only what the object is counts.
pub fn condition(field: &str, source: &str, names: &Names<'_>) -> Result<Expression, CelError> {
    let e = parse(field, source)?;
    check(field, e.program.expression(), &Scope { object_is_pod: names.object_is_pod, ..Default::default() }, 0)?;
    Ok(e)
}

/// Compile a variable or a message expression: pure, over the policy's names, no `images`.
pub fn expression(field: &str, source: &str, names: &Names<'_>) -> Result<Expression, CelError> {
    let e = parse(field, source)?;
    check(field, e.program.expression(), &names.scope(), 0)?;
    Ok(e)
}

/// Compile a validation: `images` only in the shapes the module doc lists.
pub fn validation(field: &str, source: &str, names: &Names<'_>) -> Result<Expression, CelError> {
    let e = parse(field, source)?;
    validation_shape(field, e.program.expression(), &names.scope())?;
    Ok(e)
}

impl Expression {
    /// Does it read the request (the namespace, its labels, the pod's metadata)? Then
    /// verdicts differ by pod.
    pub fn reads_request(&self) -> bool {
        let r = self.program.references();
        REQUEST_PATHS.iter().any(|(path, _)| r.has_variable(path[0]))
    }
}

/// The text an expression spells when it is nothing but a string literal (Kyverno's
/// `{expression: ...}` holding a constant), else `None`: nothing is evaluated.
pub fn string_literal(source: &str) -> Option<String> {
    let e = parse("expression", source).ok()?;
    match &e.program.expression().expr {
        Expr::Literal(CelVal::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn parse(field: &str, source: &str) -> Result<Expression, CelError> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(CelError::TooLong { field: field.into() });
    }
    // Counted over the whole text, strings included: an overestimate only refuses more.
    let mut depth = 0usize;
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(CelError::TooComplex { field: field.into(), what: "nesting" });
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    // The parser recurses deeply per nesting level (about 100 KiB of stack per bracket in a
    // debug build): it runs at policy load on a thread of its own with room to spare, and
    // what it returns is bounded in depth, so checking and evaluating it later, on a runtime
    // worker's stack, recurse no deeper than MAX_DEPTH.
    let text = source.to_string();
    let parsed = std::thread::Builder::new()
        .name("cel-parse".into())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            let program = cel::Program::compile(&text).map_err(|e| Err(e.to_string().replace('\n', " ")))?;
            match shape(program.expression(), 0) {
                Some((nodes, _)) if nodes <= MAX_NODES => Ok(program),
                Some(_) => Err(Ok("size")),
                None => Err(Ok("depth")),
            }
        })
        .map_err(|e| CelError::Parse { field: field.into(), message: format!("no parser thread: {e}") })?
        .join()
        .unwrap_or(Err(Ok("parser failure")));
    let program = parsed.map_err(|e| match e {
        Ok(what) => CelError::TooComplex { field: field.into(), what },
        Err(message) => CelError::Parse { field: field.into(), message },
    })?;
    Ok(Expression { field: field.into(), source: source.into(), program: Arc::new(program) })
}

/// Stack for the parser thread.
const PARSER_STACK: usize = 256 << 20;
/// Deepest expression tree kept: evaluation recurses once per level.
const MAX_DEPTH: usize = 48;

/// (nodes, depth) of a tree no deeper than [`MAX_DEPTH`]; `None` if deeper.
fn shape(e: &IdedExpr, depth: usize) -> Option<(usize, usize)> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut out = (1, depth);
    for c in children(e) {
        let (n, d) = shape(c, depth + 1)?;
        out = (out.0 + n, out.1.max(d));
    }
    Some(out)
}

fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(c) => c.target.iter().map(|t| t.as_ref()).chain(c.args.iter()).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => entry_children(&m.entries),
        Expr::Select(s) => vec![&s.operand],
        Expr::Struct(s) => entry_children(&s.entries),
        _ => Vec::new(),
    }
}

/// The expressions of map and message literals' entries: keys and values.
fn entry_children(entries: &[IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|en| match &en.expr {
            EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
            EntryExpr::StructField(sf) => vec![&sf.value],
        })
        .collect()
}

#[derive(Clone, Default)]
struct Scope<'a> {
    /// Free identifiers allowed as they are (`ref` in image matching).
    roots: BTreeSet<&'a str>,
    attestors: BTreeSet<&'a str>,
    attestations: BTreeSet<&'a str>,
    variables: BTreeSet<&'a str>,
    object_is_pod: bool,
    /// Comprehension variables in scope.
    bound: Vec<String>,
}

impl Scope<'_> {
    fn with(&self, names: &[&str]) -> Self {
        let mut s = self.clone();
        s.bound.extend(names.iter().map(|n| n.to_string()));
        s
    }
}

/// Is `e` an expression the node evaluates exactly (with `images` not allowed)?
fn check(field: &str, e: &IdedExpr, scope: &Scope<'_>, depth: usize) -> Result<(), CelError> {
    let f = || field.to_string();
    match &e.expr {
        Expr::Ident(name) => {
            if scope.bound.iter().any(|b| b == name) || scope.roots.contains(name.as_str()) {
                Ok(())
            } else if UNKNOWN_ON_NODE.contains(&name.as_str()) {
                Err(CelError::UnknownData { field: f(), name: name.clone() })
            } else if name == "images" {
                Err(CelError::ImagesShape { field: f() })
            } else if matches!(name.as_str(), "attestors" | "attestations" | "variables") {
                Err(CelError::Unsupported { field: f(), message: format!("{name} is used only as {name}.<name>") })
            } else {
                Err(CelError::Undefined { field: f(), name: name.clone() })
            }
        }
        Expr::Select(s) => {
            if let Some((fact, path)) = request_path(e, scope) {
                return if fact.of_pod() && !scope.object_is_pod {
                    Err(CelError::ObjectNotPod { field: f(), path })
                } else {
                    Ok(())
                };
            }
            if let Expr::Ident(root) = &s.operand.expr {
                if !scope.bound.iter().any(|b| b == root) {
                    let known = match root.as_str() {
                        "attestors" => Some(&scope.attestors),
                        "attestations" => Some(&scope.attestations),
                        "variables" => Some(&scope.variables),
                        _ => None,
                    };
                    if let Some(known) = known {
                        if s.test {
                            return Err(CelError::Unsupported {
                                field: f(),
                                message: format!("has() on {root} is not evaluated on the node"),
                            });
                        }
                        return if known.contains(s.field.as_str()) {
                            Ok(())
                        } else {
                            Err(CelError::Undefined { field: f(), name: format!("{root}.{}", s.field) })
                        };
                    }
                }
            }
            check(field, &s.operand, scope, depth)
        }
        Expr::Call(c) => {
            if !FUNCTIONS.contains(&c.func_name.as_str()) {
                return Err(CelError::UnknownFunction { field: f(), name: c.func_name.clone() });
            }
            for child in c.target.iter().map(|t| t.as_ref()).chain(c.args.iter()) {
                check(field, child, scope, depth)?;
            }
            Ok(())
        }
        Expr::Comprehension(c) => {
            if depth + 1 > MAX_COMPREHENSION_DEPTH {
                return Err(CelError::TooComplex { field: f(), what: "nested comprehensions" });
            }
            comprehension(field, c, scope, depth)
        }
        Expr::List(l) => {
            if !l.optional_indices.is_empty() {
                return Err(CelError::Unsupported { field: f(), message: "optional list elements".into() });
            }
            l.elements.iter().try_for_each(|x| check(field, x, scope, depth))
        }
        Expr::Map(_) => children(e).into_iter().try_for_each(|x| check(field, x, scope, depth)),
        Expr::Literal(_) => Ok(()),
        Expr::Struct(s) => {
            Err(CelError::Unsupported { field: f(), message: format!("message type {} is not known", s.type_name) })
        }
        Expr::Unspecified => Err(CelError::Unsupported { field: f(), message: "empty expression".into() }),
    }
}

/// The fact `e` reads, and its path, when it is one of [`REQUEST_PATHS`] read (not tested
/// with `has()`) with the root not shadowed.
fn request_path(e: &IdedExpr, scope: &Scope<'_>) -> Option<(RequestFact, String)> {
    let mut fields = Vec::new();
    let mut at = e;
    let root = loop {
        match &at.expr {
            Expr::Select(s) if !s.test => {
                fields.push(s.field.as_str());
                at = s.operand.as_ref();
            }
            Expr::Ident(n) if !scope.bound.iter().any(|b| b == n) => break n.as_str(),
            _ => return None,
        }
    };
    fields.push(root);
    fields.reverse();
    REQUEST_PATHS.iter().find(|(path, _)| *path == fields.as_slice()).map(|(path, fact)| (*fact, path.join(".")))
}

fn comprehension(field: &str, c: &ComprehensionExpr, scope: &Scope<'_>, depth: usize) -> Result<(), CelError> {
    check(field, &c.iter_range, scope, depth)?;
    check(field, &c.accu_init, scope, depth)?;
    let mut names = vec![c.iter_var.as_str(), c.accu_var.as_str()];
    names.extend(c.iter_var2.as_deref());
    let inner = scope.with(&names);
    for part in [&c.loop_cond, &c.loop_step] {
        check(field, part, &inner, depth + 1)?;
    }
    check(field, &c.result, &scope.with(&[c.accu_var.as_str()]), depth)
}

/// A validation: `&&` and `||` over parts that either do not use `images`, or quantify over
/// one image list with `all`; an `||` may have images on one side only.
fn validation_shape(field: &str, e: &IdedExpr, scope: &Scope<'_>) -> Result<(), CelError> {
    let logical = |name: &str| match &e.expr {
        Expr::Call(c) if c.func_name == name && c.target.is_none() && c.args.len() == 2 => {
            Some((&c.args[0], &c.args[1]))
        }
        _ => None,
    };
    if !mentions_images(e, &scope.bound) {
        check(field, e, scope, 0)?;
        return monotone(field, e, true, &Counted::default());
    }
    if let Some((a, b)) = logical(op::LOGICAL_AND) {
        validation_shape(field, a, scope)?;
        return validation_shape(field, b, scope);
    }
    if let Some((a, b)) = logical(op::LOGICAL_OR) {
        return match (mentions_images(a, &scope.bound), mentions_images(b, &scope.bound)) {
            (true, false) => validation_shape(field, a, scope).and_then(|_| validation_shape(field, b, scope)),
            (false, true) => validation_shape(field, a, scope).and_then(|_| validation_shape(field, b, scope)),
            _ => Err(CelError::ImagesShape { field: field.into() }),
        };
    }
    image_quantifier(field, e, scope)
}

/// `images.<list>.all(i, P)` or `images.<list>.map(i, f).all(e, P)`.
fn image_quantifier(field: &str, term: &IdedExpr, scope: &Scope<'_>) -> Result<(), CelError> {
    {
        let Some(all) = as_all(term) else { return Err(CelError::ImagesShape { field: field.into() }) };
        let inner = scope.with(&[all.iter_var.as_str(), all.accu_var.as_str()]);
        let body = all_body(all).expect("checked by as_all");
        match &all.iter_range.expr {
            Expr::Select(s) if is_images_list(s) => {}
            Expr::Comprehension(m)
                if as_map(m).is_some_and(|_| matches!(&m.iter_range.expr, Expr::Select(s) if is_images_list(s))) =>
            {
                let func = as_map(m).expect("checked");
                check(field, func, &scope.with(&[m.iter_var.as_str(), m.accu_var.as_str()]), 0)?;
                image_name_unread(field, func, &m.iter_var)?;
                // The mapped values, not the image, are what the body sees.
                if mentions_images(body, &inner.bound) {
                    return Err(CelError::ImagesShape { field: field.into() });
                }
                check(field, body, &inner, 0)?;
                // A bare count flows into the body as the mapped value; anything derived from a
                // count (a comparison) flows in as a bool that may not be negated there.
                let counted = match count_call(func) {
                    Some(n) => {
                        monotone_args(field, func)?;
                        Counted { counts: vec![(m_result(all), n)], bools: vec![] }
                    }
                    None => {
                        monotone(field, func, true, &Counted::default())?;
                        if mentions_count(func) {
                            Counted { counts: vec![], bools: vec![m_result(all)] }
                        } else {
                            Counted::default()
                        }
                    }
                };
                return monotone(field, body, true, &counted);
            }
            _ => return Err(CelError::ImagesShape { field: field.into() }),
        }
        // The per-image body may not look at the other images.
        if mentions_images(body, &inner.bound) {
            return Err(CelError::ImagesShape { field: field.into() });
        }
        check(field, body, &inner, 0)?;
        image_name_unread(field, body, &all.iter_var)?;
        monotone(field, body, true, &Counted::default())?;
    }
    Ok(())
}

/// The variable an `all` over a mapped list binds.
fn m_result(all: &ComprehensionExpr) -> String {
    all.iter_var.clone()
}

/// Names standing for counts of verified attestors (with the number of attestors asked
/// about), or for bools derived from such counts.
#[derive(Default)]
struct Counted {
    counts: Vec<(String, usize)>,
    bools: Vec<String>,
}

const COUNTING: &[&str] = &[VERIFY_IMAGE_SIGNATURES, VERIFY_ATTESTATION_SIGNATURES];

/// A call counting verified attestors, and how many attestors its list names.
fn count_call(e: &IdedExpr) -> Option<usize> {
    match &e.expr {
        Expr::Call(c) if COUNTING.contains(&c.func_name.as_str()) && c.target.is_none() => match &c.args.last()?.expr {
            Expr::List(l) => Some(l.elements.len()),
            _ => Some(usize::MAX),
        },
        _ => None,
    }
}

fn mentions_count(e: &IdedExpr) -> bool {
    count_call(e).is_some() || children(e).into_iter().any(mentions_count)
}

/// The arguments of a counting call may not count themselves.
fn monotone_args(field: &str, call: &IdedExpr) -> Result<(), CelError> {
    children(call).into_iter().try_for_each(|a| monotone(field, a, false, &Counted::default()))
}

/// Counts of verified attestors may only make an expression true by being large enough:
/// `count > k`, `count >= k`, `k < count`, `k <= count`, `count == n` with `n` the number of
/// attestors asked about, in a position where true passes (not negated, not a condition).
/// The node may verify fewer attestors than Kyverno (one it cannot check, a KMS attestor
/// or a notation signature that needs its timestamp, counts as not verified), so an expression true for smaller counts could pass
/// here and fail there.
fn monotone(field: &str, e: &IdedExpr, positive: bool, counted: &Counted) -> Result<(), CelError> {
    let refuse = || {
        Err(CelError::Unsupported {
            field: field.into(),
            message: "a count of verified attestors is used other than as `count > k`, `count >= k` or `count == \
                      <number of attestors>` where true passes; the node cannot show such a use is not looser"
                .into(),
        })
    };
    let count_of = |x: &IdedExpr| match &x.expr {
        Expr::Ident(n) => counted.counts.iter().find(|(c, _)| c == n).map(|(_, len)| *len),
        _ => count_call(x),
    };
    match &e.expr {
        Expr::Ident(n) if counted.counts.iter().any(|(c, _)| c == n) => refuse(),
        Expr::Ident(n) if counted.bools.contains(n) && !positive => refuse(),
        Expr::Call(c) if c.target.is_none() && c.args.len() == 2 => {
            let (a, b) = (&c.args[0], &c.args[1]);
            let literal = |x: &IdedExpr| match &x.expr {
                Expr::Literal(CelVal::Int(i)) => Some(*i),
                _ => None,
            };
            let name = c.func_name.as_str();
            let compared = match (count_of(a), count_of(b)) {
                (Some(len), None) => Some((a, len, b, name)),
                (None, Some(len)) => Some((
                    b,
                    len,
                    a,
                    match name {
                        op::LESS => op::GREATER,
                        op::LESS_EQUALS => op::GREATER_EQUALS,
                        op::GREATER | op::GREATER_EQUALS => "",
                        other => other,
                    },
                )),
                (Some(_), Some(_)) => return refuse(),
                (None, None) => None,
            };
            if let Some((count, len, other, cmp)) = compared {
                let ok = positive
                    && match (cmp, literal(other)) {
                        (op::GREATER | op::GREATER_EQUALS, Some(_)) => true,
                        (op::EQUALS, Some(k)) => usize::try_from(k).is_ok_and(|k| k == len),
                        _ => false,
                    };
                if !ok {
                    return refuse();
                }
                return if matches!(count.expr, Expr::Call(_)) { monotone_args(field, count) } else { Ok(()) };
            }
            let keeps = matches!(name, op::LOGICAL_AND | op::LOGICAL_OR);
            monotone(field, a, positive && keeps, counted)?;
            monotone(field, b, positive && keeps, counted)
        }
        Expr::Call(_) if count_call(e).is_some() => refuse(),
        Expr::Call(c) if c.func_name == op::NOT_STRICTLY_FALSE => {
            c.args.iter().try_for_each(|x| monotone(field, x, positive, counted))
        }
        Expr::Call(c) if c.func_name == op::CONDITIONAL && c.args.len() == 3 => {
            monotone(field, &c.args[0], false, counted)?;
            monotone(field, &c.args[1], positive, counted)?;
            monotone(field, &c.args[2], positive, counted)
        }
        Expr::Comprehension(c) => {
            // all/exists keep the body's polarity (`@result && body`, `@result || body`).
            let shadowed = Counted {
                counts: counted.counts.iter().filter(|(n, _)| *n != c.iter_var).cloned().collect(),
                bools: counted.bools.iter().filter(|n| **n != c.iter_var).cloned().collect(),
            };
            monotone(field, &c.iter_range, false, counted)?;
            monotone(field, &c.loop_step, positive, &shadowed)
        }
        _ => children(e).into_iter().try_for_each(|x| monotone(field, x, false, counted)),
    }
}

/// The image may only be handed to the image functions. Kyverno sees the name as the pod
/// spec wrote it (`nginx:1`), the node a normalised one (`docker.io/library/nginx:1`): a
/// test on the text could pass here and fail there.
fn image_name_unread(field: &str, e: &IdedExpr, var: &str) -> Result<(), CelError> {
    let unread = |e: &IdedExpr| image_name_unread(field, e, var);
    match &e.expr {
        Expr::Ident(n) if n == var => Err(CelError::Unsupported {
            field: field.into(),
            message: format!(
                "the image name ({var}) is read other than by verifyImageSignatures, verifyAttestationSignatures or \
                 extractPayload; the node does not know it as the pod spec wrote it"
            ),
        }),
        Expr::Call(c)
            if [VERIFY_IMAGE_SIGNATURES, VERIFY_ATTESTATION_SIGNATURES, EXTRACT_PAYLOAD]
                .contains(&c.func_name.as_str())
                && c.target.is_none() =>
        {
            let rest = if matches!(c.args.first().map(|a| &a.expr), Some(Expr::Ident(n)) if n == var) {
                &c.args[1..]
            } else {
                &c.args[..]
            };
            rest.iter().try_for_each(unread)
        }
        Expr::Comprehension(c) if c.iter_var == var || c.accu_var == var || c.iter_var2.as_deref() == Some(var) => {
            unread(&c.iter_range)
        }
        _ => children(e).into_iter().try_for_each(unread),
    }
}

fn mentions_images(e: &IdedExpr, bound: &[String]) -> bool {
    match &e.expr {
        Expr::Ident(n) => n == "images" && !bound.iter().any(|b| b == "images"),
        _ => children(e).into_iter().any(|c| mentions_images(c, bound)),
    }
}

fn is_images_list(s: &cel::common::ast::SelectExpr) -> bool {
    !s.test && matches!(&s.operand.expr, Expr::Ident(n) if n == "images")
}

/// `range.all(v, body)` as the parser expands it.
fn as_all(e: &IdedExpr) -> Option<&ComprehensionExpr> {
    let Expr::Comprehension(c) = &e.expr else { return None };
    let init_true = matches!(&c.accu_init.expr, Expr::Literal(CelVal::Boolean(true)));
    let result_is_accu = matches!(&c.result.expr, Expr::Ident(n) if *n == c.accu_var);
    (init_true && result_is_accu && c.iter_var2.is_none() && all_body(c).is_some()).then_some(c.as_ref())
}

fn all_body(c: &ComprehensionExpr) -> Option<&IdedExpr> {
    match &c.loop_step.expr {
        Expr::Call(s) if s.func_name == op::LOGICAL_AND && s.args.len() == 2 => {
            matches!(&s.args[0].expr, Expr::Ident(n) if *n == c.accu_var).then_some(&s.args[1])
        }
        _ => None,
    }
}

/// `range.map(v, func)` (the two-argument form) as the parser expands it: its `func`.
fn as_map(c: &ComprehensionExpr) -> Option<&IdedExpr> {
    let init_empty = matches!(&c.accu_init.expr, Expr::List(l) if l.elements.is_empty());
    let result_is_accu = matches!(&c.result.expr, Expr::Ident(n) if *n == c.accu_var);
    if !init_empty || !result_is_accu || c.iter_var2.is_some() {
        return None;
    }
    match &c.loop_step.expr {
        Expr::Call(s) if s.func_name == op::ADD && s.args.len() == 2 => match (&s.args[0].expr, &s.args[1].expr) {
            (Expr::Ident(n), Expr::List(l)) if *n == c.accu_var && l.elements.len() == 1 => Some(&l.elements[0]),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validation(src: &str) -> Result<(), CelError> {
        let names = BTreeSet::from(["cosign"]);
        let scope = Scope { attestors: names, attestations: BTreeSet::from(["sbom"]), ..Default::default() };
        let e = parse("validations[0]", src)?;
        validation_shape("validations[0]", e.program.expression(), &scope)
    }

    #[test]
    fn per_image_shapes_are_evaluated() {
        validation("images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)")
            .unwrap();
        validation("images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 0)").unwrap();
        validation(
            "images.containers.all(i, verifyAttestationSignatures(i, attestations.sbom, [attestors.cosign]) > 0) && \
             images.initContainers.all(i, extractPayload(i, attestations.sbom).bomFormat == 'CycloneDX')",
        )
        .unwrap();
        validation("1 + 1 == 2").unwrap();
        // Guarded by something that is the same for every container of the pod.
        validation(
            "object.metadata.namespace == 'dev' || \
             images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 0) && request.namespace != 'x'",
        )
        .unwrap();
    }

    #[test]
    fn only_what_the_node_knows_is_read_from_the_request() {
        let on = |object_is_pod: bool, src: &str| {
            let scope = Scope { object_is_pod, ..Default::default() };
            let e = parse("validations[0]", src)?;
            validation_shape("validations[0]", e.program.expression(), &scope)
        };
        for ok in [
            "object.metadata.namespace == 'a'",
            "namespaceObject.metadata.name == 'a'",
            "request.namespace == 'a'",
            "namespaceObject.metadata.labels.team == 'a'",
            "namespaceObject.metadata.labels['team'] == 'a'",
            "has(namespaceObject.metadata.labels.team)",
            "'team' in namespaceObject.metadata.labels",
        ] {
            on(false, ok).unwrap();
            on(true, ok).unwrap();
        }
        // The pod's own labels and annotations, where the policy's object is the pod.
        for pod in [
            "object.metadata.labels.team == 'a'",
            "object.metadata.labels['app.kubernetes.io/name'] == 'a'",
            "has(object.metadata.labels.team)",
            "'team' in object.metadata.labels",
            "object.metadata.annotations['x/y'] == 'a'",
            "object.metadata.labels.exists(k, k.startsWith('x'))",
        ] {
            on(true, pod).unwrap();
            let e = on(false, pod).unwrap_err();
            assert!(
                matches!(&e, CelError::ObjectNotPod { path, .. } if path.starts_with("object.metadata.")),
                "{pod}: {e}"
            );
            assert!(e.to_string().contains("the policy's object is not the pod"), "{e}");
        }
        for refused in [
            "has(object.metadata.namespace)",
            "has(namespaceObject.metadata.labels)",
            "has(object.metadata.labels)",
            "object.metadata.name == 'a'",
            "namespaceObject.metadata.annotations.team == 'a'",
            "namespaceObject.spec == {}",
            "object.metadata == {}",
            "object.spec.containers.size() == 1",
            "request.userInfo.username == 'a'",
            "oldObject.metadata.labels.team == 'a'",
            "oldObject.metadata.namespace == 'a'",
        ] {
            assert!(matches!(on(true, refused), Err(CelError::UnknownData { .. })), "{refused}");
        }
        // A comprehension variable named like a root is just a variable.
        validation("[{'metadata': {'labels': 1}}].all(object, object.metadata.labels == 1)").unwrap();
    }

    #[test]
    fn shapes_that_could_be_looser_per_container_fail_closed() {
        for src in [
            // One signed container would stand in for all.
            "images.containers.exists(i, verifyImageSignatures(i, [attestors.cosign]) > 0)",
            "images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 0) || \
             images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 1)",
            "!images.containers.all(i, i.startsWith('x'))",
            "images.containers.size() <= 1",
            "images.containers.all(i, images.initContainers.size() == 0)",
            "images.containers.map(i, i, i).all(e, true)",
        ] {
            assert!(matches!(validation(src), Err(CelError::ImagesShape { .. })), "{src}");
        }
        // Counts only ever pass by being large enough.
        for src in [
            "images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) == 0)",
            "images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) < 1)",
            "images.containers.all(i, !(verifyImageSignatures(i, [attestors.cosign]) > 0))",
            "images.containers.map(i, verifyImageSignatures(i, [attestors.cosign])).all(e, e != 1)",
            "images.containers.map(i, verifyImageSignatures(i, [attestors.cosign]) > 0).all(e, !e)",
            "images.containers.map(i, verifyImageSignatures(i, [attestors.cosign])).all(e, e > 0 ? false : true)",
            "images.containers.all(i, (verifyImageSignatures(i, [attestors.cosign]) > 0) == false)",
            "images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) + 1 > 1)",
            "images.containers.all(i, 1 > verifyImageSignatures(i, [attestors.cosign]))",
        ] {
            let e = validation(src).unwrap_err();
            assert!(e.to_string().contains("a count of verified attestors"), "{src}: {e}");
        }
        for src in [
            "images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) == 1)",
            "images.containers.all(i, 0 < verifyImageSignatures(i, [attestors.cosign]))",
            "images.containers.map(i, verifyImageSignatures(i, [attestors.cosign]) >= 1).all(e, e)",
            "images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 0 || 1 == 2)",
        ] {
            validation(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        }
        // The name as the node spells it is not the name as the pod spec wrote it.
        for src in [
            "images.containers.all(i, i.contains('docker.io') || verifyImageSignatures(i, [attestors.cosign]) > 0)",
            "images.containers.map(i, i == 'x' ? 1 : verifyImageSignatures(i, [attestors.cosign])).all(e, e > 0)",
        ] {
            let e = validation(src).unwrap_err();
            assert!(e.to_string().contains("the image name (i) is read"), "{src}: {e}");
        }
    }

    #[test]
    fn unknown_data_functions_and_names_fail_closed_naming_them() {
        let e = validation("request.userInfo.username == 'admin'").unwrap_err();
        assert_eq!(e.to_string(), "validations[0]: request is not known on the node (NRI does not carry it)");
        let e = validation("images.containers.all(i, getImageData(i).config.user != 'root')").unwrap_err();
        assert!(matches!(&e, CelError::UnknownFunction { name, .. } if name == "getImageData"), "{e}");
        let e = validation("images.containers.all(i, verifyImageSignatures(i, [attestors.notary]) > 0)").unwrap_err();
        assert!(matches!(&e, CelError::Undefined { name, .. } if name == "attestors.notary"), "{e}");
        let e = validation("has(object.metadata.labels)").unwrap_err();
        assert!(matches!(&e, CelError::UnknownData { name, .. } if name == "object"), "{e}");
    }

    #[test]
    fn expressions_are_bounded() {
        let long = format!("{} true", "true && ".repeat(MAX_EXPRESSION_BYTES / 8 + 1));
        assert!(matches!(validation(&long), Err(CelError::TooLong { .. })));
        let deep = format!("{}true{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1));
        assert!(matches!(validation(&deep), Err(CelError::TooComplex { .. })));
        validation("[1,2].all(a, a > 0)").unwrap();
        let nested = "[1,2].all(a, [1,2].all(b, true))";
        assert!(matches!(validation(nested), Err(CelError::TooComplex { .. })), "{:?}", validation(nested));
    }

    /// The largest expression accepted parses, is checked and evaluates on a thread with
    /// tokio's default worker stack (2 MiB): the recursion of all three stays bounded.
    #[test]
    fn the_largest_accepted_expression_fits_a_worker_stack() {
        let chain = format!("{}true", "true && ".repeat(MAX_NODES / 2 - 1));
        assert!(chain.len() <= MAX_EXPRESSION_BYTES);
        let deepest = (MAX_DEPTH / 2).min(MAX_NESTING) - 1;
        let nested = format!("{}true{}", "[".repeat(deepest), "][0]".repeat(deepest));
        let ran = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let mut out = Vec::new();
                for src in [chain, nested] {
                    let e = parse("v", &src).map_err(|e| e.to_string())?;
                    validation_shape("v", e.program.expression(), &Scope::default()).map_err(|e| e.to_string())?;
                    out.push(e.program.execute(&cel::Context::default()).map_err(|e| e.to_string())?);
                }
                Ok::<_, String>(out)
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(ran, Ok(vec![cel::Value::Bool(true), cel::Value::Bool(true)]));
    }

    /// Shapes that make a recursive parser or interpreter run out of stack are refused or
    /// bounded: none of these may crash the process, and what is accepted evaluates on a
    /// 2 MiB stack (a runtime worker's).
    #[test]
    fn adversarial_shapes_neither_overflow_nor_hang() {
        let n = MAX_EXPRESSION_BYTES / 2 - 4;
        let shapes = [
            format!("{}true{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            format!("{}true{}", "[".repeat(MAX_NESTING), "][0]".repeat(MAX_NESTING)),
            format!("{}true", "!".repeat(n * 2)),
            format!("{}1", "-".repeat(n * 2)),
            format!("{}1", "- ".repeat(n)),
            format!("{}1", "true ? 1 : ".repeat(n / 6)),
            format!("{}true", "true && ".repeat(n / 4)),
            format!("{}true", "true || ".repeat(n / 4)),
            format!("{}1", "1 + ".repeat(n / 2)),
            format!("a{}", ".b".repeat(n)),
            format!("{}1", "x[".repeat(n / 2)),
        ];
        for src in shapes {
            let head: String = src.chars().take(24).collect();
            let ran = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || match parse("v", &src) {
                    Ok(e) => {
                        let _ = check("v", e.program.expression(), &Scope::default(), 0);
                        let _ = e.program.execute(&cel::Context::default());
                        true
                    }
                    Err(_) => false,
                })
                .unwrap()
                .join();
            assert!(ran.is_ok(), "{head}");
        }
    }

    #[test]
    fn image_expressions_see_only_ref() {
        image_expression("m", "ref.startsWith('ghcr.io/')").unwrap();
        assert!(image_expression("m", "object.metadata.name == 'x'").is_err());
    }

    /// Review finding: an image expression is tried on every spelling the pod may have
    /// written, as the glob dialects are, so a Docker Hub alias in it still selects.
    #[test]
    fn image_expressions_see_every_spelling_of_the_image() {
        let e = image_expression("m", "ref.startsWith('index.docker.io/acme/')").unwrap();
        assert!(e.selects("docker.io/acme/app:v1", "docker.io/acme/app"));
        let tagless = image_expression("m", "ref == 'docker.io/acme/app'").unwrap();
        assert!(tagless.selects("docker.io/acme/app:v1", "docker.io/acme/app"));
        let other = image_expression("m", "ref.startsWith('ghcr.io/')").unwrap();
        assert!(!other.selects("docker.io/acme/app:v1", "docker.io/acme/app"));
    }
}
