//! How the gateway vets the definitions its upstreams list: each one hashed against the
//! pin store and checked when new or changed, then exposed, held back or quarantined.

use std::collections::{BTreeMap, HashMap};
use std::sync::PoisonError;

use gatehouse_audit::{AuditEvent, EventKind};
use gatehouse_detect::Signal;
use gatehouse_policy::Classification;
use gatehouse_store::{Observed, Sighting};
use serde_json::{Value, json};

use super::Gateway;
use crate::catalog::UpstreamLists;
use crate::config::{Config, FirstSight, Response as Act};
use crate::pins::{Key, definition_findings, pinned_form};

/// A definition not seen before (or changed), checked.
struct Fresh<'a> {
    key: Key,
    upstream: &'a str,
    name: &'a str,
    level: Classification,
    definition: String,
    hash: String,
    found: Vec<(String, Signal)>,
    act: Act,
}

impl Gateway {
    /// Filters every upstream's lists through the pins and the list-time checks; returns
    /// what may be exposed and the audit events of what changed. Definitions unchanged
    /// since the last look cost a hash; the rest are checked and observed in one
    /// transaction.
    pub(crate) fn vet_lists(
        &self,
        cfg: &Config,
        lists: &BTreeMap<String, UpstreamLists>,
    ) -> (BTreeMap<String, UpstreamLists>, Vec<AuditEvent>) {
        let mut events = Vec::new();
        if cfg.detection.is_none() && cfg.pinning.is_none() {
            return (lists.clone(), events);
        }
        let names: Vec<(&str, &str)> = lists
            .iter()
            .flat_map(|(up, l)| {
                l.tools
                    .iter()
                    .filter_map(move |t| Some((up.as_str(), t.get("name")?.as_str()?)))
            })
            .collect();
        // Phase 1: what is new since the last look, checked.
        let mut fresh: Vec<Fresh<'_>> = Vec::new();
        // The definition rules, compiled at the first new definition and dropped with this
        // look (`gatehouse_detect::definitions::compile`).
        let mut rules: Option<Option<gatehouse_detect::Patterns>> = None;
        let mut decided: HashMap<Key, bool> = HashMap::new();
        {
            let seen = self
                .pins
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (up, l) in lists {
                let level = cfg
                    .upstreams
                    .iter()
                    .find(|u| &u.name == up)
                    .and_then(|u| u.data.classification)
                    .unwrap_or(Classification::Internal);
                for (kind, defs) in [("tool", &l.tools), ("prompt", &l.prompts)] {
                    for def in defs {
                        let Some(name) = def.get("name").and_then(Value::as_str) else {
                            continue;
                        };
                        let form = pinned_form(def);
                        let hash = crate::authorize::digest(&form);
                        let key: Key = (up.clone(), kind, name.to_owned());
                        if let Some((h, exposed)) = seen.get(&key)
                            && *h == hash
                        {
                            decided.insert(key, *exposed);
                            continue;
                        }
                        let mut found = Vec::new();
                        let mut act = Act::Pass;
                        if let Some(d) = cfg.detection.as_deref() {
                            let rules = rules
                                .get_or_insert_with(gatehouse_detect::definitions::compile)
                                .as_ref();
                            found = definition_findings(
                                &d.cascade, rules, up, kind, name, &form, &names,
                            );
                            act = d
                                .descriptions(level)
                                .response(found.iter().map(|(_, s)| s.severity).max());
                        }
                        fresh.push(Fresh {
                            key,
                            upstream: up,
                            name,
                            level,
                            definition: form.to_string(),
                            hash,
                            found,
                            act,
                        });
                    }
                }
            }
        }
        // Phase 2: the pins, all at once.
        let observed: Result<Vec<Observed>, gatehouse_store::StoreError> = match &cfg.pinning {
            None => Ok(Vec::new()),
            Some(_) if fresh.is_empty() => Ok(Vec::new()),
            Some(p) => {
                let flags: Vec<String> = fresh
                    .iter()
                    .map(|f| {
                        if f.act == Act::Block {
                            let rules: Vec<&str> =
                                f.found.iter().map(|(_, s)| s.rule.as_str()).collect();
                            json!({"reason": "detection", "rules": rules}).to_string()
                        } else {
                            String::new()
                        }
                    })
                    .collect();
                let sightings: Vec<Sighting<'_>> = fresh
                    .iter()
                    .zip(&flags)
                    .map(|(f, flagged)| Sighting {
                        upstream: f.upstream,
                        kind: f.key.1,
                        name: f.name,
                        hash: &f.hash,
                        definition: &f.definition,
                        trust_first_sight: p.first_sight(f.upstream) == FirstSight::Approve,
                        flagged,
                    })
                    .collect();
                match &self.pins.store {
                    Some(store) => store.observe_all(&sightings, crate::audit::now_ms()),
                    None => Err(gatehouse_store::StoreError::Unavailable(
                        "no pin store".into(),
                    )),
                }
            }
        };
        if let Err(e) = &observed {
            // Fail closed: what cannot be checked against its pin is not shown.
            tracing::error!(error = %e, "pin store unavailable: new and changed definitions hidden");
        }
        // Phase 3: decisions, audit, and the cache.
        let mut seen = self
            .pins
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (i, f) in fresh.into_iter().enumerate() {
            let (exposed, what, status) = match (&cfg.pinning, &observed) {
                (Some(_), Ok(o)) => match o.get(i).copied() {
                    Some(Observed::Trusted) => (true, None, "approved"),
                    Some(Observed::Pinned) => (true, Some("pin.pinned"), "approved"),
                    Some(Observed::Restored) => (true, Some("pin.restored"), "approved"),
                    Some(Observed::Held(s)) => {
                        metrics::counter!(gatehouse_transport::metrics::PINS_HELD, "status" => s.as_str())
                            .increment(1);
                        (false, Some("pin.held"), s.as_str())
                    }
                    Some(Observed::StillHeld(s)) => (false, None, s.as_str()),
                    None => (false, None, "unavailable"),
                },
                (Some(_), Err(_)) => {
                    decided.insert(f.key, false);
                    continue;
                }
                (None, _) if f.act == Act::Block => (false, Some("description.blocked"), "blocked"),
                (None, _) => (true, None, "exposed"),
            };
            let what = what.or((f.act >= Act::Flag).then_some("description.flagged"));
            for (_, sig) in &f.found {
                metrics::counter!(
                    gatehouse_transport::metrics::DETECTIONS,
                    "place" => "description",
                    "stage" => crate::findings::stage_label(sig.stage),
                    "action" => if f.act == Act::Block { "quarantine" } else { "flag" }
                )
                .increment(1);
            }
            if let Some(what) = what {
                let rules: Vec<&str> = f.found.iter().map(|(_, s)| s.rule.as_str()).collect();
                let (upstream, kind, name) = (f.upstream, f.key.1, f.name);
                if exposed {
                    tracing::info!(target: "gatehouse::audit", upstream, kind, name, status, rules = %rules.join(","), "{what}");
                } else {
                    tracing::warn!(target: "gatehouse::audit", upstream, kind, name, status, rules = %rules.join(","), "{what}: hidden until reviewed");
                }
                events.push(AuditEvent {
                    v: gatehouse_audit::SCHEMA_VERSION,
                    kind: Some(EventKind::Pin),
                    time_ms: crate::audit::now_ms(),
                    method: what.to_owned(),
                    target: name.to_owned(),
                    upstream: upstream.to_owned(),
                    status: status.to_owned(),
                    classification: f.level.as_str().to_owned(),
                    detections: f
                        .found
                        .iter()
                        .take(32)
                        .map(|(at, s)| crate::findings::to_audit("description", at, s, f.act))
                        .collect(),
                    detail: json!({"kind": kind, "hash": f.hash, "exposed": exposed}).to_string(),
                    ..Default::default()
                });
            }
            seen.insert(f.key.clone(), (f.hash, exposed));
            decided.insert(f.key, exposed);
        }
        drop(seen);
        let held: std::collections::HashSet<String> = decided
            .iter()
            .filter(|((_, kind, _), shown)| *kind == "tool" && !**shown)
            .map(|((up, _, name), _)| {
                let ns = cfg
                    .upstreams
                    .iter()
                    .find(|u| &u.name == up)
                    .and_then(|u| u.namespace.as_deref());
                crate::catalog::exposed_name(ns, &cfg.separator, name)
            })
            .collect();
        *self
            .pins
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = held;
        let mut out = BTreeMap::new();
        for (up, l) in lists {
            let mut keep = l.clone();
            let shown = |kind: &'static str, d: &Value| {
                d.get("name")
                    .and_then(Value::as_str)
                    .and_then(|n| decided.get(&(up.clone(), kind, n.to_owned())))
                    .copied()
                    .unwrap_or(false)
            };
            keep.tools.retain(|d| shown("tool", d));
            keep.prompts.retain(|d| shown("prompt", d));
            out.insert(up.clone(), keep);
        }
        (out, events)
    }

    /// Audits events the list checks produced, off the caller's path.
    pub(crate) fn audit_later(&self, events: Vec<AuditEvent>) {
        let (Some(w), false) = (self.audit.clone(), events.is_empty()) else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for e in events {
                    if let Err(err) = w.record(e, true).await {
                        tracing::error!(target: "gatehouse::audit", error = %err, "pin audit record not committed");
                    }
                }
            });
        }
    }
}
