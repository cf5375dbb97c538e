use super::*;
use crate::redact::{Action, Profile, Tokenizer, walk};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Compiled once for every test.
fn rec() -> &'static Recognizers {
    static R: std::sync::OnceLock<Recognizers> = std::sync::OnceLock::new();
    R.get_or_init(|| Recognizers::new(&[]).expect("built-ins compile"))
}

fn kinds(text: &str) -> Vec<String> {
    rec().scan(text).into_iter().map(|f| f.kind).collect()
}

#[test]
fn true_positives_with_spans() {
    let r = rec();
    for (text, kind, value) in [
        ("mail ops@acme.example today", "email", "ops@acme.example"),
        ("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
        ("phone: (415) 555-0100", "phone", "(415) 555-0100"),
        ("SSN 123-45-6789.", "ssn", "123-45-6789"),
        ("social security number: 123456789", "ssn", "123456789"),
        (
            "card 4111 1111 1111 1111 exp",
            "card",
            "4111 1111 1111 1111",
        ),
        ("amex 378282246310005", "card", "378282246310005"),
        (
            "IBAN GB82 WEST 1234 5698 7654 32",
            "iban",
            "GB82 WEST 1234 5698 7654 32",
        ),
        (
            "NI number AB 12 34 56 C",
            "national_id.uk_nino",
            "AB 12 34 56 C",
        ),
        (
            "aadhaar 2341 2341 2346",
            "national_id.in_aadhaar",
            "2341 2341 2346",
        ),
        ("CPF 529.982.247-25", "national_id.br_cpf", "529.982.247-25"),
        (
            "id 11010519491231002X",
            "national_id.cn_resident",
            "11010519491231002X",
        ),
        ("host 10.20.30.40 down", "ip_address", "10.20.30.40"),
        (
            "via fe80::1ff:fe23:4567:890a",
            "ip_address",
            "fe80::1ff:fe23:4567:890a",
        ),
        ("born on 1984-03-12 in Leeds", "date_of_birth", "1984-03-12"),
        (
            "key AKIAIOSFODNN7EXAMPLE",
            "secret.aws_access_key",
            "AKIAIOSFODNN7EXAMPLE",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "secret.aws_secret_key",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "k=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "secret.gcp_api_key",
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        ),
        (
            "token ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "secret.github_token",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        (
            "glpat-abcdefghij0123456789",
            "secret.gitlab_token",
            "glpat-abcdefghij0123456789",
        ),
        (
            "xoxb-123456789012-abcdefABCDEF",
            "secret.slack_token",
            "xoxb-123456789012-abcdefABCDEF",
        ),
        (
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "secret.stripe_key",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ),
        (
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "secret.jwt",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        (
            "dsn postgres://app:s3cr3tPa55@db.internal:5432/app",
            "secret.connection_string",
            "s3cr3tPa55",
        ),
        (
            "client_secret: q8Zr2xLw9PfK3mNv7TgYb",
            "secret.generic",
            "q8Zr2xLw9PfK3mNv7TgYb",
        ),
    ] {
        let found = r.scan(text);
        assert!(
            found
                .iter()
                .any(|f| f.kind == kind && &text[f.start..f.end] == value),
            "{kind} in {text:?}: {found:?}"
        );
    }
    let pem = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----\ny";
    let f = r.scan(pem);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, "secret.private_key");
    assert!(pem[f[0].start..f[0].end].ends_with("END RSA PRIVATE KEY-----"));
}

#[test]
fn near_misses_are_not_findings() {
    for text in [
        "card 4111 1111 1111 1112", // Luhn fails
        "order 1234567812345670",   // Luhn ok, no issuer
        "SSN 000-12-3456",          // area 000
        "SSN 666-12-3456",
        "SSN 123-00-4567",
        "at 2026-11-22 10:15:30", // a timestamp, not a phone nor a birth date
        "ts 1700000000123",       // epoch millis
        "version 1.2.3.4000",     // not an IPv4
        "ratio 10:15:30",         // not IPv6
        "IBAN GB82 WEST 1234 5698 7654 33", // mod-97 fails
        "released 1984-03-12",    // a date without birth context
        "password: hunter2",      // too short and plain for a secret
        "token: aaaaaaaaaaaaaaaaaaaaaaaa", // no entropy
        "CPF 111.111.111-11",
        "call 555-0100", // not a full number
    ] {
        assert!(kinds(text).is_empty(), "{text:?}: {:?}", rec().scan(text));
    }
}

#[test]
fn a_benign_corpus_raises_nothing() {
    let corpus = include_str!("benign.txt");
    let found = rec().scan(corpus);
    assert!(
        found.is_empty(),
        "{:?}",
        found
            .iter()
            .map(|f| (&f.kind, &corpus[f.start..f.end]))
            .collect::<Vec<_>>()
    );
}

#[test]
fn context_raises_confidence_and_custom_recognizers_join() {
    let r = rec();
    let plain = r.scan("reach 415-555-0100");
    let ctx = r.scan("phone: 415-555-0100");
    assert!(ctx[0].confidence > plain[0].confidence);
    let custom = Recognizers::new(&[CustomRecognizer {
        id: "employee_id".into(),
        pattern: r"\bEMP-(?P<value>[0-9]{6})\b".into(),
        check: None,
        context: vec!["employee".into()],
        context_required: true,
        confidence: Some(0.9),
    }])
    .expect("custom");
    let f = custom.scan(&format!(
        "employee EMP-123456, {} EMP-654321",
        "and later, far from any mention of staff,"
    ));
    assert_eq!(f.len(), 1, "only the one with context: {f:?}");
    assert_eq!(f[0].kind, "employee_id");
    assert!(
        Recognizers::new(&[CustomRecognizer {
            id: "bad".into(),
            pattern: "(".into(),
            check: None,
            context: vec![],
            context_required: false,
            confidence: None,
        }])
        .is_err()
    );
}

#[test]
fn profiles_redact_in_place_and_keep_the_structure() {
    let r = rec();
    let tokens = Tokenizer::new(b"session-key");
    let mut result = json!({
        "content": [{"type": "text", "text": "Acme: ops@acme.example, card 4111 1111 1111 1111"}],
        "structuredContent": {"rows": [{"id": 1, "email": "ops@acme.example", "ssn": "123-45-6789"}]},
        "isError": false
    });
    let mut profile = Profile::standard();
    profile.kinds.insert("email".into(), Action::Token);
    let report = walk(r, &profile, &tokens, &mut result);
    assert!(report.blocked.is_empty());
    assert_eq!(report.found.get("email"), Some(&2));
    let text = result["content"][0]["text"].as_str().expect("text");
    assert!(
        text.contains("****1111") && !text.contains("4111 1111"),
        "{text}"
    );
    let token = result["structuredContent"]["rows"][0]["email"]
        .as_str()
        .expect("email");
    assert!(token.starts_with("[email:"), "{token}");
    assert!(
        text.contains(token),
        "one value, one token within a session: {text}"
    );
    assert_eq!(result["structuredContent"]["rows"][0]["id"], 1);
    assert_eq!(result["structuredContent"]["rows"][0]["ssn"], "****6789");
    assert_eq!(result["isError"], false);
    // Another session's key gives another token.
    let mut again = json!({"e": "ops@acme.example"});
    walk(r, &profile, &Tokenizer::new(b"other"), &mut again);
    assert_ne!(again["e"].as_str(), Some(token));

    // A secret in a result blocks it under the standard profile.
    let mut leaked = json!({"content": [{"type": "text", "text": "AKIAIOSFODNN7EXAMPLE"}]});
    let report = walk(r, &Profile::standard(), &tokens, &mut leaked);
    assert_eq!(report.blocked, ["secret.aws_access_key"]);
    // Alert only: nothing changes, the finding is recorded.
    let mut quiet = json!({"t": "ops@acme.example"});
    let alert = Profile {
        default: Action::Alert,
        ..Profile::default()
    };
    let report = walk(r, &alert, &tokens, &mut quiet);
    assert_eq!(quiet["t"], "ops@acme.example");
    assert_eq!(report.found.get("email"), Some(&1));
    assert_eq!(report.redacted, 0);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "4111 1111 1111 1111",
            "ops@acme.example",
            "AKIAIOSFODNN7EXAMPLE",
            "123-45-6789",
            "é漢字 +44 20 7946 0958",
            "-----BEGIN PRIVATE KEY-----",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Shape: the same structure with strings possibly changed.
fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(_), Value::String(_)) => true,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_shape(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The walker never panics, keeps the JSON's shape, and leaves nothing a masking
    /// profile would find.
    #[test]
    fn the_walker_keeps_shape_and_leaves_no_findings(v in arb_json()) {
        let r = rec();
        let tokens = Tokenizer::new(b"k");
        let profile = Profile::default();
        let mut out = v.clone();
        walk(r, &profile, &tokens, &mut out);
        prop_assert!(same_shape(&v, &out), "{v} → {out}");
        let mut again = out.clone();
        let second = walk(r, &profile, &tokens, &mut again);
        prop_assert!(second.is_clean(), "left behind in {out}: {second:?}");
    }

    /// Skipping the regex set when a text holds none of the needed bytes changes nothing:
    /// texts of words near the recognizers' own (key names, "ssn", "aws") with and without
    /// the digits and punctuation their values need.
    #[test]
    fn the_needed_bytes_test_never_hides_a_finding(
        s in "(secret|password|api_key|ssn|social security|aws|token|glpat|xoxb|sk_live|eyJ|AKIA|AIza|ghp_|BEGIN|iban|[a-zA-Z]{1,9}|[ .,\n]|[0-9]{1,4}|[@:=_+/()-]|é|\\PC){0,60}"
    ) {
        let r = rec();
        prop_assert_eq!(r.scan(&s), r.scan_all(&s));
    }

    /// A value `may_find` passes over walks to no finding and no change.
    #[test]
    fn what_may_find_passes_over_walks_clean(v in arb_json()) {
        let r = rec();
        let mut out = v.clone();
        let report = walk(r, &Profile::default(), &Tokenizer::new(b"k"), &mut out);
        if !crate::redact::may_find(r, &v) {
            prop_assert!(report.found.is_empty() && out == v, "{v}: {report:?}");
        }
    }

    #[test]
    fn scanning_arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let r = rec();
        for f in r.scan(&s) {
            prop_assert!(f.start < f.end && f.end <= s.len());
            prop_assert!(s.is_char_boundary(f.start) && s.is_char_boundary(f.end));
        }
    }
}

