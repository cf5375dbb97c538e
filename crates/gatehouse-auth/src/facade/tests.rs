//! Unit tests of the façade's pure parts: redirect allowlists, PKCE, parameter encoding.

use super::{client_redirect, redirect_allowed, s256, same, valid_allow_entry, valid_verifier};

#[test]
fn redirect_allowlist() {
    let allow = vec![
        "http://127.0.0.1/callback".to_owned(),
        "https://claude.ai/api/mcp/auth_callback".to_owned(),
        "https://app.example.com/oauth/*".to_owned(),
        "cursor://anysphere.cursor-retrieval/oauth/*".to_owned(),
    ];
    for ok in [
        "http://127.0.0.1:9998/callback",
        "http://127.0.0.1/callback",
        "https://claude.ai/api/mcp/auth_callback",
        "https://app.example.com/oauth/done",
        "cursor://anysphere.cursor-retrieval/oauth/user-x/callback",
    ] {
        assert!(redirect_allowed(ok, &allow), "{ok}");
    }
    for bad in [
        "http://127.0.0.1:9998/other",
        "http://evil.example/callback",
        "https://claude.ai/api/mcp/auth_callback#x",
        "https://claude.ai/api/mcp/auth_callback?next=evil",
        "https://app.example.com.evil.net/oauth/x",
        "https://app.example.com/oauth/../admin",
        "https://user@app.example.com/oauth/x",
        "javascript:alert(1)",
        "http://app.example.com/oauth/done",
        "not a url",
    ] {
        assert!(!redirect_allowed(bad, &allow), "{bad}");
    }
}

#[test]
fn allowlist_entries_cannot_stretch_a_host() {
    assert!(valid_allow_entry("https://app.example.com/oauth/*").is_ok());
    assert!(valid_allow_entry("http://127.0.0.1/callback").is_ok());
    assert!(valid_allow_entry("https://app.example.com*").is_err());
    assert!(valid_allow_entry("https://*.example.com/cb").is_err());
}

#[test]
fn pkce_verifiers_and_secret_comparison() {
    // Computed independently: base64url(SHA-256(verifier)) without padding.
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk"),
        "bwWFMyPfdG9qreDhH2lmftFx_dFeLDalzcT1gb_j68g"
    );
    assert!(valid_verifier(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk"
    ));
    assert!(!valid_verifier("short"));
    assert!(!valid_verifier(&"a".repeat(129)));
    assert!(!valid_verifier(&format!("{}+", "a".repeat(50))));
    assert!(same("abc", "abc"));
    assert!(!same("abc", "abd"));
    assert!(!same("abc", "abcd"));
}

#[test]
fn redirects_encode_their_parameters() {
    assert_eq!(
        client_redirect(
            "https://c/cb?x=1",
            &[("code", Some("a b&c")), ("state", None)]
        ),
        "https://c/cb?x=1&code=a%20b%26c"
    );
}

/// A failing generator yields no token at all (never the all-zero one).
#[test]
fn a_failing_random_generator_issues_no_token() {
    assert_eq!(super::token_from(|_| false), None);
    let t = super::token_from(|b| {
        b.fill(7);
        true
    });
    assert_eq!(t.as_deref().map(str::len), Some(43));
    assert_ne!(super::random_token(), super::random_token());
}
