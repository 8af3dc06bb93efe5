//! The NFS-safe lock protocol: acquire, release, touch, break and inspect.
//!
//! # Guarantees
//!
//! - **I1 Mutual exclusion.** A contender writes a claim with a unique name
//!   and links it to the lock name; it holds the lock only when the claim and
//!   the lock are the same inode and the claim has two links. The return code
//!   of link(2) is never trusted: NFS can lose the reply of a link that was
//!   made, and report EEXIST for it on retransmission. A second holder can
//!   only appear after an explicit break, and the first finds out at its next
//!   touch or release.
//! - **I2 Own-only release.** Release checks the record (token, owner) and
//!   then renames the lock to a private name and checks that what it moved is
//!   still the file it read; if not, it links it back. Touch sets the mtime
//!   through our own claim name, which is our inode even if the lock was
//!   replaced, and checks afterwards that the lock is still that inode.
//! - **I3 Precise break.** A breaker pins the judged inode with an extra link
//!   and checks through the pin that inode, mtime and content are the ones it
//!   judged; only then does it remove the lock name, the same way release
//!   does. A lock re-taken in between survives. Where the pin is refused
//!   (protected hardlinks), the removal's own check carries the guarantee.
//!   Only a lock is ever removed: data at the lock path, never.
//! - **I4 No phantom locks.** After every error the real state is looked at
//!   (lstat of claim and lock) before anything else is decided, so a link or
//!   rename that took effect is known to have taken effect.
//! - **I5 No litter.** Claims, guards and private names are removed on every
//!   exit path; leftovers of killed processes carry recognisable names and are
//!   swept by contended acquires and by `break`.
//! - **I6 Skew immunity.** Ages are file-system time minus file-system time;
//!   see [`crate::stale`].
//! - **I7 Honest liveness.** See [`crate::stale::liveness`]; a record is
//!   believed only from the uid that owns its file ([`record::trusted`]).
//! - **I8 Age rules yield.** `--stale-after` and `--older-than` never break
//!   a valid lease or a provably alive owner ([`stale::age_limit`]).
//! - **I9 Paced retries.** Persistent errors end an operation with their
//!   exit code; nothing is retried without a pause, nor past `--io-timeout`
//!   or the caller's deadline (`IoBudget`, `Attempts::pace`).
//! - **I10 Our names only.** Tokens and nonces are fresh OS randomness; a
//!   name that is taken is never used as ours (`Ctx::create_aux`).
//!
//! # Residual windows
//!
//! Removing a name only if it still names a given inode is not one POSIX
//! call. If a lock is replaced in the one round trip between a remover's
//! check and its rename, the remover moves the new lock aside and links it
//! back at once; if a third party links a lock in that instant, the restore
//! fails, the displaced holder is told at its next check, and the remover
//! reports it. Without a lease, a lock held from another host (or another
//! boot or pid namespace) is never broken automatically.

use crate::error::Error;
use crate::fs::{FsTime, Kind, LockFs, Meta};
use crate::names::{AuxKind, LockPath};
use crate::record::{self, Content, Record, READ_LIMIT};
use crate::stale::{self, Clocks, Liveness, StaleReason, Verdict};
use crate::sys::{self, Identity, ProcState};
use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long an attribute cache may keep a claim's link count from before
/// the link (NFS acregmin is 3 s by default).
pub const STALE_ATTR_PATIENCE: Duration = Duration::from_secs(5);

/// Leftover guard, removal and probe files older than this (in file-system
/// time) belong to a process that died mid-operation.
pub const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// Everything the protocol needs from its surroundings besides the
/// filesystem: identity, process table, clocks, sleeping, randomness, and a
/// place to report what it does. The simulator provides its own.
pub trait Env {
    fn identity(&self) -> &Identity;
    /// The pid of the process doing the work (named in its temporary files).
    fn pid(&self) -> u32;
    fn process(&self, pid: u32) -> ProcState;
    /// Whether there is certainly no process `pid` here: a cheaper
    /// question than [`Env::process`], for sifting many names at once.
    fn pid_gone(&self, pid: u32) -> bool {
        self.process(pid) == ProcState::Gone
    }
    /// A monotonic clock, for waits and timeouts only, never for ages.
    fn monotonic(&self) -> Duration;
    /// The local wall clock: only for the informational `acquired_at`.
    fn wall_clock(&self) -> SystemTime;
    /// Sleeps up to `d`; returns the signal if one arrived meanwhile.
    fn sleep(&self, d: Duration) -> Option<i32>;
    /// Like [`Env::sleep`], but may wake early when the lock may have
    /// changed hands (where the filesystem reports such events, i.e. local
    /// ones). `claim`, the caller's own, places it among other waiters.
    /// Waking early is always allowed; so is sleeping the whole time.
    fn sleep_until_change(&self, lock: &LockPath, claim: &Path, d: Duration) -> Option<i32> {
        let _ = (lock, claim);
        self.sleep(d)
    }
    /// A signal that asked us to stop, if any arrived (sticky).
    fn interrupted(&self) -> Option<i32>;
    /// Cheap randomness, for jitter only.
    fn random(&self) -> u64;
    /// Randomness nobody can predict (the operating system's source), one
    /// draw per token or nonce: the names of our private files must not be
    /// computable from a claim name another user can see.
    fn token(&self) -> u64;
    /// A name of `uid` for messages.
    fn user_name(&self, uid: u32) -> String {
        sys::user_name(uid)
    }
    fn event(&self, event: Event<'_>);
    /// Test-only: the deliberately broken variant to run, so the simulator
    /// can show it catches each of them.
    #[cfg(test)]
    fn mutant(&self) -> crate::sim::Mutant {
        crate::sim::Mutant::None
    }
}

/// Is the test-only broken variant `m` switched on?
#[cfg(test)]
fn mutant(env: &dyn Env, m: crate::sim::Mutant) -> bool {
    env.mutant() == m
}
#[cfg(not(test))]
fn mutant(_: &dyn Env, _: Mutant) -> bool {
    false
}

/// Stands in for `crate::sim::Mutant` outside tests, where no variant
/// exists and every check above is a constant `false`.
#[cfg(not(test))]
#[derive(Clone, Copy)]
enum Mutant {
    TrustLinkReturn,
    BlindRelease,
    BreakWithoutReverify,
    ClientClockAges,
}
#[cfg(test)]
use crate::sim::Mutant;

/// What the protocol tells its caller as it goes (for `-v`).
#[derive(Debug)]
pub enum Event<'a> {
    Waiting {
        info: &'a LockInfo,
    },
    /// Another party's stale lock was broken (said unless `-q`).
    Broke {
        path: &'a Path,
        info: &'a LockInfo,
        reason: &'a StaleReason,
    },
    BreakRaceLost,
    Retrying {
        op: &'static str,
        path: &'a Path,
        error: &'a io::Error,
    },
    Displaced {
        path: &'a Path,
    },
    Swept {
        path: &'a Path,
    },
    ReleaseFailed {
        error: &'a Error,
    },
}

/// The owner a lock is taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: Option<u64>,
}

impl Owner {
    /// The process `pid` as it is now; `None` if it does not exist.
    pub fn of_pid(env: &dyn Env, pid: u32) -> Option<Owner> {
        match env.process(pid) {
            ProcState::Running { start } => Some(Owner {
                pid,
                start: Some(start),
            }),
            ProcState::Gone => None,
            ProcState::Unknown => Some(Owner { pid, start: None }),
        }
    }
}

/// How `release` and `touch` recognise their own lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// The owner process on this host (boot and pid namespace included).
    Owner(Owner),
    /// The token printed by `acquire --print-token`.
    Token(String),
}

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
    pub snapshot: Snapshot,
    /// `None` when something other than a regular file is at the lock path,
    /// or a file we may not read.
    pub content: Option<Content>,
    pub liveness: Liveness,
    pub verdict: Verdict,
    pub now: Option<FsTime>,
}

impl LockInfo {
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

/// Options of [`acquire`].
#[derive(Clone, Debug)]
pub struct AcquireOptions {
    /// `None`: wait forever; `Some(ZERO)`: do not wait.
    pub wait: Option<Duration>,
    pub lease: Option<Duration>,
    pub stale_after: Option<Duration>,
    pub poll_min: Duration,
    pub poll_max: Duration,
    pub owner: Owner,
    /// Sync the claim to stable storage before linking it; `None`: where
    /// the filesystem is remote.
    pub durable: Option<bool>,
    pub cmd: Option<String>,
    /// Refresh the claim's mtime before a link attempt once it is older
    /// than this, so that a lock is never born old.
    pub refresh_claim_after: Duration,
    /// Wait for events instead of polling, with a slow poll as a fallback;
    /// `None`: where the filesystem reports changes (a local one).
    pub watch: Option<bool>,
}

impl AcquireOptions {
    pub fn new(owner: Owner) -> AcquireOptions {
        AcquireOptions {
            wait: None,
            lease: None,
            stale_after: None,
            poll_min: Duration::from_millis(20),
            poll_max: Duration::from_secs(1),
            owner,
            durable: None,
            cmd: None,
            refresh_claim_after: Duration::from_secs(1),
            watch: None,
        }
    }
}

/// A held lock: the claim that proves it is ours.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub claim: PathBuf,
    pub claim_meta: Meta,
    pub record: Record,
    pub bytes: Vec<u8>,
}

impl Held {
    pub fn token(&self) -> &str {
        &self.record.token
    }
}

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

/// Tracks how long transient errors have persisted: from the start of the
/// first attempt that failed (a call that hung for a while counts), until
/// `--io-timeout` or the caller's deadline, whichever comes first.
struct IoBudget {
    since: Duration,
    pause: Duration,
}

impl IoBudget {
    fn new(ctx: &Ctx) -> IoBudget {
        IoBudget {
            since: ctx.env.monotonic(),
            pause: Duration::from_millis(10),
        }
    }

    /// After a transient error: waits a little and returns Ok to retry, or
    /// the error once it has persisted past the timeout or the deadline.
    /// `interruptible` is false on clean-up paths, which must finish.
    fn pause(
        &mut self,
        ctx: &Ctx,
        op: &'static str,
        path: &Path,
        error: io::Error,
        interruptible: bool,
    ) -> Result<(), Error> {
        let now = ctx.env.monotonic();
        let give_up = |at: Duration| now >= at;
        if give_up(self.since + ctx.io_timeout)
            || (interruptible && ctx.deadline.is_some_and(give_up))
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
        if let Some(d) = ctx.deadline.filter(|_| interruptible) {
            nap = nap.min(d.saturating_sub(now));
        }
        let sig = ctx.env.sleep(nap);
        self.pause = (self.pause * 2).min(Duration::from_secs(1));
        match sig {
            Some(signal) if interruptible => Err(Error::Interrupted { signal }),
            _ => Ok(()),
        }
    }

    fn ok(&mut self, ctx: &Ctx) {
        self.since = ctx.env.monotonic();
        self.pause = Duration::from_millis(10);
    }
}

/// Exponential backoff with jitter between polls of a busy lock.
struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.min(max);
        Backoff { min, max, cur: min }
    }

    fn reset(&mut self) {
        self.cur = self.min;
    }

    fn next(&mut self, env: &dyn Env) -> Duration {
        // Jitter between half and all of the step keeps contenders from
        // polling in lock step.
        let frac = 0.5 + (env.random() % 1000) as f64 / 2000.0;
        let d = self.cur.mul_f64(frac);
        self.cur = (self.cur * 2).min(self.max);
        d
    }
}

fn hex_token(env: &dyn Env) -> String {
    format!("{:016x}", env.token())
}

/// How many taken names [`Ctx::create_aux`] tries before it gives up.
const NAME_TRIES: usize = 8;

impl<'a> Ctx<'a> {
    /// A fresh name of `kind` for this process (one nobody can predict).
    fn my_aux(&self, kind: AuxKind) -> PathBuf {
        let host = &self.env.identity().host;
        let name = self
            .lock
            .aux_name(kind, &hex_token(self.env), self.env.pid(), host);
        self.lock.in_dir(&name)
    }

    /// Creates a file of ours of `kind` beside the lock, under a fresh name
    /// whose nonce `content` may embed. A name that is taken is never used:
    /// it is our own create whose reply was lost (then it is removed) or a
    /// file someone else put there (then it is left alone), and another
    /// name is drawn.
    fn create_aux(
        &self,
        kind: AuxKind,
        content: &dyn Fn(&str, &std::ffi::OsStr) -> Vec<u8>,
        durable: Option<bool>,
        interruptible: bool,
    ) -> Result<Created, Error> {
        let host = self.env.identity().host.clone();
        for _ in 0..NAME_TRIES {
            let nonce = hex_token(self.env);
            let name = self.lock.aux_name(kind, &nonce, self.env.pid(), &host);
            let path = self.lock.in_dir(&name);
            let data = content(&nonce, &name);
            let mut budget = IoBudget::new(self);
            loop {
                match self.fs.create_exclusive(&path, &data, durable) {
                    Ok(meta) => {
                        return Ok(Created {
                            path,
                            nonce,
                            data,
                            meta,
                        })
                    }
                    Err(e) if sys::is_exists(&e) => {
                        self.remove_if_ours(&path, data.len(), interruptible)?;
                        break;
                    }
                    Err(e) if sys::is_transient(&e) => {
                        budget.pause(self, "create", &path, e, interruptible)?
                    }
                    // ENOENT for a new name in a directory that is there:
                    // the client's view lags (seen on the NFS lab); retry.
                    Err(e) if sys::is_not_found(&e) && self.dir_exists() => {
                        budget.pause(self, "create", &path, e, interruptible)?
                    }
                    Err(e) => return Err(self.dir_error("create", &path, e)),
                }
            }
        }
        Err(Error::Io {
            op: "create",
            path: self.lock.path.clone(),
            source: io::Error::other("every fresh name tried beside the lock was taken"),
        })
    }

    /// After EEXIST on a create of a fresh random name: removes what is
    /// there if it can only be our own create (a plain file of our uid, one
    /// link, empty or the size we wrote: a create whose reply was lost
    /// never got to write); anything else stays where it is.
    fn remove_if_ours(&self, path: &Path, len: usize, interruptible: bool) -> Result<(), Error> {
        let uid = self.env.identity().uid;
        if let Ok(m) = self.persist("lstat", path, interruptible, || self.fs.lstat(path))? {
            let size_ok = m.size == 0 || m.size == len as u64;
            if m.kind == Kind::File && m.uid == uid && m.nlink == 1 && size_ok {
                self.remove_quietly(path)?;
            }
        }
        Ok(())
    }

    /// Runs a read-only operation, retrying transient errors.
    fn persist<T>(
        &self,
        op: &'static str,
        path: &Path,
        interruptible: bool,
        mut f: impl FnMut() -> io::Result<T>,
    ) -> Result<io::Result<T>, Error> {
        let mut budget = IoBudget::new(self);
        loop {
            match f() {
                Err(e) if sys::is_transient(&e) => {
                    budget.pause(self, op, path, e, interruptible)?
                }
                other => return Ok(other),
            }
        }
    }

