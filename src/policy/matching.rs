//! Image glob matching with sigstore policy-controller's rules.
//!
//! `*` matches within one path segment, `**` matches across segments. A glob is tried
//! against the full reference (with tag or digest) and against the repository alone, so
//! `registry.example/team/*` covers every tag of every image directly under `team/`.
//! Docker Hub short names are expanded on both sides (`busybox` → `docker.io/library/busybox`),
//! and the legacy `index.docker.io` host is folded into `docker.io`.
//!
//! Tanzu's `namePattern` and Kyverno's `imageReferences` use plain wildcards instead, where
//! `*` crosses `/` and `?` is one character; [`ImageGlob::wildcard`] compiles those.

use std::fmt;

/// A compiled image glob.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageGlob {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters except `/`.
    Segment,
    /// `**`: any run of characters.
    Any,
    /// `?` in wildcard patterns: exactly one character.
    One,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GlobError {
    #[error("image glob is empty")]
    Empty,
    #[error("image glob {0:?} contains whitespace")]
    Whitespace(String),
    #[error("image glob {0:?} has more than two '*' in a row")]
    TooManyStars(String),
}

impl ImageGlob {
    /// A policy-controller glob: `*` stays in one segment, `**` crosses segments.
    pub fn new(glob: &str) -> Result<Self, GlobError> {
        Self::compile(glob, false)
    }

    /// A plain wildcard pattern (Tanzu, Kyverno, Portieris): `*` is any run of characters,
    /// `/` included, and `?` is one character.
    pub fn wildcard(pattern: &str) -> Result<Self, GlobError> {
        Self::compile(pattern, true)
    }

    fn compile(glob: &str, plain: bool) -> Result<Self, GlobError> {
        if glob.is_empty() {
            return Err(GlobError::Empty);
        }
        if glob.chars().any(char::is_whitespace) {
            return Err(GlobError::Whitespace(glob.to_string()));
        }
        if !plain && glob.contains("***") {
            return Err(GlobError::TooManyStars(glob.to_string()));
        }
        let normalised = normalise_glob(glob);
        let mut tokens = Vec::new();
        let mut chars = normalised.chars().peekable();
        while let Some(c) = chars.next() {
            if plain && c == '*' {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                tokens.push(Token::Any);
            } else if plain && c == '?' {
                tokens.push(Token::One);
            } else if c == '*' {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    tokens.push(Token::Any);
                } else {
                    tokens.push(Token::Segment);
                }
            } else {
                tokens.push(Token::Literal(c));
            }
        }
        Ok(Self { source: glob.to_string(), tokens })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// How many literal characters the pattern has: Portieris lets the most specific
    /// matching repository pattern win, and this is that measure.
    pub fn specificity(&self) -> usize {
        self.tokens.iter().filter(|t| matches!(t, Token::Literal(_))).count()
    }

    /// Does the glob cover this image? `full` is the normalised reference
    /// (`registry/repo:tag` or `registry/repo@digest`), `repository` is `registry/repo`.
    pub fn matches(&self, full: &str, repository: &str) -> bool {
        let full: Vec<char> = full.chars().collect();
        let repo: Vec<char> = repository.chars().collect();
        match_tokens(&self.tokens, &full) || match_tokens(&self.tokens, &repo)
    }
}

impl fmt::Debug for ImageGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageGlob({:?})", self.source)
    }
}

/// Expand Docker Hub short forms the same way image references are expanded, leaving
/// patterns that start with a wildcard alone (they already cover any registry), and spell
/// the registry host as [`crate::reference`] spells image names: lower case, no `:443`,
/// Docker Hub's aliases folded into `docker.io`. Otherwise `reg.io:443/team/**` would
/// cover nothing, since every name it means is matched as `reg.io/team/...`.
fn normalise_glob(glob: &str) -> String {
    if glob.starts_with('*') {
        return glob.to_string();
    }
    let (first, rest) = match glob.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (glob, None),
    };
    let is_host = crate::reference::is_domain(first);
    let host =
        if first.contains(['*', '?']) { first.to_ascii_lowercase() } else { crate::reference::canonical_host(first) };
    match (is_host, rest) {
        (true, Some(rest)) => format!("{host}/{rest}"),
        (true, None) => host,
        (false, None) => format!("docker.io/library/{glob}"),
        (false, Some(_)) => format!("docker.io/{glob}"),
    }
}

