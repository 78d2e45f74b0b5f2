//! The peers' own test material as the measure of the importers (#15).
//!
//! `../shared/peer-corpus` (beside the repository) holds the policy files sigstore
//! policy-controller, Kyverno, Portieris and Tanzu accept or reject in their own tests and
//! docs, and the matching tables of their unit tests. Every file goes through the code path
//! of `signet policy check`, every row through an imported policy's matching, and each
//! outcome is compared with the peer's. A disagreement fails the test unless
//! `testdata/peer-corpus-differences.tsv` lists it as deliberate — and a listed one must be
//! stricter than the peer (signet rejects the file, or matches where the peer does not) and
//! must still occur.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use signet::policy::compile::{compile, FilesOnly};
use signet::policy::importers;
use signet::policy::local::{load_files_with, LoadOptions};
use signet::policy::matching::ImageGlob;
use signet::policy::{NoMatchAction, PolicySet};

/// The namespace the peers' harnesses apply namespaced objects in (`kubectl -n`).
const NAMESPACE: &str = "peer-test";

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peer-corpus");
    dir.join("PROVENANCE.md").is_file().then_some(dir)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Accept,
    Reject,
    Match,
    NoMatch,
    Error,
    Skip,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject => "reject",
            Outcome::Match => "match",
            Outcome::NoMatch => "nomatch",
            Outcome::Error => "error",
            Outcome::Skip => "skip",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "match" => Outcome::Match,
            "nomatch" => Outcome::NoMatch,
            "error" => Outcome::Error,
            "skip" => Outcome::Skip,
            other => panic!("unknown expectation {other:?}"),
        }
    }
}

/// Is signet's outcome the stricter one? Rejecting a file the peer accepts refuses to run
/// with it; matching a policy the peer does not apply (or verifying an image the peer
/// skips) checks more. The reverse lets something run the peer stops.
fn stricter(signet: Outcome, peer: Outcome) -> bool {
    matches!(
        (signet, peer),
        (Outcome::Reject, Outcome::Accept)
            | (Outcome::Match | Outcome::Error, Outcome::NoMatch)
            | (Outcome::Error, Outcome::Match)
            | (Outcome::Match, Outcome::Skip)
    )
}

struct Case {
    id: String,
    peer: String,
    expected: Outcome,
    got: Outcome,
    detail: String,
}

/// The peer's verdict on a file, from its PROVENANCE row. Files cut out of documentation
/// have a description instead of a verdict; the ones that cannot be applied say so.
fn expectation(description: &str) -> Option<Outcome> {
    if description.contains("EXPECT ACCEPT") {
        return Some(Outcome::Accept);
    }
    if description.contains("EXPECT REJECT") || description.starts_with("ACCEPT only with") {
        // `fail-on-empty-authorities` is true by default: the default install rejects.
        return Some(Outcome::Reject);
    }
    if let Some(doc) = description.strip_prefix("DOC BLOCK:") {
        let unusable = ["placeholder", "not valid YAML", "template", "doc bug", "valid only with"];
        return Some(if unusable.iter().any(|w| doc.contains(w)) { Outcome::Reject } else { Outcome::Accept });
    }
    None
}

fn peer_of(path: &str) -> String {
    match path.split('/').next().unwrap_or_default() {
        "sigstore-policy-controller" => "policy-controller",
        "kyverno-kyverno" | "kyverno-policies" => "kyverno",
        "IBM-portieris" => "portieris",
        "pivotal-docs-tap" => "tanzu-docs",
        other => other,
    }
    .to_string()
}

fn file_cases(dir: &Path) -> Vec<Case> {
    let provenance = std::fs::read_to_string(dir.join("PROVENANCE.md")).unwrap();
    let mut cases = Vec::new();
    let mut seen = BTreeSet::new();
    for line in provenance.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").map(str::trim).collect();
        let (Some(file), Some(description)) = (cells.first(), cells.last()) else { continue };
        if !(file.ends_with(".yaml") || file.ends_with(".yml")) || !dir.join(file).is_file() {
            continue;
        }
        let Some(expected) = expectation(description) else { continue };
        if !seen.insert(file.to_string()) {
            continue;
        }
        let options = LoadOptions { namespace: Some(NAMESPACE.into()) };
        let (got, detail) = match load_files_with(&[dir.join(file)], &options, &signet::held::Held::offline()) {
            Ok(l) => (Outcome::Accept, format!("{} policies", l.normal.len())),
            Err(e) => (Outcome::Reject, e.to_string().replace('\n', " ")),
        };
        let want = description.split("with: ").nth(1).map(|w| format!("; peer: {w}")).unwrap_or_default();
        cases.push(Case {
            id: format!("file:{file}"),
            peer: peer_of(file),
            expected,
            got,
            detail: format!("{detail}{want}"),
        });
    }
    cases
}

