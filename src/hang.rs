//! What keeps a deadline when the file server stops answering. On a hard
//! NFS mount a system call waits for the server for as long as it takes;
//! `-w` and `--io-timeout` would mean nothing, and cron jobs would pile up
//! behind a dead server. So the calls the main thread makes go through
//! [`GuardedFs`], which tells a watchdog thread when each began. A call
//! that outlives its allowance (`--io-timeout`, or less when the `-w`
//! deadline comes first) ends the process from the watchdog: one line on
//! stderr, and exit 74 (or the code set by [`exit_code_on_hang`], 76 once
//! a lock was lost).
//!
//! This is nfslock's one process-level trick, and its assumptions:
//! - Clean-up is impossible then (the server does not answer), so none is
//!   tried; what is left is our own claim, which a lease or `nfslock
//!   release` ends, and which is recognisable as ours by name.
//! - The blocked call dies with the process: exit_group(2) kills every
//!   thread, and NFS waits are killable, as are FUSE requests the daemon
//!   has not taken yet.
//! - Only the main thread's calls are guarded. The heartbeat's thread may
//!   block: its supervisor judges the lease on its own clock.
//! - The watchdog runs only where the lock's directory may be remote (its
//!   mount, or the device of the first file we create there): local disks
//!   pay nothing, not even the thread.

use crate::fs::Durability;
use crate::fs::{LockFs, Meta};
use crate::ui;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The call the main thread is in, if any.
struct Call {
    op: &'static str,
    began: Instant,
    until: Instant,
}

/// What the watchdog knows: the call under way, and when it means to look
/// next (a call due earlier wakes it).
struct Watch {
    call: Option<Call>,
    wake_at: Instant,
}

struct Dog {
    watch: Mutex<Watch>,
    cv: Condvar,
    allowance: Duration,
    /// The caller's deadline (`-w`), if it comes before the allowance.
    deadline: Mutex<Option<Instant>>,
    dir: String,
}

static DOG: OnceLock<Dog> = OnceLock::new();

/// What a call made after the `-w` deadline may take.
const LATE_CALL: Duration = Duration::from_secs(1);
static EXIT_CODE: AtomicU8 = AtomicU8::new(crate::exit::IO);

/// Starts the watchdog (once per process) for the lock directory `dir`:
/// from now on a guarded call that takes longer than `allowance` ends the
/// process.
pub fn watch(dir: &Path, allowance: Duration) {
    let mut started = false;
    DOG.get_or_init(|| {
        started = true;
        Dog {
            watch: Mutex::new(Watch {
                call: None,
                wake_at: Instant::now(),
            }),
            cv: Condvar::new(),
            allowance,
            deadline: Mutex::new(None),
            dir: dir.display().to_string(),
        }
    });
    if started {
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .stack_size(64 << 10)
            .spawn(keep_time);
        if spawned.is_err() {
            ui::explain("cannot start the watchdog: a server that hangs will hang us");
        }
    }
}

/// The real filesystem, its calls watched where the lock's directory may
/// be remote, so that a server that stops answering cannot hold us past
/// `io_timeout` (see above).
pub fn real_fs(dir: &Path, io_timeout: Duration) -> GuardedFs<crate::anchored::AnchoredFs> {
    let remote = crate::sys::under_remote_mount(dir);
    if remote {
        watch(dir, io_timeout);
    }
    GuardedFs {
        inner: crate::anchored::AnchoredFs::if_remote(dir, remote),
        allowance: io_timeout,
    }
}

/// Whether the watchdog runs.
pub fn watching() -> bool {
    DOG.get().is_some()
}

/// A deadline of the caller's (`-w`) that no call may outlive either.
pub fn set_deadline(at: Option<Instant>) {
    if let Some(dog) = DOG.get() {
        *lock(&dog.deadline) = at;
    }
}

