//! Conditions as Kyverno's policies write them, judged over statements.

use serde_json::{json, Value};

use super::*;

fn conditions(yaml: &str) -> Result<Arc<Conditions>, ConditionError> {
    let list: Vec<Value> = serde_yaml::from_str(yaml).unwrap();
    Conditions::parse(&list)
}

fn statement(predicate: Value) -> Value {
    json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "x", "subject": [], "predicate": predicate})
}

/// 2026-12-02T00:00:00Z.
const NOW: i64 = 1_796_169_600;

#[test]
fn slsa_build_type_and_builder_regex() {
    let c = conditions(
        "- all:\n  - key: '{{ buildDefinition.buildType }}'\n    operator: Equals\n    value: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1'\n    message: wrong build type\n  - key: \"{{ regex_match('^https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v[0-9].[0-9].[0-9]$','{{ runDetails.builder.id}}') }}\"\n    operator: Equals\n    value: true\n    message: wrong builder\n",
    )
    .unwrap();
    let good = statement(json!({
        "buildDefinition": {"buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"},
        "runDetails": {"builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0"}}
    }));
    assert_eq!(
        c.judge(&good, NOW).unwrap(),
        Verdict { holds: true, message: "wrong build type; wrong builder".into() }
    );
    let mut other = good.clone();
    other["predicate"]["runDetails"]["builder"]["id"] = json!("https://github.com/evil/gen.yml@refs/tags/v1.9.0");
    assert_eq!(c.judge(&other, NOW).unwrap(), Verdict { holds: false, message: "wrong builder".into() });
    let mut missing = good.clone();
    missing["predicate"]["buildDefinition"] = json!({});
    let e = c.judge(&missing, NOW).unwrap_err();
    assert!(e.to_string().contains("conditions[0].all[0]") && e.to_string().contains("\"buildType\" not found"), "{e}");
}

#[test]
fn scan_age_with_time_since() {
    let c = conditions(
        "- all:\n  - key: \"{{ time_since('','{{metadata.scanFinishedOn}}','') }}\"\n    operator: LessThanOrEquals\n    value: \"168h\"\n",
    )
    .unwrap();
    let at = |t: &str| statement(json!({"metadata": {"scanFinishedOn": t}}));
    assert!(c.judge(&at("2026-11-30T00:00:00Z"), NOW).unwrap().holds);
    assert!(!c.judge(&at("2026-11-01T00:00:00Z"), NOW).unwrap().holds);
    let e = c.judge(&at("yesterday"), NOW).unwrap_err();
    assert!(e.to_string().contains("not an RFC 3339 time"), "{e}");
}

#[test]
fn component_versions_and_licences() {
    let c = conditions(
        "- all:\n  - key: \"{{ components[?name=='commons-text'].version || 'none' }}\"\n    operator: AllNotIn\n    value: [\"1.5\", \"1.6\", \"1.7\", \"1.8\", \"1.9\"]\n",
    )
    .unwrap();
    let with = |v: &str| statement(json!({"components": [{"name": "commons-text", "version": v}, {"name": "other"}]}));
    assert!(c.judge(&with("1.10.0"), NOW).unwrap().holds);
    assert!(!c.judge(&with("1.9"), NOW).unwrap().holds);
    assert!(c.judge(&statement(json!({"components": []})), NOW).unwrap().holds, "absent is 'none'");
    let lic = conditions(
        "- any:\n  - key: '{{ components[].licenses[].expression }}'\n    operator: AllIn\n    value: [\"MIT\", \"Apache-2.0\"]\n",
    )
    .unwrap();
    let lics = |l: Value| statement(json!({"components": [{"licenses": l}]}));
    assert!(lic.judge(&lics(json!([{"expression": "MIT"}, {"expression": "Apache-2.0"}])), NOW).unwrap().holds);
    assert!(!lic.judge(&lics(json!([{"expression": "GPL-3.0"}])), NOW).unwrap().holds);
}

