//! The gateway's shared state: upstream connections, the federated catalog, sessions and
//! server-initiated streams, plus the reaction to what upstreams report (readiness, list
//! changes, logs, resource updates). The request path itself is in `pipeline`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use gatehouse_auth::{ApiKeys, Authenticator, AuthorizationServer, LocalSecrets, Principal};
use gatehouse_protocol::{Id, Message, Notification, ProtocolVersion, Request, method};
use gatehouse_store::DirectoryStore;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::catalog::{Catalog, Source, UpstreamLists, overrides};
use crate::config::{Config, StoreKind, UpstreamSpec};
use gatehouse_transport::hub::Hub;
use gatehouse_transport::metrics as m;
use gatehouse_transport::session::{SessionCodec, random_bytes};
use gatehouse_transport::upstream::{Caller, ServerRequests, Upstream, UpstreamEvent};

/// Most pages read from one upstream list, and most items kept, per refresh.
const MAX_LIST_PAGES: usize = 100;
const MAX_LIST_ITEMS: usize = 10_000;
/// Most bytes (as JSON) kept of one list of one upstream.
const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

pub use gatehouse_transport::correlation::CorrelationId;

mod approvals;
mod pins;
mod records;
mod replicas;
mod state;
pub use state::subject_key;
use state::{
    DirectoryState, KeysState, dlp_secret, identity, open_audit, open_secrets, purge_oauth,
    refresh_directory, retention,
};