    /// Reads the lock (or another file) as a snapshot. A file we may not
    /// read is a snapshot without bytes: it can be described and waited
    /// for, never judged or removed.
    fn snapshot(&self, path: &Path, interruptible: bool) -> Result<io::Result<Snapshot>, Error> {
        self.persist("read", path, interruptible, || {
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

    /// The lock's attributes, looked up cheaply (lstat may answer from an
    /// attribute cache). When they do not show `expected`, it looks again
    /// through open(2), which NFS revalidates (close-to-open): a stale cache
    /// must never make us give up, or leave behind, a lock that is ours.
    fn lock_meta(&self, expected: &Meta, interruptible: bool) -> Result<io::Result<Meta>, Error> {
        let quick = self.persist("lstat", &self.lock.path, interruptible, || {
            self.fs.lstat(&self.lock.path)
        })?;
        if matches!(&quick, Ok(l) if l.same_file(expected)) {
            return Ok(quick);
        }
        Ok(self
            .snapshot(&self.lock.path, interruptible)?
            .map(|s| s.meta))
    }

    /// Unlinks a file of ours, treating "already gone" as done (a lost reply
    /// to an unlink that worked looks exactly like that).
    fn remove_quietly(&self, path: &Path) -> Result<(), Error> {
        let mut budget = IoBudget::new(self);
        loop {
            match self.fs.unlink(path) {
                Ok(()) => return Ok(()),
                Err(e) if sys::is_not_found(&e) => return Ok(()),
                Err(e) if sys::is_transient(&e) => budget.pause(self, "unlink", path, e, false)?,
                Err(e) => {
                    return Err(Error::Io {
                        op: "unlink",
                        path: path.to_path_buf(),
                        source: e,
                    })
                }
            }
        }
    }

    fn dir_exists(&self) -> bool {
        matches!(self.fs.lstat(&self.lock.dir), Ok(m) if m.kind == Kind::Dir)
    }

    /// 66 unless the lock's directory is there.
    fn need_dir(&self) -> Result<(), Error> {
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
    fn dir_error(&self, op: &'static str, path: &Path, e: io::Error) -> Error {
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

    /// File-system "now": the mtime of a probe file we create and remove.
    /// `None` if we may not create files here.
    pub fn fs_now(&self) -> Result<Option<FsTime>, Error> {
        match self.create_aux(AuxKind::Probe, &|_, _| Vec::new(), Some(false), true) {
            Ok(probe) => {
                self.remove_quietly(&probe.path)?;
                Ok(Some(probe.meta.mtime))
            }
            Err(Error::CannotCreate { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Builds what we know about a lock from a snapshot.
    pub fn judge(
        &self,
        snap: Snapshot,
        now: Option<FsTime>,
        watched: Duration,
        stale_after: Option<Duration>,
    ) -> LockInfo {
        let now = if mutant(self.env, Mutant::ClientClockAges) {
            let wall = self.env.wall_clock().duration_since(SystemTime::UNIX_EPOCH);
            wall.ok().map(|d| FsTime(d.as_nanos() as i128))
        } else {
            now
        };
        // I7 and the record's trust: believed only from the uid it names.
        let content = snap
            .bytes
            .as_deref()
            .map(|b| record::trusted(b, snap.meta.uid));
        let liveness = match &content {
            Some(Content::Ours(r)) => {
                stale::liveness(r, self.env.identity(), |pid| self.env.process(pid))
            }
            Some(Content::Foreign { .. }) => {
                Liveness::Unknown("not an nfslock record: judged by age only".into())
            }
            Some(Content::NotALock { .. }) | None => Liveness::Unknown("not a lock file".into()),
        };
        let clocks = Clocks {
            now,
            watched,
            stale_after,
        };
        let verdict = match &content {
            Some(c) => stale::judge(c, snap.meta.mtime, &liveness, clocks),
            // Not a regular file: never stale, never broken by us.
            None => Verdict {
                age: None,
                future: None,
                stale: None,
            },
        };
        LockInfo {
            snapshot: snap,
            content,
            liveness,
            verdict,
            now,
        }
    }

    /// Reads and judges the lock; `None` when it is free.
    pub fn inspect(&self, stale_after: Option<Duration>) -> Result<Option<LockInfo>, Error> {
        let now = self.fs_now()?;
        match self.snapshot(&self.lock.path, true)? {
            Ok(snap) => Ok(Some(self.judge(snap, now, Duration::ZERO, stale_after))),
            Err(e) if sys::is_not_found(&e) => self.need_dir().map(|()| None),
            Err(e) => Err(self.dir_error("read", &self.lock.path, e)),
        }
    }

    /// Removes the lock name only if it still is `expected` (same inode and
    /// bytes, and same mtime when `check_mtime`): rename it to a private
    /// name, check what was moved, put it back if it was not the one (I2,
    /// I3). `Denied` when we may not move it (another user's lock in a
    /// sticky directory): nothing was changed.
    fn remove_instance(&self, expected: &Snapshot, check_mtime: bool) -> Result<Removal, Error> {
        let mut private = self.my_aux(AuxKind::Removing);
        let same = |s: &Snapshot| {
            s.meta.same_file(&expected.meta)
                && s.bytes == expected.bytes
                && (!check_mtime || s.meta.mtime == expected.meta.mtime)
        };
        let mut budget = IoBudget::new(self);
        let mut retry = false;
        let mut names_tried = 0;
        loop {
            if retry {
                // A rename may have taken effect without our seeing it yet.
                // Never rename the lock name again unless it still holds
                // the expected instance: by now it may be the next holder's.
                if let Ok(moved) = self.snapshot(&private, false)? {
                    if same(&moved) {
                        self.remove_quietly(&private)?;
                        return Ok(Removal::Removed);
                    }
                    return self.restore(&private, moved);
                }
                match self.snapshot(&self.lock.path, false)? {
                    Ok(now) if same(&now) => {}
                    other => {
                        // The name no longer holds our instance: perhaps
                        // because our rename worked and its target is just
                        // not visible yet. Look a little longer before
                        // calling the lock lost.
                        for _ in 0..20 {
                            self.env.sleep(Duration::from_millis(50));
                            if let Ok(moved) = self.snapshot(&private, false)? {
                                if same(&moved) {
                                    self.remove_quietly(&private)?;
                                    return Ok(Removal::Removed);
                                }
                                return self.restore(&private, moved);
                            }
                        }
                        return match other {
                            Ok(_) => Ok(Removal::Changed),
                            Err(e) if sys::is_not_found(&e) => Ok(Removal::Gone),
                            Err(e) => Err(self.dir_error("read", &self.lock.path, e)),
                        };
                    }
                }
            }
            retry = true;
            let renamed = self.fs.rename(&self.lock.path, &private);
            if let Err(e) = &renamed {
                if sys::is_denied(e) {
                    // Not done: a retransmitted rename never reads EPERM.
                    // Either the fresh name is taken by another user's
                    // file (sticky directory: draw another), or the lock
                    // may not be moved by us.
                    names_tried += 1;
                    if self.fs.lstat(&private).is_ok() && names_tried < NAME_TRIES {
                        private = self.my_aux(AuxKind::Removing);
                        retry = false;
                        continue;
                    }
                    return Ok(Removal::Denied(self.why_denied(&expected.meta, None)));
                }
            }
            // Judge by what is there, not by the reply.
            match self.snapshot(&private, false)? {
                Ok(moved) if same(&moved) => {
                    self.remove_quietly(&private)?;
                    return Ok(Removal::Removed);
                }
                Ok(moved) => return self.restore(&private, moved),
                Err(e) if sys::is_not_found(&e) => match renamed {
                    Err(e) if sys::is_transient(&e) || sys::is_not_found(&e) => {
                        budget.pause(self, "rename", &self.lock.path, e, false)?
                    }
                    Err(e) => return Err(self.dir_error("rename", &self.lock.path, e)),
                    Ok(()) => budget.pause(
                        self,
                        "rename",
                        &private,
                        io::Error::other("rename succeeded but its target is missing"),
                        false,
                    )?,
                },
                Err(e) => return Err(self.dir_error("read", &private, e)),
            }
        }
    }

    /// Says why we may not remove a lock owned by `lock.uid`, and who may;
    /// `dir` is the directory's attributes when already read.
    fn why_denied(&self, lock: &Meta, dir_meta: Option<Meta>) -> String {
        let dir = self.lock.dir.display();
        let who = |uid: u32| match self.env.user_name(uid) {
            name if name == uid.to_string() => format!("uid {uid}"),
            name => format!("{name} (uid {uid})"),
        };
        match dir_meta.or_else(|| self.fs.lstat(&self.lock.dir).ok()) {
            Some(d) if d.is_sticky() => {
                let dir_owner = match d.uid {
                    0 => String::new(),
                    uid => format!(", the directory's owner {}", who(uid)),
                };
                format!(
                    "{dir} is a sticky directory: only the lock's owner {}{dir_owner} or root may remove it",
                    who(lock.uid)
                )
            }
            _ => format!(
                "this user may not rename or remove files in {dir} (the lock belongs to {})",
                who(lock.uid)
            ),
        }
    }

    /// Puts a lock we moved by mistake back under the lock name, never over
    /// another lock: by link(2), or where that is refused (protected
    /// hardlinks, another user's file) by a rename that does not replace.
    fn restore(&self, private: &Path, moved: Snapshot) -> Result<Removal, Error> {
        let mut budget = IoBudget::new(self);
        loop {
            let mut linked = self.fs.hard_link(private, &self.lock.path);
            if matches!(&linked, Err(e) if sys::is_denied(e)) {
                linked = match self.fs.rename_noreplace(private, &self.lock.path) {
                    // Back, and the private name went with it.
                    Ok(()) => return Ok(Removal::Changed),
                    Err(e) if sys::is_exists(&e) => Err(e),
                    Err(_) => {
                        // No way to put it back without risking another
                        // lock: its holder will find it lost (the window).
                        self.env.event(Event::Displaced {
                            path: &self.lock.path,
                        });
                        self.remove_quietly(private)?;
                        return Ok(Removal::Displaced);
                    }
                };
            }
            if linked.is_ok() {
                // It is back. Whatever happens to it from now on (its owner
                // may release it at once) is its owner's business: never
                // link it again.
                self.remove_quietly(private)?;
                return Ok(Removal::Changed);
            }
            match self.lock_meta(&moved.meta, false)? {
                Ok(now) if now.same_file(&moved.meta) => {
                    // Our link took; its reply was lost.
                    self.remove_quietly(private)?;
                    return Ok(Removal::Changed);
                }
                Ok(_) => {
                    // Someone took the name while it was empty: the holder
                    // we moved has lost its lock and will be told at its
                    // next check. Keeping its file would only be litter.
                    self.env.event(Event::Displaced {
                        path: &self.lock.path,
                    });
                    self.remove_quietly(private)?;
                    return Ok(Removal::Displaced);
                }
                Err(e) if sys::is_not_found(&e) => {
                    // Our link failed, or it took and the owner has released
                    // the lock since. Only a holder that still has its claim
                    // (a second link to the inode) wants it back.
                    let wanted = match self.snapshot(private, false)? {
                        Ok(p) => p.meta.same_file(&moved.meta) && p.meta.nlink >= 2,
                        Err(_) => false,
                    };
                    if !wanted {
                        self.remove_quietly(private)?;
                        return Ok(Removal::Changed);
                    }
                    let error = linked
                        .err()
                        .unwrap_or_else(|| io::Error::other("link failed"));
                    budget.pause(self, "link", &self.lock.path, error, false)?
                }
                Err(e) => return Err(self.dir_error("lstat", &self.lock.path, e)),
            }
        }
    }

    /// Breaks exactly the judged instance (I3): pin it with a guard link,
    /// verify it through the pin, remove the lock name, and remove the
    /// holder's claim if it is that inode. A judgement of age is void if the
    /// lock was refreshed meanwhile; `force` breaks the instance regardless.
    /// Only a lock is ever broken, never data at the lock path.
    pub fn break_instance(&self, judged: &LockInfo, force: bool) -> Result<Removal, Error> {
        let expected = &judged.snapshot;
        match &judged.content {
            Some(c) if c.is_lock() => {}
            _ => {
                return Err(Error::NotALock {
                    path: self.lock.path.clone(),
                    what: judged.describe(),
                })
            }
        }
        if mutant(self.env, Mutant::BreakWithoutReverify) {
            let _ = self.fs.unlink(&self.lock.path);
            if let Some(rec) = judged.record() {
                let _ = self.remove_claim_of(rec, &expected.meta);
            }
            return Ok(Removal::Removed);
        }
        // In a sticky directory only root, the directory's owner and the
        // lock's owner may remove it: say so before leaving a pin behind
        // that we could not remove either.
        let me = self.env.identity().uid;
        if expected.meta.uid != me && me != 0 {
            if let Ok(d) = self.fs.lstat(&self.lock.dir) {
                if d.is_sticky() && d.uid != me {
                    return Ok(Removal::Denied(self.why_denied(&expected.meta, Some(d))));
                }
            }
        }
        let guard = self.my_aux(AuxKind::Guard);
        let linked = match self.fs.hard_link(&self.lock.path, &guard) {
            // protected_hardlinks: no pin of another user's file we may not
            // write. The removal alone still keeps I3: it checks what it
            // moved (inode, content, and the mtime unless forced) and puts
            // anything else back.
            Err(e) if sys::is_denied(&e) => {
                let r = self.remove_instance(expected, !force)?;
                if let (Removal::Removed, Some(rec)) = (&r, judged.record()) {
                    let _ = self.remove_claim_of(rec, &expected.meta);
                }
                return Ok(r);
            }
            Err(e) if sys::is_persistent(&e) => return Err(self.dir_error("link", &guard, e)),
            other => other.is_ok(),
        };
        let pinned = match self.snapshot(&guard, false)? {
            Ok(p) => p,
            Err(e) if sys::is_not_found(&e) => {
                // No pin: the lock vanished, or link failed. Look again.
                return match self.fs.lstat(&self.lock.path) {
                    Err(e) if sys::is_not_found(&e) => Ok(Removal::Gone),
                    _ => Ok(Removal::Changed),
                };
            }
            Err(e) => return Err(self.dir_error("read", &guard, e)),
        };
        // After EEXIST (our own link, its reply lost, whatever the lock
        // has become since) the name is ours if it holds a lock record: a
        // file someone put there under our fresh random name stays.
        let ours = linked
            || matches!(
                pinned
                    .bytes
                    .as_deref()
                    .map(|b| record::trusted(b, pinned.meta.uid)),
                Some(Content::Ours(_))
            );
        let unchanged = pinned.meta.same_file(&expected.meta)
            && pinned.bytes == expected.bytes
            && (force || pinned.meta.mtime == expected.meta.mtime);
        let result = if unchanged {
            let r = self.remove_instance(expected, !force);
            if let (Ok(Removal::Removed), Some(rec)) = (&r, judged.record()) {
                // Best effort: the guard must go whatever happens here.
                let _ = self.remove_claim_of(rec, &pinned.meta);
            }
            r
        } else {
            Ok(Removal::Changed)
        };
        if ours {
            self.remove_quietly(&guard)?;
        }
        result
    }

    /// Removes the claim named in `rec` if it is the inode `meta`.
    fn remove_claim_of(&self, rec: &Record, meta: &Meta) -> Result<(), Error> {
        if self.lock.parse_aux(&rec.claim).map(|a| a.kind) != Some(AuxKind::Claim) {
            return Ok(());
        }
        let claim = self.lock.in_dir(&rec.claim);
        if let Ok(Ok(m)) = self.persist("lstat", &claim, false, || self.fs.lstat(&claim)) {
            // Its owner may have linked the same claim again meanwhile (its
            // first link's reply was lost, then it saw no lock): then the
            // claim is a live lock's and must stay.
            let relinked = match self.lock_meta(meta, false)? {
                Ok(l) => l.same_file(meta),
                Err(e) => !sys::is_not_found(&e),
            };
            if m.same_file(meta) && !relinked {
                self.remove_quietly(&claim)?;
            }
        }
        Ok(())
    }

    /// Removes leftovers of processes that died mid-operation (I5): claims
    /// of provably dead owners; claims that are no lock, made on this
    /// machine by a process that is gone (a waiter killed while it waited);
    /// and guard, removal and probe files older than [`ORPHAN_AGE`]. Best
    /// effort. Unless `thorough`, claims are read only when they are of this
    /// host and no process has the pid their name carries (the process that
    /// made them). Only small regular files with our names go, and a record
    /// is believed only from the user it names.
    ///
    /// Everything is judged before anything is removed: unlinking one name
    /// of an inode updates its ctime, which would make a second leftover
    /// name of the same inode (a dead breaker's guard and a dead remover's
    /// private name often share one) look brand new.
    pub fn sweep(&self, now: Option<FsTime>, keep: Option<&Path>, thorough: bool) -> usize {
        let Ok(names) = self.fs.list(&self.lock.dir) else {
            return 0;
        };
        let host = &self.env.identity().host;
        let mut orphans = Vec::new();
        for name in names {
            let Some(aux) = self.lock.parse_aux(&name) else {
                continue;
            };
            let path = self.lock.in_dir(&name);
            if Some(path.as_path()) == keep {
                continue;
            }
            let ours_here = self.lock.spells_host(&aux.host, host);
            let orphan = match aux.kind {
                // A quick sweep (after a contended acquire, before the
                // holder's command runs) reads only claims that may be
                // litter: of this host, with no process of that pid.
                // Others cannot be judged here or are most likely alive,
                // and on NFS each read is three round trips. `break` reads
                // all.
                AuxKind::Claim if !thorough && (!ours_here || !self.env.pid_gone(aux.pid)) => false,
                AuxKind::Claim => self.claim_is_litter(&path, &aux, ours_here),
                AuxKind::Guard | AuxKind::Removing | AuxKind::Probe => {
                    match (now, self.fs.lstat(&path)) {
                        (Some(now), Ok(meta)) => {
                            meta.kind == Kind::File
                                && meta.size < READ_LIMIT as u64
                                && now.secs_since(meta.ctime) > ORPHAN_AGE.as_secs_f64()
                        }
                        _ => false,
                    }
                }
            };
            if orphan {
                orphans.push(path);
            }
        }
        let mut removed = 0;
        for path in orphans {
            if self.fs.unlink(&path).is_ok() {
                self.env.event(Event::Swept { path: &path });
                removed += 1;
            }
        }
        removed
    }

    /// Whether the claim at `path` is litter: its owner is provably dead,
    /// or it is no lock (one link) and the process that made it, on this
    /// machine (`here`) and in our pid namespace, is gone. A dead owner's
    /// claim can go even while it is linked elsewhere: the lock (or a
    /// private name) keeps the inode, and nobody judges a lock by its
    /// claim's name.
    fn claim_is_litter(&self, path: &Path, aux: &crate::names::AuxName, here: bool) -> bool {
        let Ok((meta, Some(bytes))) = self.fs.read(path, READ_LIMIT) else {
            return false;
        };
        let Content::Ours(rec) = record::trusted(&bytes, meta.uid) else {
            return false;
        };
        if rec.token != aux.nonce {
            return false;
        }
        let me = self.env.identity();
        let dead = matches!(
            stale::liveness(&rec, me, |p| self.env.process(p)),
            Liveness::Dead(_)
        );
        let same_system = here
            && me.complete()
            && rec.host == me.host
            && rec.boot_id == me.boot_id
            && rec.pidns == me.pidns;
        dead || (meta.nlink == 1 && same_system && self.env.pid_gone(aux.pid))
    }

    /// Finds and removes our own claims that no longer hold the lock: what a
    /// holder whose lock was broken leaves behind.
    fn remove_own_leftovers(&self, who: &Who) {
        let Ok(Ok(names)) = self.persist("list", &self.lock.dir, false, || {
            self.fs.list(&self.lock.dir)
        }) else {
            return;
        };
        let me = self.env.identity();
        let mut lock_now: Option<Result<Option<Meta>, ()>> = None;
        for name in names {
            let Some(aux) = self.lock.parse_aux(&name) else {
                continue;
            };
            // A claim's name carries the pid of the process that made it,
            // not the owner's: by owner, every claim of this host may be one.
            let plausible = aux.kind == AuxKind::Claim
                && match who {
                    Who::Token(t) => &aux.nonce == t,
                    Who::Owner(_) => self.lock.spells_host(&aux.host, &me.host),
                };
            if !plausible {
                continue;
            }
            let path = self.lock.in_dir(&name);
            let Ok(Ok((meta, Some(bytes)))) =
                self.persist("read", &path, false, || self.fs.read(&path, READ_LIMIT))
            else {
                continue;
            };
            let Content::Ours(rec) = record::trusted(&bytes, meta.uid) else {
                continue;
            };
            if rec.token != aux.nonce || !owns(&rec, who, me) {
                continue;
            }
            // Other names may link a claim too (a dead breaker's guard, a
            // dead remover's private name): only the lock itself makes it
            // worth keeping, and then it is not a leftover.
            if meta.nlink != 1 {
                // Retried and confirmed like every give-up path's look: one
                // EIO here used to leave the claim behind (seed 3000520).
                let lock = lock_now.get_or_insert_with(|| match self.lock_meta(&meta, false) {
                    Ok(Ok(m)) => Ok(Some(m)),
                    Ok(Err(e)) if sys::is_not_found(&e) => Ok(None),
                    _ => Err(()),
                });
                // Unknown, or the lock itself: keep it.
                if lock.is_err() || lock.is_ok_and(|l| l.is_some_and(|l| l.same_file(&meta))) {
                    continue;
                }
            }
            let _ = self.remove_quietly(&path);
        }
    }
}

/// A file [`Ctx::create_aux`] made.
struct Created {
    path: PathBuf,
    nonce: String,
    data: Vec<u8>,
    meta: Meta,
}

/// What a conditional removal found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The expected instance was removed.
    Removed,
    /// Nothing was at the lock path.
    Gone,
    /// Another instance was there; it was left in place (or put back).
    Changed,
    /// Another instance was moved and could not be put back.
    Displaced,
    /// We may not remove it (and did not change anything); says who may.
    Denied(String),
}

/// Does `rec` belong to `who`?
pub fn owns(rec: &Record, who: &Who, me: &Identity) -> bool {
    match who {
        Who::Token(t) => &rec.token == t,
        Who::Owner(o) => {
            rec.host == me.host
                && rec.boot_id == me.boot_id
                && rec.pidns == me.pidns
                && rec.pid == o.pid
                && rec.pid_start == o.start
        }
    }
}

/// The claim a contender holds while it tries.
struct Claim {
    path: PathBuf,
    meta: Meta,
    record: Record,
    bytes: Vec<u8>,
    /// File-system time at `made_at` on our monotonic clock: lets us
    /// estimate file-system "now" without a round trip.
    fs_base: FsTime,
    mono_base: Duration,
}

impl Claim {
    fn estimate_now(&self, env: &dyn Env) -> FsTime {
        self.fs_base
            .plus(env.monotonic().saturating_sub(self.mono_base))
    }
}

/// The state of a contender after it linked.
enum Look {
    Ours,
    Busy(Snapshot),
    /// The lock vanished between our link and our look: try again at once.
    Vanished,
    /// Our claim disappeared (swept by mistake, or deleted by hand).
    ClaimLost,
    /// Link counts or inodes that do not add up.
    Anomaly(String),
    /// The lock is a copy of our claim: link(2) copies on this filesystem.
    Copied(Snapshot),
}

/// Takes the lock, waiting as `opts` says. On any error, no claim is left
/// behind and the lock is not held.
pub fn acquire(ctx: &Ctx, opts: &AcquireOptions) -> Result<Held, Error> {
    let mut claim: Option<Claim> = None;
    let result = acquire_loop(ctx, opts, &mut claim);
    if result.is_err() {
        if let Some(c) = claim {
            abandon(ctx, &c);
        }
    }
    result
}

/// Gives a claim up on an error path, releasing the lock first if the claim
/// turns out to hold it (a link whose success we had not seen yet).
fn abandon(ctx: &Ctx, c: &Claim) {
    if mutant(ctx.env, Mutant::TrustLinkReturn) {
        let _ = ctx.remove_quietly(&c.path);
        return;
    }
    // Retry transient errors here too: giving up on this look would leave
    // a lock that nobody knows it holds.
    if let Ok(Ok(l)) = ctx.lock_meta(&c.meta, false) {
        if l.same_file(&c.meta) {
            let expected = Snapshot {
                meta: c.meta,
                bytes: Some(c.bytes.clone()),
            };
            let _ = ctx.remove_instance(&expected, false);
        }
    }
    let _ = ctx.remove_quietly(&c.path);
}

/// Writes a new claim: the record of `opts.owner`, under a fresh name that
/// carries the pid of this process (the one that waits with it, so a
/// claim whose maker is gone is recognisable as litter).
fn new_claim(ctx: &Ctx, opts: &AcquireOptions) -> Result<Claim, Error> {
    let env = ctx.env;
    let me = env.identity();
    let acquired_at = record::iso8601(env.wall_clock());
    let record_for = |token: &str, name: &std::ffi::OsStr| Record {
        host: me.host.clone(),
        boot_id: me.boot_id.clone(),
        pidns: me.pidns,
        pid: opts.owner.pid,
        pid_start: opts.owner.start,
        uid: me.uid,
        user: me.user().to_string(),
        token: token.to_string(),
        acquired_at: acquired_at.clone(),
        lease: opts.lease,
        claim: name.to_os_string(),
        cmd: opts.cmd.clone(),
    };
    let made = ctx.create_aux(
        AuxKind::Claim,
        &|token, name| record_for(token, name).encode(),
        opts.durable,
        true,
    )?;
    let name = made.path.file_name().unwrap_or_default().to_os_string();
    Ok(Claim {
        record: record_for(&made.nonce, &name),
        path: made.path,
        meta: made.meta,
        bytes: made.data,
        fs_base: made.meta.mtime,
        mono_base: env.monotonic(),
    })
}

/// Judges a link attempt by what is at the lock name. Our claim and the
/// lock are one inode when we hold it, so a single lstat of the lock shows
/// both tests: same inode as our claim, and two links. Only a busy lock
/// costs a read, for its record.
fn look(
    ctx: &Ctx,
    c: &Claim,
    linked: &io::Result<()>,
    last: Option<&Snapshot>,
) -> Result<Look, Error> {
    if matches!(linked, Err(e) if sys::is_not_found(e)) {
        // The source of the link is gone (or the directory is).
        return Ok(Look::ClaimLost);
    }
    let stat_lock = || -> Result<Option<Meta>, Error> {
        match ctx.persist("lstat", &ctx.lock.path, true, || {
            ctx.fs.lstat(&ctx.lock.path)
        })? {
            Ok(m) => Ok(Some(m)),
            Err(e) if sys::is_not_found(&e) => Ok(None),
            Err(e) => Err(ctx.dir_error("lstat", &ctx.lock.path, e)),
        }
    };
    let Some(mut lock) = stat_lock()? else {
        return Ok(Look::Vanished);
    };
    if !lock.same_file(&c.meta) {
        // Polling a lock we have read: the same attributes (inode, links,
        // size, mtime, ctime) mean the same instance, so its record is
        // known. A stale cache can only delay us here: our link's EEXIST
        // would then be our own lock, found at a later poll or by the
        // clean-up's fresh read.
        if let Some(last) = last {
            if linked.is_err() && lock == last.meta {
                return Ok(Look::Busy(last.clone()));
            }
        }
        // Busy, or a stale attribute cache: the read (open revalidates)
        // decides, and a busy lock's record is needed anyway.
        let snap = match ctx.snapshot(&ctx.lock.path, true)? {
            Ok(s) => s,
            Err(e) if sys::is_not_found(&e) => return Ok(Look::Vanished),
            Err(e) => return Err(ctx.dir_error("read", &ctx.lock.path, e)),
        };
        if !snap.meta.same_file(&c.meta) {
            if snap.bytes.as_deref() == Some(c.bytes.as_slice()) {
                return Ok(Look::Copied(snap));
            }
            if linked.is_ok() {
                return Ok(Look::Anomaly(
                    "link(2) reported success but the lock is another file".into(),
                ));
            }
            return Ok(Look::Busy(snap));
        }
        lock = snap.meta;
    }
    // The lock is our inode but shows one link: an attribute cache (NFS
    // actimeo) may still hold the count from before the link. Give it time
    // to catch up before calling the filesystem a liar.
    let patience = ctx.env.monotonic() + STALE_ATTR_PATIENCE;
    while lock.nlink < 2 && ctx.env.monotonic() < patience {
        if let Some(signal) = ctx.env.sleep(Duration::from_millis(100)) {
            return Err(Error::Interrupted { signal });
        }
        match stat_lock()? {
            Some(m) if m.same_file(&c.meta) => lock = m,
            _ => return Ok(Look::Vanished),
        }
    }
    Ok(if lock.nlink >= 2 {
        Look::Ours
    } else {
        Look::Anomaly("the lock is our claim's inode but has one link".into())
    })
}

/// What an attempt that did not take the lock asks of the next one.
enum Step {
    /// Something moved (a stale lock broken, a lock that vanished or
    /// changed): look again at once, a few times in a row at most.
    Now,
    /// Nothing to act on: back off before trying again.
    Pause,
    /// The attempt has waited already (for the holder, or out an error).
    Waited,
}

/// How many attempts in a row may follow each other without a pause.
const QUICK_TRIES: u32 = 3;

/// The state of one [`acquire`] between its attempts: the deadline, the
/// pace, and what it has seen of the lock.
struct Attempts<'a> {
    ctx: Ctx<'a>,
    opts: &'a AcquireOptions,
    deadline: Option<Duration>,
    backoff: Backoff,
    budget: IoBudget,
    quick: u32,
    contended: bool,
    announced: bool,
    anomalies: u32,
    /// The instance we are watching, and since when (monotonic).
    watch: Option<(Snapshot, Duration)>,
    /// A stale instance we may not break, and why: not tried again while
    /// it stays the same.
    refused: Option<(Snapshot, String)>,
    /// Tokens of claims we gave up on while their link may have taken.
    abandoned: Vec<String>,
    /// The last busy lock seen, for a deadline that passes between looks.
    last: Option<LockInfo>,
    /// Our first refresh was read back: touches stamp file-system time.
    touch_verified: bool,
}

fn acquire_loop(ctx: &Ctx, opts: &AcquireOptions, slot: &mut Option<Claim>) -> Result<Held, Error> {
    let start = ctx.env.monotonic();
    let deadline = opts.wait.map(|w| start + w);
    // No retry of a transient error goes past a caller's `-w` either. `-n`
    // does not wait for a holder, but a lost reply is still retried.
    let io_deadline = deadline.filter(|_| opts.wait.is_some_and(|w| !w.is_zero()));
    let ctx = Ctx {
        deadline: io_deadline,
        ..*ctx
    };
    let mut a = Attempts {
        ctx,
        opts,
        deadline,
        backoff: Backoff::new(opts.poll_min, opts.poll_max),
        budget: IoBudget::new(&ctx),
        quick: 0,
        contended: false,
        announced: false,
        anomalies: 0,
        watch: None,
        refused: None,
        abandoned: Vec::new(),
        last: None,
        touch_verified: false,
    };
    loop {
        if let Some(signal) = ctx.env.interrupted() {
            return Err(Error::Interrupted { signal });
        }
        let step = match a.attempt(slot)? {
            Ok(held) => return Ok(held),
            Err(step) => step,
        };
        a.pace(step)?;
    }
}

impl Attempts<'_> {
    /// One try: link our claim (made or refreshed first) to the lock name
    /// and look at what is there.
    fn attempt(&mut self, slot: &mut Option<Claim>) -> Result<Result<Held, Step>, Error> {
        let (ctx, env) = (&self.ctx, self.ctx.env);
        if slot.is_none() {
            *slot = Some(new_claim(ctx, self.opts)?);
        }
        // The lock will be the claim's inode, so its mtime is the claim's:
        // a claim kept through a long wait would make a brand-new lock look
        // as old as the wait, and others would break it as expired. (Not
        // after the link instead: a breaker could judge the newborn lock
        // in between, and the simulator finds the lock it then puts back
        // held by nobody.)
        if env
            .monotonic()
            .saturating_sub(slot.as_ref().expect("claim present").mono_base)
            > self.opts.refresh_claim_after
        {
            refresh_claim(ctx, slot, !self.touch_verified)?;
            self.touch_verified = true;
        }
        let c = slot.as_ref().expect("claim present");
        let linked = ctx.fs.hard_link(&c.path, &ctx.lock.path);
        if let Err(e) = &linked {
            if sys::is_link_unsupported(e) {
                return Err(Error::Unsupported {
                    path: ctx.lock.path.clone(),
                    why: format!("link(2) failed: {e}"),
                });
            }
        }
        let seen = if mutant(env, Mutant::TrustLinkReturn) {
            match &linked {
                Ok(()) => Look::Ours,
                Err(_) => match ctx.snapshot(&ctx.lock.path, true)? {
                    Ok(s) => Look::Busy(s),
                    Err(_) => Look::Vanished,
                },
            }
        } else {
            look(ctx, c, &linked, self.watch.as_ref().map(|(s, _)| s))?
        };
        Ok(match seen {
            Look::Ours => Ok(self.take(slot)),
            Look::Busy(snap) => Err(self.busy(slot, snap)?),
            other => Err(self.missed(slot, other, linked)?),
        })
    }

    /// Waits as `step` says before the next attempt. Every pause checks
    /// the deadline first, and only a few attempts in a row go without one.
    fn pace(&mut self, step: Step) -> Result<(), Error> {
        let env = self.ctx.env;
        match step {
            Step::Now if self.quick < QUICK_TRIES => {
                self.quick += 1;
                return Ok(());
            }
            Step::Waited => {
                self.quick = 0;
                return Ok(());
            }
            Step::Now | Step::Pause => self.quick = 0,
        }
        let remaining = self.deadline.map(|d| d.saturating_sub(env.monotonic()));
        if remaining == Some(Duration::ZERO) {
            return Err(self.busy_error(self.last.clone(), None));
        }
        let mut nap = self.backoff.next(env);
        if let Some(r) = remaining {
            nap = nap.min(r);
        }
        match env.sleep(nap) {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(()),
        }
    }

    fn busy_error(&self, info: Option<LockInfo>, unbreakable: Option<String>) -> Error {
        Error::Busy {
            path: self.ctx.lock.path.clone(),
            info: info.map(Box::new),
            timed_out: self.opts.wait.is_some_and(|w| !w.is_zero()),
            unbreakable,
        }
    }

    /// The lock is ours: sweep what a contended wait may have left around
    /// it, and hand it over.
    fn take(&mut self, slot: &mut Option<Claim>) -> Held {
        let c = slot.take().expect("claim present");
        if self.contended {
            self.ctx
                .sweep(Some(c.estimate_now(self.ctx.env)), Some(&c.path), false);
        }
        Held {
            claim: c.path,
            claim_meta: c.meta,
            record: c.record,
            bytes: c.bytes,
        }
    }

    /// The attempt neither took the lock nor found it busy.
    fn missed(
        &mut self,
        slot: &mut Option<Claim>,
        seen: Look,
        linked: io::Result<()>,
    ) -> Result<Step, Error> {
        let ctx = self.ctx;
        let c = slot.as_ref().expect("claim present");
        match seen {
            Look::Vanished => {
                match linked {
                    // A full filesystem, a quota, no permission: no retry
                    // fixes it. The claim goes with the error (acquire).
                    Err(e) if sys::is_persistent(&e) => {
                        return Err(ctx.dir_error("link", &ctx.lock.path, e))
                    }
                    // The server in trouble: retried at the I/O pace,
                    // until --io-timeout or the deadline.
                    Err(e) if sys::is_transient(&e) => {
                        self.budget.pause(&ctx, "link", &ctx.lock.path, e, true)?;
                        return Ok(Step::Waited);
                    }
                    _ => self.budget.ok(&ctx),
                }
                // If our link took (its reply lost) and a breaker removed
                // it, the breaker is about to remove this claim too: its
                // pin shows as an extra link. Never link that inode again.
                let pinned = match ctx.fs.lstat(&c.path) {
                    Ok(m) => !m.same_file(&c.meta) || m.nlink > 1,
                    Err(_) => true,
                };
                if pinned {
                    self.give_up_claim(slot);
                }
                Ok(Step::Now)
            }
            Look::ClaimLost => {
                // link(2) said ENOENT: our claim is gone (removed by hand
                // or by mistake), or the directory is.
                let error = linked
                    .err()
                    .unwrap_or_else(|| io::Error::from_raw_os_error(nix::libc::ENOENT));
                ctx.need_dir()?;
                if matches!(ctx.fs.lstat(&c.path), Ok(m) if m.same_file(&c.meta)) {
                    // The claim is there: the error is not about it.
                    self.budget
                        .pause(&ctx, "link", &ctx.lock.path, error, true)?;
                    return Ok(Step::Waited);
                }
                // Start over with a fresh claim; the old name, if anything
                // is left under it, is not ours to trust any more.
                self.give_up_claim(slot);
                Ok(Step::Pause)
            }
            Look::Copied(copy) => {
                // The copy carries our random token, so it is ours to remove.
                ctx.remove_instance(&copy, false)?;
                Err(Error::Unsupported {
                    path: ctx.lock.path.clone(),
                    why: "link(2) made a copy, not a hard link (different inode, same content)"
                        .into(),
                })
            }
            Look::Anomaly(why) => {
                self.anomalies += 1;
                self.give_up_claim(slot);
                // Once may be a race with a breaker; twice in a row with
                // fresh claims is the filesystem.
                if self.anomalies >= 2 {
                    return Err(Error::Unsupported {
                        path: ctx.lock.path.clone(),
                        why,
                    });
                }
                Ok(Step::Now)
            }
            Look::Ours | Look::Busy(_) => unreachable!("handled by attempt"),
        }
    }

    /// Abandons our claim (releasing the lock if its link took after all),
    /// remembering its token.
    fn give_up_claim(&mut self, slot: &mut Option<Claim>) {
        let old = slot.take().expect("claim present");
        abandon(&self.ctx, &old);
        self.abandoned.push(old.record.token);
    }

    /// How long this very instance has been watched unchanged; a new
    /// holder starts the watch (and fast polling) again.
    fn watched(&mut self, snap: &Snapshot) -> Duration {
        let now = self.ctx.env.monotonic();
        match &self.watch {
            Some((w, since)) if w == snap => now.saturating_sub(*since),
            _ => {
                if self.watch.is_some() {
                    self.backoff.reset();
                }
                self.watch = Some((snap.clone(), now));
                Duration::ZERO
            }
        }
    }

    /// Someone holds the lock: break it if it is stale and we may, else
    /// wait for it (or give up at the deadline).
    fn busy(&mut self, slot: &mut Option<Claim>, snap: Snapshot) -> Result<Step, Error> {
        let (ctx, env, opts) = (self.ctx, self.ctx.env, self.opts);
        self.anomalies = 0;
        self.budget.ok(&ctx);
        self.contended = true;
        let watched = self.watched(&snap);
        if self.is_abandoned_own(&snap) {
            // Our own lock, from a claim we gave up on because its lock had
            // vanished and an extra link looked like a breaker's pin; it was
            // a remover's private name, and the lock has been put back.
            // Nobody else holds an instance with our token: remove it as
            // its owner would, or it stays until its lease ends.
            ctx.remove_instance(&snap, false)?;
            self.watch = None;
            return Ok(Step::Now);
        }
        let c = slot.as_ref().expect("claim present");
        let mut info = ctx.judge(snap, Some(c.estimate_now(env)), watched, opts.stale_after);
        if let Some(Content::NotALock { .. }) = &info.content {
            return Err(Error::NotALock {
                path: ctx.lock.path.clone(),
                what: info.describe(),
            });
        }
        if let Some(reason) = &info.verdict.stale {
            if !matches!(reason, StaleReason::DeadOwner(_)) {
                // An age verdict from an estimate: confirm it with
                // file-system time read just now.
                let fresh = refresh_fs_time(&ctx, slot)?;
                info = ctx.judge(info.snapshot, Some(fresh), watched, opts.stale_after);
            }
        }
        if info.verdict.stale.is_none() {
            if let Some(rec) = info.record() {
                if owns(rec, &Who::Owner(opts.owner), env.identity()) {
                    return Err(Error::AlreadyHeld {
                        path: ctx.lock.path.clone(),
                        why: format!("pid {} took it at {}", rec.pid, rec.acquired_at),
                    });
                }
            }
        }
        if self
            .refused
            .as_ref()
            .is_some_and(|(r, _)| *r != info.snapshot)
        {
            self.refused = None;
        }
        if let Some(reason) = info
            .verdict
            .stale
            .clone()
            .filter(|_| self.refused.is_none())
        {
            match ctx.break_instance(&info, false)? {
                Removal::Removed => {
                    env.event(Event::Broke {
                        path: &ctx.lock.path,
                        info: &info,
                        reason: &reason,
                    });
                    self.backoff.reset();
                    self.watch = None;
                    return Ok(Step::Now);
                }
                Removal::Gone => {
                    self.watch = None;
                    return Ok(Step::Now);
                }
                Removal::Changed | Removal::Displaced => {
                    env.event(Event::BreakRaceLost);
                    self.backoff.reset();
                    self.watch = None;
                    return Ok(Step::Now);
                }
                Removal::Denied(why) => self.refused = Some((info.snapshot.clone(), why)),
            }
        }
        let unbreakable = self.refused.as_ref().map(|(_, why)| why.clone());
        self.wait_for_holder(slot, info, unbreakable)
    }

    /// Whether `snap` is a lock made of a claim we gave up on.
    fn is_abandoned_own(&self, snap: &Snapshot) -> bool {
        if self.abandoned.is_empty() {
            return false;
        }
        let uid = self.ctx.env.identity().uid;
        matches!(
            snap.bytes.as_deref().map(|b| record::trusted(b, snap.meta.uid)),
            Some(Content::Ours(r)) if snap.meta.uid == uid && self.abandoned.contains(&r.token)
        )
    }

    /// Sleeps until the holder may have gone: woken by an event on local
    /// filesystems (polling only as a fallback and when the lock is due to
    /// go stale), polling with backoff on remote ones. At the deadline,
    /// busy.
    fn wait_for_holder(
        &mut self,
        slot: &mut Option<Claim>,
        info: LockInfo,
        unbreakable: Option<String>,
    ) -> Result<Step, Error> {
        let (ctx, env, opts) = (self.ctx, self.ctx.env, self.opts);
        let remaining = self.deadline.map(|d| d.saturating_sub(env.monotonic()));
        if remaining == Some(Duration::ZERO) {
            return Err(self.busy_error(Some(info), unbreakable));
        }
        if !self.announced {
            env.event(Event::Waiting { info: &info });
            self.announced = true;
        }
        let claim = slot.as_ref().expect("claim present");
        // From the claim's device: no round trip.
        let watching = opts
            .watch
            .unwrap_or_else(|| !ctx.fs.is_remote(claim.meta.dev, &ctx.lock.dir));
        let mut pause = if watching {
            // A stale lock we may not break goes stale no further.
            let stale_in = match unbreakable {
                Some(_) => Duration::MAX,
                None => until_stale(&info, opts.stale_after),
            };
            WATCH_FALLBACK.min(stale_in)
        } else {
            self.backoff.next(env)
        };
        if let Some(r) = remaining {
            pause = pause.min(r);
        }
        let woken = if watching {
            env.sleep_until_change(ctx.lock, &claim.path, pause)
        } else {
            env.sleep(pause)
        };
        self.last = Some(info);
        match woken {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(Step::Waited),
        }
    }
}

/// How long a waiter that is woken by events still polls: a lock that
/// goes stale raises no event, and events can be lost (queue overflow).
pub const WATCH_FALLBACK: Duration = Duration::from_secs(10);

/// Time until a busy lock may be judged stale (lease or `--stale-after`),
/// plus a little; unbounded when it never will be by age.
fn until_stale(info: &LockInfo, stale_after: Option<Duration>) -> Duration {
    let alive = info.liveness == Liveness::Alive;
    let limit = stale::age_limit(info.record().and_then(|r| r.lease), stale_after, alive);
    match (limit, info.verdict.age) {
        (Some(limit), Some(age)) => limit.saturating_sub(age) + Duration::from_millis(10),
        (Some(limit), None) => limit,
        _ => Duration::MAX,
    }
}

/// How far apart the mtime a touch set and the ctime of the same SETATTR
/// may be when the file server stamped both: one reading of its clock.
const TOUCH_SLOP: Duration = Duration::from_millis(1);

/// Whether a file just touched carries the file server's time: mtime and
/// ctime are the same reading. A client that sends its own clock instead
/// (libfuse 2 turns UTIME_NOW into a client timestamp in whole seconds)
/// gives an mtime apart from the ctime the server stamped.
fn server_stamped(m: &Meta) -> bool {
    (m.mtime.0 - m.ctime.0).unsigned_abs() <= TOUCH_SLOP.as_nanos()
}

impl Ctx<'_> {
    /// I6 needs every touch to stamp file-system time. `seen` is a file we
    /// just touched; if its times disagree (another change, a breaker's pin,
    /// can move the ctime too), a probe file that nobody else touches
    /// decides. 69 when the filesystem writes the client's clock.
    fn verify_server_touch(&self, seen: &Meta) -> Result<(), Error> {
        if server_stamped(seen) {
            return Ok(());
        }
        let probe = self.create_aux(AuxKind::Probe, &|_, _| Vec::new(), Some(false), true)?;
        let path = probe.path;
        let touched = self.persist("touch", &path, true, || self.fs.touch_now(&path))?;
        let after = self.persist("lstat", &path, true, || self.fs.lstat(&path))?;
        self.remove_quietly(&path)?;
        match (touched, after) {
            (Ok(()), Ok(m)) if !server_stamped(&m) => Err(Error::Unsupported {
                path: self.lock.path.clone(),
                why: format!(
                    "a touch (utimensat UTIME_NOW) stores the client's clock, not the file server's: \
                     mtime {:.3} but the same change's ctime {:.3}; ages cannot be told in \
                     file-system time (a FUSE client built on libfuse 2?)",
                    m.mtime.as_secs_f64(),
                    m.ctime.as_secs_f64()
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// Touches our claim so that a lock made of it is born fresh: one SETATTR.
/// File-system "now" is not read back (that would be a second round trip
/// per poll on NFS); the estimate goes on from the last reading, and any
/// verdict of age taken from an estimate is confirmed by
/// [`refresh_fs_time`] before it is acted on. With `verify` (a waiter's
/// first refresh) it is read back once, to check the touch took the file
/// server's time before a lock is made of it.
fn refresh_claim(ctx: &Ctx, slot: &mut Option<Claim>, verify: bool) -> Result<(), Error> {
    let c = slot.as_mut().expect("claim present");
    let path = c.path.clone();
    let touched = ctx.persist("touch", &path, true, || ctx.fs.touch_now(&path))?;
    if let Err(e) = touched {
        return Err(ctx.dir_error("touch", &path, e));
    }
    let now = ctx.env.monotonic();
    if verify {
        match ctx.persist("lstat", &path, true, || ctx.fs.lstat(&path))? {
            Ok(m) => {
                ctx.verify_server_touch(&m)?;
                c.fs_base = m.mtime;
            }
            Err(e) => return Err(ctx.dir_error("lstat", &path, e)),
        }
    } else {
        c.fs_base = c.fs_base.plus(now.saturating_sub(c.mono_base));
    }
    c.mono_base = now;
    Ok(())
}

/// Touches our claim and reads its mtime back: file-system "now".
fn refresh_fs_time(ctx: &Ctx, slot: &mut Option<Claim>) -> Result<FsTime, Error> {
    refresh_claim(ctx, slot, false)?;
    let c = slot.as_mut().expect("claim present");
    let path = c.path.clone();
    match ctx.persist("lstat", &path, true, || ctx.fs.lstat(&path))? {
        Ok(m) => {
            ctx.verify_server_touch(&m)?;
            c.fs_base = m.mtime;
            c.mono_base = ctx.env.monotonic();
            Ok(m.mtime)
        }
        Err(e) => Err(ctx.dir_error("lstat", &path, e)),
    }
}

/// Reads the lock and checks it is `who`'s. On "not yours", removes our own
/// leftover claim first, so a broken holder leaves nothing behind.
fn read_own(ctx: &Ctx, who: &Who) -> Result<(Snapshot, Record), Error> {
    let not_owner = |why: String| {
        ctx.remove_own_leftovers(who);
        Err(Error::NotOwner {
            path: ctx.lock.path.clone(),
            why,
        })
    };
    let snap = match ctx.snapshot(&ctx.lock.path, true)? {
        Ok(s) => s,
        Err(e) if sys::is_not_found(&e) => {
            ctx.need_dir()?;
            return not_owner("the lock is not held (it was released or broken)".into());
        }
        Err(e) => return Err(ctx.dir_error("read", &ctx.lock.path, e)),
    };
    let info = ctx.judge(snap, None, Duration::ZERO, None);
    match info.record() {
        Some(rec) if owns(rec, who, ctx.env.identity()) => {
            let rec = rec.clone();
            Ok((info.snapshot, rec))
        }
        _ => not_owner(info.describe()),
    }
}

/// Releases a lock taken by `acquire` in another process.
pub fn release(ctx: &Ctx, who: &Who) -> Result<(), Error> {
    if mutant(ctx.env, Mutant::BlindRelease) {
        return blind_release(ctx);
    }
    let (snap, rec) = read_own(ctx, who)?;
    let lost = |why: &str| {
        ctx.remove_own_leftovers(who);
        Err(Error::NotOwner {
            path: ctx.lock.path.clone(),
            why: why.to_string(),
        })
    };
    match ctx.remove_instance(&snap, false)? {
        Removal::Removed => {
            // The record is ours (checked above), so the claim it names,
            // carrying our random token, is ours: no lstat needed.
            if ctx.lock.parse_aux(&rec.claim).map(|a| a.kind) == Some(AuxKind::Claim) {
                ctx.remove_quietly(&ctx.lock.in_dir(&rec.claim))?;
            }
            Ok(())
        }
        Removal::Gone => lost("the lock was broken before it could be released"),
        Removal::Changed | Removal::Displaced => {
            lost("the lock was broken and taken by someone else; it was left alone")
        }
        Removal::Denied(why) => Err(Error::NotPermitted {
            path: ctx.lock.path.clone(),
            why,
        }),
    }
}

/// Refreshes the lock's mtime to file-system now, through our claim, and
/// returns the new mtime.
pub fn touch(ctx: &Ctx, who: &Who) -> Result<FsTime, Error> {
    let (_, rec) = read_own(ctx, who)?;
    touch_claim(ctx, &ctx.lock.in_dir(&rec.claim), who, None)
}

/// Sets the mtime through our claim and checks the lock is that inode.
/// `ino` is the claim's inode when known (a holder created it), which
/// saves looking at the claim again.
fn touch_claim(ctx: &Ctx, claim: &Path, who: &Who, ino: Option<&Meta>) -> Result<FsTime, Error> {
    let not_owner = |why: &str| {
        ctx.remove_own_leftovers(who);
        Err(Error::NotOwner {
            path: ctx.lock.path.clone(),
            why: why.to_string(),
        })
    };
    // Touching through our own claim name can only change our own inode,
    // whatever happened to the lock; the check afterwards decides.
    match ctx.persist("touch", claim, true, || ctx.fs.touch_now(claim))? {
        Ok(()) => {}
        Err(e) if sys::is_not_found(&e) => {
            return not_owner("our claim file is gone, so the lock cannot be refreshed safely")
        }
        Err(e) => return Err(ctx.dir_error("touch", claim, e)),
    }
    let after = match ino {
        Some(m) => Ok(*m),
        None => ctx.persist("lstat", claim, true, || ctx.fs.lstat(claim))?,
    };
    // Through open(2), not lstat: an NFS client may still serve the lock
    // name from its cache after another host removed it, with our inode's
    // fresh attributes (two links while a breaker's pin lasts), and "ours"
    // would then be a lie; opening revalidates the name (seed 3001416).
    let mut lock_now = ctx.snapshot(&ctx.lock.path, true)?.map(|s| s.meta);
    if let (Ok(c), Ok(l)) = (&after, &lock_now) {
        if l.same_file(c) && !server_stamped(l) {
            // The probe costs round trips, and the verdict "ours" must be
            // the last thing we looked at: look at the lock again after it.
            ctx.verify_server_touch(l)?;
            lock_now = ctx.snapshot(&ctx.lock.path, true)?.map(|s| s.meta);
        }
    }
    let why = "the lock was broken; it now belongs to someone else or nobody";
    match (after, lock_now) {
        (Ok(c), Ok(l)) if l.same_file(&c) => Ok(l.mtime),
        // The lock is another file or none, so our claim is only a
        // leftover: remove it by name (retrying), not by a best-effort scan.
        (Ok(_), lock) if lock.as_ref().err().is_none_or(sys::is_not_found) => {
            ctx.remove_quietly(claim)?;
            Err(Error::NotOwner {
                path: ctx.lock.path.clone(),
                why: why.into(),
            })
        }
        _ => not_owner(why),
    }
}

impl Held {
    /// Refreshes the lock's mtime and checks it is still ours.
    pub fn touch(&self, ctx: &Ctx) -> Result<FsTime, Error> {
        let who = Who::Token(self.record.token.clone());
        touch_claim(ctx, &self.claim, &who, Some(&self.claim_meta))
    }

    /// Releases the lock; 76-style error if it was lost meanwhile.
    pub fn release(self, ctx: &Ctx) -> Result<(), Error> {
        if mutant(ctx.env, Mutant::BlindRelease) {
            let _ = ctx.remove_quietly(&self.claim);
            return blind_release(ctx);
        }
        let expected = Snapshot {
            meta: self.claim_meta,
            bytes: Some(self.bytes.clone()),
        };
        // Look before moving anything: a holder whose lock was broken and
        // taken over must not move the new holder's lock aside, not even
        // for the round trip it takes to put it back.
        let still_ours = match ctx.lock_meta(&self.claim_meta, false)? {
            Ok(m) => m.same_file(&self.claim_meta),
            Err(e) if sys::is_not_found(&e) => false,
            Err(e) => return Err(ctx.dir_error("lstat", &ctx.lock.path, e)),
        };
        if !still_ours {
            ctx.remove_quietly(&self.claim)?;
            return Err(Error::NotOwner {
                path: ctx.lock.path.clone(),
                why: "the lock was broken while held".into(),
            });
        }
        let result = match ctx.remove_instance(&expected, false)? {
            Removal::Removed => Ok(()),
            Removal::Denied(why) => Err(Error::NotPermitted {
                path: ctx.lock.path.clone(),
                why,
            }),
            _ => Err(Error::NotOwner {
                path: ctx.lock.path.clone(),
                why: "the lock was broken while held".into(),
            }),
        };
        ctx.remove_quietly(&self.claim)?;
        result
    }
}

/// The broken variant of release: unlink whatever is at the lock name.
fn blind_release(ctx: &Ctx) -> Result<(), Error> {
    if let Ok(Ok(snap)) = ctx.snapshot(&ctx.lock.path, true) {
        if let Some(Content::Ours(rec)) = snap.bytes.as_deref().map(record::parse) {
            let _ = ctx.remove_quietly(&ctx.lock.in_dir(&rec.claim));
        }
    }
    ctx.remove_quietly(&ctx.lock.path)
}

/// What `break` did.
#[derive(Clone, Debug, PartialEq)]
pub enum BreakOutcome {
    Free,
    Broken {
        info: LockInfo,
        reason: Option<StaleReason>,
    },
    WouldBreak {
        info: LockInfo,
        reason: Option<StaleReason>,
    },
    Refused {
        info: LockInfo,
    },
    /// Someone else changed the lock during the break; the current holder.
    LostRace {
        now: Option<LockInfo>,
    },
    /// Stale (or forced), but we may not remove it; says who may.
    NotPermitted {
        info: LockInfo,
        why: String,
    },
}

/// Options of [`break_lock`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BreakOptions {
    pub older_than: Option<Duration>,
    pub force: bool,
    pub dry_run: bool,
}

/// Breaks the lock if it is stale (or `force`), removing exactly the
/// instance judged. Sweeps leftovers too.
pub fn break_lock(ctx: &Ctx, opts: BreakOptions) -> Result<BreakOutcome, Error> {
    let outcome = break_once(ctx, opts)?;
    if !opts.dry_run {
        let now = ctx.fs_now()?;
        ctx.sweep(now, None, true);
    }
    Ok(outcome)
}

fn break_once(ctx: &Ctx, opts: BreakOptions) -> Result<BreakOutcome, Error> {
    let Some(info) = ctx.inspect(opts.older_than)? else {
        return Ok(BreakOutcome::Free);
    };
    let reason = info.verdict.stale.clone();
    match &info.content {
        // Someone's data: never removed, not even by --force.
        Some(Content::NotALock { .. }) => {
            return Err(Error::NotALock {
                path: ctx.lock.path.clone(),
                what: info.describe(),
            })
        }
        None if info.snapshot.meta.kind == Kind::File => {
            return Err(Error::NotPermitted {
                path: ctx.lock.path.clone(),
                why: format!("{}; it cannot be judged", info.describe()),
            })
        }
        None => return Ok(BreakOutcome::Refused { info }),
        Some(_) if reason.is_none() && !opts.force => return Ok(BreakOutcome::Refused { info }),
        Some(_) => {}
    }
    if opts.dry_run {
        return Ok(BreakOutcome::WouldBreak { info, reason });
    }
    match ctx.break_instance(&info, opts.force)? {
        Removal::Removed => Ok(BreakOutcome::Broken { info, reason }),
        Removal::Gone => Ok(BreakOutcome::Free),
        Removal::Changed | Removal::Displaced => Ok(BreakOutcome::LostRace {
            now: ctx.inspect(opts.older_than)?,
        }),
        Removal::Denied(why) => Ok(BreakOutcome::NotPermitted { info, why }),
    }
}

/// Bumps the fencing counter kept beside the lock (`.<lock>.nfslock-fence`)
/// and returns the new value. Call only while holding the lock: mutual
/// exclusion is what makes the values strictly increase. Costs a read, a
/// create and a rename.
pub fn next_fence(ctx: &Ctx, durable: Option<bool>) -> Result<u64, Error> {
    use std::os::unix::ffi::OsStrExt;
    let mut name = ctx.lock.aux_prefix();
    name.extend_from_slice(b"fence");
    let path = ctx.lock.in_dir(std::ffi::OsStr::from_bytes(&name));
    let bad = |why: &str| Error::BadData {
        path: path.clone(),
        why: why.to_string(),
    };
    let current: u64 = match ctx.snapshot(&path, true)? {
        Ok(Snapshot { bytes: Some(b), .. }) => std::str::from_utf8(&b)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| bad("the fencing counter is not a number; it was left alone"))?,
        Ok(_) => return Err(bad("the fencing counter is not a readable file")),
        Err(e) if sys::is_not_found(&e) => 0,
        Err(e) => return Err(ctx.dir_error("read", &path, e)),
    };
    // Wrapping to 0 would hand out a number every resource has seen.
    let next = current
        .checked_add(1)
        .ok_or_else(|| bad("the fencing counter is at its maximum; no larger value exists"))?;
    let text = format!("{next}\n");
    let tmp = ctx
        .create_aux(
            AuxKind::Probe,
            &|_, _| text.clone().into_bytes(),
            durable,
            false,
        )?
        .path;
    let mut budget = IoBudget::new(ctx);
    loop {
        let renamed = ctx.fs.rename(&tmp, &path);
        // Judge by what is there: a lost reply to a rename that worked
        // looks like ENOENT.
        if let Ok(Ok(Snapshot { bytes: Some(b), .. })) = ctx.snapshot(&path, false) {
            if b == text.as_bytes() {
                let _ = ctx.remove_quietly(&tmp);
                return Ok(next);
            }
        }
        match renamed {
            Err(e) if sys::is_transient(&e) || sys::is_not_found(&e) => {
                budget.pause(ctx, "rename", &tmp, e, false)?
            }
            Err(e) => {
                let _ = ctx.remove_quietly(&tmp);
                return Err(ctx.dir_error("rename", &tmp, e));
            }
            Ok(()) => budget.pause(
                ctx,
                "rename",
                &tmp,
                io::Error::other("counter not updated"),
                false,
            )?,
        }
    }
}

/// A held lock that releases itself when dropped: the library's way to hold
/// a lock for the length of a scope.
pub struct Guard<'a> {
    ctx: Ctx<'a>,
    held: Option<Held>,
}

impl<'a> Guard<'a> {
    /// Acquires the lock as [`acquire`] does.
    pub fn acquire(ctx: Ctx<'a>, opts: &AcquireOptions) -> Result<Guard<'a>, Error> {
        let held = acquire(&ctx, opts)?;
        Ok(Guard {
            ctx,
            held: Some(held),
        })
    }

    pub fn held(&self) -> &Held {
        self.held.as_ref().expect("held until released")
    }

    /// Refreshes the mtime; an error means the lock was lost.
    pub fn touch(&self) -> Result<FsTime, Error> {
        self.held().touch(&self.ctx)
    }

    /// Releases now and says whether the lock was still ours.
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

/// One step of xorshift64: cheap jitter and tokens from a kernel seed.
pub fn xorshift(state: &Cell<u64>) -> u64 {
    let mut x = state.get().max(1);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.set(x);
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faultfs::{Fault, FaultFs, Op};
    use crate::realfs::RealFs;
    use nix::libc::{EEXIST, EIO, ENOENT, EPERM, ESTALE};
    use std::sync::Mutex;
    use std::time::Instant;

    /// The real host, with short real sleeps and recorded events.
    struct TestEnv {
        id: Identity,
        rng: Cell<u64>,
        origin: Instant,
        events: Mutex<Vec<String>>,
        /// Every sleep asked for (each is cut to 5 ms).
        sleeps: Mutex<Vec<Duration>>,
        /// The pid this "process" has (ours unless set).
        pid: Cell<Option<u32>>,
    }

    impl TestEnv {
        fn new() -> TestEnv {
            TestEnv {
                id: sys::identity(),
                rng: Cell::new(sys::random_seed()),
                origin: Instant::now(),
                events: Mutex::new(Vec::new()),
                sleeps: Mutex::new(Vec::new()),
                pid: Cell::new(None),
            }
        }

        fn saw(&self, needle: &str) -> bool {
            self.events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.contains(needle))
        }
    }

    impl Env for TestEnv {
        fn identity(&self) -> &Identity {
            &self.id
        }
        fn pid(&self) -> u32 {
            self.pid.get().unwrap_or_else(std::process::id)
        }
        fn process(&self, pid: u32) -> ProcState {
            sys::process_state(pid)
        }
        fn monotonic(&self) -> Duration {
            self.origin.elapsed()
        }
        fn wall_clock(&self) -> SystemTime {
            SystemTime::now()
        }
        fn sleep(&self, d: Duration) -> Option<i32> {
            self.sleeps.lock().unwrap().push(d);
            std::thread::sleep(d.min(Duration::from_millis(5)));
            None
        }
        fn interrupted(&self) -> Option<i32> {
            None
        }
        fn random(&self) -> u64 {
            xorshift(&self.rng)
        }
        fn token(&self) -> u64 {
            sys::os_random()
        }
        fn event(&self, e: Event<'_>) {
            self.events.lock().unwrap().push(format!("{e:?}"));
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        lock: LockPath,
        fs: FaultFs<RealFs>,
        env: TestEnv,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let lock = LockPath::new(&dir.path().join("l")).unwrap();
            Fixture {
                dir,
                lock,
                fs: FaultFs::new(RealFs),
                env: TestEnv::new(),
            }
        }

        fn ctx(&self) -> Ctx<'_> {
            Ctx::new(&self.fs, &self.env, &self.lock, Duration::from_millis(300))
        }

        fn opts(&self) -> AcquireOptions {
            let mut o = AcquireOptions::new(Owner::of_pid(&self.env, std::process::id()).unwrap());
            o.wait = Some(Duration::ZERO);
            o
        }

        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }

        fn litter(&self) -> Vec<String> {
            self.names()
                .into_iter()
                .filter(|n| n.contains(".nfslock-"))
                .collect()
        }

        /// Puts someone else's lock at the lock path (a new inode).
        fn plant_other_lock(&self, bytes: &[u8]) {
            let tmp = self.dir.path().join("other");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, &self.lock.path).unwrap();
        }

        /// A fault action that puts a new lock (another inode) in place.
        fn replace_lock_with(&self, bytes: &'static [u8]) -> Fault {
            let lock = self.lock.path.clone();
            let tmp = self.dir.path().join("other");
            Fault::Before(Box::new(move || {
                std::fs::write(&tmp, bytes).unwrap();
                std::fs::rename(&tmp, &lock).unwrap();
            }))
        }

        /// Acquires in another thread as `nfslock` does on local disk
        /// (the real environment, woken by inotify) while `meanwhile` runs
        /// here; returns the result and the waiter's counted filesystem.
        fn wait_on_local_disk(
            &self,
            wait: Duration,
            meanwhile: impl FnOnce(),
        ) -> (Result<Held, Error>, FaultFs<RealFs>) {
            let waiter_fs = FaultFs::new(RealFs);
            let waiter = LiveOwner::new();
            let mut opts = self.opts();
            opts.owner = waiter.owner;
            opts.wait = Some(wait);
            opts.watch = Some(true);
            let lock = self.lock.clone();
            let got = std::thread::scope(|s| {
                let w =
                    s.spawn(|| acquire_as_nfslock_does(&waiter_fs, &lock, &opts, |_, held| held));
                meanwhile();
                w.join().unwrap()
            });
            (got, waiter_fs)
        }

        /// The name a claim of `pid` on this host would have (made up
        /// token).
        fn claim_of(&self, pid: u32) -> PathBuf {
            let host = &self.env.identity().host;
            let name = self
                .lock
                .aux_name(AuxKind::Claim, "0123456789abcdef", pid, host);
            self.lock.in_dir(&name)
        }

        fn lock_bytes(&self) -> Option<Vec<u8>> {
            std::fs::read(&self.lock.path).ok()
        }
    }

    /// A process of its own to own a lock (another owner than the test's),
    /// killed when dropped.
    struct LiveOwner {
        child: std::process::Child,
        owner: Owner,
    }

    impl LiveOwner {
        fn new() -> LiveOwner {
            let child = std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .unwrap();
            let owner = Owner::of_pid(&TestEnv::new(), child.id()).unwrap();
            LiveOwner { child, owner }
        }
    }

    impl Drop for LiveOwner {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Acquires with the real environment (inotify, the queue) as the
    /// `nfslock` binary does, then hands the lock to `then` (which may
    /// release it or give it back).
    fn acquire_as_nfslock_does<T>(
        fs: &dyn LockFs,
        lock: &LockPath,
        opts: &AcquireOptions,
        then: impl FnOnce(&Ctx, Held) -> T,
    ) -> Result<T, Error> {
        let env = crate::sysenv::SysEnv::new();
        let ctx = Ctx::new(fs, &env, lock, Duration::from_secs(5));
        acquire(&ctx, opts).map(|held| then(&ctx, held))
    }

    #[test]
    fn a_lost_link_reply_still_acquires() {
        for errno in [EEXIST, EIO, ESTALE] {
            let f = Fixture::new();
            f.fs.on(Op::Link, Some("claim"), 1, Fault::LostReply(errno));
            let held = acquire(&f.ctx(), &f.opts()).expect("link took effect");
            assert_eq!(f.fs.fired(), 1);
            assert_eq!(f.lock_bytes().unwrap(), held.bytes);
            held.release(&f.ctx()).unwrap();
            assert_eq!(f.names(), Vec::<String>::new());
        }
    }

    /// Our link took, then a remover moved the lock aside (its private name
    /// is the extra link we see on our claim, like a breaker's pin): we
    /// give the claim up. The remover finds it moved the wrong instance and
    /// puts it back. That lock carries our token and nobody holds it: we
    /// remove it as its owner would instead of waiting out its lease.
    #[test]
    fn a_lock_put_back_after_we_gave_up_its_claim_is_ours_to_remove() {
        let f = Fixture::new();
        let (lock, aside) = (f.lock.path.clone(), f.dir.path().join("aside"));
        let (lock2, aside2) = (lock.clone(), aside.clone());
        f.fs.on(
            Op::Lstat,
            None,
            1,
            Fault::Before(Box::new(move || std::fs::rename(&lock, &aside).unwrap())),
        );
        f.fs.on(
            Op::Create,
            None,
            2,
            Fault::Before(Box::new(move || {
                std::fs::hard_link(&aside2, &lock2).unwrap();
                std::fs::remove_file(&aside2).unwrap();
            })),
        );
        let mut o = f.opts();
        o.wait = Some(Duration::from_secs(5));
        let held = acquire(&f.ctx(), &o).expect("the lock is taken, not waited out");
        assert_eq!(f.fs.fired(), 2);
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    #[test]
    fn a_failed_link_is_retried_not_trusted() {
        let f = Fixture::new();
        f.fs.on(Op::Link, Some("claim"), 1, Fault::Fail(EIO));
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        assert!(f.fs.calls(Op::Link) >= 2);
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty());
    }

    #[test]
    fn a_lost_create_reply_leaves_no_orphan() {
        let f = Fixture::new();
        f.fs.on(Op::Create, Some("claim"), 1, Fault::LostReply(EEXIST));
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        assert_eq!(f.litter().len(), 1, "{:?}", f.litter());
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// Found by the NFS lab: a lost CREATE reply followed by a transient
    /// error on the check of our own orphan left a claim nobody owned.
    #[test]
    fn an_orphan_from_a_lost_create_reply_survives_no_transient_error() {
        let f = Fixture::new();
        f.fs.on(Op::Create, Some("claim"), 1, Fault::LostReply(EEXIST));
        f.fs.on(Op::Lstat, Some("claim"), 1, Fault::Fail(EIO));
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// Found by the NFS lab: when a rename's effect was not visible yet,
    /// the lock name was renamed again, and by then it could hold the next
    /// holder's lock. A removal renames the lock name at most once unless it
    /// has re-verified the name still holds the expected instance.
    #[test]
    fn a_rename_not_yet_visible_is_never_repeated() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        f.fs.on(Op::Read, Some("nfslock-rm"), 1, Fault::Fail(ENOENT));
        let before = f.fs.calls(Op::Rename);
        held.release(&f.ctx()).unwrap();
        assert_eq!(
            f.fs.calls(Op::Rename) - before,
            1,
            "the lock name was renamed twice"
        );
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// Seen in the NFS lab: the private name stayed invisible for a while
    /// after a rename that worked, and meanwhile the next holder took the
    /// lock. The release succeeded and must say so, leaving theirs alone.
    #[test]
    fn a_slowly_visible_rename_is_not_reported_as_a_lost_lock() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        f.fs.on(Op::Read, Some("nfslock-rm"), 1, Fault::Fail(ENOENT));
        f.fs.on(Op::Read, Some("nfslock-rm"), 1, Fault::Fail(ENOENT));
        f.fs.on(Op::Read, Some("/l"), 1, f.replace_lock_with(b"theirs"));
        held.release(&f.ctx()).unwrap();
        assert_eq!(f.lock_bytes().unwrap(), b"theirs");
        assert_eq!(f.names(), ["l"]);
    }

    /// Found by the NFS lab: a contender that waited longer than its lease
    /// acquired a lock whose mtime (its claim's, made when the wait began)
    /// was already past the lease, and others broke it while it ran.
    #[test]
    fn a_lock_is_born_fresh_however_long_the_wait() {
        let f = Fixture::new();
        f.plant_other_lock(b"0\n");
        let dir = f.dir.path().to_path_buf();
        let lock = f.lock.path.clone();
        // During the wait: the claim ages an hour and the holder goes away.
        f.fs.on(
            Op::Read,
            Some("/l"),
            1,
            Fault::Before(Box::new(move || {
                for e in std::fs::read_dir(&dir).unwrap() {
                    let p = e.unwrap().path();
                    if p.to_string_lossy().contains("nfslock-claim") {
                        let t = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
                        nix::sys::stat::utimensat(
                            nix::fcntl::AT_FDCWD,
                            &p,
                            &t,
                            &t,
                            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                        )
                        .unwrap();
                    }
                }
                std::fs::remove_file(&lock).unwrap();
            })),
        );
        let mut o = f.opts();
        o.wait = Some(Duration::from_secs(10));
        o.refresh_claim_after = Duration::ZERO;
        let held = acquire(&f.ctx(), &o).unwrap();
        let age = SystemTime::now()
            .duration_since(
                std::fs::symlink_metadata(&f.lock.path)
                    .unwrap()
                    .modified()
                    .unwrap(),
            )
            .unwrap_or_default();
        assert!(age < Duration::from_secs(60), "the new lock is {age:?} old");
        held.release(&f.ctx()).unwrap();
    }

    #[test]
    fn lost_rename_and_unlink_replies_do_not_fail_a_release() {
        for (op, errno) in [
            (Op::Rename, ENOENT),
            (Op::Rename, EIO),
            (Op::Unlink, ENOENT),
            (Op::Unlink, EIO),
        ] {
            let f = Fixture::new();
            let held = acquire(&f.ctx(), &f.opts()).unwrap();
            f.fs.on(op, None, 1, Fault::LostReply(errno));
            let who = Who::Token(held.token().to_string());
            release(&f.ctx(), &who).unwrap_or_else(|e| panic!("{op:?}/{errno}: {e}"));
            assert_eq!(f.fs.fired(), 1);
            assert!(f.names().is_empty(), "{op:?}: {:?}", f.names());
        }
    }

    #[test]
    fn calls_executed_twice_do_not_fail_a_cycle_or_leave_litter() {
        for (op, path) in [
            (Op::Create, "claim"),
            (Op::Link, "claim"),
            (Op::Rename, "nfslock-rm"),
            (Op::Unlink, "nfslock-rm"),
            (Op::Unlink, "claim"),
            (Op::Touch, "claim"),
        ] {
            let f = Fixture::new();
            f.fs.on(op, Some(path), 1, Fault::Twice);
            let held = acquire(&f.ctx(), &f.opts()).unwrap_or_else(|e| panic!("{op:?}: {e}"));
            held.touch(&f.ctx())
                .unwrap_or_else(|e| panic!("{op:?}: {e}"));
            held.release(&f.ctx())
                .unwrap_or_else(|e| panic!("{op:?}: {e}"));
            assert_eq!(f.fs.fired(), 1, "{op:?} {path}");
            assert!(f.names().is_empty(), "{op:?}: {:?}", f.names());
        }
    }

    /// The pid of a process that has exited, as the owner of a crashed run.
    fn dead_owner() -> Owner {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        Owner {
            pid,
            start: Some(1),
        }
    }

    /// After a crash at `step`, a live process on the same host must get
    /// the lock at once, and `break`'s clean-up must leave nothing behind.
    fn recovers_from_a_crash(f: &Fixture, what: &str, step: usize) {
        f.fs.clear();
        let held = acquire(&f.ctx(), &f.opts())
            .unwrap_or_else(|e| panic!("{what}, crash before step {step}: {e}"));
        held.release(&f.ctx()).unwrap();
        let later = FsTime(i128::MAX / 2);
        f.ctx().sweep(Some(later), None, true);
        assert!(
            f.names().is_empty(),
            "{what}, crash before step {step}: {:?}",
            f.names()
        );
    }

    #[test]
    fn a_crash_at_any_step_of_a_cycle_leaves_nothing_unrecoverable() {
        let cycle = |f: &Fixture| {
            let ctx = Ctx {
                io_timeout: Duration::from_millis(20),
                ..f.ctx()
            };
            let mut o = f.opts();
            o.owner = dead_owner();
            if let Ok(held) = acquire(&ctx, &o) {
                let _ = held.touch(&ctx).and_then(|_| held.release(&ctx));
            }
        };
        let clean = Fixture::new();
        cycle(&clean);
        let steps = clean.fs.steps();
        assert!(steps >= 8, "a cycle takes {steps} calls");
        for step in 1..=steps {
            let f = Fixture::new();
            f.fs.crash_before(step);
            cycle(&f);
            recovers_from_a_crash(&f, "cycle", step);
        }
    }

    #[test]
    fn a_crash_at_any_step_of_a_break_leaves_nothing_unrecoverable() {
        let setup = || {
            let f = Fixture::new();
            let mut o = f.opts();
            o.owner = dead_owner();
            acquire(&f.ctx(), &o).unwrap();
            f
        };
        let breaks = |f: &Fixture| {
            let ctx = Ctx {
                io_timeout: Duration::from_millis(20),
                ..f.ctx()
            };
            let opts = BreakOptions {
                older_than: None,
                force: false,
                dry_run: false,
            };
            break_lock(&ctx, opts)
        };
        let clean = setup();
        clean.fs.crash_before(usize::MAX);
        let out = breaks(&clean);
        assert!(
            matches!(out, Ok(BreakOutcome::Broken { .. })),
            "the dead owner's lock is broken: {out:?}"
        );
        let steps = clean.fs.steps();
        for step in 1..=steps {
            let f = setup();
            f.fs.crash_before(step);
            let _ = breaks(&f);
            recovers_from_a_crash(&f, "break", step);
        }
    }

    #[test]
    fn a_filesystem_that_copies_instead_of_linking_is_refused() {
        let f = Fixture::new();
        f.fs.on(Op::Link, Some("claim"), 0, Fault::Copy);
        match acquire(&f.ctx(), &f.opts()) {
            Err(Error::Unsupported { why, .. }) => assert!(why.contains("copy"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// A failed link that still bumps the claim's count (proot's link
    /// emulation) cannot fool us: only the lock name's inode decides.
    #[test]
    fn a_link_count_that_grows_on_a_failed_link_does_not_fool_us() {
        let f = Fixture::new();
        f.plant_other_lock(b"0\n");
        let dir = f.dir.path().to_path_buf();
        let extra = Cell::new(0);
        // Like proot's link emulation: a failed link still bumps nlink.
        f.fs.on(
            Op::Link,
            Some("claim"),
            0,
            Fault::Before(Box::new(move || {
                for e in std::fs::read_dir(&dir).unwrap() {
                    let p = e.unwrap().path();
                    let n = p.file_name().unwrap().to_string_lossy().into_owned();
                    if n.contains("nfslock-claim") {
                        extra.set(extra.get() + 1);
                        let _ = std::fs::hard_link(&p, dir.join(format!("x{}", extra.get())));
                    }
                }
            })),
        );
        let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::BUSY, "{e}");
        assert_eq!(f.lock_bytes().unwrap(), b"0\n");
        assert!(f.litter().is_empty(), "{:?}", f.litter());
    }

    /// Found by the NFS lab: after a lost LINK reply, an attribute cache
    /// kept the claim's old link count; that is not a lying filesystem.
    #[test]
    fn a_stale_link_count_is_waited_out_not_refused() {
        let f = Fixture::new();
        f.fs.on(Op::Link, Some("claim"), 1, Fault::LostReply(EEXIST));
        f.fs.on(Op::Lstat, None, 1, Fault::StaleNlink);
        f.fs.on(Op::Lstat, None, 1, Fault::StaleNlink);
        let held = acquire(&f.ctx(), &f.opts()).expect("the cache catches up");
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    #[test]
    fn a_filesystem_without_hard_links_is_refused() {
        let f = Fixture::new();
        f.fs.on(Op::Link, None, 0, Fault::Fail(EPERM));
        let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::UNSUPPORTED, "{e}");
        assert!(f.names().is_empty());
    }

    /// The sweep removes only what our crashed processes can have left: a
    /// large file under a guard's name is someone's, whatever its age.
    #[test]
    fn the_sweep_leaves_a_large_file_under_our_names() {
        let f = Fixture::new();
        let name = f.dir.path().join(".l.nfslock-guard.00000000deadbeef.1.h");
        std::fs::write(&name, vec![b'x'; READ_LIMIT]).unwrap();
        let small = f.dir.path().join(".l.nfslock-probe.00000000deadbeef.1.h");
        std::fs::write(&small, b"").unwrap();
        let later = FsTime(i128::MAX / 2);
        assert_eq!(f.ctx().sweep(Some(later), None, true), 1);
        assert!(name.exists() && !small.exists(), "{:?}", f.names());
    }

    /// A name we draw that someone else took first is never used, and
    /// what is there is left alone: we draw another.
    #[test]
    fn a_planted_name_is_left_alone_and_another_drawn() {
        let f = Fixture::new();
        f.fs.on(
            Op::Create,
            Some("probe"),
            1,
            Fault::Plant(b"someone's".to_vec()),
        );
        f.fs.on(
            Op::Create,
            Some("claim"),
            1,
            Fault::Plant(b"theirs".to_vec()),
        );
        assert!(f.ctx().fs_now().unwrap().is_some());
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        held.release(&f.ctx()).unwrap();
        let mut left: Vec<Vec<u8>> = f
            .names()
            .iter()
            .map(|n| std::fs::read(f.dir.path().join(n)).unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [b"someone's".to_vec(), b"theirs".to_vec()]);
    }

    /// Found by the NFS lab: a CREATE whose reply was lost before the data
    /// was written leaves an empty file of ours under our fresh name; it is
    /// ours to remove (the lab's faults suite found 41 of them left).
    #[test]
    fn an_empty_file_of_ours_from_a_lost_create_is_removed() {
        let f = Fixture::new();
        f.fs.on(Op::Create, Some("claim"), 1, Fault::Plant(Vec::new()));
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// Errors a client maps oddly (a FUSE client gives EFAULT for a read
    /// of a file another host just removed) are retried like EIO, not a
    /// reason to give up.
    #[test]
    fn an_unexpected_errno_is_retried_like_eio() {
        let f = Fixture::new();
        f.plant_other_lock(b"0\n");
        f.fs.on(Op::Read, Some("/l"), 1, Fault::Fail(nix::libc::EFAULT));
        f.fs.on(Op::Link, Some("claim"), 1, Fault::Fail(nix::libc::EBADMSG));
        let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::BUSY, "{e}");
        assert!(f.env.saw("Retrying"), "not retried");
        assert_eq!(f.litter(), Vec::<String>::new());
    }

    /// ENOSPC, EDQUOT, EACCES from link(2) after the claim was made: no
    /// retry fixes them. 73, the claim removed, and a handful of calls.
    #[test]
    fn a_persistent_link_error_ends_the_acquire() {
        for errno in [nix::libc::ENOSPC, nix::libc::EDQUOT, nix::libc::EACCES] {
            let f = Fixture::new();
            f.fs.on(Op::Link, Some("claim"), 0, Fault::Fail(errno));
            let mut o = f.opts();
            o.wait = Some(Duration::from_secs(30));
            let e = acquire(&f.ctx(), &o).unwrap_err();
            assert_eq!(e.exit_code(), crate::exit::CANT_CREATE, "{errno}: {e}");
            assert_eq!(f.fs.calls(Op::Link), 1, "{errno}: retried");
            assert!(f.names().is_empty(), "{:?}", f.names());
        }
    }

    /// A link that keeps failing with EIO while no lock is there (a server
    /// in trouble) is retried with pauses until --io-timeout, never in a
    /// tight loop.
    #[test]
    fn a_link_failing_with_eio_is_paced_and_ends() {
        let f = Fixture::new();
        f.fs.on(Op::Link, Some("claim"), 0, Fault::Fail(EIO));
        let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::IO, "{e}");
        let links = f.fs.calls(Op::Link);
        let slept = f.env.sleeps.lock().unwrap().len();
        assert!(links <= slept + 1, "{links} links, {slept} pauses");
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// Where protected_hardlinks refuses the breaker's pin (another user's
    /// file), the break still removes exactly the judged instance: by a
    /// rename that it checks, and undoes for any other instance.
    #[test]
    fn a_refused_pin_still_breaks_precisely() {
        let f = Fixture::new();
        let mut o = f.opts();
        o.owner = dead_owner();
        acquire(&f.ctx(), &o).unwrap();
        f.fs.on(Op::Link, Some("guard"), 0, Fault::Fail(EPERM));
        let out = break_lock(&f.ctx(), BreakOptions::default()).unwrap();
        assert!(matches!(out, BreakOutcome::Broken { .. }), "{out:?}");
        assert!(f.names().is_empty(), "{:?}", f.names());
        // A lock that was replaced after the judgement survives.
        acquire(&f.ctx(), &o).unwrap();
        let judged = f.ctx().inspect(None).unwrap().unwrap();
        f.plant_other_lock(b"0\n");
        assert_eq!(
            f.ctx().break_instance(&judged, false).unwrap(),
            Removal::Changed
        );
        assert_eq!(f.lock_bytes().unwrap(), b"0\n");
    }

    /// We may not move another user's lock (a sticky directory): the
    /// break says so, changes nothing, and acquire waits at its pace.
    #[test]
    fn a_lock_we_may_not_move_is_refused_and_waited_for() {
        let f = Fixture::new();
        let mut o = f.opts();
        o.owner = dead_owner();
        acquire(&f.ctx(), &o).unwrap();
        let lock = f.lock_bytes();
        f.fs.on(Op::Rename, Some("/l ->"), 0, Fault::Fail(EPERM));
        f.fs.on(Op::Link, Some("guard"), 0, Fault::Fail(EPERM));
        let out = break_lock(&f.ctx(), BreakOptions::default()).unwrap();
        assert!(matches!(out, BreakOutcome::NotPermitted { .. }), "{out:?}");
        assert_eq!(f.lock_bytes(), lock);
        // (Its sweep removed the dead owner's claim: no fault refused that.)
        let before = f.names();
        let mut w = f.opts();
        w.wait = Some(Duration::from_millis(300));
        let e = acquire(&f.ctx(), &w).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Busy {
                    unbreakable: Some(_),
                    timed_out: true,
                    ..
                }
            ),
            "{e}"
        );
        // Tried to break once, not at every poll.
        assert_eq!(f.fs.calls(Op::Rename), 2, "one break, one for break_lock");
        assert_eq!(f.names(), before);
    }

    #[test]
    fn a_persistent_error_gives_up_cleanly() {
        let f = Fixture::new();
        f.fs.on(Op::Lstat, None, 0, Fault::Fail(EIO));
        let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::IO, "{e}");
        assert!(f.env.saw("Retrying"));
        // It could not tell whether its link took: what it left is its own,
        // and its owner's release removes all of it once the server answers.
        f.fs.clear();
        let me = Who::Owner(f.opts().owner);
        let _ = release(&f.ctx(), &me);
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    #[test]
    fn release_never_removes_a_lock_taken_in_the_meantime() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let who = Who::Token(held.token().to_string());
        // Our lock is broken and re-taken between release's check and its
        // rename.
        f.fs.on(
            Op::Rename,
            Some("nfslock-rm"),
            1,
            f.replace_lock_with(b"theirs"),
        );
        let e = release(&f.ctx(), &who).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
        assert_eq!(f.lock_bytes().unwrap(), b"theirs");
        assert_eq!(f.litter(), Vec::<String>::new(), "our claim is cleaned up");
    }

    #[test]
    fn touch_never_refreshes_a_replaced_lock() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let who = Who::Token(held.token().to_string());
        f.fs.on(Op::Touch, None, 1, f.replace_lock_with(b"theirs"));
        let theirs_before = {
            // The replacement happens inside touch; read its mtime after.
            let e = touch(&f.ctx(), &who).unwrap_err();
            assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
            std::fs::symlink_metadata(&f.lock.path)
                .unwrap()
                .modified()
                .unwrap()
        };
        // Touching went through our claim, which is no longer the lock.
        std::thread::sleep(Duration::from_millis(20));
        let theirs_after = std::fs::symlink_metadata(&f.lock.path)
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(theirs_before, theirs_after);
        assert_eq!(f.lock_bytes().unwrap(), b"theirs");
        assert!(f.litter().is_empty(), "{:?}", f.litter());
    }

    /// Found by the simulator (seed 196): a holder told its lock was lost
    /// kept its claim because a dead breaker's guard still linked it.
    #[test]
    fn a_lost_holder_removes_its_claim_even_with_other_links() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        // A crashed breaker's pin on our inode, then our lock is replaced.
        std::fs::hard_link(&held.claim, f.dir.path().join(".l.nfslock-guard.0.1.h")).unwrap();
        f.plant_other_lock(b"theirs");
        let e = held.touch(&f.ctx()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
        assert!(!held.claim.exists(), "our claim is not left behind");
        assert_eq!(f.lock_bytes().unwrap(), b"theirs");
    }

    /// Found by the simulator (seed 1000031): a holder whose lock had been
    /// broken and taken over renamed the new holder's lock aside (and back)
    /// when it released; it must look first and move nothing.
    #[test]
    fn a_broken_holder_releases_without_touching_the_new_lock() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        f.plant_other_lock(b"theirs");
        let e = held.release(&f.ctx()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
        assert_eq!(f.fs.calls(Op::Rename), 0);
        assert_eq!(f.lock_bytes().unwrap(), b"theirs");
        assert!(f.litter().is_empty(), "{:?}", f.litter());
    }

    /// Found by the simulator (seed 1000049): a forced break removed the
    /// claim of a holder that had linked the same claim again meanwhile.
    #[test]
    fn a_break_leaves_the_claim_of_a_lock_linked_again() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let (claim, lock) = (held.claim.clone(), f.lock.path.clone());
        f.fs.on(
            Op::Lstat,
            Some("nfslock-claim"),
            1,
            Fault::Before(Box::new(move || std::fs::hard_link(&claim, &lock).unwrap())),
        );
        let force = BreakOptions {
            force: true,
            ..BreakOptions::default()
        };
        assert!(matches!(
            break_lock(&f.ctx(), force),
            Ok(BreakOutcome::Broken { .. })
        ));
        assert!(held.claim.exists(), "the claim of a live lock stays");
        held.touch(&f.ctx()).expect("it still holds the lock");
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    #[test]
    fn a_forced_break_ignores_a_refresh_after_the_judgement() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let claim = held.claim.clone();
        f.fs.on(
            Op::Rename,
            None,
            1,
            Fault::Before(Box::new(move || {
                let later = nix::sys::time::TimeSpec::new(4_000_000_000, 0);
                nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &claim,
                    &later,
                    &later,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .unwrap();
            })),
        );
        let force = BreakOptions {
            force: true,
            ..BreakOptions::default()
        };
        assert!(matches!(
            break_lock(&f.ctx(), force),
            Ok(BreakOutcome::Broken { .. })
        ));
        assert!(f.lock_bytes().is_none());
        assert_eq!(
            held.touch(&f.ctx()).unwrap_err().exit_code(),
            crate::exit::NOT_OWNER
        );
    }

    /// On local disk a waiter sleeps until the release wakes it: over a
    /// 1.5 s wait it tries the link a handful of times at most, where
    /// backoff polling from 20 ms would try about seven.
    #[test]
    fn a_local_waiter_is_woken_by_the_release_not_by_polling() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let (got, waiter_fs) = f.wait_on_local_disk(Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(1500));
            held.release(&f.ctx()).unwrap();
        });
        got.expect("the waiter takes the lock after the release");
        let links = waiter_fs.calls(Op::Link);
        assert!((2..=4).contains(&links), "{links} link attempts");
    }

    /// On local disk waiters queue: each watches the claim of the one ahead
    /// of it, so a release wakes the oldest waiter, and the lock goes round
    /// in arrival order (a herd racing for it would pick any order: the
    /// right one by chance one time in 24).
    #[test]
    fn local_waiters_take_the_lock_in_arrival_order() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let claims = || {
            f.names()
                .iter()
                .filter(|n| n.contains(".nfslock-claim."))
                .count()
        };
        let order = std::sync::Mutex::new(Vec::new());
        let owners: Vec<LiveOwner> = (0..4).map(|_| LiveOwner::new()).collect();
        std::thread::scope(|s| {
            for (i, waiter) in owners.iter().enumerate() {
                let (lock, order) = (f.lock.clone(), &order);
                let mut opts = f.opts();
                opts.owner = waiter.owner;
                opts.wait = Some(Duration::from_secs(60));
                opts.watch = Some(true);
                s.spawn(move || {
                    acquire_as_nfslock_does(&RealFs, &lock, &opts, |ctx, held| {
                        order.lock().unwrap().push(i);
                        // Hold long enough for the next to find it busy.
                        std::thread::sleep(Duration::from_millis(20));
                        held.release(ctx).unwrap();
                    })
                    .unwrap();
                });
                // The next waiter comes once this one waits (its claim is
                // there beside the holder's and the earlier waiters').
                let began = std::time::Instant::now();
                while claims() < i + 2 {
                    assert!(
                        began.elapsed() < Duration::from_secs(30),
                        "waiter {i} never waited"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            held.release(&f.ctx()).unwrap();
        });
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// A waiter ahead in the queue that never moves (stopped, or its claim
    /// left by a process whose pid lives on) holds the one behind it for
    /// 2 s at most, not for the 10 s fallback poll.
    #[test]
    fn a_stuck_waiter_ahead_holds_the_queue_briefly() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        // A claim older than the waiter's, of a live pid (ours) that will
        // never act on it.
        let stuck = f.claim_of(std::process::id());
        std::fs::write(&stuck, b"stuck").unwrap();
        let began = std::time::Instant::now();
        let (got, _) = f.wait_on_local_disk(WATCH_FALLBACK * 2, || {
            std::thread::sleep(Duration::from_millis(100));
            held.release(&f.ctx()).unwrap();
        });
        let took = began.elapsed();
        got.expect("the waiter gets the lock")
            .release(&f.ctx())
            .unwrap();
        std::fs::remove_file(&stuck).unwrap();
        // Due after 2 s; the fallback poll would be 10 s. The bound leaves
        // a loaded machine 3 s.
        assert!(took < WATCH_FALLBACK / 2, "{took:?}");
        assert!(f.names().is_empty(), "{:?}", f.names());
    }

    /// No event marks a lease running out: a waiter woken by events still
    /// wakes when the lock is due to go stale, long before its 10 s
    /// fallback poll.
    #[test]
    fn a_local_waiter_wakes_when_the_lease_runs_out() {
        let f = Fixture::new();
        let mut holder = f.opts();
        holder.lease = Some(Duration::from_millis(500));
        let _held = acquire(&f.ctx(), &holder).unwrap();
        let began = std::time::Instant::now();
        let (got, _) = f.wait_on_local_disk(WATCH_FALLBACK * 2, || {});
        got.expect("the expired lease is broken");
        // Due after 0.5 s; a waiter that slept until its fallback poll
        // would take 10 s. The bound leaves a loaded machine 4.5 s.
        assert!(
            began.elapsed() < WATCH_FALLBACK / 2,
            "{:?}",
            began.elapsed()
        );
    }

    /// A poll of a lock that has not changed costs a link and an lstat:
    /// its record is read once, not at every poll (one round trip less per
    /// poll on NFS, where a read is an open, a read and a close).
    #[test]
    fn polling_an_unchanged_lock_reads_it_once() {
        let f = Fixture::new();
        f.plant_other_lock(b"theirs");
        let mut opts = f.opts();
        opts.wait = Some(Duration::from_millis(300));
        opts.poll_max = Duration::from_millis(5);
        let e = acquire(&f.ctx(), &opts).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::BUSY);
        let (links, reads) = (f.fs.calls(Op::Link), f.fs.calls(Op::Read));
        assert!(links > 3, "{links} polls");
        // Once while polling, once more by the clean-up's fresh look.
        assert!(reads <= 2, "{reads} reads in {links} polls");
    }

    /// Polling (remote filesystems) backs off while the same holder keeps
    /// the lock, and starts fast again when the holder changes: the next
    /// holder may be quick, and its release should not wait a second.
    #[test]
    fn polling_backs_off_and_restarts_when_the_holder_changes() {
        let f = Fixture::new();
        f.plant_other_lock(b"first");
        // Before the 9th link attempt (after 8 polls), a new holder.
        f.fs.on(Op::Link, Some("claim"), 9, f.replace_lock_with(b"second"));
        let mut opts = f.opts();
        opts.wait = Some(Duration::from_millis(400));
        opts.watch = Some(false);
        opts.poll_min = Duration::from_millis(20);
        opts.poll_max = Duration::from_secs(1);
        acquire(&f.ctx(), &opts).unwrap_err();
        let sleeps = f.env.sleeps.lock().unwrap().clone();
        assert!(sleeps.len() > 10, "{sleeps:?}");
        // Doubling with jitter (half to all of each step, and never past
        // the deadline): the 5th pause is 160-320 ms. After the change of
        // holder it is back to 10-20 ms.
        assert!(sleeps[4] >= Duration::from_millis(160), "{sleeps:?}");
        assert!(sleeps[8] <= Duration::from_millis(20), "{sleeps:?}");
    }

    /// Keeping a waiting claim fresh costs one SETATTR per refresh, not a
    /// SETATTR and a GETATTR: file-system time is only read back when a
    /// verdict of age depends on it.
    #[test]
    fn refreshing_a_waiting_claim_costs_one_operation() {
        let f = Fixture::new();
        f.plant_other_lock(b"theirs");
        let mut opts = f.opts();
        opts.wait = Some(Duration::from_millis(200));
        opts.watch = Some(false);
        opts.poll_max = Duration::from_millis(5);
        opts.refresh_claim_after = Duration::ZERO;
        acquire(&f.ctx(), &opts).unwrap_err();
        let (links, touches, lstats) = (
            f.fs.calls(Op::Link),
            f.fs.calls(Op::Touch),
            f.fs.calls(Op::Lstat),
        );
        assert!(links > 3, "{links} polls");
        // A refresh before every link but the first.
        assert!(touches + 1 >= links, "{touches} touches for {links} links");
        // One lstat per poll (of the lock), a few for the clean-up.
        assert!(lstats <= links + 3, "{lstats} lstats for {links} polls");
    }

    /// Every lock-directory operation is a round trip on NFS: an
    /// uncontended cycle costs eight, whichever way it is released
    /// (README, "What a lock costs").
    #[test]
    fn an_uncontended_cycle_costs_eight_operations() {
        let ops = [
            Op::Create,
            Op::Link,
            Op::Lstat,
            Op::Read,
            Op::Rename,
            Op::Unlink,
            Op::Touch,
            Op::List,
        ];
        let count = |f: &Fixture| -> Vec<usize> { ops.iter().map(|&o| f.fs.calls(o)).collect() };
        // Held (run, the library): create, link, lstat | lstat, rename,
        // read, unlink, unlink.
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        assert_eq!(count(&f), [1, 1, 1, 0, 0, 0, 0, 0]);
        held.release(&f.ctx()).unwrap();
        assert_eq!(count(&f), [1, 1, 2, 1, 1, 2, 0, 0]);
        // `nfslock release`: the record is read instead of the lstat.
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        release(&f.ctx(), &Who::Token(held.token().into())).unwrap();
        assert_eq!(count(&f), [1, 1, 1, 2, 1, 2, 0, 0]);
        // A heartbeat: touch the claim, read the lock (open(2) revalidates
        // the name on NFS; a cached lstat may show a removed lock).
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        held.touch(&f.ctx()).unwrap();
        assert_eq!(count(&f), [1, 1, 1, 1, 0, 0, 1, 0]);
        assert!(f.names().len() == 2);
    }

    /// The sweep after a contended acquire (before the holder's command
    /// runs; three round trips per read on NFS) leaves a live process's
    /// claim unread; `break` reads every claim.
    #[test]
    fn a_quick_sweep_reads_no_claim_of_a_live_process() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let mine = f.claim_of(std::process::id());
        let now = FsTime(i128::MAX / 2);
        assert_eq!(f.ctx().sweep(Some(now), Some(&mine), false), 0);
        assert_eq!(f.fs.calls(Op::Read), 0);
        assert_eq!(f.ctx().sweep(Some(now), None, true), 0);
        assert_eq!(f.fs.calls(Op::Read), 1);
        held.release(&f.ctx()).unwrap();
    }

    /// What the quick sweep is for: the claim a killed waiter of this host
    /// left behind goes at the next contended acquire, for one read. The
    /// claim's name carries the waiter's pid, not its owner's: an owner
    /// shell that lives on keeps nothing alive (the claim is no lock).
    #[test]
    fn a_quick_sweep_removes_a_dead_waiters_claim() {
        let f = Fixture::new();
        let killed_waiter = dead_owner().pid;
        f.env.pid.set(Some(killed_waiter));
        let left = new_claim(&f.ctx(), &f.opts()).unwrap();
        f.env.pid.set(None);
        assert!(
            left.path
                .to_string_lossy()
                .contains(&format!(".{killed_waiter}.")),
            "{:?}",
            left.path
        );
        assert_eq!(left.record.pid, std::process::id(), "the owner lives");
        let mine = f.claim_of(std::process::id());
        let now = FsTime(i128::MAX / 2);
        assert_eq!(f.ctx().sweep(Some(now), Some(&mine), false), 1);
        assert_eq!(f.fs.calls(Op::Read), 1);
        assert!(!left.path.exists(), "{:?}", f.names());
        // A dead owner's claim goes too, once `break` reads every claim.
        let mut o = f.opts();
        o.owner = dead_owner();
        let dead = new_claim(&f.ctx(), &o).unwrap();
        assert_eq!(f.ctx().sweep(Some(now), Some(&mine), false), 0);
        assert_eq!(f.ctx().sweep(Some(now), None, true), 1);
        assert!(!dead.path.exists(), "{:?}", f.names());
    }

    /// Found by the simulator (seed 7): one sweep must remove a dead owner's
    /// claim although a dead remover's private name links the same inode.
    #[test]
    fn sweep_removes_dead_claims_that_other_names_link() {
        let f = Fixture::new();
        let mut opts = f.opts();
        opts.owner = dead_owner();
        let held = acquire(&f.ctx(), &opts).unwrap();
        let private = f.dir.path().join(".l.nfslock-rm.0.1.h");
        std::fs::rename(&f.lock.path, &private).unwrap();
        let now = FsTime(i128::MAX / 2);
        assert_eq!(f.ctx().sweep(Some(now), None, true), 2);
        assert!(!held.claim.exists() && !private.exists(), "{:?}", f.names());
    }

    #[test]
    fn break_spares_a_lock_replaced_before_the_pin() {
        let f = Fixture::new();
        f.plant_other_lock(b"0\n");
        f.fs.on(
            Op::Link,
            Some("nfslock-guard"),
            1,
            f.replace_lock_with(b"fresh"),
        );
        let opts = BreakOptions {
            force: true,
            ..Default::default()
        };
        let out = break_lock(&f.ctx(), opts).unwrap();
        assert!(
            matches!(out, BreakOutcome::LostRace { now: Some(_) }),
            "{out:?}"
        );
        assert_eq!(f.lock_bytes().unwrap(), b"fresh");
        assert!(f.litter().is_empty(), "{:?}", f.litter());
    }

    #[test]
    fn break_spares_a_lock_replaced_after_the_pin() {
        let f = Fixture::new();
        f.plant_other_lock(b"0\n");
        f.fs.on(
            Op::Rename,
            Some("nfslock-rm"),
            1,
            f.replace_lock_with(b"fresh"),
        );
        let opts = BreakOptions {
            force: true,
            ..Default::default()
        };
        let out = break_lock(&f.ctx(), opts).unwrap();
        assert!(matches!(out, BreakOutcome::LostRace { .. }), "{out:?}");
        assert_eq!(
            f.lock_bytes().unwrap(),
            b"fresh",
            "the new lock was put back"
        );
        assert!(f.litter().is_empty(), "{:?}", f.litter());
    }

    #[test]
    fn a_failed_restore_is_reported_and_leaves_no_litter() {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        let who = Who::Token(held.token().to_string());
        let lock = f.lock.path.clone();
        let dir = f.dir.path().to_path_buf();
        // Our lock is replaced before our rename, and a third party links
        // a lock in the instant the name is empty.
        f.fs.on(
            Op::Rename,
            Some("nfslock-rm"),
            1,
            Fault::Before(Box::new({
                let (lock, dir) = (lock.clone(), dir.clone());
                move || {
                    std::fs::write(dir.join("other"), b"second").unwrap();
                    std::fs::rename(dir.join("other"), &lock).unwrap();
                }
            })),
        );
        f.fs.on(
            Op::Link,
            Some("nfslock-rm"),
            1,
            Fault::Before(Box::new(move || {
                std::fs::write(&lock, b"third").unwrap();
            })),
        );
        let e = release(&f.ctx(), &who).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
        assert!(f.env.saw("Displaced"));
        assert_eq!(f.lock_bytes().unwrap(), b"third");
        assert!(f.litter().is_empty(), "{:?}", f.litter());
    }

    #[test]
    fn a_dead_owner_is_broken_and_its_claim_removed() {
        let f = Fixture::new();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let owner = Owner::of_pid(&f.env, pid);
        child.wait().unwrap();
        let mut o = f.opts();
        o.owner = owner.unwrap_or(Owner {
            pid,
            start: Some(1),
        });
        let dead = acquire(&f.ctx(), &o).unwrap();
        assert!(f.dir.path().join(&dead.record.claim).exists());
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        assert!(f.env.saw("Broke"));
        assert!(!f.dir.path().join(&dead.record.claim).exists());
        drop(Guard {
            ctx: f.ctx(),
            held: Some(held),
        });
        assert!(
            f.names().is_empty(),
            "the guard released on drop: {:?}",
            f.names()
        );
    }

    #[test]
    fn the_sweep_removes_dead_claims_and_old_pins_only() {
        let f = Fixture::new();
        let live = acquire(&f.ctx(), &f.opts()).unwrap();
        // A waiter that was killed: claim with one link, owner gone.
        let mut o = f.opts();
        o.owner = Owner {
            pid: 4_194_305,
            start: Some(1),
        };
        o.lease = Some(Duration::from_secs(1));
        let c = new_claim(&f.ctx(), &o).unwrap();
        // A pin left by a breaker killed long ago, and a fresh one.
        let old = f.ctx().my_aux(AuxKind::Guard);
        std::fs::write(&old, b"").unwrap();
        let young = f.ctx().my_aux(AuxKind::Removing);
        std::fs::write(&young, b"").unwrap();
        let now =
            f.fs.lstat(&young)
                .unwrap()
                .mtime
                .plus(ORPHAN_AGE + Duration::from_secs(1));
        // Only `old` is old: judge `young` against its own ctime.
        let removed = f.ctx().sweep(Some(now), None, true);
        assert_eq!(removed, 3, "{:?}", f.names());
        assert!(!c.path.exists() && !old.exists() && !young.exists());
        assert!(
            f.dir.path().join(&live.record.claim).exists(),
            "the holder's claim stays"
        );
        let removed = f
            .ctx()
            .sweep(Some(f.fs.lstat(&live.claim).unwrap().mtime), None, true);
        assert_eq!(removed, 0);
    }
}
