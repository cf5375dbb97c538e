use serde_json::json;

use super::{Catalog, Source, UpstreamLists, in_scope};
use crate::config::VirtualServer;

static NONE: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

fn lists(tools: &[&str]) -> UpstreamLists {
    UpstreamLists {
        tools: tools
            .iter()
            .map(|t| json!({"name": t, "inputSchema": {"type": "object"}, "x-vendor": 1}))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn namespaces_and_routes_back_keeping_unknown_fields() {
    let a = lists(&["read"]);
    let b = lists(&["read"]);
    let src = [
        Source {
            upstream: "db",
            namespace: Some("db"),
            lists: &a,
            renames: &NONE,
        },
        Source {
            upstream: "files",
            namespace: Some("files"),
            lists: &b,
            renames: &NONE,
        },
    ];
    let (cat, coll) = Catalog::build(&src, "__", &Catalog::default());
    assert!(coll.is_empty());
    let e = cat.tool("files__read").unwrap();
    assert_eq!(
        (e.upstream.as_str(), e.original.as_str()),
        ("files", "read")
    );
    assert_eq!(e.def["x-vendor"], 1);
    assert_eq!(e.def["name"], "files__read");
    assert!(cat.tool("read").is_none());
}

#[test]
fn unprefixed_collision_keeps_the_incumbent_even_when_it_comes_later() {
    let a = lists(&["query"]);
    let b = lists(&["other"]);
    let first = [
        Source {
            upstream: "a",
            namespace: None,
            lists: &a,
            renames: &NONE,
        },
        Source {
            upstream: "b",
            namespace: None,
            lists: &b,
            renames: &NONE,
        },
    ];
    let (cat, _) = Catalog::build(&first, "__", &Catalog::default());
    // Upstream b adds a tool named like a's: b's is refused, a keeps the name.
    let b2 = lists(&["other", "query"]);
    let second = [
        Source {
            upstream: "b",
            namespace: None,
            lists: &b2,
            renames: &NONE,
        },
        Source {
            upstream: "a",
            namespace: None,
            lists: &a,
            renames: &NONE,
        },
    ];
    let (cat2, coll) = Catalog::build(&second, "__", &cat);
    assert_eq!(coll.len(), 1);
    assert_eq!(
        (coll[0].kept.as_str(), coll[0].refused.as_str()),
        ("a", "b")
    );
    assert_eq!(cat2.tool("query").unwrap().upstream, "a");
}

#[test]
fn resources_route_by_uri_then_template_prefix() {
    let mut l = UpstreamLists::default();
    l.resources
        .push(json!({"uri": "file:///a.txt", "name": "a"}));
    l.templates
        .push(json!({"uriTemplate": "db://tables/{name}", "name": "t"}));
    let mut m = UpstreamLists::default();
    m.templates
        .push(json!({"uriTemplate": "db://{any}", "name": "t"}));
    let src = [
        Source {
            upstream: "f",
            namespace: Some("f"),
            lists: &l,
            renames: &NONE,
        },
        Source {
            upstream: "g",
            namespace: Some("g"),
            lists: &m,
            renames: &NONE,
        },
    ];
    let (cat, _) = Catalog::build(&src, "__", &Catalog::default());
    assert_eq!(cat.resource_upstream("file:///a.txt"), Some("f"));
    assert_eq!(cat.resource_upstream("db://tables/x"), Some("f"));
    assert_eq!(cat.resource_upstream("db://other"), Some("g"));
    assert_eq!(cat.resource_upstream("http://nowhere"), None);
}

#[test]
fn virtual_server_scope_filters_upstreams_and_tools() {
    let vs = VirtualServer {
        tool_search: None,
        name: "v".into(),
        upstreams: ["db".to_owned()].into(),
        tools: Some(["db__read".to_owned()].into()),
        tenant: None,
    };
    assert!(in_scope(Some(&vs), "db", Some("db__read")));
    assert!(!in_scope(Some(&vs), "db", Some("db__drop")));
    assert!(!in_scope(Some(&vs), "files", None));
    assert!(in_scope(None, "files", Some("x")));
}