pub struct Gateway {
    config: ArcSwap<Config>,
    upstreams: ArcSwap<BTreeMap<String, Arc<Upstream>>>,
    lists: Mutex<BTreeMap<String, UpstreamLists>>,
    catalog: ArcSwap<Catalog>,
    pub sessions: SessionCodec,
    pub hub: Hub,
    pub(crate) server_requests: Arc<ServerRequests>,
    /// This process's name among replicas (random per start).
    replica: String,
    /// The channel shared with other replicas, when `fleet` is configured (joined at start).
    pub(crate) fleet: std::sync::OnceLock<crate::fleet::Fleet>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    pub(crate) concurrency: ArcSwap<Semaphore>,
    /// Requests in `handle_request` now: the one request in flight may commit its own
    /// audit record ([`crate::audit::AuditWriter::record_alone`]).
    pub(crate) in_flight: std::sync::atomic::AtomicUsize,
    /// Calls a client may still cancel: (session id, client request id) → abort signal.
    pub(crate) cancellable: Mutex<HashMap<(String, Id), oneshot::Sender<()>>>,
    next_correlation: AtomicU64,
    authenticator: ArcSwapOption<Authenticator>,
    /// The authorization-server façade, when configured and able to start.
    oauth: ArcSwapOption<AuthorizationServer>,
    api_keys: KeysState,
    directory: DirectoryState,
    /// The audit writer, when `audit` is configured (opened at start; a change needs a
    /// restart).
    pub audit: Option<crate::audit::AuditWriter>,
    /// Held calls and their approvals (the store file; opened at start).
    pub approvals: crate::approval::Approvals,
    /// Rate limits and per-principal in-flight caps.
    pub(crate) limiter: crate::ratelimit::Limiter,
    /// Byte budgets and result-size baselines.
    pub(crate) exfil: crate::exfil::Exfil,
    /// Tools' compiled input schemas.
    pub(crate) schemas: crate::schemas::Schemas,
    /// Tool and prompt pins, and what the list-time checks last decided.
    pub pins: crate::pins::Pins,
    /// The encrypted local secret store, when configured and its master key readable.
    secrets: Option<Arc<LocalSecrets>>,
    anonymous: Arc<Principal>,
    correlation_prefix: u32,
    /// Keys DLP tokens: the same value gets the same token within a session, and (with a
    /// shared `session.key`) on every replica.
    dlp_secret: [u8; 32],
    /// Keys the audit's subject index; `None`: no index.
    pub(crate) subjects: Option<gatehouse_detect::SubjectKey>,
    /// OpenTelemetry spans, when `traces` is configured (read at start).
    pub(crate) tracer: Option<Arc<gatehouse_transport::otel::Tracer>>,
    /// The last readiness check of shared state (Redis, PostgreSQL): when, and what failed.
    /// Held across a check, so probes arriving meanwhile wait for its answer instead of
    /// each opening a connection of their own (`/readyz` needs no credentials).
    dependencies: tokio::sync::Mutex<Option<(std::time::Instant, Vec<&'static str>)>>,
}

/// How long a readiness check of Redis and PostgreSQL stands: probes and load balancers ask
/// often, and each PostgreSQL check opens a connection.
const DEPENDENCIES_TTL: Duration = Duration::from_secs(2);

impl Gateway {
    /// Builds the gateway and starts connecting every upstream.
    pub fn start(config: Config) -> Arc<Gateway> {
        let key = config.session_key.unwrap_or_else(|| {
            tracing::warn!("session.key is not set: sessions are valid on this process only");
            random_bytes::<32>()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let replica = hex::encode(random_bytes::<6>());
        let (authn, oauth) = identity(&config, open_secrets(&config));
        let gw = Arc::new(Gateway {
            sessions: SessionCodec::new(key, config.session_ttl),
            concurrency: ArcSwap::from_pointee(Semaphore::new(
                config.limits.max_concurrent_requests,
            )),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            config: ArcSwap::from_pointee(config.clone()),
            upstreams: ArcSwap::from_pointee(BTreeMap::new()),
            lists: Mutex::new(BTreeMap::new()),
            catalog: ArcSwap::from_pointee(Catalog::default()),
            hub: Hub::default(),
            server_requests: Arc::new(ServerRequests::new(&replica)),
            replica: replica.clone(),
            fleet: std::sync::OnceLock::new(),
            events: tx,
            cancellable: Mutex::new(HashMap::new()),
            next_correlation: AtomicU64::new(1),
            authenticator: ArcSwapOption::from(authn),
            oauth: ArcSwapOption::from(oauth),
            api_keys: KeysState::open(&config),
            directory: DirectoryState::open(&config),
            audit: open_audit(&config),
            approvals: crate::approval::Approvals::open(&config),
            limiter: crate::ratelimit::Limiter::default(),
            exfil: crate::exfil::Exfil::default(),
            schemas: crate::schemas::Schemas::default(),
            pins: crate::pins::Pins::open(&config),
            secrets: open_secrets(&config),
            anonymous: Arc::new(Principal::anonymous()),
            correlation_prefix: u32::from_be_bytes(random_bytes::<4>()),
            dlp_secret: dlp_secret(&key),
            subjects: subject_key(&config),
            dependencies: tokio::sync::Mutex::new(None),
            tracer: config
                .traces
                .clone()
                .map(|t| Arc::new(gatehouse_transport::otel::Tracer::new(t))),
        });
        if let Some(t) = &gw.tracer {
            tokio::spawn(gatehouse_transport::otel::Tracer::export(Arc::downgrade(t)));
        }
        if let Some(f) = &config.fleet {
            match crate::fleet::Fleet::start(f, &key, &gw.replica, Arc::downgrade(&gw)) {
                Ok(fleet) => {
                    let _ = gw.fleet.set(fleet);
                }
                // Readiness reports `redis` for as long as the fleet is not joined.
                Err(e) => tracing::error!(error = %e, "fleet: cannot use the Redis channel"),
            }
        }
        gw.apply_upstreams(&config.upstreams);
        tokio::spawn(event_loop(Arc::downgrade(&gw), rx));
        tokio::spawn(approvals::sweep(Arc::downgrade(&gw)));
        tokio::spawn(purge_oauth(Arc::downgrade(&gw)));
        if let Some(a) = config.audit.as_ref()
            && let Some(keep) = a.retention
        {
            let sinks = a.sinks.iter().map(|s| s.name.clone()).collect();
            tokio::spawn(retention(
                config.store_path.clone(),
                config.postgres_for(StoreKind::Audit).map(str::to_owned),
                keep,
                sinks,
            ));
        }
        if let DirectoryState::Ready(d) = &gw.directory {
            tokio::spawn(refresh_directory(Arc::downgrade(d)));
        }
        gw
    }

    /// The authorization-server façade, when configured and running.
    pub fn oauth(&self) -> Option<Arc<AuthorizationServer>> {
        self.oauth.load_full()
    }

    /// The token checker, when an identity provider is configured.
    pub fn authenticator(&self) -> Option<Arc<Authenticator>> {
        self.authenticator.load_full()
    }

    /// API keys: `Ok(None)` when not configured; an error when configured but the store
    /// cannot be used (then every key is refused, never accepted).
    pub fn api_keys(&self) -> Result<Option<&ApiKeys>, String> {
        match &self.api_keys {
            KeysState::Off => Ok(None),
            KeysState::Ready(k) => Ok(Some(k)),
            KeysState::Broken(e) => Err(e.clone()),
        }
    }

    /// The directory (SCIM): `Ok(None)` when not configured; an error when configured but
    /// unreadable (then every caller is refused: nobody can be shown not deprovisioned).
    pub fn directory(&self) -> Result<Option<Arc<dyn DirectoryStore>>, String> {
        match &self.directory {
            DirectoryState::Off => Ok(None),
            DirectoryState::Ready(d) => Ok(Some(d.clone())),
            DirectoryState::Broken(e) => Err(e.clone()),
        }
    }

    /// The local secret store, for `secret:` references.
    pub fn secrets(&self) -> Option<&LocalSecrets> {
        self.secrets.as_deref()
    }

    /// DLP tokens for this caller and session.
    pub(crate) fn dlp_tokens(&self, principal: &str, session: &str) -> gatehouse_detect::Tokenizer {
        let mut key = Vec::with_capacity(32 + principal.len() + session.len() + 1);
        key.extend_from_slice(&self.dlp_secret);
        key.extend_from_slice(principal.as_bytes());
        key.push(0);
        key.extend_from_slice(session.as_bytes());
        gatehouse_detect::Tokenizer::new(&key)
    }

    /// The shared development-mode principal.
    pub fn anonymous(&self) -> Arc<Principal> {
        self.anonymous.clone()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// An upstream's lists as it last reported them, before pins and list-time checks.
    pub fn upstream_lists(&self, name: &str) -> Option<UpstreamLists> {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams.load().get(name).cloned()
    }

    pub fn upstreams(&self) -> Arc<BTreeMap<String, Arc<Upstream>>> {
        self.upstreams.load_full()
    }

    /// A fresh id tying a client's answer to the log lines about it.
    pub fn correlation_id(&self) -> CorrelationId {
        CorrelationId::new(
            self.correlation_prefix,
            self.next_correlation.fetch_add(1, Ordering::Relaxed),
        )
    }

    /// Swaps in a new config (hot reload). Upstreams whose spec changed are restarted; the
    /// listen address and session key keep their start-up values.
    pub fn reload(&self, new: Config) {
        let old = self.config.load_full();
        if new.listen != old.listen {
            tracing::warn!("listen address changes take effect on restart only");
        }
        if new.session_key != old.session_key {
            tracing::warn!("session key changes take effect on restart only");
        }
        if new.traces != old.traces {
            tracing::warn!("traces changes take effect on restart only");
        }
        if new.auth != old.auth {
            // Key caches start empty with new settings; tokens verify again on first use.
            let (authn, oauth) = identity(&new, self.secrets.clone());
            self.authenticator.store(authn);
            self.oauth.store(oauth);
        }
        if new.limits.max_concurrent_requests != old.limits.max_concurrent_requests {
            self.concurrency
                .store(Arc::new(Semaphore::new(new.limits.max_concurrent_requests)));
        }
        // Changed detection or pinning settings: every definition is checked again.
        let recheck = new.detection != old.detection || new.pinning != old.pinning;
        if let Some(w) = &self.audit {
            w.set_fsync(new.audit.as_ref().is_none_or(|a| a.fsync));
        }
        self.apply_upstreams(&new.upstreams);
        self.config.store(Arc::new(new));
        if recheck {
            self.pins.forget();
        }
        self.rebuild_catalog();
    }

    fn apply_upstreams(&self, specs: &[UpstreamSpec]) {
        let current = self.upstreams.load_full();
        let cfg = self.config.load();
        let mut next = BTreeMap::new();
        for spec in specs {
            match current.get(&spec.name) {
                Some(up) if up.spec == *spec => {
                    next.insert(spec.name.clone(), up.clone());
                }
                _ => {
                    if let Some(old) = current.get(&spec.name) {
                        old.stop();
                    }
                    let up = Upstream::start(
                        spec.clone(),
                        self.events.clone(),
                        self.server_requests.clone(),
                        cfg.limits.max_upstream_message_bytes,
                        cfg.limits.request_timeout.min(Duration::from_secs(60)),
                        self.secrets.clone(),
                    );
                    next.insert(spec.name.clone(), up);
                }
            }
        }
        for (name, up) in current.iter() {
            if !next.contains_key(name) {
                up.stop();
                self.lists
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(name);
            }
        }
        self.upstreams.store(Arc::new(next));
    }

    /// Names of configured upstreams that are not connected and listed yet.
    /// The shared state this gateway uses that does not answer now: `redis` (global rate
    /// limits) and `postgres` (any store). Empty without either configured.
    pub async fn dependencies_down(&self) -> Vec<&'static str> {
        let mut last = self.dependencies.lock().await;
        if let Some((at, down)) = &*last
            && at.elapsed() < DEPENDENCIES_TTL
        {
            return down.clone();
        }
        let cfg = self.config();
        let mut down = Vec::new();
        if cfg.fleet.is_some() && !self.fleet.get().is_some_and(|f| f.subscribed()) {
            tracing::warn!("not ready: not subscribed to the fleet channel in Redis");
            down.push("redis");
        }
        if let Some(url) = &cfg.rate_limits.redis
            && let Err(e) = self
                .limiter
                .redis_ready(url, cfg.rate_limits.redis_ca.as_deref())
                .await
        {
            tracing::warn!(error = %e, "not ready: Redis does not answer");
            if !down.contains(&"redis") {
                down.push("redis");
            }
        }
        let mut urls: Vec<String> = [
            StoreKind::ApiKeys,
            StoreKind::Directory,
            StoreKind::Approvals,
            StoreKind::OAuth,
            StoreKind::Pins,
            StoreKind::Audit,
        ]
        .into_iter()
        .filter_map(|k| cfg.postgres_for(k).map(str::to_owned))
        .collect();
        urls.sort();
        urls.dedup();
        for url in urls {
            // The PostgreSQL client blocks: never on a request worker.
            let ping = tokio::task::spawn_blocking(move || {
                gatehouse_store::ping_postgres(&url, Duration::from_secs(2))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = ping {
                tracing::warn!(error = %e, "not ready: PostgreSQL does not answer");
                down.push("postgres");
                break;
            }
        }
        *last = Some((std::time::Instant::now(), down.clone()));
        down
    }

    pub fn not_ready(&self) -> Vec<String> {
        let lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        self.upstreams
            .load()
            .iter()
            .filter(|(name, up)| up.info().is_none() || !lists.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Reads every list the upstream offers, following pagination within bounds.
    async fn refresh_lists(self: &Arc<Self>, name: &str, kinds: &[&str]) {
        let Some(up) = self.upstream(name) else {
            return;
        };
        let Some(info) = up.info() else { return };
        let timeout = self.config().limits.request_timeout;
        let mut lists = self
            .lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .unwrap_or_default();
        for &kind in kinds {
            let (cap, meth, field) = match kind {
                "tools" => ("tools", method::TOOLS_LIST, "tools"),
                "prompts" => ("prompts", method::PROMPTS_LIST, "prompts"),
                "resources" => ("resources", method::RESOURCES_LIST, "resources"),
                _ => (
                    "resources",
                    method::RESOURCES_TEMPLATES_LIST,
                    "resourceTemplates",
                ),
            };
            if info.capabilities.get(cap).is_none() {
                continue;
            }
            let mut items = Vec::new();
            let mut bytes = 0usize;
            let mut cursor: Option<Value> = None;
            for _ in 0..MAX_LIST_PAGES {
                let params = cursor.take().map(|c| json!({ "cursor": c }));
                let resp = match up
                    .call(
                        Request::new(0, meth, params),
                        None,
                        timeout,
                        Caller::default(),
                    )
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(upstream = name, list = meth, error = %e, "cannot read list");
                        break;
                    }
                };
                let Ok(mut result) = resp.outcome else {
                    tracing::warn!(upstream = name, list = meth, "upstream refused to list");
                    break;
                };
                let mut full = false;
                if let Some(Value::Array(arr)) = result.get_mut(field).map(Value::take) {
                    for item in arr {
                        // Bounded in count and bytes: a hostile upstream cannot make the
                        // gateway hold an unbounded catalog.
                        let size = serde_json::to_vec(&item)
                            .map(|v| v.len())
                            .unwrap_or(usize::MAX);
                        if items.len() >= MAX_LIST_ITEMS
                            || bytes.saturating_add(size) > MAX_LIST_BYTES
                        {
                            full = true;
                            break;
                        }
                        bytes += size;
                        items.push(item);
                    }
                }
                if full {
                    tracing::warn!(
                        upstream = name,
                        list = meth,
                        kept = items.len(),
                        "list exceeds the catalog budget; truncated"
                    );
                    break;
                }
                match result.get("nextCursor") {
                    Some(c) if !c.is_null() => cursor = Some(c.clone()),
                    _ => break,
                }
            }
            match kind {
                "tools" => lists.tools = items,
                "prompts" => lists.prompts = items,
                "resources" => lists.resources = items,
                _ => lists.templates = items,
            }
        }
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), lists);
        self.rebuild_catalog();
    }

    /// Rebuilds and publishes the catalog; tells clients what changed.
    /// Replaces what upstream `name` lists and rebuilds the catalog (the upstream
    /// connection does this on every list; tests drive the chain with it directly).
    #[cfg(test)]
    pub(crate) fn put_lists(&self, name: &str, lists: crate::catalog::UpstreamLists) {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), lists);
        self.rebuild_catalog();
    }

