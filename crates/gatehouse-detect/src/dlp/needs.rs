//! The bytes a recognizer cannot match without: for each pattern, a set of bytes such that
//! every match contains at least one of them (an e-mail address needs `@`, a card number a
//! digit, a key assignment `:` or `=`). A text that holds no byte of any recognizer's set
//! cannot match any of them, and the regex set's pass over it is skipped; the sets are
//! read off the pattern's syntax tree, so operators' recognizers get one too.

use regex_syntax::hir::{Class, Hir, HirKind};

/// A set of byte values.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bytes([u64; 4]);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries((0..=255u8).filter(|&b| self.has(b)).map(char::from))
            .finish()
    }
}

impl Bytes {
    fn add(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn add_range(&mut self, from: u8, to: u8) {
        for b in from..=to {
            self.add(b);
        }
    }

    pub(crate) fn has(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    pub(crate) fn union(mut self, o: &Bytes) -> Bytes {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a |= b;
        }
        self
    }

    /// How often prose holds one of these bytes, roughly (each byte's share of English
    /// text, scaled): spaces and lower-case letters everywhere, line ends and full stops
    /// often, digits and capitals seldom, other punctuation least. Picks, of the parts a
    /// match needs, the one text is least likely to hold.
    fn weight(&self) -> u32 {
        (0..=255u8)
            .filter(|&b| self.has(b))
            .map(|b| match b {
                b' ' => 150,
                b'a'..=b'z' => 60,
                b'\n' => 20,
                b'.' | b',' => 10,
                b'0'..=b'9' => 5,
                b'A'..=b'Z' => 3,
                _ => 1,
            })
            .sum()
    }

    /// One flag per byte value, for [`holds_any`].
    pub(crate) fn table(&self) -> [bool; 256] {
        std::array::from_fn(|b| self.has(b as u8))
    }
}

/// Whether `text` holds a byte flagged in `table`; stops at the first.
pub(crate) fn holds_any(text: &[u8], table: &[bool; 256]) -> bool {
    text.iter().any(|&b| table[usize::from(b)])
}

/// The bytes a match of `pattern` cannot do without, or `None` when it can match without
/// any particular byte (or does not parse as the regex crate would, which then refuses
/// it anyway). Parsed with the regex crate's defaults, as `Regex::new` does.
pub(crate) fn needed(pattern: &str) -> Option<Bytes> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    of(&hir)
}

fn of(h: &Hir) -> Option<Bytes> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        // Any byte of a literal must be there; the least common is the most useful.
        HirKind::Literal(l) => {
            l.0.iter()
                .map(|&b| {
                    let mut s = Bytes::default();
                    s.add(b);
                    s
                })
                .min_by_key(Bytes::weight)
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut s = Bytes::default();
            for r in c.ranges() {
                s.add_range(r.start(), r.end());
            }
            Some(s)
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut s = Bytes::default();
            for r in c.ranges() {
                let (a, z) = (u32::from(r.start()), u32::from(r.end()));
                if a < 0x80 {
                    s.add_range(a as u8, z.min(0x7f) as u8);
                }
                if z >= 0x80 {
                    // Any character beyond ASCII is written with bytes from 0x80 up.
                    s.add_range(0x80, 0xff);
                }
            }
            Some(s)
        }
        HirKind::Repetition(r) if r.min == 0 => None,
        HirKind::Repetition(r) => of(&r.sub),
        HirKind::Capture(c) => of(&c.sub),
        // Every part must match: any part's set will do; the rarest is kept.
        HirKind::Concat(parts) => parts.iter().filter_map(of).min_by_key(Bytes::weight),
        // One branch matches: the union, and only if every branch needs something.
        HirKind::Alternation(branches) => branches
            .iter()
            .map(of)
            .try_fold(Bytes::default(), |acc, s| Some(acc.union(&s?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &str) -> String {
        format!("{:?}", needed(p).expect("a needed set"))
    }

    #[test]
    fn each_shape_of_pattern_gets_the_bytes_its_matches_need() {
        assert_eq!(set("a@b"), "{'@'}");
        assert_eq!(set(r"[0-9]{3}-x"), "{'-'}");
        assert_eq!(set("(?i)ab"), set("[Aa][Bb]"));
        assert_eq!(set("x|y"), "{'x', 'y'}");
        assert_eq!(set(r"(?P<value>q+)z*"), "{'q'}");
        // A branch, an optional part or a look-around needs nothing on its own.
        assert!(needed("x|y?").is_none());
        assert!(needed(r"\b").is_none());
        assert!(needed("a?").is_none());
        // Beyond ASCII: any byte from 0x80 up stands for the character.
        assert!(needed("é").is_some_and(|s| s.has(0xc3) && !s.has(b'e')));
        assert!(needed("[é-ü]").is_some_and(|s| s.has(0x80) && s.has(0xff)));
        assert!(needed("(").is_none());
    }

    #[test]
    fn the_rarest_part_of_a_match_is_the_one_kept() {
        // Digits rather than the separator that is also a space.
        assert_eq!(set(r"[2-9][0-9]{2}[ .-][0-9]{4}"), set("[2-9]"));
        assert_eq!(set(r"(?i:secret)\s*[:=]"), "{':', '='}");
        let t = needed("[:=]").expect("set").table();
        assert!(holds_any(b"a=b", &t) && !holds_any(b"ab", &t) && !holds_any(b"", &t));
    }
}
