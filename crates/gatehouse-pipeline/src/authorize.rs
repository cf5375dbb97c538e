//! The authorize stage's glue: the principal as a policy subject, decisions for calls and
//! for list filtering (the same decision, so a list shows exactly what may be called), and
//! the answers a refused caller gets.

use gatehouse_policy::{Action, Outcome, Prepared, Situation, Subject, Target};
use gatehouse_protocol::RpcError;
use serde_json::{Map, Value, json};

use crate::client::ClientCtx;
use crate::config::{Authorization, RawDeniedAs};
use gatehouse_auth::{AuthMethod, Principal, PrincipalKind};
use gatehouse_transport::correlation::CorrelationId;

/// The principal as policies see it. In development mode the anonymous caller holds the
/// configured `anonymous_roles`.
pub fn subject_of(p: &Principal, authz: &Authorization) -> Subject {
    let roles = match p.method {
        AuthMethod::DevMode => authz.anonymous_roles.clone(),
        _ => p.roles.clone(),
    };
    Subject {
        id: p.id.clone(),
        service: p.kind == PrincipalKind::Service,
        tenant: p.tenant.clone(),
        roles,
        groups: p.groups.clone(),
        scopes: p.scopes.clone(),
        acr: p.acr.clone(),
        amr: p.amr.clone(),
        authenticated_at: p.authenticated_at,
        method: p.method_label().to_owned(),
        attributes: p.attributes.clone(),
    }
}

/// One principal's decisions within one request.
pub(crate) struct Gate<'a> {
    authz: &'a Authorization,
    /// `None` when the principal cannot be turned into an entity: everything is refused.
    prepared: Option<Prepared>,
    now: u64,
    client: Option<&'a str>,
    source: Option<std::net::IpAddr>,
}

impl<'a> Gate<'a> {
    pub(crate) fn new(authz: &'a Authorization, ctx: &'a ClientCtx) -> Gate<'a> {
        let principal = &ctx.principal;
        let prepared = match authz.engine.prepare_owned(subject_of(principal, authz)) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(principal = %principal.id, error = %e, "principal cannot be evaluated: every request refused");
                None
            }
        };
        Gate {
            authz,
            prepared,
            now: gatehouse_transport::session::now_secs(),
            client: ctx.client.as_deref(),
            source: ctx.source,
        }
    }

    pub(crate) fn authz(&self) -> &Authorization {
        self.authz
    }

    /// Decides a call.
    pub(crate) fn decide(
        &self,
        action: Action,
        target: &Target,
        arguments: Option<&Map<String, Value>>,
        listing: bool,
    ) -> Outcome {
        let Some(prepared) = &self.prepared else {
            return Outcome::Deny {
                policies: vec!["gatehouse.unevaluable_principal".into()],
                cause: gatehouse_policy::DenyCause::Error,
            };
        };
        let sit = Situation {
            listing,
            now: self.now,
            arguments,
            client: self.client,
            source_ip: self.source,
        };
        gatehouse_policy::authorize(
            &self.authz.engine,
            prepared,
            prepared.subject(),
            &self.authz.controls,
            action,
            target,
            &sit,
        )
    }

    /// Whether a list shows the target: the call's decision, before arguments are known.
    pub(crate) fn shows(&self, action: Action, target: &Target) -> bool {
        !matches!(
            self.decide(action, target, None, true),
            Outcome::Deny { .. }
        )
    }
}

/// What kind of name a refusal is about, for the "not found" answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Named {
    Tool,
    Prompt,
    Resource,
}

/// The client's answer to a refused call. `Ok` is a tool result (the "not found" answer to
/// `tools/call`, which MCP servers give as a tool error).
pub(crate) fn refusal(
    outcome: &Outcome,
    denied_as: RawDeniedAs,
    named: Named,
    name: &str,
    correlation: CorrelationId,
) -> Result<Value, RpcError> {
    let cid = correlation.to_string();
    match outcome {
        Outcome::StepUp { needed, .. } => Err(gatehouse_transport::refusal::forbidden_with(
            "Forbidden: this call needs a stronger or more recent sign-in",
            json!({
            "correlationId": cid,
            "stepUp": {
                "error": "insufficient_user_authentication",
                "acr_values": needed.acr_values,
                "max_age": needed.max_age,
            }
            }),
        )),
        _ if denied_as == RawDeniedAs::NotFound => match named {
            Named::Tool => Ok(json!({
                "content": [{"type": "text", "text": format!("Unknown tool: {name}")}],
                "isError": true
            })),
            Named::Prompt => Err(gatehouse_transport::refusal::unknown_prompt(name)),
            Named::Resource => Err(gatehouse_transport::refusal::resource_not_found(Some(name))),
        },
        _ => Err(gatehouse_transport::refusal::forbidden(
            "Forbidden by policy",
            correlation,
        )),
    }
}

