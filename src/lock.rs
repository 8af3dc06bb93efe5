//! The library's front door: [`Lock`], a lock at a path on the real
//! filesystem, taken for the calling process and held by a [`Guard`] that
//! releases it when dropped. Everything else of the crate is the `nfslock`
//! command's.

use crate::anchored::AnchoredFs;
use crate::error::Error;
use crate::info::LockInfo;
use crate::names::{BadLockPath, LockPath, MAX_LOCK_NAME};
use crate::protocol::{self, AcquireOptions, BreakOptions, BreakOutcome, Ctx, Event, Held, Owner};
use crate::sysenv::SysEnv;
use std::path::Path;
use std::time::Duration;

/// A lock file at a path: on NFS, on any other shared filesystem, or on
/// local disk. Cheap to make; it touches nothing until asked.
pub struct Lock {
    path: LockPath,
    env: SysEnv,
    io_timeout: Duration,
    fs: AnchoredFs,
}

/// How [`Lock::acquire`] takes the lock.
#[derive(Clone, Debug, Default)]
pub struct LockOptions {
    /// How long to wait for a holder: `None` waits for ever,
    /// `Some(Duration::ZERO)` not at all.
    pub wait: Option<Duration>,
    /// Others may break the lock once it has not been refreshed
    /// ([`Guard::touch`]) for this long. `None`: only a dead owner on this
    /// host, or an age rule of the breaker's, makes it stale.
    pub lease: Option<Duration>,
    /// Also break a lock without a lease, held from elsewhere, once it is
    /// older than this (never a live lease or a live owner here).
    pub stale_after: Option<Duration>,
}

impl Lock {
    /// The lock at `path` (its directory must exist when it is used).
    /// Fails only for a path that names no file, ends in '/', or has a name
    /// too long to leave room for the lock's claim files.
    pub fn new(path: impl AsRef<Path>) -> Result<Lock, Error> {
        let path = lock_path(path.as_ref())?;
        Ok(Lock {
            fs: AnchoredFs::where_remote(&path.dir),
            path,
            env: SysEnv::new(),
            io_timeout: Duration::from_secs(30),
        })
    }

    /// How long a transient I/O error may persist before an operation gives
    /// up with [`Error::Io`] (30 s unless set).
    pub fn with_io_timeout(mut self, timeout: Duration) -> Lock {
        self.io_timeout = timeout;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path.path
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx::new(&self.fs, &self.env, &self.path, self.io_timeout)
    }

    /// Takes the lock for this process, waiting as `opts` says. Busy at the
    /// end of the wait is [`Error::Busy`]; holding it already,
    /// [`Error::AlreadyHeld`].
    pub fn acquire(&self, opts: &LockOptions) -> Result<Guard<'_>, Error> {
        let ctx = self.ctx();
        let me = Owner::of_pid(&self.env, std::process::id())
            .ok_or_else(|| Error::Internal("this process is not in the process table".into()))?;
        let mut o = AcquireOptions::new(me);
        o.wait = opts.wait;
        o.lease = opts.lease;
        o.stale_after = opts.stale_after;
        let held = protocol::acquire(&ctx, &o)?;
        Ok(Guard::new(ctx, held))
    }

    /// Takes the lock if it is free (or stale) now, without waiting.
    pub fn try_acquire(&self) -> Result<Guard<'_>, Error> {
        let opts = LockOptions {
            wait: Some(Duration::ZERO),
            ..LockOptions::default()
        };
        self.acquire(&opts)
    }

    /// Who holds the lock, for how long, and whether it is stale; `None`
    /// when it is free. Ages are in file-system time.
    pub fn status(&self) -> Result<Option<LockInfo>, Error> {
        self.ctx().inspect(None)
    }

    /// Breaks the lock if it is stale (or `force`), removing exactly the
    /// instance judged, never a lock taken meanwhile, never a file that is
    /// not a lock; removes leftovers of dead processes too.
    pub fn break_stale(&self, opts: BreakOptions) -> Result<BreakOutcome, Error> {
        protocol::break_lock(&self.ctx(), opts)
    }
}

