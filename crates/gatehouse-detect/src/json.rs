//! Every text inside a JSON value, with its JSON pointer: string values, and object keys
//! for callers that read names too (a tool's parameter names). `_meta` is skipped:
//! protocol metadata is not read by the model.

use serde_json::Value;

/// What kind of text was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text<'k> {
    /// A string value.
    Value,
    /// An object key; `parent` is the key of the object holding it ("properties" for a
    /// schema's parameter names).
    Key { parent: &'k str },
}

/// Calls `f(pointer, text, kind)` for every string value under `v` and, when `keys` is
/// set, every object key, down to `max_depth` levels.
pub fn visit(v: &Value, keys: bool, max_depth: usize, f: &mut dyn FnMut(&str, &str, Text<'_>)) {
    walk(v, "", &mut String::new(), keys, 0, max_depth, f);
}

/// Appends `key` to the JSON Pointer `at`, escaped (RFC 6901), without a copy of the key.
fn push(at: &mut String, key: &str) {
    at.push('/');
    for (i, part) in key.split('~').enumerate() {
        if i > 0 {
            at.push_str("~0");
        }
        for (j, piece) in part.split('/').enumerate() {
            if j > 0 {
                at.push_str("~1");
            }
            at.push_str(piece);
        }
    }
}

fn walk(
    v: &Value,
    parent: &str,
    at: &mut String,
    keys: bool,
    depth: usize,
    max: usize,
    f: &mut dyn FnMut(&str, &str, Text<'_>),
) {
    if depth > max {
        return;
    }
    match v {
        Value::String(s) => f(at, s, Text::Value),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = at.len();
                push(at, &i.to_string());
                walk(x, parent, at, keys, depth + 1, max, f);
                at.truncate(len);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                if k == "_meta" {
                    continue;
                }
                let len = at.len();
                push(at, k);
                if keys {
                    f(at, k, Text::Key { parent });
                }
                walk(x, k, at, keys, depth + 1, max, f);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_keys_come_with_their_pointers() {
        let v = json!({"a/b": ["x", {"c~d": "y"}], "_meta": {"m": "skip"}, "properties": {"p": 1}});
        let mut seen = Vec::new();
        visit(&v, true, 64, &mut |at, t, kind| {
            seen.push((at.to_owned(), t.to_owned(), kind == Text::Value));
        });
        assert!(seen.contains(&("/a~1b/0".into(), "x".into(), true)));
        assert!(seen.contains(&("/a~1b/1/c~0d".into(), "y".into(), true)));
        assert!(seen.contains(&("/properties/p".into(), "p".into(), false)));
        assert!(!seen.iter().any(|(_, t, _)| t == "skip" || t == "_meta"));
        let mut values = 0;
        visit(&v, false, 64, &mut |_, _, _| values += 1);
        assert_eq!(values, 2);
    }

    proptest::proptest! {
        #[test]
        fn pointer_escaping_matches_rfc_6901(key in "[a-z~/]{0,12}") {
            let mut at = String::from("/x");
            push(&mut at, &key);
            proptest::prop_assert_eq!(at, format!("/x/{}", key.replace('~', "~0").replace('/', "~1")));
        }
    }
}
