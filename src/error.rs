//! The one error type. Each variant carries what a person needs to act on it
//! and knows its exit code; `main` prints it as one line.

use crate::exit;
use crate::info::LockInfo;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {}{}{}", path.display(),
        info.as_ref().map_or_else(|| "busy: it kept changing hands".into(), |i| i.describe()),
        if *timed_out { " (timed out)" } else { "" },
        unbreakable.as_deref().map(|w| format!("; cannot break it: {w}")).unwrap_or_default())]
    Busy {
        path: PathBuf,
        /// The lock as last seen; `None` if it was never seen held.
        info: Option<Box<LockInfo>>,
        timed_out: bool,
        /// Why a stale lock could not be broken (another user's lock in a
        /// sticky directory), when that is why we are still busy.
        unbreakable: Option<String>,
    },
    #[error("{}: busy: {why}{}", path.display(), if *timed_out { " (timed out)" } else { "" })]
    SlotsBusy {
        path: PathBuf,
        why: String,
        timed_out: bool,
    },
    #[error("{}: not run: {why}", path.display())]
    TooSoon { path: PathBuf, why: String },
    #[error("{}: you already hold this lock ({why}); release it first", path.display())]
    AlreadyHeld { path: PathBuf, why: String },
    #[error("{}: not yours: {why}", path.display())]
    NotOwner { path: PathBuf, why: String },
    #[error("{}: refusing to break: {why}", path.display())]
    Refused { path: PathBuf, why: String },
    #[error("{}: {what}; nfslock never removes or replaces it", path.display())]
    NotALock { path: PathBuf, what: String },
    #[error("{}: {why}", path.display())]
    BadData { path: PathBuf, why: String },
    #[error("{}: not permitted: {why}", path.display())]
    NotPermitted { path: PathBuf, why: String },
    #[error("{op} {}: {source}", path.display())]
    Denied {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} {}: {source}", path.display())]
    Unwritable {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("directory {} does not exist", dir.display())]
    NoDir { dir: PathBuf },
    #[error("{}: no such file or directory", path.display())]
    Missing { path: PathBuf },
    #[error("{}: this filesystem cannot give safe link locks: {why}", path.display())]
    Unsupported { path: PathBuf, why: String },
    #[error("cannot create {}: {source}", path.display())]
    CannotCreate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: lock name too long ({len} bytes; at most {max} leave room for its claim files)", path.display())]
    NameTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {what} to standard output: {source}")]
    Output {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("interrupted by signal {signal} while waiting; nothing was taken")]
    Interrupted { signal: i32 },
    #[error("{0}")]
    Usage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The one line a person sees (after `nfslock: `): the lock first
    /// (`lock`, as the user typed it, where the message does not begin
    /// with a path of its own), what happened, and what to do next where
    /// there is something to do.
    pub fn line(&self, lock: Option<&std::path::Path>) -> String {
        let text = self.to_string();
        let text = match lock {
            Some(l) if !self.names_its_path() => format!("{}: {text}", l.display()),
            _ => text,
        };
        match self.next_step() {
            Some(step) => format!("{text}; {step}"),
            None => text,
        }
    }

    /// Whether the message begins with the lock's own path. Every variant
    /// is named, so a new one has to choose.
    fn names_its_path(&self) -> bool {
        match self {
            Error::Busy { .. }
            | Error::SlotsBusy { .. }
            | Error::TooSoon { .. }
            | Error::AlreadyHeld { .. }
            | Error::NotOwner { .. }
            | Error::Refused { .. }
            | Error::NotALock { .. }
            | Error::BadData { .. }
            | Error::NotPermitted { .. }
            | Error::Missing { .. }
            | Error::Unsupported { .. }
            | Error::NameTooLong { .. } => true,
            Error::Denied { .. }
            | Error::Unwritable { .. }
            | Error::CannotCreate { .. }
            | Error::Io { .. }
            | Error::Output { .. }
            | Error::NoDir { .. }
            | Error::Interrupted { .. }
            | Error::Usage(_)
            | Error::Internal(_) => false,
        }
    }

    /// What a person can do about it, where the message itself does not
    /// say already.
    fn next_step(&self) -> Option<&'static str> {
        Some(match self {
            Error::NotOwner { .. } => "`nfslock status` shows who holds it",
            Error::NotALock { .. } => "choose another lock path",
            Error::NotPermitted { .. } | Error::Denied { .. } => {
                "only its owner, the directory's owner or root may"
            }
            Error::Unwritable { .. } | Error::CannotCreate { .. } => {
                "check the directory's permissions and free space"
            }
            Error::NoDir { .. } => "create it, or mount the filesystem it is on",
            Error::Missing { .. } => "check the path",
            Error::Unsupported { .. } => "keep the locks on another filesystem",
            Error::NameTooLong { .. } => "use a shorter lock name",
            Error::Io { .. } => {
                "the file server may be unreachable: try again, or give a longer --io-timeout"
            }
            Error::Internal(_) => "this is a bug in nfslock: please report it",
            _ => return None,
        })
    }

    /// The exit status a script sees for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Busy { .. }
            | Error::Refused { .. }
            | Error::AlreadyHeld { .. }
            | Error::TooSoon { .. }
            | Error::SlotsBusy { .. } => exit::BUSY,
            Error::NotALock { .. } | Error::BadData { .. } => exit::DATA_ERR,
            Error::NotPermitted { .. } | Error::Denied { .. } => exit::NO_PERM,
            Error::Unwritable { .. } => exit::CANT_CREATE,
            Error::NotOwner { .. } => exit::NOT_OWNER,
            Error::NoDir { .. } | Error::Missing { .. } => exit::NO_DIR,
            Error::Unsupported { .. } => exit::UNSUPPORTED,
            Error::CannotCreate { .. } | Error::NameTooLong { .. } => exit::CANT_CREATE,
            Error::Io { .. } | Error::Output { .. } => exit::IO,
            Error::Interrupted { signal } => exit::for_signal(*signal),
            Error::Usage(_) => exit::USAGE,
            Error::Internal(_) => exit::INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_the_table() {
        let p = || PathBuf::from("/l");
        let e = || io::Error::from_raw_os_error(5);
        let cases = [
            (
                Error::NotOwner {
                    path: p(),
                    why: "x".into(),
                },
                76,
            ),
            (
                Error::Refused {
                    path: p(),
                    why: "x".into(),
                },
                75,
            ),
            (Error::NoDir { dir: p() }, 66),
            (
                Error::SlotsBusy {
                    path: p(),
                    why: "x".into(),
                    timed_out: false,
                },
                75,
            ),
            (
                Error::TooSoon {
                    path: p(),
                    why: "x".into(),
                },
                75,
            ),
            (Error::Missing { path: p() }, 66),
            (
                Error::NotALock {
                    path: p(),
                    what: "x".into(),
                },
                65,
            ),
            (
                Error::BadData {
                    path: p(),
                    why: "x".into(),
                },
                65,
            ),
            (
                Error::NotPermitted {
                    path: p(),
                    why: "x".into(),
                },
                77,
            ),
            (
                Error::Denied {
                    op: "read",
                    path: p(),
                    source: e(),
                },
                77,
            ),
            (
                Error::Unwritable {
                    op: "rename",
                    path: p(),
                    source: e(),
                },
                73,
            ),
            (
                Error::AlreadyHeld {
                    path: p(),
                    why: "x".into(),
                },
                75,
            ),
            (
                Error::Unsupported {
                    path: p(),
                    why: "x".into(),
                },
                69,
            ),
            (
                Error::CannotCreate {
                    path: p(),
                    source: e(),
                },
                73,
            ),
            (
                Error::NameTooLong {
                    path: p(),
                    len: 300,
                    max: 190,
                },
                73,
            ),
            (
                Error::Io {
                    op: "link",
                    path: p(),
                    source: e(),
                },
                74,
            ),
            (
                Error::Output {
                    what: "the token",
                    source: e(),
                },
                74,
            ),
            (Error::Interrupted { signal: 15 }, 143),
            (Error::Usage("x".into()), 64),
            (Error::Internal("x".into()), 70),
        ];
        let mut seen = Vec::new();
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
            // One line, the lock first, whoever's path the error carries.
            let line = err.line(Some(std::path::Path::new("/l")));
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(line.starts_with("/l: "), "the lock first: {line}");
            seen.push(code);
        }
        // Every error code of the table has a message (0 and 1 are not
        // errors: `status` answers on stdout).
        for (code, _) in exit::TABLE.iter().filter(|(c, _)| *c > exit::STALE) {
            assert!(seen.contains(code), "no message for exit {code}");
        }
    }
}
