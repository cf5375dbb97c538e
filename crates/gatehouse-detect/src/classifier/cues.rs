//! The classifier's cues: coarse, hand-written signals of who a text addresses (the AI,
//! the second person), whether it gives an order, where it would send data (a URL, an
//! e-mail address, an account number), which role markers it carries, and whether it names
//! a secret, points at earlier instructions or asks for concealment. They become extra
//! features ([`super::features`]); the network weighs them.

use crate::unicode;

/// A word list and a test for one of its words: the test is a `match`, which the compiler
/// turns into a switch on length and a few comparisons (a list search costs a comparison
/// per entry, for every word of every text the classifier reads).
macro_rules! word_list {
    ($(#[$doc:meta])* $list:ident, $test:ident, [$($w:literal),* $(,)?]) => {
        $(#[$doc])*
        #[allow(dead_code)] // outside the tests, a list may be read only through its test
        pub(super) const $list: &[&str] = &[$($w),*];
        fn $test(w: &str) -> bool {
            matches!(w, $($w)|*)
        }
    };
}

word_list!(
/// Words that name the reader as a machine.
AI_WORDS, is_ai_word, [
    "ai",
    "assistant",
    "agent",
    "model",
    "llm",
    "claude",
    "chatgpt",
    "gpt",
    "copilot",
    "gemini",
    "bot",
    "chatbot",
    "ki",
    "ia",
    "assistent",
    "asistente",
    "assistente",
    "modelo",
    "modell",
    "modèle",
    "modello",
    "agente",
]);

word_list!(
/// Verbs that open an order.
IMPERATIVES, is_imperative, [
    "ignore",
    "disregard",
    "forget",
    "send",
    "forward",
    "transfer",
    "wire",
    "delete",
    "remove",
    "drop",
    "call",
    "run",
    "execute",
    "invoke",
    "use",
    "post",
    "upload",
    "share",
    "invite",
    "reveal",
    "print",
    "tell",
    "say",
    "include",
    "append",
    "read",
    "open",
    "fetch",
    "grant",
    "change",
    "update",
    "create",
    "book",
    "email",
    "export",
    "copy",
    "push",
    "collect",
    "pretend",
    "act",
    "roleplay",
    "enter",
    "switch",
    "stop",
    "do",
    "please",
    "make",
    "write",
    "add",
    "reply",
    "respond",
    "output",
    "return",
    "quietly",
    "secretly",
    "immediately",
    "always",
    "never",
    "instead",
    "now",
    "first",
    "before",
    "after",
    "whenever",
    "todo",
    "set",
    "let",
    "render",
    "display",
    "route",
    "schedule",
    "disable",
]);

/// What a word says for the word cues ([`word_cues`]): one `match`, which the compiler
/// turns into a switch on length and a few comparisons (a list search per word per list
/// would cost more than the rest of the cues).
fn word_kind(w: &str) -> u8 {
    match w {
        // What an attacker wants read out: secrets, credentials, codes.
        "password" | "passwords" | "passcode" | "passphrase" | "credential" | "credentials"
        | "token" | "tokens" | "secret" | "secrets" | "otp" | "2fa" | "mfa" | "pin" | "ssn"
        | "cvv" | "iban" | "apikey" | "mnemonic" | "login" => SECRET,
        // Pointing back at earlier guidance ("the previous instructions").
        "previous" | "prior" | "earlier" | "above" | "preceding" | "original" | "former" => PRIOR,
        // Guidance a reader was given.
        "instructions" | "instruction" | "directions" | "directives" | "guidance"
        | "guidelines" | "rules" | "prompt" | "task" | "request" | "context" => GUIDANCE,
        // Concealment.
        "secretly" | "quietly" | "silently" | "covertly" | "unnoticed" | "confidential"
        | "hide" => HIDE,
        // After a negation, keeping the user out of the loop ("do not tell", "without
        // asking").
        "tell" | "telling" | "mention" | "mentioning" | "inform" | "informing" | "notify"
        | "notifying" | "ask" | "asking" | "reveal" | "alert" | "confirm" | "confirming"
        | "disclose" => INFORM,
        "not" | "never" | "don't" | "dont" | "without" => NEGATION,
        // The second person, and a word naming the AI (its own list, the tests' reference).
        "you" | "your" | "yourself" => YOU,
        _ if is_ai_word(w) => AI,
        _ => 0,
    }
}

const SECRET: u8 = 1;
const PRIOR: u8 = 2;
const GUIDANCE: u8 = 3;
const HIDE: u8 = 4;
const INFORM: u8 = 5;
const NEGATION: u8 = 6;
const YOU: u8 = 7;
const AI: u8 = 8;

/// Longest of the [`IMPERATIVES`], in bytes.
const LONGEST_IMPERATIVE: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < IMPERATIVES.len() {
        if IMPERATIVES[i].len() > n {
            n = IMPERATIVES[i].len();
        }
        i += 1;
    }
    n
};

/// Whether `s` starts with one of the [`IMPERATIVES`] as a whole word (the longest prefix
/// of characters in `word`); a longer word is rejected without reading it to its end.
pub(super) fn imperative_at(s: &str, word: impl Fn(char) -> bool) -> bool {
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if !word(c) {
            break;
        }
        end = i + c.len_utf8();
        if end > LONGEST_IMPERATIVE {
            return false;
        }
    }
    is_imperative(&s[..end])
}

