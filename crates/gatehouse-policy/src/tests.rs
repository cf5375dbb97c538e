//! Unit tests of the engine, the role compiler and the seed scenarios' policy tables.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use crate::table::{Table, engine_for};
use crate::{
    Action, Classification, Decision, DenyCause, Engine, Hints, PolicyError, PolicySource,
    PolicySpec, RoleSpec, Situation, Subject, Target, Tenancy, Verb,
};

fn spec(roles: &str, cedar: &str) -> PolicySpec {
    PolicySpec {
        roles: yaml_serde::from_str(roles).expect("roles yaml"),
        files: if cedar.is_empty() {
            Vec::new()
        } else {
            vec![PolicySource {
                name: "test.cedar".into(),
                text: cedar.into(),
            }]
        },
    }
}

fn tool(server: &str, name: &str, tenancy: Tenancy) -> Target {
    Target::Tool {
        server: server.into(),
        original: name.into(),
        exposed: format!("{server}__{name}"),
        classification: Classification::Internal,
        verb: Verb::Read,
        hints: Hints::default(),
        tenancy,
    }
}

fn subject(roles: &[&str], tenant: Option<&str>) -> Subject {
    Subject {
        id: "u".into(),
        roles: roles.iter().map(|s| (*s).to_owned()).collect(),
        tenant: tenant.map(str::to_owned),
        method: "jwt".into(),
        ..Subject::default()
    }
}

fn call() -> Situation<'static> {
    Situation {
        now: 1_800_000_000,
        ..Situation::default()
    }
}

fn run_table(file: &str, yaml: &str) {
    let table = Table::parse(yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
    let engine = engine_for(&table, &|p| Err(format!("no file {p}")))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let results = table.run(&engine).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(!results.is_empty(), "{file}: no cases");
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            format!(
                "case {} ({} → {}): expected {:?}{}, got {:?} by {:?}",
                r.index + 1,
                r.case.principal,
                r.case.target,
                r.case.expect,
                r.case
                    .by
                    .as_deref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default(),
                r.got,
                r.policies
            )
        })
        .collect();
    assert!(failed.is_empty(), "{file}:\n{}", failed.join("\n"));
}

#[test]
fn seed_scenario_tables_hold() {
    for (file, yaml) in [
        (
            "roles.yaml",
            include_str!("../../../testdata/policy/roles.yaml"),
        ),
        (
            "hospital.yaml",
            include_str!("../../../testdata/policy/hospital.yaml"),
        ),
        (
            "trading.yaml",
            include_str!("../../../testdata/policy/trading.yaml"),
        ),
        (
            "saas.yaml",
            include_str!("../../../testdata/policy/saas.yaml"),
        ),
        (
            "supply-chain.yaml",
            include_str!("../../../testdata/policy/supply-chain.yaml"),
        ),
    ] {
        run_table(file, yaml);
    }
}

#[test]
fn a_table_with_a_wrong_expectation_fails() {
    let yaml = r#"
roles: {analyst: [db.read]}
principals: {a: {roles: [analyst]}}
cases:
  - {principal: a, target: db.read, expect: deny}
  - {principal: a, target: db.read, expect: allow, by: some.other.policy}
"#;
    let table = Table::parse(yaml).expect("parse");
    let engine = engine_for(&table, &|_| Err("none".into())).expect("engine");
    let results = table.run(&engine).expect("run");
    assert!(results.iter().all(|r| !r.passed));
}