/// Matches in O(|tokens| × |text|) time and O(|tokens|) space: a set of token positions is
/// advanced one character at a time (the NFA of the pattern, simulated). Backtracking is
/// exponential in the number of stars (`*/*/*/*/*:prod` against a long name took seconds,
/// and a late answer makes containerd drop the plugin and create the container unchecked);
/// this never revisits a (position, character) pair.
fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    let mut work = 0;
    match_tokens_counted(tokens, text, &mut work)
}

fn match_tokens_counted(tokens: &[Token], text: &[char], work: &mut usize) -> bool {
    let m = tokens.len();
    let mut current = vec![false; m + 1];
    let mut next = vec![false; m + 1];
    current[0] = true;
    skip_empty_stars(tokens, &mut current);
    for &c in text {
        next.iter_mut().for_each(|s| *s = false);
        for i in (0..m).filter(|&i| current[i]) {
            *work += 1;
            match tokens[i] {
                Token::Literal(l) if l == c => next[i + 1] = true,
                Token::Literal(_) => {}
                Token::One => next[i + 1] = true,
                // A star that consumes this character stays where it is.
                Token::Segment if c != '/' => next[i] = true,
                Token::Segment => {}
                Token::Any => next[i] = true,
            }
        }
        skip_empty_stars(tokens, &mut next);
        std::mem::swap(&mut current, &mut next);
        if !current.iter().any(|&s| s) {
            return false;
        }
    }
    current[m]
}

