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
        eprintln!("nfslock: {msg}");
    }
}

/// A line for `-v` only.
pub fn explain(msg: &str) {
    if level() >= Level::Verbose {
        eprintln!("nfslock: {msg}");
    }
}