/// A held lock. Dropping it releases the lock (an error then is reported
/// on stderr); [`Guard::release`] releases it and says whether it was
/// still ours.
pub struct Guard<'a> {
    ctx: Ctx<'a>,
    held: Option<Held>,
}

impl<'a> Guard<'a> {
    /// Holds `held` for the length of a scope.
    pub(crate) fn new(ctx: Ctx<'a>, held: Held) -> Guard<'a> {
        Guard {
            ctx,
            held: Some(held),
        }
    }

    /// The lock's token: `nfslock release --token` releases it from
    /// another process.
    pub fn token(&self) -> &str {
        self.held().token()
    }

    fn held(&self) -> &Held {
        self.held.as_ref().expect("held until released")
    }

    /// Refreshes the lock's lease. [`Error::NotOwner`] means it was broken
    /// and is no longer ours: stop what the lock protects.
    pub fn touch(&self) -> Result<(), Error> {
        self.held().touch(&self.ctx).map(drop)
    }

    /// Releases the lock; [`Error::NotOwner`] if it had been broken.
    pub fn release(mut self) -> Result<(), Error> {
        let held = self.held.take().expect("held until released");
        held.release(&self.ctx)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            if let Err(error) = held.release(&self.ctx) {
                self.ctx.env.event(Event::ReleaseFailed { error: &error });
            }
        }
    }
}

/// The lock at `p`, or the error a person is shown for a path that cannot
/// be one (64, or 73 for a name too long).
pub(crate) fn lock_path(p: &Path) -> Result<LockPath, Error> {
    LockPath::new(p).map_err(|e| match e {
        BadLockPath::NoFileName => {
            Error::Usage(format!("{}: names no file to use as a lock", p.display()))
        }
        BadLockPath::TrailingSlash => Error::Usage(format!(
            "{}: a lock is a file; name it without the trailing '/'",
            p.display()
        )),
        BadLockPath::TooLong { len } => Error::NameTooLong {
            path: p.to_path_buf(),
            len,
            max: MAX_LOCK_NAME,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_in(dir: &tempfile::TempDir) -> Lock {
        Lock::new(dir.path().join("job.lock")).unwrap()
    }

    #[test]
    fn a_guard_releases_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(&dir);
        {
            let _guard = lock.try_acquire().unwrap();
            assert!(lock.status().unwrap().is_some());
        }
        assert!(lock.status().unwrap().is_none());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_held_lock_is_not_taken_twice_nor_broken_while_alive() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(&dir);
        let guard = lock.try_acquire().unwrap();
        let again = Lock::new(lock.path()).unwrap();
        assert!(matches!(
            again.try_acquire(),
            Err(Error::AlreadyHeld { .. })
        ));
        let refused = again.break_stale(BreakOptions::default()).unwrap();
        assert!(
            matches!(refused, BreakOutcome::Refused { .. }),
            "{refused:?}"
        );
        guard.touch().unwrap();
        assert_eq!(guard.token().len(), 16);
        guard.release().unwrap();
    }

    #[test]
    fn a_broken_lock_is_not_ours_at_release() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(&dir);
        let guard = lock.try_acquire().unwrap();
        let forced = BreakOptions {
            force: true,
            ..BreakOptions::default()
        };
        let broken = lock.break_stale(forced).unwrap();
        assert!(matches!(broken, BreakOutcome::Broken { .. }), "{broken:?}");
        assert!(matches!(guard.touch(), Err(Error::NotOwner { .. })));
        assert!(matches!(guard.release(), Err(Error::NotOwner { .. })));
    }

    #[test]
    fn a_path_that_cannot_be_a_lock_is_refused() {
        assert!(matches!(Lock::new("/tmp/locks/"), Err(Error::Usage(_))));
        let long = format!("/tmp/{}", "x".repeat(300));
        assert!(matches!(Lock::new(long), Err(Error::NameTooLong { .. })));
    }
}