#[test]
fn text_without_the_bytes_values_need_is_not_scanned() {
    let needed = rec().needed.expect("every built-in needs some byte");
    // Lower-case prose without digits or `@ : = - _ +` cannot hold a value, even when it
    // names one; one digit, `@` or `=` and it is scanned again.
    for text in [
        "abcdefghijklmnop".repeat(64),
        "the secret password is hunter".into(),
    ] {
        assert!(!super::needs::holds_any(text.as_bytes(), &needed), "{text}");
    }
    for text in ["route 66", "a@b", "key=value", "AKIA"] {
        assert!(super::needs::holds_any(text.as_bytes(), &needed), "{text}");
    }
    // An operator's recognizer that needs no particular byte turns the test off.
    let custom = |pattern: &str| CustomRecognizer {
        id: "x".into(),
        pattern: pattern.into(),
        check: None,
        context: Vec::new(),
        context_required: false,
        confidence: None,
    };
    assert!(
        Recognizers::new(&[custom("[a-z]*")])
            .expect("built")
            .needed
            .is_none()
    );
    let lower = Recognizers::new(&[custom("(?i)hunter[0-9]*")]).expect("built");
    assert_eq!(lower.scan("the secret password is hunter").len(), 1);
}

/// Found by the fuzz target: a phone number that lost an overlap to an IPv6 candidate
/// showed again once the address was masked. Redaction now runs until nothing is left.
#[test]
fn a_value_behind_a_replaced_overlap_is_redacted_too() {
    let mut v = json!({"content": [{"type": "text", "text": "ops@acme.example --l+2055 1671 1111 +2055 1671::api_K5774 15 1111"}]});
    let tokens = Tokenizer::new(b"k");
    walk(rec(), &Profile::default(), &tokens, &mut v);
    let mut again = v.clone();
    let second = walk(rec(), &Profile::default(), &tokens, &mut again);
    assert!(second.is_clean(), "{v}: {second:?}");
}

#[test]
fn subjects_are_indexed_by_keyed_digest_however_they_are_written() {
    let key = crate::SubjectKey::new(b"audit-subjects");
    assert_eq!(
        key.digest("Ops@Acme.Example "),
        key.digest("ops@acme.example")
    );
    assert_eq!(
        key.digest("4111-1111-1111-1111"),
        key.digest("4111 1111 1111 1111")
    );
    assert_ne!(
        key.digest("ops@acme.example"),
        crate::SubjectKey::new(b"other").digest("ops@acme.example")
    );
    let mut v =
        json!({"rows": ["ops@acme.example", "card 4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"]});
    let report = crate::walk_indexed(
        rec(),
        &Profile::default(),
        &Tokenizer::new(b"t"),
        Some(&key),
        &mut v,
    );
    assert_eq!(report.subjects.len(), 2, "{report:?}");
    assert!(report.subjects.contains(&key.digest("ops@acme.example")));
    assert!(report.subjects.contains(&key.digest("4111111111111111")));
    // Secrets are not subjects; digests reveal nothing of the value.
    assert!(
        !report
            .subjects
            .iter()
            .any(|d| d.contains("ops") || d.len() != 32)
    );
}