/// The one marker without punctuation, its searcher built once (building it cost more
/// than searching a sentence).
static TOOL_OUTPUT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"tool output"));

/// Whether `b` holds twelve ASCII digits in a row. Such a run covers one of every twelve
/// positions, so only every twelfth byte is read until a digit turns up: a text without
/// long numbers costs a read per twelve bytes, not one per byte.
pub(super) fn twelve_digits(b: &[u8]) -> bool {
    const RUN: usize = 12;
    let mut probe = RUN - 1;
    while probe < b.len() {
        if !b[probe].is_ascii_digit() {
            probe += RUN;
            continue;
        }
        // The run through the probe; the bytes before it since the last probe are fewer
        // than twelve.
        let start = b[..probe]
            .iter()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |p| p + 1);
        let end = b[probe..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(b.len(), |p| probe + p);
        if end - start >= RUN {
            return true;
        }
        // A later run starts after `end`, so it covers `end + RUN` or a probe after it.
        probe = end + RUN;
    }
    false
}

/// Whether a lowercased text holds a URL prefix (`http://`, `https://`, `www.`) and a role
/// or format marker (`system:`, `<|`, `[inst]`, `###`, `</`, `"role"`…). Every marker but
/// `tool output` holds one of six punctuation bytes: only those places are looked at.
fn markers(b: &[u8]) -> (bool, bool) {
    let (mut url, mut role) = (false, false);
    let at = |i: usize, m: &[u8]| b[i..].starts_with(m);
    let upto = |i: usize, m: &[u8]| b[..=i].ends_with(m);
    let hits =
        memchr::memchr3_iter(b':', b'.', b'<', b).chain(memchr::memchr3_iter(b'[', b'#', b'"', b));
    for i in hits {
        match b[i] {
            b':' => {
                url |= (upto(i, b"http:") || upto(i, b"https:")) && at(i, b"://");
                role |= [
                    &b"system:"[..],
                    b"user:",
                    b"assistant:",
                    b"human:",
                    b"observation:",
                ]
                .iter()
                .any(|m| upto(i, m));
            }
            b'.' => url |= upto(i, b"www."),
            b'<' => {
                role |= [&b"<|"[..], b"<<sys>>", b"</", b"<system", b"<information"]
                    .iter()
                    .any(|m| at(i, m));
            }
            b'[' => {
                role |= [&b"[inst]"[..], b"[system]", b"[/"]
                    .iter()
                    .any(|m| at(i, m))
            }
            b'#' => role |= at(i, b"###"),
            _ => role |= at(i, b"\"role\""),
        }
        if url && role {
            break;
        }
    }
    role = role || TOOL_OUTPUT.find(b).is_some();
    (url, role)
}

/// Coarse signals of who a text addresses and what it asks, as extra features: a word
/// naming the AI, the second person, an order at the start of a line, a destination for
/// data (URL, e-mail address, account number), a role or format marker, and their pairs.
/// The network weighs them; alone none decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cues {
    pub(super) ai: bool,
    pub(super) you: bool,
    pub(super) imp: bool,
    pub(super) url: bool,
    pub(super) mail: bool,
    pub(super) acct: bool,
    pub(super) role: bool,
    /// A secret, credential or code is named.
    pub(super) secret: bool,
    /// Earlier guidance is pointed at ("previous instructions", "the above task").
    pub(super) prior: bool,
    /// Concealment: "secretly", "do not tell", "without asking".
    pub(super) hide: bool,
}

