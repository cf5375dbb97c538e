use super::{Config, TransportSpec};

fn env(k: &str) -> Option<String> {
    match k {
        "TOKEN" => Some("s3cret".into()),
        "PATH" => Some("/usr/bin".into()),
        "EVIL" => Some("x\ny: 1".into()),
        "INJECT" => Some("a', 'https://evil.example\" # } ,".into()),
        _ => None,
    }
}

fn load(yaml: &str) -> Result<Config, super::ConfigError> {
    Config::from_yaml(yaml, &env)
}

#[test]
fn minimal_config_has_safe_defaults() {
    let c = load("{}").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.limits.decode.max_depth, 64);
    assert_eq!(c.separator, "__");
}

#[test]
fn unknown_field_is_rejected_with_its_location() {
    let e = load("upstreams:\n  db:\n    comand: x\n").unwrap_err();
    assert!(e.location.starts_with("line 3"), "{e}");
    assert!(e.message.contains("comand"), "{e}");
}

#[test]
fn env_substitution_and_scrubbed_child_env() {
    let c = load(
        "upstreams:\n  db:\n    command: srv\n    env: {API: \"${TOKEN}\"}\n    inherit_env: [PATH, NOPE]\n",
    )
    .unwrap();
    let TransportSpec::Stdio { env, .. } = &c.upstreams[0].transport else {
        panic!()
    };
    assert_eq!(
        env,
        &vec![
            ("PATH".into(), "/usr/bin".into()),
            ("API".into(), "s3cret".into())
        ]
    );
    assert!(
        load("listen: ${MISSING}")
            .unwrap_err()
            .message
            .contains("MISSING")
    );
    // A value is one string wherever it lands: quotes, commas, braces, `#` and line
    // breaks in it cannot add a key or an item.
    for value in ["'${INJECT}'", "\"${INJECT}\"", "${INJECT}"] {
        let yaml = format!(
            "upstreams:\n  db:\n    command: srv\n    env:\n      API: {value}\n      B: b\n"
        );
        let c = load(&yaml).unwrap();
        let TransportSpec::Stdio { env: vars, .. } = &c.upstreams[0].transport else {
            panic!()
        };
        let inject = crate::tests::env("INJECT").unwrap();
        assert_eq!(
            vars,
            &vec![
                ("PATH".into(), "/usr/bin".into()),
                ("API".into(), inject),
                ("B".into(), "b".into())
            ],
            "{yaml}"
        );
    }
    let e = load("listen: ${EVIL}").unwrap_err();
    assert_eq!(e.location, "listen", "{e}");
    // A mistake elsewhere is still reported at its line in the file as written.
    let e = load("allowed_origins: ['${TOKEN}']\nupstreams:\n  db:\n    comand: x\n").unwrap_err();
    assert!(e.location.starts_with("line 4"), "{e}");
    assert_eq!(
        load("allowed_origins: ['https://a$${b}']")
            .unwrap()
            .allowed_origins,
        vec!["https://a${b}"]
    );
}

#[test]
fn semantic_errors_name_the_field() {
    let cases = [
        ("listen: 0.0.0.0:80", "listen"),
        ("upstreams:\n  Bad: {command: x}", "upstreams.Bad"),
        (
            "upstreams:\n  a: {command: x, url: 'http://h/mcp'}",
            "upstreams.a",
        ),
        ("upstreams:\n  a: {url: 'ftp://h'}", "upstreams.a.url"),
        (
            "upstreams:\n  a: {command: x, namespace: 'x__y'}",
            "upstreams.a.namespace",
        ),
        (
            "upstreams:\n  a: {command: x}\n  b: {command: y, namespace: a}",
            "upstreams.b.namespace",
        ),
        (
            "virtual_servers:\n  v: {upstreams: [nope]}",
            "virtual_servers.v.upstreams",
        ),
        ("limits: {max_body_bytes: 0}", "limits.max_body_bytes"),
        ("session: {key: 'c2hvcnQ='}", "session.key"),
    ];
    for (yaml, at) in cases {
        let e = load(yaml).unwrap_err();
        assert_eq!(e.location, at, "{yaml}: {e}");
    }
}

