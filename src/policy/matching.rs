//! Image pattern matching, in each policy language's own rules.
//!
//! Every pattern is matched by one linear-time engine (an NFA simulation, never
//! backtracking); what differs between the languages is how a pattern is tokenised and
//! which names of the image it is tried on ([`super::spelling`]):
//!
//! - signet's own globs ([`ImageGlob::new`]): `*` within one path segment, `**` across; tried
//!   on the canonical reference and on the repository alone, so a glob without a tag covers
//!   every tag; Docker Hub short names expanded on both sides.
//! - policy-controller globs ([`ImageGlob::policy_controller`]): its `glob.Match`. Only
//!   `[a-zA-Z0-9-_:/*.@]`; `*` is `[^/]*`, `**` is `.*`, anchored; the bare `*` and `*/*`
//!   mean `index.docker.io/library/*` and `index.docker.io/*/*`; tried on its normalised
//!   name (`index.docker.io/library/…`, `:latest` added, the tag dropped for a digest) and on
//!   the name as the pod wrote it. So `reg.io/app` covers `reg.io/app:latest` (a pod may
//!   have written it without a tag) and no other tag, exactly as in policy-controller: a
//!   wider match would be looser for a policy that passes (`static: pass`) what no other
//!   policy covers.
//! - Kyverno wildcards ([`ImageGlob::kyverno`]): `*` any run, `?` one character, on its
//!   `ImageInfo.String()` (`docker.io/<path as written>:<tag>` or `…@<digest>`), so a
//!   pattern without tag or digest covers no image at all.
//! - Portieris repository names ([`ImageGlob::portieris`]): its `CompareImageRef` on the name
//!   as written: `*` any run (`?` is literal), the pattern's host matched against the
//!   image's host only, a pattern without tag covering any tag.
//! - Tanzu `namePattern` ([`ImageGlob::wildcard`]): `*` any run, `?` one character, a
//!   pattern without tag covers every tag, Docker Hub short names expanded.
//!
//! Patterns spell a literal registry host the way [`crate::reference`] spells image names
//! (lower case, no `:443`), so a host's spelling never decides whether a policy applies.

use std::fmt;

use super::spelling;

/// Which language a pattern is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Signet,
    Tanzu,
    PolicyController,
    Kyverno,
    Portieris,
}

/// A compiled image pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageGlob {
    source: String,
    dialect: Dialect,
    tokens: Vec<Token>,
    /// Kyverno: the pattern with its host as written, for skip lists ([`ImageGlob::excludes`]).
    literal: Vec<Token>,
    /// Portieris: the pattern split at its first `/` (host, path, path with `:*`), or the
    /// whole pattern with `:*` when it has no `/`.
    portieris: Option<PortierisParts>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PortierisParts {
    Split { host: Vec<Token>, path: Vec<Token>, path_any_tag: Vec<Token> },
    Whole { any_tag: Vec<Token> },
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
    #[error("image glob {0:?} is invalid: policy-controller globs have only letters, digits and - _ : / * . @")]
    Invalid(String),
}

/// Portieris ranks an exact, wildcard-free match above every wildcard match.
const PORTIERIS_EXACT: u64 = 1 << 30;

impl ImageGlob {
    /// A signet glob: `*` stays in one segment, `**` crosses segments.
    pub fn new(glob: &str) -> Result<Self, GlobError> {
        Self::compile(glob, false)
    }

    /// A Tanzu `namePattern`: `*` is any run of characters, `/` included, and `?` is one
    /// character.
    pub fn wildcard(pattern: &str) -> Result<Self, GlobError> {
        Self::compile(pattern, true)
    }

