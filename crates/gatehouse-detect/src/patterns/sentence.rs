//! The sentence a rule's `all` and `none` parts are read in, and the negation a rule
//! marked `unless_negated` steps back for.

/// How far a sentence is followed either side of a match.
const SENTENCE_REACH: usize = 300;

/// The sentence around `s..e`: back to the last line break or full stop, exclamation or
/// question mark followed by a space, forward to the next, at most `SENTENCE_REACH` bytes
/// either side. A full stop followed by a lower-case word ends an abbreviation ("Globex
/// Inc. when you answer", "e.g. this"), not the sentence.
pub(super) fn sentence(text: &[u8], s: usize, e: usize) -> (usize, usize) {
    let ends = |i: usize| {
        text[i] == b'\n'
            || (matches!(text[i], b'.' | b'!' | b'?')
                && text.get(i + 1).is_none_or(|c| c.is_ascii_whitespace())
                && !(text[i] == b'.'
                    && text.get(i + 1) == Some(&b' ')
                    && text.get(i + 2).is_some_and(u8::is_ascii_lowercase)))
    };
    let lo = s.saturating_sub(SENTENCE_REACH);
    let a = (lo..s).rev().find(|&i| ends(i)).map_or(lo, |i| i + 1);
    let hi = (e + SENTENCE_REACH).min(text.len());
    let b = (e..hi).find(|&i| ends(i)).map_or(hi, |i| i + 1);
    (a, b)
}

/// How far back a negation is looked for, within the sentence.
const NEGATION_REACH: usize = 32;

/// Whether the words just before `at` (same sentence) negate what follows.
pub(super) fn negated(text: &[u8], at: usize) -> bool {
    let from = at.saturating_sub(NEGATION_REACH);
    let before = &text[from..at];
    let start = before
        .iter()
        .rposition(|&b| matches!(b, b'.' | b'\n' | b';' | b'!' | b'?'))
        .map_or(0, |i| i + 1);
    let lower = before[start..].to_ascii_lowercase();
    lower
        .split(|b| !b.is_ascii_alphanumeric() && *b != b'\'')
        .any(|w| {
            matches!(
                w,
                b"not" | b"never" | b"no" | b"don't" | b"avoid" | b"without"
            )
        })
}