#[test]
fn remote_bind_needs_opt_in_and_never_in_dev_mode() {
    assert!(load("listen: 0.0.0.0:8080\nallow_remote: true").is_ok());
    assert!(load("listen: 0.0.0.0:8080\nallow_remote: true\ndev_mode: true").is_err());
}

#[test]
fn request_workers_are_bounded() {
    assert_eq!(load("listen: 127.0.0.1:8080").unwrap().limits.workers, None);
    let four = load("listen: 127.0.0.1:8080\nlimits: {workers: 4}").unwrap();
    assert_eq!(four.limits.workers, Some(4));
    for n in [0, 65] {
        let e = load(&format!("listen: 127.0.0.1:8080\nlimits: {{workers: {n}}}")).unwrap_err();
        assert_eq!(e.location, "limits.workers", "{n}");
    }
}

#[test]
fn schema_lists_top_level_fields() {
    let s = super::json_schema();
    let props = s["properties"].as_object().unwrap();
    assert!(props.contains_key("upstreams") && props.contains_key("limits"));
}

fn auth(issuer_extra: &str) -> String {
    format!(
        "auth:\n  resource: https://gw.example/mcp\n  issuers:\n    staff:\n      issuer: https://idp.example\n{issuer_extra}"
    )
}

#[test]
fn auth_refuses_symmetric_and_none_algorithms() {
    for alg in ["HS256", "none", "HS512"] {
        let e = load(&auth(&format!("      algorithms: [{alg}]\n"))).unwrap_err();
        assert_eq!(e.location, "auth.issuers.staff.algorithms", "{alg}");
        assert!(e.message.contains("never none or HMAC"), "{e}");
    }
    let ok = load(&auth("      algorithms: [RS256, ES256, EdDSA]\n")).unwrap();
    let a = ok.auth.unwrap();
    assert_eq!(
        a.issuers[0].audiences,
        vec!["https://gw.example/mcp".to_owned()],
        "audience defaults to the resource"
    );
}

#[test]
fn auth_rules() {
    let e = load(&auth("      tenants: [acme]\n")).unwrap_err();
    assert_eq!(e.location, "auth.issuers.staff.tenants");
    let e = load(&auth("      clock_skew_secs: 3600\n")).unwrap_err();
    assert_eq!(e.location, "auth.issuers.staff.clock_skew_secs");
    let e = load(&format!("dev_mode: true\n{}", auth(""))).unwrap_err();
    assert_eq!(e.location, "auth");
    let e = load("auth:\n  resource: not-a-url\n  issuers: {}\n").unwrap_err();
    assert_eq!(e.location, "auth.resource");
}

#[test]
fn the_authorization_server_facade_is_checked() {
    let facade = |extra: &str| {
        format!(
            "{}  authorization_server:\n    login: {{issuer: staff, client_id: gh, client_secret: 'env:S'}}\n{extra}",
            auth("      required_scopes: [mcp:tools]\n")
        )
    };
    let ok = load(&facade(
        "    redirect_uris: ['http://127.0.0.1/callback']\n",
    ))
    .unwrap();
    let f = ok.auth.unwrap().facade.unwrap();
    assert_eq!(
        f.issuer, "https://gw.example",
        "default: the resource's origin"
    );
    assert_eq!(f.login.issuer, "https://idp.example");
    assert_eq!(f.scopes, vec!["mcp:tools".to_owned()]);
    assert_eq!(
        f.login.scopes,
        vec!["openid".to_owned(), "mcp:tools".to_owned()]
    );
    assert_eq!(f.access_ttl.as_secs(), 900);
    for (extra, at) in [
        (
            "    redirect_uris: []\n",
            "auth.authorization_server.redirect_uris",
        ),
        (
            "    redirect_uris: ['https://app.example.com*']\n",
            "auth.authorization_server.redirect_uris[0]",
        ),
        (
            "    redirect_uris: ['http://127.0.0.1/cb']\n    access_token_ttl_secs: 86400\n",
            "auth.authorization_server.access_token_ttl_secs",
        ),
        (
            "    redirect_uris: ['http://127.0.0.1/cb']\n    issuer: https://gw.example/oauth\n",
            "auth.authorization_server.issuer",
        ),
        (
            "    redirect_uris: ['http://127.0.0.1/cb']\n    issuer: https://idp.example\n",
            "auth.authorization_server.issuer",
        ),
    ] {
        assert_eq!(load(&facade(extra)).unwrap_err().location, at, "{extra}");
    }
    let e = load(
        &facade("    redirect_uris: ['http://127.0.0.1/cb']\n")
            .replace("issuer: staff", "issuer: nobody"),
    )
    .unwrap_err();
    assert_eq!(e.location, "auth.authorization_server.login.issuer");
    let e =
        load(&facade("    redirect_uris: ['http://127.0.0.1/cb']\n").replace("'env:S'", "plain"))
            .unwrap_err();
    assert_eq!(e.location, "auth.authorization_server.login.client_secret");
}