    pub fn rebuild_catalog(&self) {
        let cfg = self.config.load();
        let previous = self.catalog.load_full();
        let raw = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        // Overrides first: what clients would see is what is pinned and checked.
        let shaped: BTreeMap<String, UpstreamLists> = raw
            .iter()
            .map(|(name, l)| {
                let tools = cfg.upstreams.iter().find(|u| &u.name == name);
                let l = match tools {
                    Some(u) => overrides::apply(l, &u.data.tools).into_owned(),
                    None => l.clone(),
                };
                (name.clone(), l)
            })
            .collect();
        // `raw` stays locked until the catalog is published: rebuilds run one at a time and
        // readiness (which reads the lists) never sees lists whose catalog is not out yet.
        // Pins and list-time checks: what is held for review never reaches the catalog.
        let (lists, pin_events) = self.vet_lists(&cfg, &shaped);
        self.audit_later(pin_events);
        let renames: Vec<BTreeMap<String, String>> = cfg
            .upstreams
            .iter()
            .map(|s| overrides::renames(&s.data.tools))
            .collect();
        let sources: Vec<Source<'_>> = cfg
            .upstreams
            .iter()
            .zip(&renames)
            .filter_map(|(s, renames)| {
                lists.get(&s.name).map(|l| Source {
                    upstream: &s.name,
                    namespace: s.namespace.as_deref(),
                    lists: l,
                    renames,
                })
            })
            .collect();
        let (catalog, collisions) = Catalog::build(&sources, &cfg.separator, &previous);
        for c in &collisions {
            metrics::counter!(m::NAME_COLLISIONS).increment(1);
            tracing::error!(kind = c.kind, name = %c.name, kept = %c.kept, refused = %c.refused,
                "name collision: the later upstream's entry is not exposed");
        }
        let changed = [
            (
                previous
                    .tools
                    .iter()
                    .map(|e| &e.def)
                    .ne(catalog.tools.iter().map(|e| &e.def)),
                method::TOOLS_LIST_CHANGED,
            ),
            (
                previous
                    .prompts
                    .iter()
                    .map(|e| &e.def)
                    .ne(catalog.prompts.iter().map(|e| &e.def)),
                method::PROMPTS_LIST_CHANGED,
            ),
            (
                previous
                    .resources
                    .iter()
                    .map(|e| &e.def)
                    .ne(catalog.resources.iter().map(|e| &e.def))
                    || previous
                        .templates
                        .iter()
                        .map(|e| &e.def)
                        .ne(catalog.templates.iter().map(|e| &e.def)),
                method::RESOURCES_LIST_CHANGED,
            ),
        ];
        self.catalog.store(Arc::new(catalog));
        for (did, note) in changed {
            if did {
                self.hub.broadcast(&Notification::new(note, None).into());
            }
        }
    }

