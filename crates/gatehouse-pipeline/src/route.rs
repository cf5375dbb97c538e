//! Routing: the exposed name or URI a request names, resolved to its upstream and to the
//! facts authorization decides on.

use gatehouse_policy::Action;
use gatehouse_protocol::{Request, RpcError, method};
use serde_json::{Value, json};

use crate::authorize::Named;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::context::Call;
use crate::context::Guard;
use crate::context::Target;
use crate::context::View;
use crate::gateway::Gateway;
use crate::verdict::Verdict;
use gatehouse_transport::refusal;

impl Gateway {
    pub(super) fn route(
        &self,
        cfg: &Config,
        req: &Request,
        view: View<'_>,
    ) -> Result<Target, RpcError> {
        let cat = self.catalog();
        let data = |upstream: &str| data_policy(cfg, upstream).ok_or_else(refusal::upstream_gone);
        let missing = refusal::missing_param;
        let renamed = |original: &str| {
            let mut p = req.params.clone().unwrap_or_else(|| json!({}));
            p["name"] = Value::String(original.to_owned());
            Some(p)
        };
        match req.method.as_str() {
            method::PING
            | method::DISCOVER
            | method::INITIALIZE
            | method::TOOLS_LIST
            | method::PROMPTS_LIST
            | method::RESOURCES_LIST
            | method::RESOURCES_TEMPLATES_LIST => Ok(Target::Local),
            method::LOGGING_SET_LEVEL => Ok(Target::Logging),
            method::TOOLS_CALL => {
                let name = req.param_str("name").ok_or_else(|| missing("name"))?;
                // Search and describe are answered here, over what the caller can see.
                if matches!(
                    crate::search::meta(Some(name)),
                    Some(crate::search::SEARCH | crate::search::DESCRIBE)
                ) && crate::search::on(cfg, &view)
                {
                    return Ok(Target::Local);
                }
                let Some(e) = cat
                    .tool(name)
                    .filter(|e| view.allows(&e.upstream, Some(&e.exposed)))
                else {
                    return Ok(Target::UnknownTool(name.to_owned()));
                };
                Ok(Target::Upstream {
                    upstream: e.upstream.clone(),
                    params: renamed(&e.original),
                    tool: Some(e.exposed.clone()),
                    guard: Box::new(Guard {
                        action: Action::CallTool,
                        target: data(&e.upstream)?.tool(
                            &e.upstream,
                            &e.original,
                            &e.exposed,
                            &e.def,
                        ),
                        named: Named::Tool,
                        name: e.exposed.clone(),
                    }),
                })
            }
            method::PROMPTS_GET => {
                let name = req.param_str("name").ok_or_else(|| missing("name"))?;
                let e = cat
                    .prompt(name)
                    .filter(|e| view.allows(&e.upstream, None))
                    .ok_or_else(|| refusal::unknown_prompt(name))?;
                Ok(Target::Upstream {
                    upstream: e.upstream.clone(),
                    params: renamed(&e.original),
                    tool: None,
                    guard: Box::new(Guard {
                        action: Action::GetPrompt,
                        target: data(&e.upstream)?.prompt(&e.upstream, &e.original, &e.exposed),
                        named: Named::Prompt,
                        name: e.exposed.clone(),
                    }),
                })
            }
            method::RESOURCES_READ
            | method::RESOURCES_SUBSCRIBE
            | method::RESOURCES_UNSUBSCRIBE => {
                let uri = req.param_str("uri").ok_or_else(|| missing("uri"))?;
                let up = self
                    .resource_owner(&cat, uri, view)
                    .ok_or_else(|| refusal::resource_not_found(Some(uri)))?;
                let action = if req.method == method::RESOURCES_READ {
                    Action::ReadResource
                } else {
                    Action::SubscribeResource
                };
                Ok(Target::Upstream {
                    guard: Box::new(Guard {
                        action,
                        target: data(&up)?.resource(&up, uri),
                        named: Named::Resource,
                        name: uri.to_owned(),
                    }),
                    upstream: up,
                    params: req.params.clone(),
                    tool: None,
                })
            }
            method::COMPLETE => {
                let r = req
                    .params
                    .as_ref()
                    .and_then(|p| p.get("ref"))
                    .ok_or_else(|| missing("ref"))?;
                let (upstream, params, target, named, name) =
                    match r.get("type").and_then(Value::as_str) {
                        Some("ref/prompt") => {
                            let name = r
                                .get("name")
                                .and_then(Value::as_str)
                                .ok_or_else(|| missing("ref.name"))?;
                            let e = cat
                                .prompt(name)
                                .filter(|e| view.allows(&e.upstream, None))
                                .ok_or_else(|| refusal::unknown_prompt(name))?;
                            let mut p = req.params.clone().unwrap_or_default();
                            p["ref"]["name"] = Value::String(e.original.clone());
                            let target =
                                data(&e.upstream)?.prompt(&e.upstream, &e.original, &e.exposed);
                            (
                                e.upstream.clone(),
                                Some(p),
                                target,
                                Named::Prompt,
                                e.exposed.clone(),
                            )
                        }
                        Some("ref/resource") => {
                            let uri = r
                                .get("uri")
                                .and_then(Value::as_str)
                                .ok_or_else(|| missing("ref.uri"))?;
                            let up = self
                                .resource_owner(&cat, uri, view)
                                .ok_or_else(|| refusal::resource_not_found(None))?;
                            let target = data(&up)?.resource(&up, uri);
                            (
                                up,
                                req.params.clone(),
                                target,
                                Named::Resource,
                                uri.to_owned(),
                            )
                        }
                        _ => {
                            return Err(refusal::invalid_params(
                                "ref.type must be ref/prompt or ref/resource",
                            ));
                        }
                    };
                Ok(Target::Upstream {
                    upstream,
                    params,
                    tool: None,
                    guard: Box::new(Guard {
                        action: Action::Complete,
                        target,
                        named,
                        name,
                    }),
                })
            }
            _ => Err(refusal::method_not_found("Method not found")),
        }
    }