#[test]
fn vault_references_need_a_vault_section_with_a_token_by_reference() {
    let up = |secret: &str| {
        format!(
            "upstreams:\n  t:\n    url: https://t.example/mcp\n    client_credentials:\n      token_url: https://idp.example/token\n      client_id: gh\n      client_secret: \"{secret}\"\n"
        )
    };
    let e = load(&up("vault:secret/data/t#client_secret")).unwrap_err();
    assert_eq!(e.location, "vault");
    let vault = "vault:\n  address: https://vault.example:8200\n  token: env:VAULT_TOKEN\n";
    let ok = load(&format!(
        "{vault}{}",
        up("vault:secret/data/t#client_secret")
    ))
    .unwrap();
    assert_eq!(ok.vault.unwrap().cache.as_secs(), 300);
    for bad in ["vault:secret/../sys#x", "vault:secret/data/t", "vault:#x"] {
        let e = load(&format!("{vault}{}", up(bad))).unwrap_err();
        assert_eq!(
            e.location, "upstreams.t.client_credentials.client_secret",
            "{bad}"
        );
    }
    let e = load("vault:\n  address: https://v.example\n  token: s.inline-token\n").unwrap_err();
    assert_eq!(e.location, "vault.token");
    let e = load("vault:\n  address: not-a-url\n  token: env:T\n").unwrap_err();
    assert_eq!(e.location, "vault.address");
}

#[test]
fn upstream_client_secrets_must_be_references() {
    let yaml = |secret: &str| {
        format!(
            "upstreams:\n  t:\n    url: https://t.example/mcp\n    client_credentials:\n      token_url: https://idp.example/token\n      client_id: gh\n      client_secret: \"{secret}\"\n"
        )
    };
    let e = load(&yaml("plain-secret")).unwrap_err();
    assert_eq!(e.location, "upstreams.t.client_credentials.client_secret");
    assert!(load(&yaml("env:T_SECRET")).is_ok());
    assert!(load(&yaml("file:/run/secrets/t")).is_ok());
    let stdio = load(
        "upstreams:\n  s:\n    command: x\n    client_credentials: {token_url: 'https://i/t', client_id: a, client_secret: 'env:X'}\n",
    );
    assert_eq!(stdio.unwrap_err().location, "upstreams.s");
}

#[test]
fn token_exchange_needs_streamable_http_and_auth() {
    let up = |transport: &str| {
        format!(
            "upstreams:\n  t:\n    url: https://t.example/mcp\n    transport: {transport}\n    client_credentials: {{token_url: 'https://i/t', client_id: a, client_secret: 'env:X', token_exchange: true}}\n"
        )
    };
    let auth = "auth:\n  resource: https://gw.example/mcp\n  issuers:\n    i:\n      issuer: https://i.example\n";
    let where_ = "upstreams.t.client_credentials.token_exchange";
    assert_eq!(
        load(&up("streamable_http")).unwrap_err().location,
        where_,
        "no auth"
    );
    let sse = load(&format!("{auth}{}", up("sse")));
    assert_eq!(sse.unwrap_err().location, where_, "legacy SSE");
    let ok = load(&format!("{auth}{}", up("streamable_http"))).unwrap();
    assert!(matches!(
        &ok.upstreams[0].transport,
        super::TransportSpec::StreamableHttp { credential: Some(c), .. } if c.token_exchange
    ));
}