/// A star may match nothing: every position reached before a star also reaches past it.
fn skip_empty_stars(tokens: &[Token], states: &mut [bool]) {
    for i in 0..tokens.len() {
        if states[i] && matches!(tokens[i], Token::Segment | Token::Any) {
            states[i + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, full: &str, repo: &str) -> bool {
        ImageGlob::new(glob).unwrap().matches(full, repo)
    }

    #[test]
    fn single_star_stays_in_one_segment() {
        assert!(m("reg.io/team/*", "reg.io/team/app:v1", "reg.io/team/app"));
        assert!(!m("reg.io/team/*", "reg.io/team/sub/app:v1", "reg.io/team/sub/app"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(m("reg.io/team/**", "reg.io/team/sub/app:v1", "reg.io/team/sub/app"));
        assert!(m("**", "anything.io/x/y@sha256:00", "anything.io/x/y"));
    }

    #[test]
    fn exact_repository_matches_any_tag_and_exact_tag_only_that_tag() {
        assert!(m("127.0.0.1:5000/probe/signed", "127.0.0.1:5000/probe/signed:v1", "127.0.0.1:5000/probe/signed"));
        assert!(m("127.0.0.1:5000/probe/signed:v1", "127.0.0.1:5000/probe/signed:v1", "127.0.0.1:5000/probe/signed"));
        assert!(!m("127.0.0.1:5000/probe/signed:v2", "127.0.0.1:5000/probe/signed:v1", "127.0.0.1:5000/probe/signed"));
    }

    #[test]
    fn docker_hub_short_names_are_expanded() {
        assert!(m("busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox"));
        assert!(m("myorg/*", "docker.io/myorg/app:1", "docker.io/myorg/app"));
        assert!(m("index.docker.io/library/*", "docker.io/library/nginx:1", "docker.io/library/nginx"));
        assert!(!m("busybox", "quay.io/library/busybox:latest", "quay.io/library/busybox"));
    }

    /// Regression (#13.6): a policy's registry is matched in the canonical spelling the
    /// image names are in, whichever spelling the policy uses.
    #[test]
    fn policy_hosts_are_canonical_like_image_names() {
        let canon = |name: &str| {
            let r = crate::reference::parse(name).unwrap();
            (r.whole(), crate::reference::repository(&r))
        };
        for name in ["REG.IO/team/x:v1", "Reg.io/team/x:v1", "reg.io:443/team/x:v1"] {
            let (full, repo) = canon(name);
            for glob in ["reg.io/team/**", "REG.io/team/**", "reg.io:443/team/**"] {
                assert!(m(glob, &full, &repo), "{glob} must cover {name}");
            }
        }
        for name in ["registry-1.docker.io/myorg/x:v1", "registry.hub.docker.com/myorg/x:v1"] {
            let (full, repo) = canon(name);
            assert!(m("docker.io/myorg/*", &full, &repo), "{name}");
            assert!(m("registry-1.docker.io/myorg/*", &full, &repo), "{name}");
        }
        let (full, repo) = canon("reg.io:5000/team/x:v1");
        assert!(!m("reg.io/team/**", &full, &repo), "another port is another registry");
    }

    #[test]
    fn prefix_is_not_enough() {
        assert!(!m("reg.io/team/app", "reg.io/team/application:v1", "reg.io/team/application"));
    }

    #[test]
    fn wildcard_star_crosses_segments_and_question_mark_is_one_char() {
        let w = |p: &str, full: &str, repo: &str| ImageGlob::wildcard(p).unwrap().matches(full, repo);
        assert!(w("reg.io/*", "reg.io/a/b/c:v1", "reg.io/a/b/c"));
        assert!(w("reg.io/app", "reg.io/app:v9", "reg.io/app"), "no tag means any tag");
        assert!(!w("reg.io/app:v1", "reg.io/app:v9", "reg.io/app"));
        assert!(w("reg.io/app:v?", "reg.io/app:v9", "reg.io/app"));
        assert!(!w("reg.io/app:v?", "reg.io/app:v10", "reg.io/app"));
        assert!(w("nginx*", "docker.io/library/nginx:1.27", "docker.io/library/nginx"));
        assert_eq!(ImageGlob::wildcard("reg.io/a/*").unwrap().specificity(), 9);
    }

    /// Regression (#13.1): the backtracking matcher took seconds to minutes on this (a late
    /// answer lets the container start unchecked). The work is now bounded by the product of
    /// the lengths; the watchdog only guards against a hang, it is not a speed target.
    #[test]
    fn many_stars_against_a_long_name_do_bounded_work() {
        let name: String =
            (0..100).map(|i| format!("{}", (b'a' + (i % 26) as u8) as char)).collect::<Vec<_>>().join("/");
        let full = format!("{name}:dev");
        let (tx, rx) = std::sync::mpsc::channel();
        let (f, r) = (full.clone(), name.clone());
        std::thread::spawn(move || {
            let wild = ImageGlob::wildcard("*/*/*/*/*/*/*/*/*/*/*/*:prod").unwrap();
            let glob = ImageGlob::new("**/**/**/**/**/**/**/**/**/**:prod").unwrap();
            let _ = tx.send((wild.matches(&f, &r), glob.matches(&f, &r)));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("matching must not hang");
        assert_eq!(got, (false, false));
        let tokens = ImageGlob::wildcard("*/*/*/*/*/*/*/*/*/*/*/*:prod").unwrap().tokens;
        let text: Vec<char> = full.chars().collect();
        let mut work = 0;
        assert!(!match_tokens_counted(&tokens, &text, &mut work));
        assert!(work <= tokens.len() * text.len(), "work {work} for {} tokens x {} chars", tokens.len(), text.len());
    }

    #[test]
    fn star_and_question_mark_agree_with_backtracking_on_small_cases() {
        fn naive(tokens: &[Token], text: &[char]) -> bool {
            match tokens.split_first() {
                None => text.is_empty(),
                Some((Token::Literal(c), rest)) => text.first() == Some(c) && naive(rest, &text[1..]),
                Some((Token::Segment, rest)) => {
                    let limit = text.iter().position(|&c| c == '/').unwrap_or(text.len());
                    (0..=limit).any(|n| naive(rest, &text[n..]))
                }
                Some((Token::Any, rest)) => (0..=text.len()).any(|n| naive(rest, &text[n..])),
                Some((Token::One, rest)) => !text.is_empty() && naive(rest, &text[1..]),
            }
        }
        let patterns = ["a/*", "a/**", "*", "**", "a*b", "*/b?", "a/*/c", "**c", "?/*", "a**/c", "*a*"];
        let texts = ["a/b", "a/b/c", "ab", "a/bc", "x/by", "c", "", "a//c", "aac", "b/a"];
        for p in patterns {
            for plain in [false, true] {
                let g = if plain { ImageGlob::wildcard(p) } else { ImageGlob::new(p) }.unwrap();
                for t in texts {
                    let t: Vec<char> = t.chars().collect();
                    assert_eq!(match_tokens(&g.tokens, &t), naive(&g.tokens, &t), "{p:?} plain={plain} {t:?}");
                }
            }
        }
    }

    #[test]
    fn bad_globs_are_named() {
        assert_eq!(ImageGlob::new(""), Err(GlobError::Empty));
        assert!(matches!(ImageGlob::new("a b"), Err(GlobError::Whitespace(_))));
        assert!(matches!(ImageGlob::new("reg/***"), Err(GlobError::TooManyStars(_))));
    }
}