/// Import one object, compile it and match `image` in [`NAMESPACE`]: `Error` when the
/// object or the image is refused.
fn matches_through(objects: &[Value], image: &str) -> Outcome {
    let mut policies = Vec::new();
    for obj in objects {
        let Ok(imported) = importers::import(obj) else { return Outcome::Error };
        for p in imported.policies {
            match compile(&p, &FilesOnly(Path::new("/"))) {
                Ok(c) => policies.push(c.policy),
                Err(_) => return Outcome::Error,
            }
        }
    }
    let Ok(reference) = signet::reference::parse(image) else { return Outcome::Error };
    let set = PolicySet::assemble(policies, NoMatchAction::Deny);
    let matched = set.matching(&reference.whole(), &signet::reference::repository(&reference), Some(NAMESPACE));
    if matched.is_empty() {
        Outcome::NoMatch
    } else {
        Outcome::Match
    }
}

fn pc_policy(glob: &str) -> Value {
    json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy", "metadata": {"name": "row"},
        "spec": {"images": [{"glob": glob}], "authorities": [{"static": {"action": "pass"}}]}})
}

fn kyverno_policy(refs: &[&str], skip: &[&str]) -> Value {
    json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "row"},
        "spec": {"validationFailureAction": "Enforce", "rules": [{"name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "verifyImages": [{"imageReferences": refs, "skipImageReferences": skip,
                "attestors": [{"entries": [{"keys": {"kms": "awskms:///alias/row"}}]}]}]}]}})
}

fn portieris_policy(pattern: &str) -> Value {
    json!({"apiVersion": "portieris.cloud.ibm.com/v1", "kind": "ImagePolicy",
        "metadata": {"name": "row", "namespace": NAMESPACE},
        "spec": {"repositories": [{"name": pattern, "policy": {}}]}})
}

fn tanzu_policy(pattern: &str) -> Value {
    json!({"apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": PUB}],
            "images": [{"namePattern": pattern, "keys": [{"name": "k"}]}]}}})
}

const PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nhEhaiVh+bIH3LE3x1ae2+Rsdom
n6jj4T408Ki/F10p17R/R2YobGd7XDaa6PR2vfSDiAfBvxSCmvFGmEf35w==
-----END PUBLIC KEY-----
";

fn rows(dir: &Path, table: &str) -> Vec<(usize, Vec<String>)> {
    let text = std::fs::read_to_string(dir.join("tables").join(table)).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.is_empty())
        .map(|(n, l)| (n + 1, l.split('\t').map(String::from).collect()))
        .collect()
}

