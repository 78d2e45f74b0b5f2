//! Go's spellings of values, as Kyverno's conditions read and print them: durations
//! (`time.ParseDuration`, `Duration.String`), `fmt.Sprint` of JSON scalars, Kubernetes
//! quantities and Kyverno's `*`/`?` wildcards. A condition compares what these produce, so
//! the node must produce the same text Kyverno would.

/// `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or `0`, as nanoseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number.parse::<f64>().ok()? * scale;
        if total > i64::MAX as f64 {
            return None;
        }
    }
    let nanos = total.round() as i64;
    Some(if negative { -nanos } else { nanos })
}

/// `time.Duration.String`: `72h3m0.5s`, `1.5ms`, `0s`.
pub fn duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    // Under a second Go picks the largest unit that keeps an integer part.
    let fraction = |value: u64, digits: u32| {
        let unit = 10u64.pow(digits);
        let (whole, frac) = (value / unit, value % unit);
        if frac == 0 {
            whole.to_string()
        } else {
            let f = format!("{frac:0width$}", width = digits as usize);
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}\u{b5}s", fraction(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(u, 6));
    }
    let secs = u / 1_000_000_000;
    let sub = u % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let seconds = fraction(s * 1_000_000_000 + sub, 9);
    match (h, m) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `fmt.Sprint` of a JSON scalar decoded the Go way (every number a float64); `None` for
/// objects and arrays, whose Go spelling (`map[a:1]`) no policy should depend on.
pub fn sprint(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    Some(match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => sprint_float(n.as_f64()?),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// `%v` of a float64: `strconv` 'g' with the shortest digits, which switches to an
/// exponent below 1e-4 and from 1e6 on (`fmt.Sprint(1e6)` is `1e+06`).
pub fn sprint_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // `{:e}` gives the shortest round-trip digits: `1.5e-7`, `1e6`.
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// `json.Marshal` of decoded JSON, as Kyverno inserts a non-string value into a string:
/// keys sorted, numbers as Go prints a float64 (`3`, not `3.0`), `<`, `>` and `&` escaped.
pub fn go_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let a = f.abs();
            if a != 0.0 && !(1e-6..1e21).contains(&a) {
                // Go: exponent form with at least one exponent digit (`1e-7`, `1e+21`).
                let e = format!("{f:e}");
                let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
                if x.starts_with('-') {
                    format!("{m}e{x}")
                } else {
                    format!("{m}e+{x}")
                }
            } else {
                format!("{f}")
            }
        }
        Value::String(s) => serde_json::to_string(s)
            .unwrap_or_default()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029"),
        Value::Array(items) => format!("[{}]", items.iter().map(go_json).collect::<Vec<_>>().join(",")),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_json(&Value::String((*k).clone())), go_json(&map[*k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
    }
}

/// `strconv.FormatFloat(f, 'f', -1, 32)`: how Kyverno's string functions read a number.
pub fn format_float32(f: f64) -> String {
    format!("{}", f as f32)
}

/// `strconv.ParseFloat(s, 64)` for the decimal spellings (Go also reads hex floats and
/// underscores after a base prefix, which no condition compares against).
pub fn parse_float(text: &str) -> Option<f64> {
    let t = text.strip_prefix(['+', '-']).unwrap_or(text);
    let lower = t.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if !special
        && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')))
    {
        return None;
    }
    text.parse().ok()
}

/// A Kubernetes resource quantity (`resource.ParseQuantity`: `1.5Gi`, `500m`, `2e3`), as
/// a float for comparison. `None` when the text is not one.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let (sign, t) = match text.as_bytes().first() {
        Some(b'-') => (-1.0, &text[1..]),
        Some(b'+') => (1.0, &text[1..]),
        _ => (1.0, text),
    };
    let digits = t.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = t.split_at(digits);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let e = &exp[1..];
            let body = e.strip_prefix(['+', '-']).unwrap_or(e);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(e.parse::<i32>().ok()?)
        }
        _ => return None,
    };
    Some(sign * number.parse::<f64>().ok()? * scale)
}

/// Kyverno's `wildcard.Match(pattern, name)`: `*` any run (also empty), `?` one character,
/// the rest literal; linear in the input (no backtracking beyond the last `*`).
pub fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_as_go_does() {
        assert_eq!(parse_duration("168h"), Some(168 * 3600 * 1_000_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5400 * 1_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("-2m"), Some(-120 * 1_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        for bad in ["", "3", "1d", "h", "1.2.3s", "--1s", ".s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string((72 * 3600 + 180) * 1_000_000_000 + 500_000_000), "72h3m0.5s");
        assert_eq!(duration_string(90 * 1_000_000_000), "1m30s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(duration_string(-5_000_000_000), "-5s");
        for d in ["72h3m0.5s", "1m30s", "1.5ms", "-5s", "12ns"] {
            assert_eq!(duration_string(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn numbers_print_as_fmt_sprint_does() {
        assert_eq!(sprint_float(3.0), "3");
        assert_eq!(sprint_float(1.5), "1.5");
        assert_eq!(sprint_float(1e6), "1e+06");
        assert_eq!(sprint_float(123456.0), "123456");
        assert_eq!(sprint_float(1234567.0), "1.234567e+06");
        assert_eq!(sprint_float(0.0001), "0.0001");
        assert_eq!(sprint_float(0.00001), "1e-05");
        assert_eq!(sprint(&serde_json::json!(null)).as_deref(), Some("<nil>"));
        assert_eq!(sprint(&serde_json::json!(true)).as_deref(), Some("true"));
        assert_eq!(sprint(&serde_json::json!([1])), None);
        assert_eq!(format_float32(2.5), "2.5");
        let doc = serde_json::json!({"b": [1.0, 2.5, "<x>"], "a": null, "c": 1e21});
        assert_eq!(go_json(&doc), r#"{"a":null,"b":[1,2.5,"\u003cx\u003e"],"c":1e+21}"#);
        assert_eq!(format_float32(7.0), "7");
    }

    #[test]
    fn quantities_and_wildcards() {
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2e3"), Some(2000.0));
        assert_eq!(parse_quantity("5"), Some(5.0));
        for bad in ["", "1h", "abc", "1.2.3", "Mi"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
        assert!(wildcard("https://*", "https://example.com"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("", "a"));
        assert!(wildcard("*b*b*", "abxxb"));
        assert!(!wildcard("*b*b*", "abxx"));
        // Linear: a pattern of many stars against a long miss finishes.
        assert!(!wildcard(&"*a".repeat(50), &"a".repeat(49)));
    }
}
