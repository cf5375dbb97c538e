//! Tool pinning and list-time checks (the checks themselves live in `checks.rs`). Every
//! tool and prompt definition an upstream lists is hashed canonically and checked before it
//! reaches the catalog: poisoned descriptions (the cascade and the definition rules over
//! every string and parameter name), cross-server shadowing (a description naming another
//! server's tools) and look-alike names. A definition that
//! changed after it was pinned, or that detection holds, is hidden and uncallable until an
//! administrator reviews it (`/admin/v1/pins`, `gatehouse pins`). Every step is audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use gatehouse_store::{PinStore, SqlitePins};

use crate::config::Config;

mod checks;

pub use checks::{DefinitionReport, check_definitions, judge_definition};
pub(crate) use checks::{definition_findings, pinned_form};
/// The definition rules, compiled for one use (`judge_definition`'s `rules`).
pub use gatehouse_detect::definitions::compile as definition_rules;

pub(crate) type Key = (String, &'static str, String);

/// The pin store and what was last decided per definition (so an unchanged list costs a
/// hash per definition and nothing more).
pub struct Pins {
    /// `None` only if not even an in-memory store could be opened: everything is hidden.
    pub store: Option<Arc<dyn PinStore>>,
    pub(crate) seen: Mutex<HashMap<Key, (String, bool)>>,
    /// Exposed names of the tools held back at the last check, so a call to one is told why.
    pub(crate) held: Mutex<std::collections::HashSet<String>>,
}

impl Pins {
    /// The configured pin store (the store file, or PostgreSQL shared by a cluster); in
    /// memory (nothing survives a restart) if it cannot be opened.
    pub(crate) fn open(cfg: &Config) -> Pins {
        let store = cfg.backend(crate::config::StoreKind::Pins)
            .pins()
            .or_else(|e| {
                tracing::error!(path = %cfg.store_path.display(), error = %e, "pin store unavailable: pins are kept in memory until restart");
                SqlitePins::memory().map(|s| Arc::new(s) as Arc<dyn PinStore>)
            });
        Pins {
            store: store
                .inspect_err(|e| tracing::error!(error = %e, "no pin store at all: every pinned definition is hidden"))
                .ok(),
            seen: Mutex::new(HashMap::new()),
            held: Mutex::new(Default::default()),
        }
    }

    /// Whether a tool (by the name clients see) is held back for review.
    pub(crate) fn held(&self, exposed: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(exposed)
    }

    pub fn forget(&self) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