#[test]
fn any_and_all_combine_as_in_kyverno() {
    let c = conditions("- any:\n  - {key: '{{ a }}', operator: Equals, value: 1, message: not one}\n  - {key: '{{ a }}', operator: Equals, value: 2, message: not two}\n  all:\n  - {key: '{{ b }}', operator: Equals, value: x, message: not x}\n- all:\n  - {key: '{{ c }}', operator: GreaterThan, value: 5, message: small}\n").unwrap();
    let s = |a: i64, b: &str, c: i64| statement(json!({"a": a, "b": b, "c": c}));
    assert!(c.judge(&s(2, "x", 6), NOW).unwrap().holds);
    assert_eq!(c.judge(&s(3, "x", 6), NOW).unwrap(), Verdict { holds: false, message: "not one; not two".into() });
    assert_eq!(c.judge(&s(1, "y", 6), NOW).unwrap(), Verdict { holds: false, message: "not x".into() });
    assert_eq!(c.judge(&s(1, "x", 5), NOW).unwrap(), Verdict { holds: false, message: "small".into() });
    // `any: []` is present and empty: nothing in it holds.
    let empty = conditions("- any: []\n").unwrap();
    assert!(!empty.judge(&s(1, "x", 1), NOW).unwrap().holds);
    assert!(conditions("- {}\n").unwrap().judge(&s(1, "x", 1), NOW).unwrap().holds);
    // A condition after the one that decided `any` is not substituted, so its error does
    // not count (Kyverno substitutes each as it comes).
    let short = conditions("- any:\n  - {key: '{{ a }}', operator: Equals, value: 1}\n  - {key: '{{ nope }}', operator: Equals, value: 1}\n").unwrap();
    assert!(short.judge(&s(1, "x", 1), NOW).unwrap().holds);
    assert!(short.judge(&s(2, "x", 1), NOW).is_err());
}

#[test]
fn whole_predicate_and_length() {
    let c = conditions("- all:\n  - {key: '{{ length(@) }}', operator: GreaterThan, value: 0}\n");
    // `@` inside a query is JMESPath's current node, not Kyverno's `{{ @ }}` shorthand.
    let c = c.unwrap();
    assert!(c.judge(&statement(json!({"x": 1})), NOW).unwrap().holds);
    assert!(!c.judge(&statement(json!({})), NOW).unwrap().holds);
    let e = c.judge(&json!({"predicate": "text"}), NOW).unwrap_err();
    assert_eq!(e, ConditionError::NotAnObject);
}

#[test]
fn what_the_node_cannot_evaluate_is_refused_when_read_naming_it() {
    let refused = |yaml: &str| conditions(yaml).unwrap_err().to_string();
    let e = refused("- all:\n  - {key: '{{ a }}', operator: In, value: [1]}\n");
    assert!(e.contains("conditions[0].all[0]") && e.contains("deprecated"), "{e}");
    let e = refused("- all:\n  - {key: '{{ a }}', operator: Matches, value: 1}\n");
    assert!(e.contains("not one Kyverno defines"), "{e}");
    let e = refused("- any:\n  - {key: \"{{ base64_decode(a) }}\", operator: Equals, value: x}\n");
    assert!(e.contains("conditions[0].any[0]") && e.contains("\"base64_decode\""), "{e}");
    let e = refused("- all:\n  - {key: \"{{ to_upper('{{ lookup(a, 'b') }}') }}\", operator: Equals, value: x}\n");
    assert!(e.contains("\"lookup\""), "{e}");
    let e = refused("- all:\n  - {key: '{{ request.object.metadata.name }}', operator: Equals, value: x}\n");
    assert!(e.contains("\"request\"") && e.contains("admission request"), "{e}");
    let e = refused("- all:\n  - {key: '$(./foo)', operator: Equals, value: x}\n");
    assert!(e.contains("not evaluated on the node"), "{e}");
    let e = refused("- all:\n  - {key: '{{ a[ }}', operator: Equals, value: x}\n");
    assert!(e.contains("\"a[\""), "{e}");
    let e = refused("- all:\n  - {key: a, operator: Equals, value: x, extra: 1}\n");
    assert!(e.contains("conditions[0]") && e.contains("extra"), "{e}");
}

/// Regression (review): only a query's first field was checked, so a comparison reading the
/// admission request (null on the node, so `!= 'prod'` always true) passed every image.
#[test]
fn the_admission_request_is_refused_wherever_a_query_reads_it() {
    for key in [
        "{{ request.object.metadata.namespace != 'prod' }}",
        "{{ to_upper(request.namespace) }}",
        "{{ [images.containers, buildType] }}",
        "{{ !serviceAccountName }}",
    ] {
        let yaml = format!("- any:\n  - {{key: \"{key}\", operator: Equals, value: true}}\n");
        let e = conditions(&yaml).unwrap_err();
        assert!(matches!(e, ConditionError::Admission { .. }), "{key}: {e}");
    }
    // A field of that name inside the predicate is the predicate's.
    let c = conditions("- all:\n  - {key: \"{{ invocation.request }}\", operator: Equals, value: r}\n").unwrap();
    assert!(c.judge(&statement(json!({"invocation": {"request": "r"}})), NOW).unwrap().holds);
}

