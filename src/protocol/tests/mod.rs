//! The protocol's tests on a real directory, with faults injected
//! through [`FaultFs`]: one file per part of the protocol, sharing the
//! fixture here.

mod breaking;
mod cost;
mod crash;
mod directory;
mod errors;
mod faults;
mod filesystems;
mod hold;
mod names;
mod pace;
mod slots;
mod sweep;
mod waiting;
mod window;

use super::*;
use super::{acquire::*, breaking::*, claim::*, ctx::*, hold::*, removal::*, sweep::*, wait::*};
use crate::anchored::AnchoredFs;
use crate::error::Error;
use crate::faultfs::{Fault, FaultFs, Op};
use crate::fs::{FsTime, LockFs};
use crate::names::{AuxKind, LockPath};
use crate::realfs::RealFs;
use crate::sys::{self, Identity, ProcState};
use nix::libc::{EEXIST, EIO, ENOENT, EPERM, ESTALE};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use std::time::{Duration, SystemTime};

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
    /// A stopped clock (`stop_clock`): monotonic time moves only by the
    /// sleeps asked for, so a test of how long something was held does
    /// not depend on how loaded the machine is.
    stopped: Cell<Option<Duration>>,
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
            stopped: Cell::new(None),
        }
    }

    /// Stops monotonic time where it is; from now on only sleeps move it.
    fn stop_clock(&self) {
        self.stopped.set(Some(self.origin.elapsed()));
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
        self.stopped.get().unwrap_or_else(|| self.origin.elapsed())
    }
    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) -> Option<i32> {
        self.sleeps.lock().unwrap().push(d);
        if let Some(t) = self.stopped.get() {
            self.stopped.set(Some(t.saturating_add(d)));
        }
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
    /// Anchored at the lock's directory, as the command's is; waiters
    /// made by the tests go by path (`RealFs`): both are covered.
    fs: FaultFs<AnchoredFs>,
    env: TestEnv,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockPath::new(&dir.path().join("l")).unwrap();
        Fixture {
            fs: FaultFs::new(AnchoredFs::new(&lock.dir)),
            dir,
            lock,
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
            let w = s.spawn(|| acquire_as_nfslock_does(&waiter_fs, &lock, &opts, |_, held| held));
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

/// The claim files in `dir` as they are now, read behind the protocol's
/// back (a fault that ages, deletes or links them works on these).
fn claim_files(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("nfslock-claim"))
        .collect()
}

/// Sets `path`'s times to `secs` after the epoch, behind the protocol's
/// back (a claim aged or refreshed by someone else).
fn set_times(path: &std::path::Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
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
    f.ctx().sweep(Some(later), None, Sweep::Thorough);
    assert!(
        f.names().is_empty(),
        "{what}, crash before step {step}: {:?}",
        f.names()
    );
}
