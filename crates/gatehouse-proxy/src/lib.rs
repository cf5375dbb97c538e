//! Gatehouse's edge: the client-facing transports (Streamable HTTP and legacy SSE, one
//! admission for both), authentication and session binding, TLS and client certificates,
//! the request workers, configuration reload, and `serve`, which assembles the gateway
//! (`gatehouse_pipeline`) with these and with what the caller adds beside them.

/// The configuration, validated (its own crate: plain data, no clients).
pub use gatehouse_config as config;
pub mod edge;
pub mod http;
pub mod reload;
pub mod tls;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

pub use config::{Config, ConfigError};

/// What a server attaches beside the request path: started once with the gateway, it
/// returns the routes to serve with the MCP ones.
pub type Control = fn(&Arc<Gateway>) -> axum::Router;
pub use gatehouse_pipeline::gateway::Gateway;

/// Runs the gateway until ctrl-c / SIGTERM, then drains. `config_path`, when given, is
/// watched and reloaded on change.
/// `control` starts what runs beside the request path and returns its routes (the admin,
/// approvals, SCIM and OAuth endpoints: `gatehouse_control::start`).
pub async fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    control: Control,
) -> std::io::Result<()> {
    let prometheus = gatehouse_transport::metrics::install();
    // Bound before anything starts, so a taken port fails the start.
    let listeners = match config.tls.clone() {
        Some(tls) => Listeners::Tls(tokio::net::TcpListener::bind(config.listen).await?, tls),
        None => {
            let workers = worker::count(config.limits.workers);
            Listeners::Workers(worker::bind(config.listen, workers)?)
        }
    };
    let gw = Gateway::start(config);
    let extra = control(&gw);
    gw.audit_note(
        gatehouse_audit::EventKind::Lifecycle,
        "gateway started",
        format!("listen {}", gw.config().listen),
    )
    .await;
    let _watch = config_path.map(|p| reload::watch(p, gw.clone()));
    // Start-up (configuration, detectors, policies) freed tens of MB the allocator would
    // otherwise keep resident while the gateway idles.
    gatehouse_alloc::release_free_memory();
    // Once start-up has settled: the upstreams' first connections and catalogs run code
    // of their own just after this point.
    tokio::spawn(async {
        tokio::time::sleep(SETTLED).await;
        page_out_code();
    });
    match listeners {
        Listeners::Tls(listener, tls_settings) => {
            tracing::info!(listen = %gw.config().listen, "serving HTTPS");
            let limits = tls::ConnectionLimits {
                max_connections: gw.config().limits.max_connections,
                drain: gw.config().limits.drain,
            };
            tls::serve_tls(
                listener,
                http::router(gw, prometheus).merge(extra),
                tls_settings,
                limits,
                shutdown_signal(),
            )
            .await
        }
        Listeners::Workers(listeners) => {
            let router = http::router(gw, prometheus).merge(extra);
            worker::serve(listeners, router, shutdown_signal()).await
        }
    }
}

/// Where `serve` listens: one listener for HTTPS, one per worker for plain HTTP.
enum Listeners {
    Tls(tokio::net::TcpListener, config::TlsSettings),
    Workers(Vec<std::net::TcpListener>),
}

/// Serves on an already-bound listener (tests bind port 0 first).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    extra: axum::Router,
) -> std::io::Result<()> {
    serve_until(
        listener,
        http::router(gw, prometheus).merge(extra),
        shutdown_signal(),
    )
    .await
}

/// Serves `app` on `listener` until `stop` fires, then drains.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Small JSON-RPC answers must not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Connection addresses reach handlers for policies (`context.source_ip`) and audit.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining in-flight requests");
}

/// How long after it starts serving the gateway lets go of its start-up code.
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(5);

/// Lets the kernel drop the executable's code and constants from memory once the
/// gateway has started: most of what is resident was run once (configuration, detectors,
/// policies), and the request path's pages come back as it runs. Idle RSS fell from about
/// 40 to 23 MB (docs/benchmarks.md). Advice only: on failure nothing changed.
fn page_out_code() {
    match gatehouse_alloc::settle_own_code() {
        Ok((paged, dropped)) => tracing::debug!(paged, dropped, "start-up code paged out"),
        Err(e) => tracing::debug!(error = %e, "start-up code not all paged out"),
    }
}
