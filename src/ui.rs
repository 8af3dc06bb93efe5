//! Talking to people: the verbosity level and every line nfslock writes to
//! stderr. Diagnostics never go to stdout, which belongs to `status` output
//! and to JSON.

use std::sync::atomic::{AtomicU8, Ordering};

/// `-q`: only usage errors. `-v`: decisions, waits and breaks too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Quiet = 0,
    Normal = 1,
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Normal as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Level::Quiet,
        1 => Level::Normal,
        _ => Level::Verbose,
    }
}

/// A line for everyone but `-q`.
pub fn say(msg: &str) {
    if level() >= Level::Normal {
        eprintln!("nfslock: {}", printable(msg));
    }
}

/// A line for `-v` only.
pub fn explain(msg: &str) {
    if level() >= Level::Verbose {
        eprintln!("nfslock: {}", printable(msg));
    }
}

/// `text` with every control character written as `\xNN` (or `\u{..}`):
/// messages quote records, names and paths other users wrote, and none of
/// them may move the cursor, clear a screen or start a new line on the
/// reader's terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !c.is_control() => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_pass_raw() {
        assert_eq!(printable("plain text"), "plain text");
        assert_eq!(printable("a\nb"), "a\\x0ab");
        assert_eq!(printable("\x1b[2J"), "\\x1b[2J");
        assert_eq!(printable("caf\u{e9} \u{9b}"), "caf\u{e9} \\x9b");
        assert!(!printable("\r\t\x07\x7f").chars().any(char::is_control));
    }
}