impl Cues {
    /// The names of the cues present and of their pairs, the features they add.
    pub(super) fn names(self) -> impl Iterator<Item = &'static str> {
        let Cues {
            ai,
            you,
            imp,
            url,
            mail,
            acct,
            role,
            secret,
            prior,
            hide,
        } = self;
        let sink = url || mail || acct;
        [
            (ai, "ai"),
            (you, "you"),
            (imp, "imp"),
            (url, "url"),
            (mail, "mail"),
            (acct, "acct"),
            (role, "role"),
            (ai && imp, "ai+imp"),
            (ai && you, "ai+you"),
            (imp && sink, "imp+sink"),
            (role && imp, "role+imp"),
            (you && imp, "you+imp"),
            (ai && sink, "ai+sink"),
            (secret, "secret"),
            (prior, "prior"),
            (hide, "hide"),
            (secret && sink, "secret+sink"),
            (secret && imp, "secret+imp"),
            (prior && imp, "prior+imp"),
            (hide && imp, "hide+imp"),
            (ai && secret, "ai+secret"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }
}

/// The [`Cues`] of a lowercased text and its words, by name.
pub(super) fn cues(lower: &str, words: &[&str]) -> impl Iterator<Item = &'static str> {
    cue_flags(lower, words).names()
}

pub(super) fn cue_flags(lower: &str, words: &[&str]) -> Cues {
    let imp = std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', lower.as_bytes()).map(|i| i + 1))
        .any(|i| {
            // The line's first word (a word of a later line when this one has none: that
            // line is checked too, so the answer is the same).
            let line = lower[i..].trim_start_matches(|c: char| !c.is_alphanumeric());
            imperative_at(line, char::is_alphanumeric)
        })
        // The separators are ASCII, so every byte after one starts a character.
        || memchr::memchr3_iter(b'.', b'!', b':', lower.as_bytes())
            .chain(memchr::memchr_iter(b';', lower.as_bytes()))
            .any(|i| {
                imperative_at(lower[i + 1..].trim_start(), |c| {
                    !c.is_whitespace() && !matches!(c, '.' | '!' | ':' | ';')
                })
            });
    let (url, role) = markers(lower.as_bytes());
    let mail = has_address(lower);
    let acct = twelve_digits(lower.as_bytes());
    let WordCues {
        ai,
        you,
        secret,
        prior,
        hide,
    } = word_flags(words);
    Cues {
        ai,
        you,
        imp,
        url,
        mail,
        acct,
        role,
        secret,
        prior,
        hide,
    }
}

/// Whether a white-space separated word of `text` holds an `@` with a `.` after its last
/// `@`. Only the `@`s are visited, each up to the end of its word or the word's next `@`
/// (which the next visit starts from): every byte is read at most once.
fn has_address(text: &str) -> bool {
    memchr::memchr_iter(b'@', text.as_bytes()).any(|i| {
        let mut dot = false;
        // An `@` is ASCII: `i + 1` starts a character.
        for c in text[i + 1..].chars() {
            if c.is_whitespace() {
                break;
            }
            if c == '@' {
                return false; // the word's last `@` decides
            }
            dot |= c == '.';
        }
        dot
    })
}

/// The cues read off words alone: a secret named, earlier guidance pointed at (a
/// "previous", "above"… within three words before "instructions", "task"…), concealment
/// ("secretly", "quietly"…, or "tell", "ask"… within two words after "not", "never",
/// "don't" or "without").
#[cfg(test)]
pub(super) fn word_cues(words: &[&str]) -> (bool, bool, bool) {
    let w = word_flags(words);
    (w.secret, w.prior, w.hide)
}

/// The cues read off words alone, in one pass: [`word_cues`], and a word naming the AI
/// or the second person.
struct WordCues {
    ai: bool,
    you: bool,
    secret: bool,
    prior: bool,
    hide: bool,
}

fn word_flags(words: &[&str]) -> WordCues {
    let mut c = WordCues {
        ai: false,
        you: false,
        secret: false,
        prior: false,
        hide: false,
    };
    let mut since_prior = usize::MAX;
    let mut since_negation = usize::MAX;
    for w in words {
        since_prior = since_prior.saturating_add(1);
        since_negation = since_negation.saturating_add(1);
        match word_kind(w) {
            SECRET => c.secret = true,
            HIDE => c.hide = true,
            GUIDANCE => c.prior |= since_prior <= 3,
            INFORM => c.hide |= since_negation <= 2,
            PRIOR => since_prior = 0,
            NEGATION => since_negation = 0,
            YOU => c.you = true,
            AI => c.ai = true,
            _ => {}
        }
    }
    c
}

/// Whether a text carries any of the [`cues`]: the trainer keeps a chunk of an attack as
/// a positive only if it does ("Thanks! Signed, Emma" inside an attack is not the attack).
pub fn has_cue(text: &str) -> bool {
    let lower = unicode::normalize(text).text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    cues(&lower, &words).next().is_some()
}
