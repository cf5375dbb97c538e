//! Unicode normaliser for the pattern stage: what a model reads is not always what a person
//! sees. Removes invisible characters (Unicode's Default_Ignorable_Code_Point set: zero
//! widths, Hangul fillers, variation selectors…) and reports them; decodes Unicode tag
//! characters (U+E0000–U+E007F, an invisible copy of ASCII) and runs of variation
//! selectors (one byte each, the "emoji smuggling" encoding) into the hidden text they
//! carry; folds compatibility forms (NFKC: fullwidth, mathematical alphanumerics, circled
//! letters, ligatures) and UTS #39 look-alikes onto ASCII; reports words that mix scripts.
//! The character data comes from the Unicode crates, not hand-kept tables. Offsets in the
//! normalised text map back to the original.

use unicode_normalization::UnicodeNormalization;
use unicode_security::GeneralSecurityProfile;

use std::borrow::Cow;

/// Something deceptive found while normalising, with its span in the original text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oddity {
    pub kind: OddityKind,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OddityKind {
    /// Unicode tag characters: invisible text that models read.
    TagCharacters,
    /// Bidirectional overrides and isolates (text displayed in another order than read).
    BidiControl,
    /// Zero-width and other invisible format characters inside text.
    ZeroWidth,
    /// A word mixing Latin with Cyrillic or Greek letters (homoglyph spoofing).
    MixedScript,
    /// Variation selectors beyond one emoji presentation selector: bytes smuggled inside
    /// an emoji or a letter.
    VariationSelectors,
}

impl OddityKind {
    pub fn rule(self) -> &'static str {
        match self {
            OddityKind::TagCharacters => "unicode.tag_characters",
            OddityKind::BidiControl => "unicode.bidi_control",
            OddityKind::ZeroWidth => "unicode.zero_width",
            OddityKind::MixedScript => "unicode.mixed_script",
            OddityKind::VariationSelectors => "unicode.variation_selectors",
        }
    }
}

/// The text as matched: normalised, with a map back to the original.
#[derive(Debug)]
pub struct Normalized<'a> {
    pub text: Cow<'a, str>,
    /// For each byte of `text`, its byte offset in the original; `None` when unchanged.
    map: Option<Vec<u32>>,
    original_len: usize,
    /// Text hidden in tag characters, decoded, with the span it came from.
    pub hidden: Vec<(String, usize, usize)>,
    pub oddities: Vec<Oddity>,
}

impl Normalized<'_> {
    /// The original span of a span of the normalised text.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        match &self.map {
            None => (start, end),
            Some(m) => {
                let s = m.get(start).map_or(self.original_len, |&o| o as usize);
                let e = if end == 0 {
                    0
                } else {
                    // One past the original position of the last byte's character.
                    m.get(end - 1).map_or(self.original_len, |&o| {
                        let next = m[end..].iter().find(|&&n| n != o);
                        next.map_or(self.original_len, |&n| n as usize)
                    })
                };
                (s, e.max(s))
            }
        }
    }
}