    /// Capabilities Gatehouse offers clients: the union of what it can relay.
    pub fn capabilities(&self) -> Value {
        json!({
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"subscribe": true, "listChanged": true},
            "logging": {},
            "completions": {}
        })
    }

    pub fn server_info(&self) -> Value {
        json!({"name": "gatehouse", "title": "Gatehouse MCP gateway", "version": env!("CARGO_PKG_VERSION")})
    }

    /// Instructions of the upstreams in scope, each under its upstream's name.
    /// Instructions a poisoned server sends reach every model that connects: they are
    /// checked like tool descriptions, and held back when detection would quarantine a
    /// description with the same findings.
    pub fn instructions(&self, scope: Option<&crate::config::VirtualServer>) -> Option<String> {
        let cfg = self.config();
        let parts: Vec<String> = self
            .upstreams
            .load()
            .values()
            .filter(|u| crate::catalog::in_scope(scope, u.name(), None))
            .filter_map(|u| {
                let text = u.info()?.instructions.clone()?;
                if let Some(d) = cfg.detection.as_deref() {
                    let level = cfg
                        .upstreams
                        .iter()
                        .find(|s| s.name == u.name())
                        .and_then(|s| s.data.classification)
                        .unwrap_or(gatehouse_policy::Classification::Internal);
                    let worst = d.cascade.worst(&text);
                    if d.descriptions(level).response(worst) == crate::config::Response::Block {
                        tracing::warn!(target: "gatehouse::audit", upstream = u.name(), "server instructions withheld: suspected prompt injection");
                        return None;
                    }
                }
                Some(format!("[{}] {}", u.name(), text))
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    /// One upstream's instructions as it sent them (unchecked: `gatehouse scan`).
    pub fn upstream_instructions(&self, name: &str) -> Option<String> {
        self.upstream(name)?.info()?.instructions.clone()
    }

    /// The `initialize` result for a requested version, with the version chosen.
    pub fn initialize_result(
        &self,
        requested: Option<&str>,
        scope: Option<&crate::config::VirtualServer>,
    ) -> (ProtocolVersion, Value) {
        let version = requested
            .and_then(ProtocolVersion::parse)
            .filter(|v| !v.is_stateless())
            .unwrap_or(ProtocolVersion::LATEST_HANDSHAKE);
        let mut result = json!({
            "protocolVersion": version.as_str(),
            "capabilities": self.capabilities(),
            "serverInfo": self.server_info(),
        });
        if let Some(i) = self.instructions(scope) {
            result["instructions"] = Value::String(i);
        }
        (version, result)
    }
}

async fn event_loop(gw: std::sync::Weak<Gateway>, mut rx: mpsc::UnboundedReceiver<UpstreamEvent>) {
    while let Some(ev) = rx.recv().await {
        let Some(gw) = gw.upgrade() else { return };
        match ev {
            UpstreamEvent::Ready { upstream } => {
                metrics::gauge!(m::UPSTREAM_UP, "upstream" => upstream.clone()).set(1.0);
                let g = gw.clone();
                tokio::spawn(async move {
                    g.refresh_lists(&upstream, &["tools", "prompts", "resources", "templates"])
                        .await
                });
            }
            UpstreamEvent::Down { upstream } => {
                metrics::gauge!(m::UPSTREAM_UP, "upstream" => upstream.clone()).set(0.0);
                tracing::warn!(upstream = %upstream, "upstream down");
            }
            UpstreamEvent::Notification {
                upstream,
                notification,
            } => {
                let kinds: &'static [&'static str] = match notification.method.as_str() {
                    method::TOOLS_LIST_CHANGED => &["tools"],
                    method::PROMPTS_LIST_CHANGED => &["prompts"],
                    method::RESOURCES_LIST_CHANGED => &["resources", "templates"],
                    method::RESOURCES_UPDATED => {
                        if let Some(uri) = notification
                            .params
                            .as_ref()
                            .and_then(|p| p.get("uri"))
                            .and_then(Value::as_str)
                        {
                            let uri = uri.to_owned();
                            for sid in gw.hub.subscribers(&uri) {
                                gw.deliver(&sid, Message::Notification(notification.clone()));
                            }
                        }
                        continue;
                    }
                    other => {
                        tracing::debug!(upstream = %upstream, method = other, "notification not relayed");
                        continue;
                    }
                };
                gw.lists_changed(&upstream, kinds);
                let g = gw.clone();
                tokio::spawn(async move { g.refresh_lists(&upstream, kinds).await });
            }
            UpstreamEvent::Egress {
                upstream,
                target,
                allowed,
                detail,
            } => gw.audit_egress(upstream, target, allowed, detail),
        }
    }
}
