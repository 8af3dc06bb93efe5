//! The retry discipline (I9): [`Ctx`] names the filesystem, environment
//! and lock one operation works on, with its `--io-timeout` and deadline;
//! [`IoBudget`] paces retries of transient errors and ends them at
//! whichever comes first. Here too: reads that retry (`retrying`,
//! `snapshot`, `lock_meta`) and the mapping of persistent errors to their
//! exit codes (`dir_error`).

use super::{Env, Event, Snapshot};
use crate::error::Error;
use crate::fs::{Kind, LockFs, Meta};
use crate::names::LockPath;
use crate::record::READ_LIMIT;
use crate::sys;
use std::io;
use std::path::Path;
use std::time::Duration;

/// The filesystem, the environment and the lock one operation works on.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub fs: &'a dyn LockFs,
    pub env: &'a dyn Env,
    pub lock: &'a LockPath,
    /// How long a transient error may persist before we give up (74).
    pub io_timeout: Duration,
    /// The caller's deadline on the monotonic clock (`acquire -w`): no
    /// retry of a transient error goes past it either.
    pub deadline: Option<Duration>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        fs: &'a dyn LockFs,
        env: &'a dyn Env,
        lock: &'a LockPath,
        io_timeout: Duration,
    ) -> Ctx<'a> {
        Ctx {
            fs,
            env,
            lock,
            io_timeout,
            deadline: None,
        }
    }
}

/// Whether a step may stop early. Work the caller asked for ends at a stop
/// signal or at the caller's deadline; clean-up (removing our own files,
/// putting back a lock moved by mistake) must finish, bounded by
/// `--io-timeout` alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Work,
    Cleanup,
}

/// Tracks how long transient errors have persisted: from the start of the
/// first attempt that failed (a call that hung for a while counts), until
/// `--io-timeout` or the caller's deadline, whichever comes first.
pub(super) struct IoBudget {
    pub(super) since: Duration,
    pub(super) pause: Duration,
}

impl IoBudget {
    pub(super) fn new(ctx: &Ctx) -> IoBudget {
        IoBudget {
            since: ctx.env.monotonic(),
            pause: Duration::from_millis(10),
        }
    }

    /// After a transient error: waits a little and returns Ok to retry, or
    /// the error once it has persisted past the timeout or the deadline.
    /// Clean-up (`Phase::Cleanup`) must finish: neither signals nor the
    /// caller's deadline cut it short.
    pub(super) fn pause(
        &mut self,
        ctx: &Ctx,
        op: &'static str,
        path: &Path,
        error: io::Error,
        phase: Phase,
    ) -> Result<(), Error> {
        let now = ctx.env.monotonic();
        let give_up = |at: Duration| now >= at;
        // I9: never past --io-timeout, nor past the caller's deadline.
        if give_up(self.since + ctx.io_timeout)
            || (phase == Phase::Work && ctx.deadline.is_some_and(give_up))
        {
            return Err(Error::Io {
                op,
                path: path.to_path_buf(),
                source: error,
            });
        }
        ctx.env.event(Event::Retrying {
            op,
            path,
            error: &error,
        });
        let mut nap = self.pause;
        if let Some(d) = ctx.deadline.filter(|_| phase == Phase::Work) {
            nap = nap.min(d.saturating_sub(now));
        }
        let sig = ctx.env.sleep(nap);
        self.pause = (self.pause * 2).min(Duration::from_secs(1));
        match sig {
            Some(signal) if phase == Phase::Work => Err(Error::Interrupted { signal }),
            _ => Ok(()),
        }
    }

    pub(super) fn ok(&mut self, ctx: &Ctx) {
        self.since = ctx.env.monotonic();
        self.pause = Duration::from_millis(10);
    }
}

impl Ctx<'_> {
    /// Runs a read-only operation, retrying transient errors.
    pub(super) fn retrying<T>(
        &self,
        op: &'static str,
        path: &Path,
        phase: Phase,
        mut f: impl FnMut() -> io::Result<T>,
    ) -> Result<io::Result<T>, Error> {
        let mut budget = IoBudget::new(self);
        loop {
            match f() {
                Err(e) if sys::is_transient(&e) => budget.pause(self, op, path, e, phase)?,
                other => return Ok(other),
            }
        }
    }
}