#[test]
fn tls_rules() {
    let base = "tls:\n  cert: c.pem\n  key: k.pem\n";
    let c = load(base).unwrap().tls.unwrap();
    assert!(!c.allow_tls12 && !c.require_client_cert && c.client_ca.is_none());
    assert!(
        load(&format!("{base}  min_version: '1.2'\n"))
            .unwrap()
            .tls
            .unwrap()
            .allow_tls12
    );
    assert_eq!(
        load(&format!("{base}  min_version: '1.1'\n"))
            .unwrap_err()
            .location,
        "tls.min_version"
    );
    assert_eq!(
        load(&format!("{base}  client_auth: required\n"))
            .unwrap_err()
            .location,
        "tls.client_ca"
    );
    let two = format!(
        "{base}  client_ca: ca.pem\n  client_principals:\n    - {{san_uri: 'spiffe://a', subject_cn: b, principal: p}}\n"
    );
    assert_eq!(load(&two).unwrap_err().location, "tls.client_principals[0]");
}

#[test]
fn secret_store_references_need_the_store() {
    let cc = "upstreams:\n  t:\n    url: https://t.example/mcp\n    client_credentials:\n      token_url: https://idp.example/token\n      client_id: gh\n      client_secret: \"secret:t\"\n";
    assert_eq!(load(cc).unwrap_err().location, "secrets");
    let with = format!("{cc}secrets:\n  file: s.json\n  master_key: \"env:MASTER\"\n");
    assert!(load(&with).is_ok());
    let self_ref = "secrets:\n  file: s.json\n  master_key: \"secret:m\"\n";
    assert_eq!(load(self_ref).unwrap_err().location, "secrets.master_key");
}

#[test]
fn a_fleet_needs_a_redis_url_and_the_shared_session_key() {
    let key = "session: {key: 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY='}\n";
    let c = load(&format!("{key}fleet: {{redis: 'redis://127.0.0.1:6379/'}}")).unwrap();
    let f = c.fleet.expect("fleet");
    assert_eq!(f.channel, "gatehouse:fleet");
    for (yaml, location) in [
        // Without a shared key replicas can neither open each other's sessions nor sign.
        ("fleet: {redis: 'redis://h/'}".to_owned(), "fleet"),
        (format!("{key}fleet: {{redis: 'http://h/'}}"), "fleet.redis"),
        (
            format!("{key}fleet: {{redis: 'redis://h/', redis_ca: ca.pem}}"),
            "fleet.redis_ca",
        ),
        (
            format!("{key}fleet: {{redis: 'redis://h/', channel: 'two words'}}"),
            "fleet.channel",
        ),
    ] {
        let e = load(&yaml).unwrap_err();
        assert_eq!(e.location, location, "{yaml}: {e}");
    }
}

