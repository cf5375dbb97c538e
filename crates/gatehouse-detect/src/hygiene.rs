//! Error hygiene: whether an error text an upstream produced reveals internals (a stack
//! trace, an SQL error, a file path, an internal host or address, an exception class), so
//! the gateway answers a generic message instead.

use regex::RegexSet;

/// What gives an error away, by kind.
const LEAKS: &[(&str, &str)] = &[
    ("stack_trace", r"Traceback \(most recent call last\)"),
    ("stack_trace", r#"File "[^"]+", line [0-9]+"#),
    (
        "stack_trace",
        r"(?m)^\s*at [A-Za-z0-9_$.<>\[\] ]+ \(?[^\s()]+:[0-9]+(?::[0-9]+)?\)?$",
    ),
    (
        "stack_trace",
        r"\bat [A-Za-z0-9_$.]+\([A-Za-z0-9_]+\.(?:java|kt|scala|cs|groovy):[0-9]+\)",
    ),
    (
        "stack_trace",
        r"goroutine [0-9]+ \[|panicked at |Exception in thread|node:internal/",
    ),
    (
        "sql_error",
        r"(?i)syntax error at or near|SQLSTATE|ORA-[0-9]{5}|SQLITE_[A-Z]+|you have an error in your sql syntax|duplicate key value violates|relation \x22[^\x22]+\x22 does not exist|psycopg2?\.|sqlalchemy\.|PG::[A-Za-z]+Error|no such table:",
    ),
    (
        "file_path",
        r"(?:^|[\s'\x22(=:])/(?:home|usr|var|etc|opt|srv|app|root|tmp|proc|mnt|data|workspace|Users)/[^\s'\x22):]+",
    ),
    ("file_path", r"\b[A-Za-z]:\\(?:[^\\\s]+\\)+[^\\\s]*"),
    (
        "internal_host",
        r"(?i)\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:internal|local|lan|corp|intra|intranet|svc|cluster\.local|consul)\b",
    ),
    (
        "internal_host",
        r"\b(?:10\.[0-9]{1,3}|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168)\.[0-9]{1,3}\.[0-9]{1,3}\b|\b127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b|\blocalhost:[0-9]+",
    ),
    (
        "exception",
        r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception)\b(?:: |\(|\sat\s)|\b(?:java|javax|org|com|System)\.[A-Za-z0-9_.]+(?:Exception|Error)\b",
    ),
];

/// Compiled leak patterns.
pub struct Hygiene {
    set: RegexSet,
}

impl std::fmt::Debug for Hygiene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hygiene")
    }
}

impl Default for Hygiene {
    fn default() -> Self {
        Self::new()
    }
}

impl Hygiene {
    pub fn new() -> Hygiene {
        // The patterns are constants covered by tests; a failure here is a build defect.
        #[allow(clippy::expect_used)]
        let set = RegexSet::new(LEAKS.iter().map(|(_, p)| p.replace(r"\b", r"(?-u:\b)")))
            .expect("hygiene patterns compile");
        Hygiene { set }
    }

    /// The kinds of internal detail `text` shows; empty when it is fit for a client.
    pub fn leaks(&self, text: &str) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> =
            self.set.matches(text).iter().map(|i| LEAKS[i].0).collect();
        kinds.dedup();
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_are_recognised_and_plain_messages_are_not() {
        let h = Hygiene::new();
        for (text, kind) in [
            (
                "Traceback (most recent call last):\n  File \"/srv/app/tools.py\", line 42, in run\nKeyError: 'x'",
                "stack_trace",
            ),
            (
                "TypeError: x is undefined\n    at query (/app/server.js:17:9)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
                "stack_trace",
            ),
            ("at com.acme.Db.run(Db.java:88)", "stack_trace"),
            (
                "ERROR: syntax error at or near \"FROM\" at character 15",
                "sql_error",
            ),
            ("relation \"payroll\" does not exist", "sql_error"),
            ("ORA-00942: table or view does not exist", "sql_error"),
            ("could not open /var/lib/app/secrets.json", "file_path"),
            ("failed reading C:\\Users\\svc\\config.ini", "file_path"),
            (
                "connect to db-7.prod.internal:5432 refused",
                "internal_host",
            ),
            ("upstream 10.12.0.7 timed out", "internal_host"),
            ("psycopg2.OperationalError: connection refused", "exception"),
        ] {
            assert!(
                h.leaks(text).contains(&kind),
                "{kind} in {text:?}: {:?}",
                h.leaks(text)
            );
        }
        for clean in [
            "Invalid arguments: 'table' must be letters, digits and _",
            "No user named carol",
            "Unknown tool: deploy",
            "Rate limit exceeded; retry in 3 s",
            "deploy failed: version 2.0 is older than the running 2.1",
            "see https://docs.example.org/errors/E42",
        ] {
            assert!(h.leaks(clean).is_empty(), "{clean}: {:?}", h.leaks(clean));
        }
    }
}