    /// The upstream serving a resource URI: the one that lists it or a matching template;
    /// failing that, the only upstream in scope that serves resources at all (URIs a server
    /// accepts without listing them). With several candidates an unknown URI goes nowhere.
    fn resource_owner(&self, cat: &Catalog, uri: &str, view: View<'_>) -> Option<String> {
        if let Some(up) = cat.resource_upstream(uri).filter(|u| view.allows(u, None)) {
            return Some(up.to_owned());
        }
        let mut serving = self
            .upstreams()
            .values()
            .filter(|u| {
                view.allows(u.name(), None)
                    && u.info()
                        .is_some_and(|i| i.capabilities.get("resources").is_some())
            })
            .map(|u| u.name().to_owned())
            .collect::<Vec<_>>();
        if serving.len() == 1 {
            serving.pop()
        } else {
            None
        }
    }
}

/// An upstream's data policy (classification, tenant, overrides). `None` for a name config
/// no longer knows (removed by a reload while its catalog entries were still listed):
/// nothing is decided on made-up facts, so such a target is neither listed nor called.
pub(super) fn data_policy<'c>(
    cfg: &'c Config,
    upstream: &str,
) -> Option<&'c crate::config::DataPolicy> {
    cfg.upstreams
        .iter()
        .find(|u| u.name == upstream)
        .map(|u| &u.data)
}

/// Stage: scope. The virtual server the caller came through still exists (a reload may
/// have removed it); what the caller can see and reach is fixed here.
pub(super) fn scope(c: &mut Call<'_>) -> Verdict {
    let scope = match &c.ctx.scope {
        Some(name) => match c.cfg.virtual_servers.get(name) {
            Some(vs) => Some(vs),
            None => {
                return Verdict::Answer(Err(refusal::invalid_request(
                    "this virtual server no longer exists",
                )));
            }
        },
        None => None,
    };
    c.view = View {
        scope,
        limits: c.ctx.principal.limits.as_ref(),
    };
    Verdict::Allow
}

/// Stage: route. The exposed name resolved to its upstream first: every later stage
/// decides about a concrete tool on a concrete server, not a client-chosen string.
pub(super) fn target(c: &mut Call<'_>) -> Verdict {
    let target = match c.gw.route(c.cfg, &c.req, c.view) {
        Ok(t) => t,
        Err(e) => return Verdict::Answer(Err(e)),
    };
    match &target {
        Target::Upstream { upstream, tool, .. } => {
            c.trace.upstream = Some(upstream.clone());
            c.trace.tool.clone_from(tool);
        }
        Target::UnknownTool(name) => {
            c.trace.tool = Some(name.clone());
            c.trace.unknown_tool = true;
        }
        // Tool search's search and describe: recorded under the meta-tool's name.
        Target::Local if c.req.method == gatehouse_protocol::method::TOOLS_CALL => {
            c.trace.tool = c.req.param_str("name").map(str::to_owned);
        }
        Target::Local | Target::Logging => {}
    }
    c.target = target;
    Verdict::Allow
}