/// SHA-256 of a JSON value in canonical form (object keys sorted at every level), hex:
/// the digest enhanced audit records for arguments and results. Key order in the wire
/// text does not change it.
pub(crate) fn digest(v: &Value) -> String {
    let mut bytes = Vec::with_capacity(256);
    write_canonical(v, &mut bytes);
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    hex::encode(d)
}

/// Writes `v` as compact JSON with every object's keys in sorted order (maps keep insertion
/// order here): the bytes `serde_json::to_vec` gives for a copy of `v` so sorted, without
/// making the copy (a call's argument and result are digested on every call).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, child)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Writing into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, k.as_str());
                out.push(b':');
                write_canonical(child, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        leaf => {
            let _ = serde_json::to_writer(&mut *out, leaf);
        }
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_policy::{DenyCause, Outcome, StepUpNeeded};
    use gatehouse_protocol::code;
    use serde_json::json;

    use proptest::prelude::*;

    use super::{Named, digest, refusal};
    use crate::config::RawDeniedAs;
    use gatehouse_transport::correlation::CorrelationId;

    #[test]
    fn refusals_say_forbidden_or_pass_for_unknown_names_and_step_up_says_how() {
        let deny = Outcome::Deny {
            policies: vec![],
            cause: DenyCause::NoPermit,
        };
        let cid = CorrelationId::default();
        let e = refusal(&deny, RawDeniedAs::Forbidden, Named::Tool, "db__drop", cid)
            .expect_err("error");
        assert_eq!(e.code, code::FORBIDDEN);
        let r = refusal(&deny, RawDeniedAs::NotFound, Named::Tool, "db__drop", cid)
            .expect("tool error");
        assert_eq!(
            r,
            json!({"content": [{"type": "text", "text": "Unknown tool: db__drop"}], "isError": true})
        );
        let e = refusal(&deny, RawDeniedAs::NotFound, Named::Prompt, "p", cid).expect_err("error");
        assert_eq!(
            (e.code, e.message.as_str()),
            (code::INVALID_PARAMS, "Unknown prompt: p")
        );
        let e = refusal(
            &deny,
            RawDeniedAs::NotFound,
            Named::Resource,
            "file:///x",
            cid,
        )
        .expect_err("error");
        assert_eq!(e.code, code::RESOURCE_NOT_FOUND);
        // Step-up is never disguised: the caller must learn how to get through.
        let step = Outcome::StepUp {
            policies: vec![],
            needed: StepUpNeeded {
                acr_values: vec!["mfa".into()],
                max_age: Some(60),
                reason: "acr",
            },
        };
        let e = refusal(&step, RawDeniedAs::NotFound, Named::Tool, "t", cid).expect_err("error");
        assert_eq!(e.code, code::FORBIDDEN);
        assert_eq!(
            e.data.expect("data")["stepUp"]["acr_values"],
            json!(["mfa"])
        );
    }

    /// The reference: a sorted copy, serialised.
    fn canonical(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), canonical(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "\\PC{0,12}".prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}é]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                // Keys inserted in a random order, some differing only in case or escapes.
                prop::collection::vec(("[a-cA-C\"é]{0,3}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The streamed canonical form is byte for byte the serialised sorted copy, so
        /// digests recorded before stay comparable.
        #[test]
        fn canonical_bytes_are_the_sorted_copys(v in arb_json()) {
            let mut streamed = Vec::new();
            super::write_canonical(&v, &mut streamed);
            let copied = serde_json::to_vec(&canonical(&v)).expect("serialised");
            prop_assert_eq!(streamed, copied);
        }
    }

    #[test]
    fn digests_ignore_key_order_but_not_values() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":null}}"#).expect("json");
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#).expect("json");
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(
            digest(&a),
            digest(&json!({"b": 2, "a": {"x": null, "y": [1, {"c": 3, "d": 2}]}}))
        );
        assert_eq!(digest(&json!({})).len(), 64);
    }
}
