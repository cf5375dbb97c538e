//! The compiled input schemas of the tools the gateway has listed, and the check of a
//! call's arguments against its tool's schema (the `validate::schema` stage asks it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use crate::verdict::{Denial, Verdict};

/// Compiled input schemas, keyed by the schema's full text (a lookup compares the text, so
/// no upstream can make its tool be checked against another tool's schema): compiled once
/// per tool definition, recompiled when a server changes it. Bounded by total text size;
/// when full, entries are dropped one at a time until the new one fits. (A plain map: on
/// every call this lookup is on the request path, and a hit must cost no more than a hash.)
#[derive(Default)]
pub(crate) struct Schemas {
    compiled: Mutex<SchemaMap>,
}

#[derive(Default)]
struct SchemaMap {
    by_text: HashMap<Arc<str>, Result<Arc<jsonschema::Validator>, String>>,
    bytes: usize,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schemas")
    }
}

/// Total schema text kept compiled (the compiled form is a small multiple of it).
const MAX_SCHEMA_BYTES: usize = 16 * 1024 * 1024;

impl Schemas {
    fn get(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let text = schema.to_string();
        if let Some(v) = self
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_text
            .get(text.as_str())
        {
            return v.clone();
        }
        // No remote or file references are fetched (the crate's resolvers are not built):
        // a schema that needs one does not compile. `pattern`s run on the linear-time
        // regex engine; one that needs backtracking (look-around, back-references) does
        // not compile either.
        let v = jsonschema::options()
            .with_pattern_options(
                jsonschema::PatternOptions::regex()
                    .size_limit(1 << 20)
                    .dfa_size_limit(1 << 20),
            )
            .build(schema)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        let mut map = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        while map.bytes + text.len() > MAX_SCHEMA_BYTES {
            let Some(k) = map.by_text.keys().next().cloned() else {
                break;
            };
            map.by_text.remove(&k);
            map.bytes -= k.len();
        }
        map.bytes += text.len();
        let text: Arc<str> = text.into();
        if let Some(old) = map.by_text.insert(text.clone(), v.clone()) {
            // Compiled twice at once: the first one's bytes are counted already.
            drop(old);
            map.bytes -= text.len();
        }
        v
    }

    /// Checks arguments against a tool's `inputSchema`; a schema that cannot be compiled
    /// refuses the call (validation that cannot run does not pass).
    pub(crate) fn check(&self, def: Option<&Value>, args: &Value) -> Verdict {
        let Some(schema) = def.and_then(|d| d.get("inputSchema")) else {
            return Verdict::Allow;
        };
        let validator = match self.get(schema) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "tool input schema cannot be compiled: call refused");
                return Verdict::Deny(Denial::new(
                    "validate.schema_unusable",
                    format!("input schema unusable: {e}"),
                    gatehouse_transport::refusal::invalid_params(
                        "Invalid arguments: the tool's input schema cannot be checked",
                    ),
                ));
            }
        };
        match validator.iter_errors(args).next() {
            None => Verdict::Allow,
            Some(err) => {
                let at = err.instance_path().to_string();
                let field = at.trim_start_matches('/');
                let field = if field.is_empty() {
                    "(arguments)"
                } else {
                    field
                };
                let msg: String = err.to_string().chars().take(200).collect();
                Verdict::Deny(Denial::new(
                    "validate.schema",
                    format!("argument `{field}`: {msg}"),
                    gatehouse_transport::refusal::invalid_params(format!(
                        "Invalid arguments: `{field}` {msg}"
                    ))
                    .with_data(json!({"argument": field, "rule": "validate.schema"})),
                ))
            }
        }
    }
}
