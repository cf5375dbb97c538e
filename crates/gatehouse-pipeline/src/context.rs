//! The request context every stage takes: the call ([`Call`]: the request, its caller,
//! the configuration and what earlier stages found), what the caller can see ([`View`]) and
//! where the request goes ([`Target`], with what authorization decides on: [`Guard`]).

use crate::authorize::{Gate, Named};
use crate::catalog::in_scope;
use crate::client::ClientCtx;
use crate::config::Config;
use crate::config::VirtualServer;
use crate::gateway::Gateway;
use crate::trace::Trace;
use gatehouse_auth::KeyLimits;
use gatehouse_policy::Action;
use gatehouse_protocol::{Message, Request};
use gatehouse_transport::correlation::CorrelationId;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// What a caller can see and reach: the virtual server's scope and, for an API key, the
/// key's server and tool limits. Routing and list filtering both ask it, so a caller never
/// sees what it cannot call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) scope: Option<&'a VirtualServer>,
    pub(crate) limits: Option<&'a KeyLimits>,
}

impl View<'_> {
    pub(crate) fn allows(&self, upstream: &str, tool: Option<&str>) -> bool {
        in_scope(self.scope, upstream, tool) && self.limits.is_none_or(|l| l.allows(upstream, tool))
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// Answered by the gateway itself.
    Local,
    /// One upstream, with the params rewritten for it.
    Upstream {
        upstream: String,
        params: Option<Value>,
        tool: Option<String>,
        /// What authorization decides on.
        guard: Box<Guard>,
    },
    /// Every upstream in scope that supports logging.
    Logging,
    /// A tool name nothing in scope exposes. Answered as a tool error, as MCP servers do,
    /// and never forwarded: only listed tools can be called.
    UnknownTool(String),
}

/// A routed request as authorization sees it: the action, the target's facts, and the
/// name a "not found" answer would use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Guard {
    pub(crate) action: Action,
    pub(crate) target: gatehouse_policy::Target,
    pub(crate) named: Named,
    pub(crate) name: String,
}

/// One request on its way through the chain: what it is, who sent it, and what the stages
/// before found out. Each stage reads it and returns a [`Verdict`].
pub(super) struct Call<'a> {
    pub(super) gw: &'a Arc<Gateway>,
    pub(super) cfg: &'a Config,
    pub(super) ctx: &'a ClientCtx,
    pub(super) req: Request,
    /// Where messages the upstream sends during the call go (progress, logs, requests).
    pub(super) events: Option<mpsc::Sender<Message>>,
    pub(super) trace: &'a mut Trace,
    pub(super) correlation: CorrelationId,
    /// What the caller can see and reach (set by the scope stage).
    pub(super) view: View<'a>,
    /// Where the request goes (set by the route stage).
    pub(super) target: Target,
    /// The authorization decision's context, for routed calls and the lists it filters.
    pub(super) gate: Option<Gate<'a>>,
    /// Policies that allow the call only with a person's approval.
    pub(super) approval_policies: Option<Vec<String>>,
    /// A rule that asked for a person (detection, argument checks): the approval stage acts.
    pub(super) flagged: Option<&'static str>,
    /// Hosts named by URL arguments, resolved before the call.
    pub(super) url_hosts: Vec<(String, String)>,
    /// Arguments rewritten for the upstream (masked by DLP or by content inspection).
    pub(super) outgoing_args: Option<Value>,
    /// Held until the call ends: the gateway's and the caller's in-flight slots.
    pub(super) permits: [Option<OwnedSemaphorePermit>; 2],
}

impl<'a> Call<'a> {
    /// A request about to enter the chain: nothing found out yet.
    pub(super) fn new(
        gw: &'a Arc<Gateway>,
        cfg: &'a Config,
        ctx: &'a ClientCtx,
        req: Request,
        events: Option<mpsc::Sender<Message>>,
        trace: &'a mut Trace,
        correlation: CorrelationId,
    ) -> Call<'a> {
        Call {
            gw,
            cfg,
            ctx,
            req,
            events,
            trace,
            correlation,
            view: View {
                scope: None,
                limits: None,
            },
            target: Target::Local,
            gate: None,
            approval_policies: None,
            flagged: None,
            url_hosts: Vec::new(),
            outgoing_args: None,
            permits: [None, None],
        }
    }

    /// `params.arguments` of the request, if any.
    pub(super) fn arguments(&self) -> Option<&Value> {
        self.req.params.as_ref().and_then(|p| p.get("arguments"))
    }
}