#[test]
fn every_target_kind_conforms_to_the_schema() {
    let engine = Engine::build(&PolicySpec::default()).expect("build");
    let mut s = subject(&["r"], Some("t"));
    s.acr = Some("mfa".into());
    s.attributes.insert("dept".into(), json!(["a", "b"]));
    s.attributes.insert("level".into(), json!(3));
    let tenancy = Tenancy {
        tenant: Some("t".into()),
        shared: false,
    };
    for (action, target) in [
        (Action::CallTool, tool("db", "q", tenancy.clone())),
        (
            Action::GetPrompt,
            Target::Prompt {
                server: "db".into(),
                original: "p".into(),
                exposed: "db__p".into(),
                classification: Classification::Public,
                tenancy: tenancy.clone(),
            },
        ),
        (
            Action::ReadResource,
            Target::Resource {
                server: "db".into(),
                uri: "file:///x".into(),
                classification: Classification::Restricted,
                tenancy: Tenancy::default(),
            },
        ),
        (
            Action::Complete,
            Target::Resource {
                server: "db".into(),
                uri: "file:///x".into(),
                classification: Classification::Restricted,
                tenancy: Tenancy::default(),
            },
        ),
    ] {
        engine
            .conforms(&s, action, &target)
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
    }
}

#[test]
fn no_policy_no_access() {
    let engine = Engine::build(&PolicySpec::default()).expect("build");
    let d = engine.decide(
        &subject(&["admin"], None),
        Action::CallTool,
        &tool("db", "q", Tenancy::default()),
        &call(),
    );
    assert_eq!(
        d,
        Decision::Deny {
            policies: vec![],
            cause: DenyCause::NoPermit
        }
    );
}

#[test]
fn policies_that_do_not_match_the_schema_fail_the_load() {
    // A misspelt attribute would otherwise never match and silently deny (or allow).
    let e = Engine::build(&spec(
        "{}",
        r#"permit (principal, action, resource) when { resource.clasification == "public" };"#,
    ))
    .expect_err("typo must fail");
    assert!(matches!(e, PolicyError::Invalid(_)), "{e}");
    // Reading an argument without checking it exists is refused by the validator too.
    let e = Engine::build(&spec(
        "{}",
        r#"permit (principal, action, resource) when { context.arguments.getTag("x") == "y" };"#,
    ))
    .expect_err("unguarded tag");
    assert!(matches!(e, PolicyError::Invalid(_)), "{e}");
    let e = Engine::build(&spec("{}", "permit (principal, action, resource")).expect_err("syntax");
    assert!(matches!(e, PolicyError::Parse { .. }), "{e}");
}

