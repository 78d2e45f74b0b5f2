//! An error with its causes, as one line. reqwest and hyper keep the reason of a failure (a
//! refused redirect, a TLS or DNS failure) out of `Display`, in `source()`; the registry and
//! KMS clients both name it in their messages.

/// `e`, then each cause that adds something, joined by `": "`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_named_once() {
        let e = Outer(std::io::Error::other("refused"));
        assert_eq!(super::error_chain(&e), "outer: refused");
    }
}
