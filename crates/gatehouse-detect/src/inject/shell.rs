//! Shell-command arguments: no chaining, substitution or redirection anywhere in the text,
//! and no dangerous program, found after splitting words the way a POSIX shell does
//! (quotes and backslashes removed: `'rm'`, `"r""m"` and `r\m` all run `rm`) and looking
//! through programs that run another program (`env`, `xargs`, `find -exec`, `busybox`…).

use super::{Injection, found};

/// Programs a tool's shell argument must not run.
const DANGEROUS: &[&str] = &[
    "rm",
    "curl",
    "wget",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "bash",
    "sh",
    "dash",
    "ash",
    "zsh",
    "ksh",
    "csh",
    "tcsh",
    "fish",
    "rbash",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "node",
    "lua",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "pwsh",
    "powershell",
    "chmod",
    "chown",
    "dd",
    "mkfs",
    "shutdown",
    "reboot",
    "kill",
    "killall",
    "pkill",
    "sudo",
    "doas",
    "su",
    "scp",
    "ssh",
    "telnet",
    "base64",
    "eval",
    "exec",
    "source",
    "crontab",
    "mv",
    "shred",
    "truncate",
];

/// Programs whose arguments name another program to run: every later word is checked as a
/// program too (a false refusal of `xargs grep rm` is the price of not modelling each
/// wrapper's options).
const WRAPPERS: &[&str] = &[
    "env",
    "xargs",
    "nice",
    "nohup",
    "timeout",
    "stdbuf",
    "time",
    "command",
    "builtin",
    "busybox",
    "toybox",
    "chroot",
    "setsid",
    "ionice",
    "taskset",
    "unbuffer",
    "strace",
    "ltrace",
    "flock",
    "watch",
    "script",
    "nsenter",
    "unshare",
    "runuser",
    "chrt",
    "parallel",
    "firejail",
    "systemd-run",
    "start-stop-daemon",
    "catchsegv",
];

/// `find` options that run a program (the next word).
const FIND_EXEC: &[&str] = &["-exec", "-execdir", "-ok", "-okdir"];

/// The program a word names: its last path component.
fn program(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// `NAME=value`: an assignment a shell applies before the program.
fn assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit()
    })
}

pub(super) fn shell(cmd: &str) -> Option<Injection> {
    for (pat, what) in [
        ("$(", "command substitution"),
        ("`", "command substitution"),
        ("${", "variable expansion"),
        ("&&", "a chained command"),
        ("||", "a chained command"),
        (";", "a chained command"),
        ("|", "a pipe"),
        (">", "a redirection"),
        ("<", "a redirection"),
        ("\n", "a second line"),
        ("\r", "a second line"),
        ("&", "a background command"),
    ] {
        if cmd.contains(pat) {
            return found("shell.metacharacter", what);
        }
    }
    // Unbalanced quotes: a shell would wait for more input or fail; either way the gateway
    // cannot know what runs.
    let Some(words) = shlex::split(cmd) else {
        return found("shell.quote", "unbalanced quotes or a trailing backslash");
    };
    let mut rest = words
        .iter()
        .map(String::as_str)
        .skip_while(|w| assignment(w));
    let first = program(rest.next()?);
    if DANGEROUS.contains(&first) {
        return found("shell.binary", format!("`{first}`"));
    }
    let rest: Vec<&str> = rest.collect();
    if WRAPPERS.contains(&first) {
        if let Some(p) = rest
            .iter()
            .map(|w| program(w))
            .find(|p| DANGEROUS.contains(p))
        {
            return found("shell.binary", format!("`{p}` run through `{first}`"));
        }
    } else if first == "find" {
        if rest.contains(&"-delete") {
            return found("shell.binary", "`find -delete`");
        }
        for pair in rest.windows(2) {
            let p = program(pair[1]);
            if FIND_EXEC.contains(&pair[0]) && (DANGEROUS.contains(&p) || WRAPPERS.contains(&p)) {
                return found(
                    "shell.binary",
                    format!("`{p}` run through `find {}`", pair[0]),
                );
            }
        }
    }
    None
}