/// Regression (review): a variable defined by the rule's `context` was read from the signed
/// predicate, where whoever signs can write it.
#[test]
fn rule_context_names_are_not_read_from_the_predicate() {
    let list: Vec<Value> = serde_yaml::from_str(
        "- all:\n  - {key: \"{{ buildDefinition.buildType }}\", operator: AnyIn, value: \"{{ allowedBuilders }}\"}\n",
    )
    .unwrap();
    let e = Conditions::parse_beside(&list, &["allowedBuilders"]).unwrap_err();
    assert!(
        e.to_string().contains("\"allowedBuilders\" is read from the admission request or the rule context"),
        "{e}"
    );
    assert!(Conditions::parse_beside(&list, &["other"]).is_ok());
}

/// Regression (review): Kyverno substitutes a condition's message too; a message variable
/// that is missing is an error, and one that is there is substituted.
#[test]
fn a_message_is_substituted_and_a_missing_message_variable_denies() {
    let c =
        conditions("- all:\n  - {key: \"{{ a }}\", operator: Equals, value: y, message: \"a is {{ a }}, not y\"}\n")
            .unwrap();
    assert_eq!(c.judge(&statement(json!({"a": "x"})), NOW).unwrap().message, "a is x, not y");
    let c = conditions("- all:\n  - {key: \"{{ a }}\", operator: Equals, value: x, message: \"{{ b.c }}\"}\n").unwrap();
    assert!(matches!(c.judge(&statement(json!({"a": "x"})), NOW), Err(ConditionError::Variable { .. })));
    let e = conditions("- all:\n  - {key: a, operator: Equals, value: a, message: \"{{ request.x }}\"}\n").unwrap_err();
    assert!(matches!(e, ConditionError::Admission { .. }), "{e}");
}

/// Regression (review): Rust's `\d`, `\w`, `\s`, `\b` are Unicode, Go's RE2 ones ASCII.
#[test]
fn regex_match_classes_are_ascii_as_in_go() {
    let c = conditions(
        "- all:\n  - {key: \"{{ regex_match('^v\\\\d+\\\\.\\\\d+$', version) }}\", operator: Equals, value: true}\n",
    )
    .unwrap();
    assert!(c.judge(&statement(json!({"version": "v12.3"})), NOW).unwrap().holds);
    assert!(!c.judge(&statement(json!({"version": "v١٢.٣"})), NOW).unwrap().holds, "Arabic-Indic digits are not \\d");
    let c = conditions(
        "- all:\n  - {key: \"{{ regex_match('^[\\\\w-]+\\\\b\\\\s[^\\\\d]$', name) }}\", operator: Equals, value: true}\n",
    )
    .unwrap();
    assert!(c.judge(&statement(json!({"name": "ab-c x"})), NOW).unwrap().holds);
    assert!(!c.judge(&statement(json!({"name": "ábc x"})), NOW).unwrap().holds, "á is not \\w");
    assert!(!c.judge(&statement(json!({"name": "abc\u{2003}x"})), NOW).unwrap().holds, "an em space is not \\s");
}

/// Regression (review): Rust's semver orders by build metadata; blang/semver does not.
#[test]
fn semver_build_metadata_does_not_order() {
    let c = conditions("- all:\n  - {key: \"{{ v }}\", operator: GreaterThan, value: 1.37.0}\n").unwrap();
    assert!(!c.judge(&statement(json!({"v": "1.37.0+x"})), NOW).unwrap().holds);
    assert!(c.judge(&statement(json!({"v": "1.37.1+x"})), NOW).unwrap().holds);
    let c = conditions("- all:\n  - {key: \"{{ v }}\", operator: LessThanOrEquals, value: 1.37.0}\n").unwrap();
    assert!(c.judge(&statement(json!({"v": "1.37.0+zzz"})), NOW).unwrap().holds);
}