/// The exit status if a call hangs from now on.
pub fn exit_code_on_hang(code: u8) {
    EXIT_CODE.store(code, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The watchdog thread.
fn keep_time() {
    let Some(dog) = DOG.get() else { return };
    let mut watch = lock(&dog.watch);
    loop {
        let now = Instant::now();
        let nap = match &watch.call {
            Some(c) if now >= c.until => give_up(dog, c),
            Some(c) => c.until - now,
            // Idle: a call that starts later is due no sooner than one
            // allowance after; one due sooner (a -w deadline) wakes us.
            None => dog.allowance,
        }
        .max(Duration::from_millis(1));
        watch.wake_at = now + nap;
        watch = dog
            .cv
            .wait_timeout(watch, nap)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Ends the process: the call `c` has not come back.
fn give_up(dog: &Dog, c: &Call) -> ! {
    let msg = format!(
        "{}: the file server has not answered for {} ({}); giving up",
        dog.dir,
        crate::duration::human(c.began.elapsed()),
        c.op
    );
    ui::say(&msg);
    // No exit handlers and no flush: the main thread is stuck in a call
    // and may hold any lock; _exit takes it down with us.
    // SAFETY: _exit has no preconditions.
    unsafe { nix::libc::_exit(i32::from(EXIT_CODE.load(Ordering::Relaxed))) }
}

/// Marks a guarded call for the watchdog while it lasts.
struct Guard(Option<&'static Dog>);

fn enter(op: &'static str) -> Guard {
    let Some(dog) = DOG.get() else {
        return Guard(None);
    };
    let began = Instant::now();
    let mut until = began + dog.allowance;
    // A call made once the deadline has passed (giving up a claim, the
    // last look) still gets a moment: a live server answers in far less.
    if let Some(d) = *lock(&dog.deadline) {
        until = until.min(d.max(began + LATE_CALL));
    }
    let mut watch = lock(&dog.watch);
    if until < watch.wake_at {
        dog.cv.notify_one();
    }
    watch.call = Some(Call { op, began, until });
    Guard(Some(dog))
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(dog) = self.0 {
            lock(&dog.watch).call = None;
        }
    }
}

/// A [`LockFs`] whose calls the watchdog watches (once it runs), and which
/// starts the watchdog when the first file it creates turns out to be on a
/// remote device (a symlink into a remote mount, say).
pub struct GuardedFs<F: LockFs> {
    pub inner: F,
    pub allowance: Duration,
}

impl<F: LockFs> LockFs for GuardedFs<F> {
    fn create_exclusive(&self, path: &Path, data: &[u8], durable: Durability) -> io::Result<Meta> {
        let made = {
            let _g = enter("create");
            self.inner.create_exclusive(path, data, durable)?
        };
        if !watching() {
            let dir = path.parent().unwrap_or(Path::new("."));
            if self.inner.is_remote(made.dev, dir) {
                watch(dir, self.allowance);
            }
        }
        Ok(made)
    }
    fn is_remote(&self, dev: u64, dir: &Path) -> bool {
        self.inner.is_remote(dev, dir)
    }
    fn hard_link(&self, existing: &Path, new: &Path) -> io::Result<()> {
        let _g = enter("link");
        self.inner.hard_link(existing, new)
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        let _g = enter("lstat");
        self.inner.lstat(path)
    }
    fn identify(&self, path: &Path) -> io::Result<Meta> {
        let _g = enter("lstat");
        self.inner.identify(path)
    }
    fn stat_dir_fresh(&self, dir: &Path) -> io::Result<Meta> {
        let _g = enter("stat");
        self.inner.stat_dir_fresh(dir)
    }
    fn read(&self, path: &Path, limit: usize) -> io::Result<(Meta, Option<Vec<u8>>)> {
        let _g = enter("read");
        self.inner.read(path, limit)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _g = enter("rename");
        self.inner.rename(from, to)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _g = enter("rename");
        self.inner.rename_noreplace(from, to)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        let _g = enter("unlink");
        self.inner.unlink(path)
    }
    fn touch_now(&self, path: &Path) -> io::Result<()> {
        let _g = enter("touch");
        self.inner.touch_now(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let _g = enter("list");
        self.inner.list(dir)
    }
    fn make_dir(&self, path: &Path) -> io::Result<()> {
        let _g = enter("mkdir");
        self.inner.make_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let _g = enter("rmdir");
        self.inner.remove_dir(path)
    }
    fn watch_path(&self, path: &Path) -> std::path::PathBuf {
        self.inner.watch_path(path)
    }
}

/// Runs `f`, a call that may wait for the file server but is made
/// outside [`GuardedFs`] (inotify resolving the path it is to watch),
/// under the watchdog like the calls that go through it.
pub fn guarded<T>(op: &'static str, f: impl FnOnce() -> T) -> T {
    let _g = enter(op);
    f()
}
