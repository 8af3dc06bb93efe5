//! What is known about a lock, as plain data: the snapshot read from the
//! lock path and the judgement of it (owner, liveness, age, staleness).
//! Low in the layering, so errors and reports can carry and print it
//! without knowing the protocol.

pub use crate::fs::{FsTime, Kind, Meta};
pub use crate::record::{Content, Record};
pub use crate::stale::{Liveness, StaleReason, Verdict};

/// A lock file as read: attributes plus bytes (none if not a regular file,
/// or a regular file we may not read).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub meta: Meta,
    pub bytes: Option<Vec<u8>>,
}

/// Everything known about a held lock, for people and for JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct LockInfo {
    /// What was read at the lock path.
    pub snapshot: Snapshot,
    /// `None` when something other than a regular file is at the lock path,
    /// or a file we may not read.
    pub content: Option<Content>,
    /// Whether its owner lives, where that can be known.
    pub liveness: Liveness,
    /// Its age in file-system time, and whether (and why) it is stale.
    pub verdict: Verdict,
    /// File-system "now" when it was judged; `None` where no probe file
    /// could be made.
    pub now: Option<FsTime>,
}

impl LockInfo {
    /// The nfslock record, when the lock is one of ours (and its record is
    /// believed: written by the user who owns the file).
    pub fn record(&self) -> Option<&Record> {
        match &self.content {
            Some(Content::Ours(r)) => Some(r),
            _ => None,
        }
    }

    /// One line: who holds it, how long, and whether it is stale.
    pub fn describe(&self) -> String {
        use crate::duration::human;
        let age = match self.verdict.age {
            Some(a) => format!(" for {}", human(a)),
            None => String::new(),
        };
        let meta = &self.snapshot.meta;
        let mut s = match &self.content {
            None if meta.kind == Kind::File => {
                return format!(
                    "held in a file nfslock may not read (owner uid {})",
                    meta.uid
                )
            }
            None => {
                return format!(
                    "{} is at the lock path, not a lock file; remove it by hand if it does not belong there",
                    meta.kind.describe()
                )
            }
            Some(Content::NotALock { what }) => return format!("not a lock file ({what})"),
            // A dead owner is said once, as the reason it is stale.
            Some(Content::Ours(r)) => {
                format!("held by host {} pid {} ({}){age}", r.host, r.pid, r.user)
            }
            Some(Content::Foreign { what }) => format!("held by another tool ({what}){age}"),
        };
        if let Some(ahead) = self.verdict.future {
            s.push_str(&format!(
                "; suspicious: its mtime is {} in the future",
                human(ahead)
            ));
        }
        if let Some(reason) = &self.verdict.stale {
            s.push_str(&format!("; stale: {}", reason.describe()));
        }
        s
    }
}