fn row_cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut push = |id: String, peer: &str, expected: Outcome, got: Outcome, detail: String| {
        cases.push(Case { id, peer: peer.into(), expected, got, detail })
    };
    for (n, r) in rows(dir, "policy-controller-glob.tsv") {
        let got = matches_through(&[pc_policy(&r[0])], &r[1]);
        push(
            format!("row:policy-controller-glob.tsv:{n}"),
            "policy-controller",
            Outcome::parse(&r[2]),
            got,
            format!("glob {:?} image {:?}", r[0], r[1]),
        );
    }
    for (n, r) in rows(dir, "kyverno-wildcard.tsv") {
        // Rows whose text is an image go through an imported policy on Kyverno's
        // normalised name; the others test the bare wildcard matcher.
        let (expected, got, how) = if r[3] == "n/a" {
            let got = match ImageGlob::kyverno(&r[0]) {
                Ok(g) if g.matches_name(&r[1]) => Outcome::Match,
                Ok(_) => Outcome::NoMatch,
                Err(_) => Outcome::Error,
            };
            (Outcome::parse(&r[2]), got, "raw")
        } else {
            (Outcome::parse(&r[3]), matches_through(&[kyverno_policy(&[&r[0]], &[])], &r[1]), "engine")
        };
        push(
            format!("row:kyverno-wildcard.tsv:{n}"),
            "kyverno",
            expected,
            got,
            format!("{how}: pattern {:?} text {:?}", r[0], r[1]),
        );
    }
    for (n, r) in rows(dir, "kyverno-skip.tsv") {
        let got = match matches_through(&[kyverno_policy(&[&r[0]], &[&r[1]])], &r[2]) {
            Outcome::NoMatch => Outcome::Skip,
            other => other,
        };
        push(
            format!("row:kyverno-skip.tsv:{n}"),
            "kyverno",
            Outcome::parse(&r[3]),
            got,
            format!("refs {:?} skip {:?} image {:?}", r[0], r[1], r[2]),
        );
    }
    for (n, r) in rows(dir, "portieris-wildcard.tsv") {
        // The bare matcher on the strings as given, as the peer's unit test calls it.
        let unit = match ImageGlob::portieris(&r[0]) {
            Ok(g) if g.matches_name(&r[1]) => Outcome::Match,
            Ok(_) => Outcome::NoMatch,
            Err(_) => Outcome::Error,
        };
        push(
            format!("row:portieris-wildcard.tsv:{n}:unit"),
            "portieris",
            Outcome::parse(&r[2]),
            unit,
            format!("pattern {:?} image {:?}", r[0], r[1]),
        );
        let got = matches_through(&[portieris_policy(&r[0])], &r[1]);
        // A namespace with an ImagePolicy denies what none of its repositories match; the
        // stand-in that says so is not the row's repository.
        let got = if got == Outcome::Match && !named_match(&[portieris_policy(&r[0])], &r[1]) {
            Outcome::NoMatch
        } else {
            got
        };
        push(
            format!("row:portieris-wildcard.tsv:{n}:findpolicy"),
            "portieris",
            Outcome::parse(&r[3]),
            got,
            format!("pattern {:?} image {:?}", r[0], r[1]),
        );
    }
    for (n, r) in rows(dir, "tanzu-namepattern-doc.tsv") {
        let got = matches_through(&[tanzu_policy(&r[0])], &r[1]);
        push(
            format!("row:tanzu-namepattern-doc.tsv:{n}"),
            "tanzu",
            Outcome::parse(&r[2]),
            got,
            format!("namePattern {:?} image {:?}", r[0], r[1]),
        );
    }
    cases
}

/// Whether the policy for the row's own repository (not a no-match stand-in) applies.
fn named_match(objects: &[Value], image: &str) -> bool {
    let Ok(reference) = signet::reference::parse(image) else { return false };
    let mut policies = Vec::new();
    for obj in objects {
        for p in importers::import(obj).unwrap().policies {
            policies.push(compile(&p, &FilesOnly(Path::new("/"))).unwrap().policy);
        }
    }
    let set = PolicySet::assemble(policies, NoMatchAction::Deny);
    let matched = set.matching(&reference.whole(), &signet::reference::repository(&reference), Some(NAMESPACE));
    matched.iter().any(|p| p.name.ends_with(']') && !p.name.ends_with("[no match]"))
}

/// `id<TAB>what signet does<TAB>why that is stricter than the peer`.
fn differences() -> BTreeMap<String, (String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/peer-corpus-differences.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cells = l.split('\t');
            let id = cells.next().unwrap().to_string();
            let what = cells.next().unwrap_or_default().to_string();
            let why = cells.next().unwrap_or_default().to_string();
            assert!(!what.is_empty() && !why.is_empty(), "{}: {id} needs what signet does and why", path.display());
            (id, (what, why))
        })
        .collect()
}