#[test]
fn package_runners_must_name_an_exact_version_and_its_hash() {
    for (cmd, args, hint) in [
        (
            "npx",
            "[-y, '@modelcontextprotocol/server-filesystem', /srv]",
            "@modelcontextprotocol/server-filesystem@X.Y.Z",
        ),
        ("npx", "[-y, 'pkg@latest']", "pkg@X.Y.Z"),
        ("npx", "[-y, 'pkg@^1.2.0']", "pkg@X.Y.Z"),
        ("uvx", "[mcp-server-sqlite]", "mcp-server-sqlite==X.Y.Z"),
        ("/usr/bin/bunx", "[some-mcp]", "some-mcp@X.Y.Z"),
        ("pnpm", "[dlx, other-mcp]", "other-mcp@X.Y.Z"),
    ] {
        let e = load(&format!(
            "upstreams:\n  u:\n    command: {cmd}\n    args: {args}\n"
        ))
        .unwrap_err();
        assert_eq!(e.location, "upstreams.u.args", "{cmd} {args}: {e}");
        assert!(
            e.message.contains("not pinned") && e.message.contains(hint),
            "{e}"
        );
    }
    let fs = "sha512-kKaFkyAh6oipvc9+EAbJ552JafnMnOq5nzmzWkp1jJdBhTAAGpmIpWihUG1+rfNhmEFM98gUZDdCHCDD4v6a7Q==";
    let py = "sha256:abababababababababababababababababababababababababababababababab";
    for (cmd, args, integrity) in [
        (
            "npx",
            "[-y, '@modelcontextprotocol/server-filesystem@2026.8.31', /srv]",
            format!("\n    integrity: '{fs}'"),
        ),
        (
            "uvx",
            "['mcp-server-sqlite==2025.1.1']",
            format!("\n    integrity: '{py}'"),
        ),
        ("node", "[server.js]", String::new()),
    ] {
        load(&format!(
            "upstreams:\n  u:\n    command: {cmd}\n    args: {args}{integrity}\n"
        ))
        .unwrap_or_else(|e| panic!("{cmd} {args}: {e}"));
    }
    // Pinned without its hash, a malformed hash, a hash on a plain command.
    for (yaml, words) in [
        (
            "command: npx\n    args: [-y, 'pkg@1.2.3']".to_owned(),
            "npm view pkg@1.2.3 dist.integrity",
        ),
        (
            "command: uvx\n    args: ['pkg==1.2.3']".to_owned(),
            "pypi.org/pypi/pkg/1.2.3/json",
        ),
        (
            "command: npx\n    args: [-y, 'pkg@1.2.3']\n    integrity: sha1-abc".to_owned(),
            "sha512-",
        ),
        (
            format!("command: node\n    args: [s.js]\n    integrity: '{fs}'"),
            "runner",
        ),
    ] {
        let e = load(&format!("upstreams:\n  u:\n    {yaml}\n")).unwrap_err();
        assert_eq!(e.location, "upstreams.u.integrity", "{yaml}: {e}");
        assert!(e.message.contains(words), "{yaml}: {e}");
    }
}

#[test]
fn with_approved_servers_only_those_packages_run() {
    let fs = "sha512-kKaFkyAh6oipvc9+EAbJ552JafnMnOq5nzmzWkp1jJdBhTAAGpmIpWihUG1+rfNhmEFM98gUZDdCHCDD4v6a7Q==";
    let py = "sha256:abababababababababababababababababababababababababababababababab";
    let approved = format!(
        "approved_servers: ['npm:@modelcontextprotocol/server-filesystem@2026.8.31#{fs}', 'pypi:mcp-server-sqlite==2025.1.1']\n"
    );
    let ok = format!(
        "{approved}upstreams:\n  fs:\n    command: npx\n    args: [-y, '@modelcontextprotocol/server-filesystem@2026.8.31', /srv]\n    integrity: '{fs}'\n  db:\n    command: uvx\n    args: ['mcp_server_sqlite==2025.1.1']\n    integrity: '{py}'\n  own:\n    command: node\n    args: [server.js]\n"
    );
    load(&ok).unwrap_or_else(|e| panic!("{e}"));
    for (cmd, args, integrity) in [
        (
            "npx",
            "[-y, '@modelcontextprotocol/server-filesystem@2026.8.30']",
            fs,
        ),
        ("npx", "[-y, 'other-server@1.0.0']", fs),
        ("uvx", "['mcp-server-sqlite==2025.1.2']", py),
        // The approved version with another hash than the approved one.
        (
            "npx",
            "[-y, '@modelcontextprotocol/server-filesystem@2026.8.31']",
            "sha512-5U3OZh8Xq0Li4nA26l6uNvV9/1suMDuWSn+NjLZIhzinhMY6N3A4DCrxVecBGPf2PsNFKTEv5krxGPRwzxc7jQ==",
        ),
    ] {
        let e = load(&format!(
            "{approved}upstreams:\n  u:\n    command: {cmd}\n    args: {args}\n    integrity: '{integrity}'\n"
        ))
        .unwrap_err();
        assert_eq!(e.location, "upstreams.u.args", "{e}");
        assert!(e.message.contains("not on approved_servers"), "{e}");
    }
    let e = load("approved_servers: ['npm:pkg']\n").unwrap_err();
    assert_eq!(e.location, "approved_servers[0]");
}