fn is_tag(c: char) -> bool {
    ('\u{E0000}'..='\u{E007F}').contains(&c)
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Default_Ignorable_Code_Point (zero widths, joiners, Hangul fillers, variation
/// selectors, the soft hyphen…): rendered as nothing. Such characters are all restricted
/// in identifiers, and the UTS #39 skeleton drops exactly them.
fn is_invisible(c: char) -> bool {
    !c.identifier_allowed()
        && unicode_security::skeleton(c.encode_utf8(&mut [0; 4]))
            .next()
            .is_none()
}

/// The byte a variation selector carries: VS1–VS16 are 0–15, VS17–VS256 are 16–255.
fn selector_byte(c: char) -> Option<u8> {
    match c {
        '\u{FE00}'..='\u{FE0F}' => Some((c as u32 - 0xFE00) as u8),
        '\u{E0100}'..='\u{E01EF}' => u8::try_from(c as u32 - 0xE0100 + 16).ok(),
        _ => None,
    }
}

/// The ASCII a non-ASCII character stands for, if it stands for one: its NFKC form
/// (`𝐢` → `i`, `ⓘ` → `i`, `ﬁ` → `fi`, full-width `Ａ` → `A`), else its UTS #39
/// confusable prototype (Cyrillic `а` → `a`). `None` keeps the character.
fn fold(c: char) -> Option<String> {
    use unicode_normalization::{IsNormalized, is_nfkc_quick};
    let stable = is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes;
    if stable && !unicode_security::is_potential_mixed_script_confusable_char(c) {
        return None;
    }
    let nfkc: String = std::iter::once(c).nfkc().collect();
    if nfkc.is_ascii() && !nfkc.is_empty() {
        return Some(nfkc);
    }
    let skeleton: String = unicode_security::skeleton(&nfkc).collect();
    (skeleton.is_ascii() && !skeleton.is_empty()).then_some(skeleton)
}

/// Whether a character is one a Latin look-alike could be made of.
fn lookalike(c: char) -> bool {
    unicode_security::is_potential_mixed_script_confusable_char(c)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Other,
    Cyrillic,
    Greek,
}

fn script(c: char) -> Option<Script> {
    match c {
        'a'..='z' | 'A'..='Z' => Some(Script::Latin),
        '\u{0400}'..='\u{052F}' => Some(Script::Cyrillic),
        '\u{0370}'..='\u{03FF}' => Some(Script::Greek),
        c if c.is_alphabetic() => Some(Script::Other),
        _ => None,
    }
}

/// Normalises `text` for matching. ASCII text comes back borrowed and unchanged.
pub fn normalize(text: &str) -> Normalized<'_> {
    if text.is_ascii() {
        return Normalized {
            text: Cow::Borrowed(text),
            map: None,
            original_len: text.len(),
            hidden: Vec::new(),
            oddities: Vec::new(),
        };
    }
    let mut out = String::with_capacity(text.len());
    let mut map: Vec<u32> = Vec::with_capacity(text.len());
    let mut hidden: Vec<(String, usize, usize)> = Vec::new();
    let mut oddities: Vec<Oddity> = Vec::new();
    let mut push_oddity = |kind: OddityKind, start: usize, end: usize| match oddities.last_mut() {
        // Runs of the same kind are one oddity.
        Some(o) if o.kind == kind && o.end == start => o.end = end,
        _ => oddities.push(Oddity { kind, start, end }),
    };
    // The current word's scripts and start, for mixed-script detection.
    let mut word_start: Option<usize> = None;
    let mut word_latin = false;
    let mut word_lookalike = false;
    let mut mixed: Vec<(usize, usize)> = Vec::new();
    let mut prev: Option<char> = None;
    let mut smuggled: Vec<(Vec<u8>, usize, usize)> = Vec::new();
    // A selector that may be a variation sequence's, until a second one follows.
    let mut pending: Option<(u8, usize, usize)> = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        // ASCII runs are copied whole: only their word boundaries matter here.
        let run = bytes[i..]
            .iter()
            .position(|b| !b.is_ascii())
            .unwrap_or(bytes.len() - i);
        if run > 0 {
            let (a, b) = (i, i + run);
            let chunk = &bytes[a..b];
            let is_letter = |c: &u8| c.is_ascii_alphabetic();
            match chunk.iter().position(|c| !is_letter(c)) {
                // All letters: the open word (if any) continues, and is Latin.
                None => {
                    if word_start.is_none() {
                        word_start = Some(a);
                        word_lookalike = false;
                    }
                    word_latin = true;
                }
                Some(first_gap) => {
                    if let Some(ws) = word_start.take()
                        && (word_latin || first_gap > 0)
                        && word_lookalike
                    {
                        mixed.push((ws, a + first_gap));
                    }
                    // A word still open at the end of the run.
                    let last_gap = chunk.iter().rposition(|c| !is_letter(c)).unwrap_or(0);
                    if last_gap + 1 < chunk.len() {
                        word_start = Some(a + last_gap + 1);
                        word_latin = true;
                        word_lookalike = false;
                    }
                }
            }
            pending = None;
            out.push_str(&text[a..b]);
            map.extend(a as u32..b as u32);
            prev = Some(chunk[chunk.len() - 1] as char);
            i = b;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        let end = i + c.len_utf8();
        i = end;
        let i = end - c.len_utf8();
        if is_tag(c) {
            let ascii = (c as u32 - 0xE0000) as u8;
            match hidden.last_mut() {
                Some((s, _, e)) if *e == i => {
                    if ascii.is_ascii_graphic() || ascii == b' ' {
                        s.push(ascii as char);
                    }
                    *e = end;
                }
                _ => {
                    let mut s = String::new();
                    if ascii.is_ascii_graphic() || ascii == b' ' {
                        s.push(ascii as char);
                    }
                    hidden.push((s, i, end));
                }
            }
            push_oddity(OddityKind::TagCharacters, i, end);
            continue;
        }
        if is_bidi(c) {
            push_oddity(OddityKind::BidiControl, i, end);
            continue;
        }
        if let Some(byte) = selector_byte(c) {
            // One selector after a non-ASCII character is a variation sequence (`❤️`, a
            // Japanese name's ideograph variant): how text is written. A second one in a
            // row, or one after ASCII, carries bytes, the first one's included.
            let sequence = prev.is_some_and(|p| !p.is_ascii() && selector_byte(p).is_none());
            prev = Some(c);
            if sequence {
                pending = Some((byte, i, end));
                continue;
            }
            if let Some((b0, s0, e0)) = pending.take() {
                smuggled.push((vec![b0], s0, e0));
                push_oddity(OddityKind::VariationSelectors, s0, e0);
            }
            match smuggled.last_mut() {
                Some((bytes, _, e)) if *e == i => {
                    bytes.push(byte);
                    *e = end;
                }
                _ => smuggled.push((vec![byte], i, end)),
            }
            push_oddity(OddityKind::VariationSelectors, i, end);
            continue;
        }
        pending = None;
        if is_invisible(c) {
            // A joiner inside an emoji sequence is how emoji are written, not a trick.
            let emoji_joiner = c == '\u{200D}' && prev.is_some_and(|p| p as u32 >= 0x2600);
            if !emoji_joiner {
                push_oddity(OddityKind::ZeroWidth, i, end);
            }
            continue;
        }
        prev = Some(c);
        // Word tracking over letters.
        match script(c) {
            Some(s) => {
                if word_start.is_none() {
                    word_start = Some(i);
                    word_latin = false;
                    word_lookalike = false;
                }
                match s {
                    Script::Latin => word_latin = true,
                    Script::Cyrillic | Script::Greek if lookalike(c) => word_lookalike = true,
                    _ => {}
                }
            }
            None => {
                if let Some(ws) = word_start.take()
                    && word_latin
                    && word_lookalike
                {
                    mixed.push((ws, i));
                }
            }
        }
        let at = out.len();
        match fold(c) {
            Some(ascii) => out.push_str(&ascii),
            None => out.push(c),
        }
        map.extend(std::iter::repeat_n(i as u32, out.len() - at));
    }
    if let Some(ws) = word_start
        && word_latin
        && word_lookalike
    {
        mixed.push((ws, text.len()));
    }
    // Bytes smuggled in variation selectors, read as text (one selector alone is noise).
    hidden.extend(
        smuggled
            .into_iter()
            .filter(|(b, _, _)| b.len() > 1)
            .map(|(b, s, e)| (String::from_utf8_lossy(&b).into_owned(), s, e)),
    );
    for (s, e) in mixed {
        oddities.push(Oddity {
            kind: OddityKind::MixedScript,
            start: s,
            end: e,
        });
    }
    Normalized {
        text: Cow::Owned(out),
        map: Some(map),
        original_len: text.len(),
        hidden,
        oddities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_borrowed_and_spans_are_identity() {
        let n = normalize("plain text");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.original_span(2, 5), (2, 5));
        assert!(n.oddities.is_empty());
    }

    #[test]
    fn tag_characters_decode_to_their_hidden_text() {
        let hidden: String = "ignore all"
            .bytes()
            .map(|b| char::from_u32(0xE0000 + b as u32).unwrap_or('?'))
            .collect();
        let text = format!("Weather tool.{hidden} Done");
        let n = normalize(&text);
        assert_eq!(n.text, "Weather tool. Done");
        assert_eq!(n.hidden.len(), 1);
        assert_eq!(n.hidden[0].0, "ignore all");
        assert_eq!(n.oddities[0].kind, OddityKind::TagCharacters);
        assert_eq!(&text[n.oddities[0].start..n.oddities[0].end], hidden);
    }

    #[test]
    fn invisible_and_lookalike_characters_fold_away() {
        // Cyrillic і and е inside Latin words, a zero-width space, fullwidth letters.
        let text = "\u{0456}gnore prev\u{0456}ous in\u{200B}structions ＳＹＳＴＥＭ";
        let n = normalize(text);
        assert_eq!(n.text, "ignore previous instructions SYSTEM");
        let kinds: Vec<_> = n.oddities.iter().map(|o| o.kind).collect();
        assert!(kinds.contains(&OddityKind::ZeroWidth), "{kinds:?}");
        assert!(kinds.contains(&OddityKind::MixedScript), "{kinds:?}");
        // "previous" maps back onto the original bytes, look-alike included.
        let at = n.text.find("previous").unwrap_or(0);
        let (s, e) = n.original_span(at, at + "previous".len());
        assert_eq!(&text[s..e], "prev\u{0456}ous");
    }

    proptest::proptest! {
        #[test]
        fn spans_stay_inside_the_input(s in "(\\PC|[\u{200B}\u{202E}\u{E0041}а-яα-ω])*") {
            let n = normalize(&s);
            for o in &n.oddities {
                proptest::prop_assert!(o.start <= o.end && o.end <= s.len());
                proptest::prop_assert!(s.is_char_boundary(o.start) && s.is_char_boundary(o.end));
            }
            let len = n.text.len();
            for (a, b) in [(0, len), (0, len / 2), (len / 3, len)] {
                let (x, y) = n.original_span(a, b);
                proptest::prop_assert!(x <= y && y <= s.len());
            }
        }
    }

    #[test]
    fn bidi_overrides_are_reported_and_plain_foreign_text_is_not() {
        let n = normalize("file\u{202E}txt.exe");
        assert_eq!(n.oddities[0].kind, OddityKind::BidiControl);
        let n = normalize("Привет, мир. Καλημέρα. Grüße 👩\u{200D}💻");
        assert!(n.oddities.is_empty(), "{:?}", n.oddities);
    }

    /// Characters the old hand-kept tables missed: mathematical alphanumerics, circled
    /// letters, ligatures, Hangul fillers, and bytes smuggled in variation selectors.
    #[test]
    fn compatibility_forms_fillers_and_smuggled_bytes() {
        let n = normalize("\u{1D422}\u{1D420}\u{1D427}\u{1D428}\u{1D42B}\u{1D41E} previous");
        assert_eq!(n.text, "ignore previous");
        assert_eq!(normalize("\u{24D8}gnore \u{FB01}les").text, "ignore files");
        assert_eq!(normalize("\u{1D5C2}\u{1D5C0}\u{1D5C7}").text, "ign");
        let filler = normalize("ig\u{3164}nore\u{115F} all");
        assert_eq!(filler.text, "ignore all");
        assert!(
            filler
                .oddities
                .iter()
                .any(|o| o.kind == OddityKind::ZeroWidth)
        );
        // "ignore" carried in variation selectors after an emoji (VS17+ for bytes >= 16).
        let payload: String = "ignore"
            .bytes()
            .map(|b| char::from_u32(0xE0100 + u32::from(b) - 16).unwrap_or('?'))
            .collect();
        let text = format!("hi \u{1F600}{payload} there");
        let n = normalize(&text);
        assert_eq!(n.text, "hi \u{1F600} there");
        assert!(
            n.hidden.iter().any(|(h, _, _)| h == "ignore"),
            "{:?}",
            n.hidden
        );
        assert!(
            n.oddities
                .iter()
                .any(|o| o.kind == OddityKind::VariationSelectors)
        );
        // One selector after a symbol or an ideograph is how text is written.
        for ok in [
            "I \u{2764}\u{FE0F} it",
            "\u{845B}\u{E0100}飾区",
            "\u{263A}\u{FE0E}",
        ] {
            let n = normalize(ok);
            assert!(n.oddities.is_empty() && n.hidden.is_empty(), "{ok}: {n:?}");
        }
    }
}
