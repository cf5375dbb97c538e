//! Gatehouse's detectors, pure and CPU only: DLP recognizers with checksums, and the walker
//! that applies a redaction profile to whatever JSON an MCP message carries, and error
//! hygiene (does an error text reveal internals), argument injection checks, and stage 1
//! of the prompt-injection cascade (patterns over normalised text).

pub mod checks;
pub mod classifier;
pub mod definitions;
pub mod dlp;
pub mod hygiene;
pub mod inject;
pub mod json;
mod lazy;
pub mod patterns;
pub mod redact;
pub mod unicode;

pub use checks::Check;
pub use classifier::{Cascade, Classifier};
pub use dlp::{CustomRecognizer, Finding, RecognizerError, Recognizers};
pub use hygiene::Hygiene;
pub use inject::{ArgKind, Injection};
pub use patterns::{Patterns, RuleSpec, Severity, Signal};
pub use redact::{Action, Profile, Report, SubjectKey, Tokenizer, walk, walk_indexed};