    /// A policy-controller glob, with its validation and its two rewrites.
    pub fn policy_controller(glob: &str) -> Result<Self, GlobError> {
        let rewritten = match glob {
            "*" => "index.docker.io/library/*",
            "*/*" => "index.docker.io/*/*",
            g => g,
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_:/*.@".contains(c);
        if rewritten.is_empty() {
            return Err(GlobError::Empty);
        }
        if !rewritten.chars().all(valid) {
            return Err(GlobError::Invalid(glob.to_string()));
        }
        let text = canonical_literal_host(rewritten);
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                // `**` first, left to right, as policy-controller rewrites it.
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    Token::Any
                }
                '*' => Token::Segment,
                c => Token::Literal(c),
            });
        }
        Ok(Self::of(glob, Dialect::PolicyController, tokens))
    }

    /// A Kyverno `imageReferences` / `skipImageReferences` entry.
    pub fn kyverno(pattern: &str) -> Result<Self, GlobError> {
        check_plain(pattern)?;
        let mut glob = Self::of(pattern, Dialect::Kyverno, plain_tokens(&canonical_literal_host(pattern), true));
        glob.literal = plain_tokens(pattern, true);
        Ok(glob)
    }

    /// A Portieris repository name.
    pub fn portieris(pattern: &str) -> Result<Self, GlobError> {
        check_plain(pattern)?;
        let pattern_text = match pattern.split_once('/') {
            Some((host, path)) => format!("{}/{path}", portieris_host(host)),
            None => pattern.to_string(),
        };
        let parts = match pattern_text.split_once('/') {
            Some((host, path)) => PortierisParts::Split {
                host: plain_tokens(host, false),
                path: plain_tokens(path, false),
                path_any_tag: plain_tokens(&format!("{path}:*"), false),
            },
            None => PortierisParts::Whole { any_tag: plain_tokens(&format!("{pattern_text}:*"), false) },
        };
        let mut glob = Self::of(pattern, Dialect::Portieris, plain_tokens(&pattern_text, false));
        glob.portieris = Some(parts);
        Ok(glob)
    }

    fn of(source: &str, dialect: Dialect, tokens: Vec<Token>) -> Self {
        Self { source: source.to_string(), dialect, tokens, literal: Vec::new(), portieris: None }
    }

    fn compile(glob: &str, plain: bool) -> Result<Self, GlobError> {
        check_plain(glob)?;
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
        let dialect = if plain { Dialect::Tanzu } else { Dialect::Signet };
        Ok(Self::of(glob, dialect, tokens))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Does the pattern cover this image? `full` is the canonical reference
    /// (`registry/repo:tag`, `registry/repo@digest` or both), `repository` is `registry/repo`.
    /// For the peers' languages, true when the peer would match some spelling of it.
    pub fn matches(&self, full: &str, repository: &str) -> bool {
        match self.dialect {
            Dialect::Signet | Dialect::Tanzu => {
                let full: Vec<char> = full.chars().collect();
                let repo: Vec<char> = repository.chars().collect();
                match_tokens(&self.tokens, &full) || match_tokens(&self.tokens, &repo)
            }
            Dialect::PolicyController => {
                spelling::policy_controller_names(full).iter().any(|n| match_str(&self.tokens, n))
            }
            Dialect::Kyverno => spelling::kyverno_names(full).iter().any(|n| match_str(&self.tokens, n)),
            Dialect::Portieris => spelling::pod_spellings(full).iter().any(|s| self.matches_name(s)),
        }
    }

    /// Does the pattern match this one name as the peer's own matcher sees it: Kyverno's
    /// `wildcard.Match` on the pattern as written, Portieris' `CompareImageRef`; the others
    /// on the pattern as compiled.
    pub fn matches_name(&self, name: &str) -> bool {
        match self.dialect {
            Dialect::Kyverno => match_str(&self.literal, name),
            Dialect::Portieris => self.portieris_quality(name).is_some(),
            _ => match_str(&self.tokens, name),
        }
    }

    /// Does the pattern, as an exclusion, take this image out of a policy? Kyverno skips an
    /// image only when its name matches, and the node cannot tell which spelling the pod
    /// used: only when every spelling's name matches the pattern as written is the image
    /// skipped, so no spelling is skipped that Kyverno would verify.
    pub fn excludes(&self, full: &str, repository: &str) -> bool {
        match self.dialect {
            Dialect::Kyverno => spelling::kyverno_names(full).iter().all(|n| self.matches_name(n)),
            _ => self.matches(full, repository),
        }
    }

    /// How well the pattern matches `spelling` of the image, for languages where only the
    /// best match applies (Portieris' match quality); `None` when it does not match. Other
    /// languages match the image as a whole, with quality 0.
    pub fn quality(&self, full: &str, repository: &str, spelling: &str) -> Option<u64> {
        match self.dialect {
            Dialect::Portieris => self.portieris_quality(spelling),
            _ => self.matches(full, repository).then_some(0),
        }
    }

    fn portieris_quality(&self, spelling: &str) -> Option<u64> {
        let stars = self.tokens.iter().filter(|t| matches!(t, Token::Any)).count();
        if stars == 0 && self.tokens.iter().map(token_char).eq(spelling.chars().map(Some)) {
            return Some(PORTIERIS_EXACT);
        }
        let parts = self.portieris.as_ref()?;
        // Portieris' own measure, on the pattern as written: its length without the stars.
        let quality = self.source.chars().filter(|&c| c != '*').count() as u64;
        portieris_compare(parts, spelling).then_some(quality)
    }
}

fn token_char(t: &Token) -> Option<char> {
    match t {
        Token::Literal(c) => Some(*c),
        _ => None,
    }
}

/// Portieris' `CompareImageRef` with compiled halves.
fn portieris_compare(parts: &PortierisParts, image: &str) -> bool {
    match parts {
        PortierisParts::Whole { any_tag } => {
            // CompareAnyTag: the pattern itself, or the pattern with any tag.
            let whole = any_tag.len() - 2;
            match_str(&any_tag[..whole], image) || match_str(any_tag, image)
        }
        PortierisParts::Split { host, path, path_any_tag } => match image.split_once('/') {
            Some((image_host, image_path)) => {
                match_str(host, image_host) && (match_str(path, image_path) || match_str(path_any_tag, image_path))
            }
            None => false,
        },
    }
}

impl fmt::Debug for ImageGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dialect {
            Dialect::Signet => write!(f, "ImageGlob({:?})", self.source),
            d => write!(f, "ImageGlob({d:?} {:?})", self.source),
        }
    }
}

fn check_plain(pattern: &str) -> Result<(), GlobError> {
    if pattern.is_empty() {
        return Err(GlobError::Empty);
    }
    if pattern.chars().any(char::is_whitespace) {
        return Err(GlobError::Whitespace(pattern.to_string()));
    }
    Ok(())
}

/// `*` any run (runs of stars are one), `?` one character when `question` (Kyverno,
/// Tanzu) and a literal otherwise (Portieris).
fn plain_tokens(pattern: &str, question: bool) -> Vec<Token> {
    let mut tokens = Vec::new();
    for c in pattern.chars() {
        match c {
            '*' if tokens.last() == Some(&Token::Any) => {}
            '*' => tokens.push(Token::Any),
            '?' if question => tokens.push(Token::One),
            c => tokens.push(Token::Literal(c)),
        }
    }
    tokens
}

fn match_str(tokens: &[Token], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    match_tokens(tokens, &text)
}

/// A literal, host-like first segment in canonical spelling (lower case, no `:443`); Docker
/// Hub's aliases are left as written, since the names tried include every alias.
fn canonical_literal_host(pattern: &str) -> String {
    match pattern.split_once('/') {
        Some((first, rest)) if crate::reference::is_domain(first) && !first.contains(['*', '?']) => {
            let lower = first.to_ascii_lowercase();
            format!("{}/{rest}", lower.strip_suffix(":443").unwrap_or(&lower))
        }
        _ => pattern.to_string(),
    }
}

/// A Portieris pattern's host half, matched against canonical (lower-case) hosts.
fn portieris_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    lower.strip_suffix(":443").unwrap_or(&lower).to_string()
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

    /// The peers' languages run on the same engine: many stars against a long name stay
    /// bounded in every one of them, for every name tried.
    #[test]
    fn peer_dialects_do_bounded_work_too() {
        let name: String =
            (0..60).map(|i| format!("{}", (b'a' + (i % 26) as u8) as char)).collect::<Vec<_>>().join("/");
        let full = format!("docker.io/{name}:dev");
        let repo = format!("docker.io/{name}");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let stars = "*/*/*/*/*/*/*/*/*/*/*/*:prod";
            let globs = [
                ImageGlob::policy_controller("**/**/**/**/**/**/**/**/**:prod").unwrap(),
                ImageGlob::kyverno(stars).unwrap(),
                ImageGlob::portieris(&format!("docker.io/{stars}")).unwrap(),
            ];
            let got: Vec<bool> = globs.iter().map(|g| g.matches(&full, &repo) || g.excludes(&full, &repo)).collect();
            let _ = tx.send(got);
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("matching must not hang");
        assert_eq!(got, [false, false, false]);
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

    fn canon(name: &str) -> (String, String) {
        let r = crate::reference::parse(name).unwrap();
        (r.whole(), crate::reference::repository(&r))
    }

    fn with(glob: Result<ImageGlob, GlobError>, image: &str) -> bool {
        let (full, repo) = canon(image);
        glob.unwrap().matches(&full, &repo)
    }

    /// Regression (#15): Portieris anchors a pattern's host to the image's host (its fix of
    /// 2026-06-30); as a plain wildcard `*.registry.example.com/myorg/*` covered an image
    /// hosted anywhere whose path embeds that name.
    #[test]
    fn portieris_patterns_are_host_anchored() {
        let p = |pattern: &str| ImageGlob::portieris(pattern);
        assert!(!with(p("*.registry.example.com/myorg/*"), "attacker.com/x.registry.example.com/myorg/malware:latest"));
        assert!(!with(p("trusted.example.com/*"), "evil.io/trusted.example.com/myorg/myimage:demo"));
        assert!(with(p("*.registry.example.com/myorg/*"), "us.registry.example.com/myorg/foo:latest"));
        assert!(with(p("icr.io/hello/world"), "icr.io/hello/world:v1"), "no tag means any tag");
        assert!(!with(p("icr.io/hello/earth"), "icr.io/hello/world"));
        assert!(with(p("*"), "attacker.example.com/anything:latest"));
        assert!(with(p("REG.IO/team/*"), "reg.io/team/x:v1"), "hosts are case-insensitive");
    }

    /// Regression (#15): Kyverno matches its own normalised name, where a pattern with
    /// neither tag nor digest covers nothing and Docker Hub names keep the path as written.
    #[test]
    fn kyverno_patterns_match_kyvernos_names() {
        let k = |pattern: &str| ImageGlob::kyverno(pattern);
        assert!(with(k("docker.io/nginx:*"), "nginx:1.25"));
        assert!(!with(k("ghcr.io/org/base"), "ghcr.io/org/base:v1"), "no tag: no image");
        assert!(!with(k("myorg/*"), "myorg/app:v1"), "Kyverno's name is docker.io/myorg/app:v1");
        assert!(!with(k("nginx:*"), "nginx:latest"));
        assert!(with(k("ghcr.io/*"), "ghcr.io/repo/img:v1"));
        let excludes = |pattern: &str, image: &str| {
            let (full, repo) = canon(image);
            ImageGlob::kyverno(pattern).unwrap().excludes(&full, &repo)
        };
        assert!(!excludes("myorg/*", "myorg/app:v1"), "skipImageReferences [myorg/*] skipped myorg/app:v1");
        assert!(!excludes("ghcr.io/org/base", "ghcr.io/org/base:v1"));
        assert!(!excludes(
            "ghcr.io/org/base",
            "ghcr.io/org/base@sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350"
        ));
        assert!(excludes("ghcr.io/invalid-user*", "ghcr.io/invalid-user/invalid-image:v1"));
        assert!(!excludes("docker.io/nginx:*", "nginx:1.25"), "a pod may have written docker.io/library/nginx");
        assert!(excludes("*nginx:1.25", "nginx:1.25"));
    }

    /// Regression (#15): policy-controller globs as its `glob.Match` has them, on its
    /// normalised names and on the name as the pod wrote it.
    #[test]
    fn policy_controller_globs_match_like_policy_controller() {
        let pc = |glob: &str| ImageGlob::policy_controller(glob);
        let digest = "sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350";
        assert!(with(pc("*"), "nginx"), "* is index.docker.io/library/*");
        assert!(with(pc("*/*"), "myuser/myapp"), "*/* is index.docker.io/*/*");
        assert!(with(pc("ghc**"), "ghcr.io/foo"));
        assert!(with(pc("index.docker.**"), "foo"));
        assert!(with(pc("ghcr.io/foo@*"), &format!("ghcr.io/foo@{digest}")));
        assert!(with(pc("ghcr.io/foo"), "ghcr.io/foo"));
        assert!(with(pc("ghcr.io/foo"), "ghcr.io/foo:latest"), "the pod may have written it without a tag");
        assert!(!with(pc("ghcr.io/foo"), "ghcr.io/foo:v1"), "as in policy-controller: no tag is not every tag");
        assert!(!with(pc("ghcr.io/foo:v2"), "ghcr.io/foo:v1"));
        assert!(!with(pc("ghcr.io/*/*"), "ghcr.io/foo"));
        assert!(!with(pc("ghcr.io/**"), "ghcrxio/foo"));
        assert!(with(pc("REG.IO:443/team/**"), "reg.io/team/x:v1"));
        for bad in ["[", ".+", "[a-z]*", "a?b"] {
            assert!(matches!(pc(bad), Err(GlobError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn bad_globs_are_named() {
        assert_eq!(ImageGlob::new(""), Err(GlobError::Empty));
        assert!(matches!(ImageGlob::new("a b"), Err(GlobError::Whitespace(_))));
        assert!(matches!(ImageGlob::new("reg/***"), Err(GlobError::TooManyStars(_))));
    }

    #[test]
    fn raw_peer_matchers_follow_the_peers_unit_tests() {
        let k = |p: &str, t: &str| ImageGlob::kyverno(p).unwrap().matches_name(t);
        assert!(k("my-bucket?abc*", "my-bucket/abc"), "? crosses /");
        assert!(!k("my-bucket/abc?", "my-bucket/abc"));
        assert!(!k("REG.IO/*", "reg.io/x:1"), "as written");
        let p = |p: &str, t: &str| ImageGlob::portieris(p).unwrap().matches_name(t);
        assert!(p("test.com/namespace/image", "test.com/namespace/image:tag"));
        assert!(!p("registry*.example.com/myorg/*", "registry.attacker.com/x.example.com/myorg/evil"));
    }
}
