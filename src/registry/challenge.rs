//! The `WWW-Authenticate` challenge a registry answers 401 with (RFC 7235), as far as the
//! distribution token protocol uses it: `Bearer realm="…",service="…",scope="…"` or `Basic`.
//!
//! Hand-written because the crates for it are unmaintained and tied to old `http` versions;
//! the grammar needed is one scheme token and a list of `key=value` / `key="quoted"` pairs.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Ask `realm` for a token, naming `service` and `scope` as the registry did.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

/// The challenge to answer among a 401's `WWW-Authenticate` values: Bearer before Basic.
pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let parsed: Vec<Challenge> = values.into_iter().filter_map(parse).collect();
    parsed.iter().find(|c| matches!(c, Challenge::Bearer { .. })).or(parsed.first()).cloned()
}

/// One challenge; `None` for schemes the token protocol does not use, or a Bearer without realm.
pub fn parse(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = params(rest);
    Some(Challenge::Bearer {
        realm: params.remove("realm").filter(|r| !r.is_empty())?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// `key=value, key="quoted \" value"`, keys lowercased; a malformed tail ends the list.
fn params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let Some(end) = end else { break };
            rest = &quoted[end..];
            v
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = rest[..end].trim().to_string();
            rest = &rest[end..];
            v
        };
        out.insert(key, value);
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_as_registries_send_them() {
        let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#;
        assert_eq!(
            parse(hub),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/ubuntu:pull".into()),
            })
        );
        let spaced = r#"bearer  Realm = "https://r/t?a=b,c" , service=svc,scope="x \"y\"""#;
        assert_eq!(
            parse(spaced),
            Some(Challenge::Bearer {
                realm: "https://r/t?a=b,c".into(),
                service: Some("svc".into()),
                scope: Some("x \"y\"".into()),
            })
        );
        assert_eq!(parse(r#"Bearer service="x""#), None, "no realm");
        assert_eq!(parse(r#"Bearer realm="unterminated"#), None);
        assert_eq!(parse("Negotiate abc"), None);
        assert_eq!(parse(r#"Basic realm="fake""#), Some(Challenge::Basic));
        let both = pick([r#"Basic realm="x""#, r#"Bearer realm="https://t""#]);
        assert!(matches!(both, Some(Challenge::Bearer { .. })), "{both:?}");
    }
}
