//! What the gateway answers itself: ping, discovery and the merged lists, filtered by the
//! caller's scope, key limits and the authorization decision, paginated.

use gatehouse_policy::Action;
use gatehouse_protocol::{ProtocolVersion, Request, RpcError, method};
use serde_json::{Map, Value, json};

use crate::authorize::Gate;
use crate::catalog::{Entry, ResourceEntry};
use crate::config::Config;
use crate::context::View;
use crate::gateway::Gateway;
use crate::route::data_policy;

impl Gateway {
    pub(super) fn answer_locally(
        &self,
        cfg: &Config,
        req: &Request,
        view: View<'_>,
        gate: Option<&Gate<'_>>,
    ) -> Result<Value, RpcError> {
        let cat = self.catalog();
        // Lists show what the same decision that guards calls allows.
        let shows = |action: Action,
                     target: &dyn Fn(&crate::config::DataPolicy) -> gatehouse_policy::Target,
                     upstream: &str| {
            gate.is_none_or(|g| {
                data_policy(cfg, upstream).is_some_and(|d| g.shows(action, &target(d)))
            })
        };
        let cursor = req.param_str("cursor");
        let page = |items: Vec<&Value>, field: &str| -> Result<Value, RpcError> {
            paginate(items, cursor, field)
        };
        // Tools and prompts: in scope (tools also by name) and allowed.
        let named = |entries: &[Entry], action: Action, field: &str| {
            let tools = action == Action::CallTool;
            page(
                entries
                    .iter()
                    .filter(|e| view.allows(&e.upstream, tools.then_some(e.exposed.as_str())))
                    .filter(|e| {
                        shows(
                            action,
                            &|d| {
                                if tools {
                                    d.tool(&e.upstream, &e.original, &e.exposed, &e.def)
                                } else {
                                    d.prompt(&e.upstream, &e.original, &e.exposed)
                                }
                            },
                            &e.upstream,
                        )
                    })
                    .map(|e| &e.def)
                    .collect(),
                field,
            )
        };
        // Resources and templates: in scope and readable, by their URI (template).
        let resources = |entries: &[ResourceEntry], key: &str, field: &str| {
            page(
                entries
                    .iter()
                    .filter(|e| view.allows(&e.upstream, None))
                    .filter(|e| {
                        let uri = e.def.get(key).and_then(Value::as_str).unwrap_or("");
                        shows(
                            Action::ReadResource,
                            &|d| d.resource(&e.upstream, uri),
                            &e.upstream,
                        )
                    })
                    .map(|e| &e.def)
                    .collect(),
                field,
            )
        };
        match req.method.as_str() {
            method::PING => Ok(json!({})),
            method::INITIALIZE => {
                // A second initialize inside a session, or one sent statelessly.
                Err(gatehouse_transport::refusal::invalid_request(
                    "initialize is only valid as the first request of a session",
                ))
            }
            method::DISCOVER => Ok(json!({
                "supportedVersions": ProtocolVersion::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                "capabilities": self.capabilities(),
                "instructions": self.instructions(view.scope),
                "cacheScope": "private",
                "ttlMs": 0,
                "_meta": {"io.modelcontextprotocol/serverInfo": self.server_info()},
            })),
            method::TOOLS_LIST if crate::search::on(cfg, &view) => Ok(crate::search::list()),
            method::TOOLS_LIST => named(&cat.tools, Action::CallTool, "tools"),
            method::TOOLS_CALL => {
                // Routed here only for the search and describe meta-tools.
                let which = crate::search::meta(req.param_str("name")).ok_or_else(|| {
                    gatehouse_transport::refusal::method_not_found("Method not found")
                })?;
                let visible: Vec<&Entry> = cat
                    .tools
                    .iter()
                    .filter(|e| view.allows(&e.upstream, Some(e.exposed.as_str())))
                    .filter(|e| {
                        shows(
                            Action::CallTool,
                            &|d| d.tool(&e.upstream, &e.original, &e.exposed, &e.def),
                            &e.upstream,
                        )
                    })
                    .collect();
                let args = req.params.as_ref().and_then(|p| p.get("arguments"));
                Ok(crate::search::answer(which, args, &visible))
            }
            method::PROMPTS_LIST => named(&cat.prompts, Action::GetPrompt, "prompts"),
            method::RESOURCES_LIST => resources(&cat.resources, "uri", "resources"),
            method::RESOURCES_TEMPLATES_LIST => {
                resources(&cat.templates, "uriTemplate", "resourceTemplates")
            }
            _ => Err(gatehouse_transport::refusal::method_not_found(
                "Method not found",
            )),
        }
    }
}

/// The lists `answer_locally` filters by the authorization decision.
pub(super) fn is_filtered_list(m: &str) -> bool {
    matches!(
        m,
        method::TOOLS_LIST
            | method::PROMPTS_LIST
            | method::RESOURCES_LIST
            | method::RESOURCES_TEMPLATES_LIST
    )
}

const PAGE_SIZE: usize = 500;

/// Gateway-side pagination over the merged list: the cursor is an opaque offset.
fn paginate(items: Vec<&Value>, cursor: Option<&str>, field: &str) -> Result<Value, RpcError> {
    let start = match cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("gh:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= items.len())
            .ok_or_else(|| gatehouse_transport::refusal::invalid_params("invalid cursor"))?,
    };
    let end = (start + PAGE_SIZE).min(items.len());
    let mut out = Map::new();
    out.insert(
        field.to_owned(),
        Value::Array(items[start..end].iter().map(|v| (*v).clone()).collect()),
    );
    if end < items.len() {
        out.insert("nextCursor".into(), Value::String(format!("gh:{end}")));
    }
    Ok(Value::Object(out))
}
