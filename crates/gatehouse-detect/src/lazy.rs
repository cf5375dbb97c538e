//! Regexes compiled when a text first needs them. A gateway's traffic reaches few of the
//! hundreds of rule and recognizer regexes (rules run only around their anchors,
//! recognizers only where the recognizer set matched), and each compiled regex with its
//! matching caches holds tens of KB: compiled up front, the shipped rules and
//! recognizers held about 6 MB that most gateways never used (docs/benchmarks.md). A
//! pattern is compiled once when it loads, so a broken one is refused then, not on first
//! use.

use std::sync::OnceLock;

/// Compiles a pattern into `R`.
pub(crate) type Build<R> = fn(&str) -> Result<R, regex::Error>;

/// A pattern, its compiled form built on first use.
pub(crate) struct Lazy<R> {
    pattern: Box<str>,
    build: Build<R>,
    compiled: OnceLock<R>,
}

impl<R> Lazy<R> {
    /// `pattern`, checked by compiling it now; the compiled form is dropped until first use.
    pub(crate) fn new(pattern: &str, build: Build<R>) -> Result<Lazy<R>, regex::Error> {
        build(pattern)?;
        Ok(Lazy::checked(pattern, build))
    }

    /// A `pattern` the caller has compiled with `build` already.
    pub(crate) fn checked(pattern: &str, build: Build<R>) -> Lazy<R> {
        Lazy {
            pattern: pattern.into(),
            build,
            compiled: OnceLock::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The compiled regex, built by the first caller.
    pub(crate) fn get(&self) -> &R {
        self.compiled.get_or_init(|| {
            // The same pattern with the same settings compiled when it loaded; compiling
            // is deterministic, so this cannot fail.
            (self.build)(&self.pattern).expect("a pattern that compiled when it loaded")
        })
    }

    /// Whether the compiled form has been built (for tests).
    #[cfg(test)]
    pub(crate) fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(p: &str) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(p).size_limit(1 << 16).build()
    }

    #[test]
    fn a_pattern_is_checked_when_it_loads_and_compiled_on_first_use() {
        assert!(Lazy::new("(unclosed", build).is_err());
        // Too large for the limit: refused when it loads, not on first use.
        assert!(Lazy::new(r"\w{200}", build).is_err());
        let lazy = Lazy::new(r"\bkey\b", build).unwrap();
        assert!(!lazy.is_compiled());
        assert!(lazy.get().is_match("a key here"));
        assert!(lazy.is_compiled());
        assert_eq!(lazy.as_str(), r"\bkey\b");
    }
}
