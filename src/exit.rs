//! The exit-code table: the one place that says which number a script sees.
//!
//! Scripts branch on these numbers, so they are a contract. The README and the
//! man pages repeat this table; `tests/cli/docs.rs` and
//! `tests/cli/manual.rs` keep them in step.

/// Success: acquired, released, touched, broken, or `status` found it free.
pub const OK: u8 = 0;
/// `status`: the lock is held but stale (dead owner, expired lease, too old).
pub const STALE: u8 = 1;
/// Bad command line. clap's own usage exit (2) is mapped here.
pub const USAGE: u8 = 64;
/// What is at the lock path is not a lock file (someone's data), or the
/// fencing counter is corrupt or at its end: nfslock refuses to touch it.
pub const DATA_ERR: u8 = 65;
/// The lock's directory does not exist.
pub const NO_DIR: u8 = 66;
/// This filesystem cannot give safe link locks.
pub const UNSUPPORTED: u8 = 69;
/// A bug in nfslock.
pub const INTERNAL: u8 = 70;
/// The claim or probe file cannot be created (permissions, read-only or full
/// filesystem, name too long).
pub const CANT_CREATE: u8 = 73;
/// An I/O error that persisted past `--io-timeout`.
pub const IO: u8 = 74;
/// Busy, timed out, or a break was refused. `-E N` overrides it for
/// `acquire`.
pub const BUSY: u8 = 75;
/// `release`/`touch`: the lock is missing or belongs to someone else.
pub const NOT_OWNER: u8 = 76;
/// Not permitted: another user's lock in a sticky directory, or a file
/// nfslock may not read or move.
pub const NO_PERM: u8 = 77;
/// `run`: the command was found but could not be executed (the shell's
/// code for it).
pub const CANNOT_EXECUTE: u8 = 126;
/// `run`: the command was not found (the shell's code for it).
pub const NOT_FOUND: u8 = 127;
/// Killed by signal n while waiting: 128 + n, the shell convention.
pub const SIGNAL_BASE: u8 = 128;

/// Every fixed code with its meaning, in README order.
pub const TABLE: &[(u8, &str)] = &[
    (OK, "success (status: the lock is free)"),
    (STALE, "status: held but stale"),
    (USAGE, "usage error"),
    (DATA_ERR, "not a lock file; refused"),
    (NO_DIR, "the lock's directory is missing"),
    (UNSUPPORTED, "this filesystem cannot give safe link locks"),
    (INTERNAL, "internal error"),
    (CANT_CREATE, "cannot create a file in the lock's directory"),
    (IO, "I/O error that persisted past --io-timeout"),
    (
        BUSY,
        "busy, timed out, or break refused (-E N overrides on acquire)",
    ),
    (NOT_OWNER, "release/touch: not yours, or lost"),
    (
        NO_PERM,
        "not permitted (another user's lock in a sticky directory)",
    ),
];

/// The exit status for death by signal `signo` while waiting.
pub fn for_signal(signo: i32) -> u8 {
    SIGNAL_BASE.saturating_add(u8::try_from(signo).unwrap_or(127))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut seen: Vec<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), TABLE.len());
    }

    #[test]
    fn signal_codes_follow_the_shell() {
        assert_eq!(for_signal(15), 143);
        assert_eq!(for_signal(2), 130);
        assert_eq!(for_signal(1), 129);
    }
}