#[test]
fn the_peers_own_tests_agree_with_signet() {
    let Some(dir) = corpus() else {
        println!("peer corpus not found at ../shared/peer-corpus: nothing to compare");
        return;
    };
    let files = file_cases(&dir);
    let rows = row_cases(&dir);
    let listed = differences();
    let mut problems = Vec::new();
    let mut occurring = BTreeSet::new();
    let mut tally: BTreeMap<(&str, String), (usize, usize)> = BTreeMap::new();
    for (kind, cases) in [("files", &files), ("rows", &rows)] {
        for c in cases.iter() {
            let agree = c.expected == c.got;
            let t = tally.entry((kind, c.peer.clone())).or_default();
            t.1 += 1;
            if agree {
                t.0 += 1;
                continue;
            }
            occurring.insert(c.id.clone());
            let line = format!("{}: peer {}, signet {} ({})", c.id, c.expected.name(), c.got.name(), c.detail);
            match listed.get(&c.id) {
                None => problems.push(format!("unlisted difference: {line}")),
                Some(_) if !stricter(c.got, c.expected) => {
                    problems.push(format!("listed difference is LOOSER than the peer: {line}"))
                }
                Some((what, _)) if what != c.got.name() && !what.starts_with(c.got.name()) => {
                    problems.push(format!("listed as {what:?} but signet does otherwise: {line}"))
                }
                Some(_) => {}
            }
        }
    }
    for id in listed.keys().filter(|id| !occurring.contains(*id)) {
        problems
            .push(format!("stale: {id} is listed as a difference but signet now agrees (or it is not in the corpus)"));
    }
    let total =
        |kind: &str| tally.iter().filter(|((k, _), _)| *k == kind).fold((0, 0), |(a, n), (_, (x, y))| (a + x, n + y));
    for ((kind, peer), (agree, n)) in &tally {
        println!("{kind} {peer}: {agree}/{n} agree");
    }
    let (fa, fnum) = total("files");
    let (ra, rnum) = total("rows");
    if std::env::var_os("PEER_CORPUS_VERBOSE").is_some() {
        for c in files.iter().chain(rows.iter()) {
            println!("{} peer {} signet {}: {}", c.id, c.expected.name(), c.got.name(), c.detail);
        }
    }
    println!("files: {fa}/{fnum} agree, rows: {ra}/{rnum} agree ({} listed deliberate differences)", listed.len());
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// Every `conditions` list under a ClusterPolicy attestation in the corpus, with where it is.
fn attestation_conditions(dir: &Path) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if !matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else { continue };
            for doc in serde_yaml::Deserializer::from_str(&text) {
                // serde_yaml's document iterator yields a syntax error again and again.
                let Ok(v) = <Value as serde::Deserialize>::deserialize(doc) else { break };
                let rules = v.pointer("/spec/rules").and_then(Value::as_array).cloned().unwrap_or_default();
                for (r, rule) in rules.iter().enumerate() {
                    let vis = rule.get("verifyImages").and_then(Value::as_array).cloned().unwrap_or_default();
                    for (i, vi) in vis.iter().enumerate() {
                        let atts = vi.get("attestations").and_then(Value::as_array).cloned().unwrap_or_default();
                        for (a, att) in atts.iter().enumerate() {
                            if let Some(list) = att.get("conditions").and_then(Value::as_array) {
                                let at = format!(
                                    "{}: rules[{r}].verifyImages[{i}].attestations[{a}]",
                                    p.strip_prefix(dir).unwrap_or(&p).display()
                                );
                                out.push((at, list.clone()));
                            }
                        }
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The attestation conditions the peers write (Kyverno's conformance tests and its policy
/// library: SLSA build types and builders, scan ages with `time_since`, CycloneDX
/// components and licences, VEX statements) are all read as conditions the node evaluates;
/// each one that is not fails here naming it. Before they were read, every one failed closed.
#[test]
fn the_peers_attestation_conditions_are_evaluated_on_the_node() {
    let Some(dir) = corpus() else {
        println!("peer corpus not found at ../shared/peer-corpus: nothing to read");
        return;
    };
    let found = attestation_conditions(&dir);
    assert!(found.len() >= 15, "the corpus holds at least 15 attestations with conditions, found {}", found.len());
    let refused: Vec<String> = found
        .iter()
        .filter_map(|(at, list)| signet::conditions::Conditions::parse(list).err().map(|e| format!("{at}: {e}")))
        .collect();
    println!("{} attestation condition lists, {} refused", found.len(), refused.len());
    assert!(refused.is_empty(), "conditions the node does not evaluate:\n{}", refused.join("\n"));
}