impl Ctx<'_> {
    /// Reads the lock (or another file) as a snapshot. A file we may not
    /// read is a snapshot without bytes: it can be described and waited
    /// for, never judged or removed.
    pub(super) fn snapshot(
        &self,
        path: &Path,
        phase: Phase,
    ) -> Result<io::Result<Snapshot>, Error> {
        self.retrying("read", path, phase, || {
            match self.fs.read(path, READ_LIMIT) {
                Ok((meta, bytes)) => Ok(Snapshot { meta, bytes }),
                Err(e) if sys::is_denied(&e) => self
                    .fs
                    .lstat(path)
                    .map(|meta| Snapshot { meta, bytes: None }),
                Err(e) => Err(e),
            }
        })
    }

    /// Which file the lock is, looked up cheaply (`identify` may answer
    /// from an attribute cache). When it is not `expected`, it looks again
    /// through open(2), which NFS revalidates (close-to-open): a stale cache
    /// must never make us give up, or leave behind, a lock that is ours.
    /// Only the identity of the answer is fresh.
    pub(super) fn lock_meta(
        &self,
        expected: &Meta,
        phase: Phase,
    ) -> Result<io::Result<Meta>, Error> {
        let quick = self.retrying("lstat", &self.lock.path, phase, || {
            self.fs.identify(&self.lock.path)
        })?;
        if matches!(&quick, Ok(l) if l.same_file(expected)) {
            return Ok(quick);
        }
        Ok(self.snapshot(&self.lock.path, phase)?.map(|s| s.meta))
    }
}

impl Ctx<'_> {
    pub(super) fn dir_exists(&self) -> bool {
        matches!(self.fs.lstat(&self.lock.dir), Ok(m) if m.kind == Kind::Dir)
    }

    /// 66 unless the lock's directory is there.
    pub(super) fn need_dir(&self) -> Result<(), Error> {
        match self.dir_exists() {
            true => Ok(()),
            false => Err(Error::NoDir {
                dir: self.lock.dir.clone(),
            }),
        }
    }

    /// Maps a persistent error about the lock's directory to its variant:
    /// a missing directory (66); what stops a create or link there (73);
    /// permission to read or move a file (77); a read-only or full
    /// filesystem or a name too long elsewhere (73); the rest (74).
    pub(super) fn dir_error(&self, op: &'static str, path: &Path, e: io::Error) -> Error {
        if sys::is_not_found(&e) || sys::is_not_dir(&e) {
            if let Err(no_dir) = self.need_dir() {
                return no_dir;
            }
        }
        let path = path.to_path_buf();
        if matches!(op, "create" | "link") && sys::is_cant_create(&e) {
            Error::CannotCreate { path, source: e }
        } else if sys::is_denied(&e) {
            Error::Denied {
                op,
                path,
                source: e,
            }
        } else if sys::is_cant_create(&e) {
            Error::Unwritable {
                op,
                path,
                source: e,
            }
        } else {
            Error::Io {
                op,
                path,
                source: e,
            }
        }
    }
}

impl Ctx<'_> {
    /// The names in the lock's directory (one listing), retrying transient
    /// errors, and ENOENT for a directory that is there: the client's view
    /// lags (seen on the NFS lab's client while others create beside).
    pub(super) fn list_dir(&self) -> Result<Vec<std::ffi::OsString>, Error> {
        let dir = &self.lock.dir;
        let mut budget = IoBudget::new(self);
        loop {
            match self.retrying("list", dir, Phase::Work, || self.fs.list(dir))? {
                Ok(n) => return Ok(n),
                Err(e) if sys::is_not_found(&e) && self.dir_exists() => {
                    budget.pause(self, "list", dir, e, Phase::Work)?
                }
                Err(e) => return Err(self.dir_error("list", dir, e)),
            }
        }
    }
}
