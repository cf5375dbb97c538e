//! Gatehouse's control surfaces, beside the request path: the admin API (revocations, audit
//! queries, pin review), the approvals API, SCIM 2.0, the OAuth authorization-server
//! endpoints, and SIEM shipping. Each authenticates on its own and reads the gateway's
//! state through [`Gateway`]; none of them is on a client's request path.

use std::sync::Arc;

use gatehouse_pipeline::gateway::Gateway;

mod admin;
mod approvals;
mod body;
pub mod console;
mod inventory;
pub use approvals::APP_HEADER;
mod oauth;
mod pins;
mod scim;
pub mod siem;
mod token;

/// Every control route, to serve beside the MCP routes.
pub fn routes(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .merge(scim::router(gw.clone()))
        .merge(admin::router(gw.clone()))
        .merge(oauth::router(gw.clone()))
        .merge(approvals::router(gw.clone()))
        .merge(console::router(gw))
}

/// Starts the control plane's background work (SIEM shipping, when sinks are configured)
/// and returns its routes: what `gatehouse serve` attaches to a gateway.
pub fn start(gw: &Arc<Gateway>) -> axum::Router {
    let cfg = gw.config();
    if let Some(a) = cfg.audit.as_ref().filter(|a| !a.sinks.is_empty()) {
        siem::start(
            gw,
            &cfg.store_path,
            cfg.postgres_for(gatehouse_proxy::config::StoreKind::Audit),
            &a.sinks,
        );
    }
    routes(gw.clone())
}