#[test]
fn reserved_and_duplicate_ids_are_refused() {
    let e = Engine::build(&spec(
        "{}",
        r#"@id("gatehouse.tenant_isolation") permit (principal, action, resource);"#,
    ))
    .expect_err("reserved");
    assert!(e.to_string().contains("reserved"), "{e}");
    let e = Engine::build(&spec(
        "{}",
        r#"@id("a") permit (principal, action, resource); @id("a") forbid (principal, action, resource);"#,
    ))
    .expect_err("duplicate");
    assert!(e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn role_errors_are_named() {
    let e = Engine::build(&spec("{a: [b]}", "")).expect_err("unknown parent");
    assert!(e.to_string().contains("`b`"), "{e}");
    let e = Engine::build(&spec("{a: [b], b: [a]}", "")).expect_err("cycle");
    assert!(e.to_string().contains("cycle"), "{e}");
    let e = Engine::build(&spec("{a: {tools: [nodot]}}", "")).expect_err("bad ref");
    assert!(e.to_string().contains("nodot"), "{e}");
    let e = Engine::build(&spec("{a: {tools: [x.y], when: {r: \"region\"}}}", ""))
        .expect_err("bad cond");
    assert!(e.to_string().contains("principal.ATTRIBUTE"), "{e}");
    // Values that would break out of a Cedar string literal stay inside it.
    let engine = Engine::build(&spec(
        r#"{a: {tools: ["x.y\" || true || \""], when: {r: ["\") || true || (\""]}}}"#,
        "",
    ))
    .expect("quotes are escaped");
    let d = engine.decide(
        &subject(&["a"], None),
        Action::CallTool,
        &tool("x", "z", Tenancy::default()),
        &call(),
    );
    assert!(!d.allowed());
}

#[test]
fn a_forbid_that_fails_to_evaluate_denies() {
    // Overflow is a runtime error the validator cannot see; Cedar would skip the forbid.
    let engine = Engine::build(&spec(
        "{a: [db.q]}",
        r#"@id("overflowing") forbid (principal, action, resource) when { context.now * 9223372036854775807 > 0 };"#,
    ))
    .expect("build");
    let d = engine.decide(
        &subject(&["a"], None),
        Action::CallTool,
        &tool("db", "q", Tenancy::default()),
        &call(),
    );
    assert_eq!(
        d,
        Decision::Deny {
            policies: vec!["overflowing".into()],
            cause: DenyCause::Error
        }
    );
}

#[test]
fn compiled_roles_read_as_cedar() {
    let specs: BTreeMap<String, RoleSpec> = yaml_serde::from_str(
        "{trader: {tools: [\"market.*\"], verbs: [read], when: {region: [APAC]}}}",
    )
    .expect("yaml");
    let compiled = crate::Roles::new(&specs).expect("roles").compile();
    assert_eq!(compiled.len(), 1);
    let c = &compiled[0];
    assert_eq!(c.id, "role.trader.tools");
    for text in [&c.cedar, &c.display] {
        assert!(
            text.contains(r#"principal in Gatehouse::Role::"trader""#),
            "{text}"
        );
        assert!(
            text.contains(r#"resource in [Gatehouse::Server::"market"]"#),
            "{text}"
        );
        assert!(
            text.contains(r#"["read"].contains(resource.verb)"#),
            "{text}"
        );
    }
    // The argument condition is checked by Gatehouse on each call; the full meaning is
    // what explanations show.
    assert!(!c.cedar.contains("context"), "{}", c.cedar);
    assert!(c.display.contains("context.listing ||"), "{}", c.display);
    assert!(
        c.display
            .contains(r#"["APAC"].contains(context.arguments.getTag("region"))"#),
        "{}",
        c.display
    );
}

#[test]
fn memoized_decisions_follow_every_fact_and_never_freeze_the_context() {
    // Static slice: decisions are memoized, yet a change in any fact decides afresh.
    let engine = Engine::build(&spec("{r: {tools: [db.q], verbs: [read]}}", "")).expect("build");
    let s = subject(&["r"], None);
    let read = tool("db", "q", Tenancy::default());
    for _ in 0..3 {
        assert!(
            engine
                .decide(&s, Action::CallTool, &read, &call())
                .allowed()
        );
    }
    let Target::Tool {
        server,
        original,
        exposed,
        classification,
        hints,
        tenancy,
        ..
    } = read.clone()
    else {
        unreachable!()
    };
    let write = Target::Tool {
        server,
        original,
        exposed,
        classification,
        verb: Verb::Write,
        hints,
        tenancy,
    };
    assert!(
        !engine
            .decide(&s, Action::CallTool, &write, &call())
            .allowed()
    );
    assert!(
        !engine
            .decide(&subject(&["x"], None), Action::CallTool, &read, &call())
            .allowed()
    );
    let other_tenant = tool(
        "db",
        "q",
        Tenancy {
            tenant: Some("t".into()),
            shared: false,
        },
    );
    assert!(
        !engine
            .decide(&s, Action::CallTool, &other_tenant, &call())
            .allowed()
    );

    // A policy reading the clock: the same principal and tool decide differently over time.
    let engine = Engine::build(&spec(
        "{r: [db.q]}",
        r#"@id("office-hours") forbid (principal, action, resource) when { context.now > 2000000000 };"#,
    ))
    .expect("build");
    let before = Situation {
        now: 1_900_000_000,
        ..Situation::default()
    };
    let after = Situation {
        now: 2_100_000_000,
        ..Situation::default()
    };
    assert!(
        engine
            .decide(&s, Action::CallTool, &read, &before)
            .allowed()
    );
    assert!(!engine.decide(&s, Action::CallTool, &read, &after).allowed());
    assert!(
        engine
            .decide(&s, Action::CallTool, &read, &before)
            .allowed()
    );
}

#[test]
fn a_policy_scoped_to_a_role_the_principal_lacks_never_applies_but_others_do() {
    let engine = Engine::build(&spec(
        "{a: [db.q], b: [db.q]}",
        r#"@id("no-b") forbid (principal in Gatehouse::Role::"b", action, resource);
@id("no-svc") forbid (principal is Gatehouse::Service, action, resource);"#,
    ))
    .expect("build");
    let read = tool("db", "q", Tenancy::default());
    assert!(
        engine
            .decide(&subject(&["a"], None), Action::CallTool, &read, &call())
            .allowed()
    );
    let d = engine.decide(
        &subject(&["a", "b"], None),
        Action::CallTool,
        &read,
        &call(),
    );
    assert_eq!(d.policies(), ["no-b"]);
    let mut svc = subject(&["a"], None);
    svc.service = true;
    assert_eq!(
        engine
            .decide(&svc, Action::CallTool, &read, &call())
            .policies(),
        ["no-svc"]
    );
}

fn arb_tenant() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("a".to_owned())),
        Just(Some("b".to_owned()))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Lists show exactly what may be called (roles without argument conditions), and no
    /// grant ever crosses tenants — not even a policy permitting everything.
    #[test]
    fn listing_equals_calling_and_tenants_hold(
        grants in proptest::collection::btree_map("r[0-3]", proptest::collection::vec(("s[0-2]", "t[0-3]|\\*"), 0..4), 0..4),
        inherit in proptest::collection::vec(("r[0-3]", "r[0-3]"), 0..3),
        held in proptest::collection::vec("r[0-4]", 0..3),
        p_tenant in arb_tenant(),
        s_tenants in proptest::collection::vec((arb_tenant(), any::<bool>()), 3),
        verbs in proptest::collection::vec(0..4usize, 12),
        permit_all in any::<bool>(),
    ) {
        let mut roles: BTreeMap<String, RoleSpec> = BTreeMap::new();
        for (role, refs) in &grants {
            let mut items: Vec<String> = refs.iter().map(|(s, t)| format!("{s}.{t}")).collect();
            for (child, parent) in &inherit {
                // Only parent → child edges with parent < child: never a cycle.
                if child == role && parent < child && grants.contains_key(parent) {
                    items.push(parent.clone());
                }
            }
            roles.insert(role.clone(), RoleSpec::List(items));
        }
        let cedar = if permit_all { "@id(\"everything\") permit (principal, action, resource);" } else { "" };
        let engine = Engine::build(&PolicySpec {
            roles,
            files: if cedar.is_empty() { vec![] } else { vec![PolicySource { name: "all".into(), text: cedar.into() }] },
        }).expect("build");
        let s = Subject { id: "p".into(), tenant: p_tenant.clone(), roles: held, method: "jwt".into(), ..Subject::default() };
        let prepared = engine.prepare(&s).expect("prepare");
        let vs = [Verb::Read, Verb::Write, Verb::Execute, Verb::Delete];
        for server in 0..3 {
            for t in 0..4 {
                let (tenant, shared) = s_tenants[server].clone();
                let target = Target::Tool {
                    server: format!("s{server}"),
                    original: format!("t{t}"),
                    exposed: format!("s{server}__t{t}"),
                    classification: Classification::Internal,
                    verb: vs[verbs[server * 4 + t]],
                    hints: Hints::default(),
                    tenancy: Tenancy { tenant: tenant.clone(), shared },
                };
                let listed = engine.decide_prepared(&prepared, Action::CallTool, &target, &Situation { listing: true, ..call() });
                let called = engine.decide_prepared(&prepared, Action::CallTool, &target, &call());
                prop_assert_eq!(listed.allowed(), called.allowed());
                if let Some(t) = &tenant && !shared && p_tenant.as_ref() != Some(t) {
                    prop_assert!(!called.allowed(), "cross-tenant call allowed: {:?}", called);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Argument conditions checked by Gatehouse decide exactly as their Cedar form would.
    #[test]
    fn role_conditions_decide_as_their_cedar_form(
        region in proptest::option::of(prop_oneof![Just(json!("APAC")), Just(json!("EMEA")), Just(json!("US")), Just(json!(7))]),
        pid in proptest::option::of(prop_oneof![Just(json!("p1")), Just(json!("p2")), Just(json!(1)), Just(json!(true))]),
        assigned in proptest::option::of(prop_oneof![Just(json!(["p1", "1"])), Just(json!("p2")), Just(json!([true]))]),
        listing in any::<bool>(),
    ) {
        let roles = "{r: {tools: [db.q], when: {region: [APAC, EMEA], pid: principal.assigned}}}";
        let ours = Engine::build(&spec(roles, "")).expect("build");
        let specs: BTreeMap<String, RoleSpec> = yaml_serde::from_str(roles).expect("yaml");
        let display = crate::Roles::new(&specs).expect("roles").compile()[0]
            .display
            .replace("role.r.tools", "pure-cedar");
        let theirs = Engine::build(&PolicySpec {
            roles: BTreeMap::new(),
            files: vec![PolicySource { name: "c".into(), text: display }],
        });
        // The Cedar form needs the role to exist as a parent: give the principal role r in
        // both engines (the second has no role definitions, so `r` is held directly).
        let theirs = theirs.expect("the display text is valid Cedar");
        let mut s = subject(&["r"], None);
        if let Some(a) = &assigned {
            s.attributes.insert("assigned".into(), a.clone());
        }
        let mut args = serde_json::Map::new();
        if let Some(r) = &region {
            args.insert("region".into(), r.clone());
        }
        if let Some(p) = &pid {
            args.insert("pid".into(), p.clone());
        }
        let sit = Situation { listing, arguments: Some(&args), ..call() };
        let target = tool("db", "q", Tenancy::default());
        prop_assert_eq!(
            ours.decide(&s, Action::CallTool, &target, &sit).allowed(),
            theirs.decide(&s, Action::CallTool, &target, &sit).allowed()
        );
    }
}

#[test]
fn approval_grants_hold_only_with_approval_unless_another_grant_allows() {
    let engine = Engine::build(&spec(
        "{deployer: {tools: [ops.deploy_service], approval: true}, engineer: [deployer], release: [ops.deploy_service]}",
        r#"@id("night-deletes") @approval("required")
permit (principal in Gatehouse::Role::"dba", action == Gatehouse::Action::"call_tool", resource in Gatehouse::Server::"db");"#,
    ))
    .expect("build");
    let deploy = tool("ops", "deploy_service", Tenancy::default());
    let by = |roles: &[&str], t: &Target| {
        engine.decide(&subject(roles, None), Action::CallTool, t, &call())
    };
    // Inherited through `engineer`: allowed, but only with approval.
    let d = by(&["engineer"], &deploy);
    assert!(d.allowed());
    assert!(engine.requires_approval(d.policies()), "{d:?}");
    // Also granted outright: no approval.
    let d = by(&["engineer", "release"], &deploy);
    assert!(d.allowed());
    assert!(!engine.requires_approval(d.policies()), "{d:?}");
    // A Cedar file's annotation means the same.
    let d = by(&["dba"], &tool("db", "drop", Tenancy::default()));
    assert!(
        d.allowed() && engine.requires_approval(d.policies()),
        "{d:?}"
    );
    // A deny never "requires approval".
    assert!(!engine.requires_approval(&[]));
    // The annotation on a forbid is refused at load: it would read as a loophole.
    let e = Engine::build(&spec(
        "{}",
        r#"@approval("required") forbid (principal, action, resource);"#,
    ));
    assert!(e.is_err());
}
