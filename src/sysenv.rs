//! The protocol's [`Env`] for the real world: /proc identity, the monotonic
//! clock, and waits that SIGINT, SIGTERM and SIGHUP cut short; on local
//! filesystems, waits woken by inotify, with waiters queued by claim age.
//!
//! Those three signals are blocked and read from a signalfd, so they can
//! only arrive between protocol steps, never in the middle of one: a claim
//! is always either made and known, or not made. The caller then cleans up
//! and exits 128+n.

use crate::names::{AuxKind, LockPath};
use crate::protocol::{xorshift, Env, Event};
use crate::sys::{self, Identity, ProcState};
use crate::ui;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::cell::{Cell, RefCell};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub struct SysEnv {
    identity: Identity,
    rng: Cell<u64>,
    origin: Instant,
    signals: Option<SignalFd>,
    caught: Cell<Option<i32>>,
    /// Other signals read from the signalfd, for `run` to forward.
    others: RefCell<Vec<i32>>,
    forwarding: Cell<bool>,
    /// inotify, set up on the first wait, and the watch on the inode the
    /// lock name last led to.
    watch: RefCell<Option<(Inotify, Option<WatchDescriptor>)>>,
}

/// Closing the last reference to an inotify instance makes the kernel
/// wait for its watch reaper, an SRCU grace period: 10-20 ms whenever
/// other waiters add and drop watches too. A waiter that got the lock paid
/// it after its release, before exiting, and the workers of a busy lock
/// spent a third of their time there (8 workers: 491 of 667 processes,
/// 10 ms at the median), so the lock often sat free while every contender
/// was still leaving. A child keeps a reference until we are gone, and the
/// wait is the child's.
fn close_later(inotify: Inotify) {
    use nix::libc::{self, c_long};
    use std::os::fd::AsRawFd;
    // The child must make no call that can fail (see `linger`), and
    // close_range(2) is new in Linux 5.9: ask first, here.
    // SAFETY: an empty range closes nothing.
    if unsafe { libc::close_range(libc::c_uint::MAX, libc::c_uint::MAX, 0) } != 0 {
        return;
    }
    /// What the child needs: the descriptor to keep and whose death to wait
    /// for. Leaked, like its stack: the child may outlive everything else.
    struct Linger {
        fd: c_long,
        parent: c_long,
    }
    // The child shares our memory (no page tables copied, none to tear
    // down) but not our descriptor table. It runs only on its own stack and
    // reads only its leaked `Linger`; its raw system calls cannot fail, so
    // it writes nothing of ours, not even errno (it has our thread's).
    extern "C" fn linger(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the leaked `Linger`, never freed.
        let Linger { fd, parent } = unsafe { &*arg.cast::<Linger>() };
        // SAFETY: raw system calls with plain integer arguments.
        unsafe {
            // Nothing but the inotify descriptor: no pipe of our caller's
            // may stay open because of this child.
            if *fd > 0 {
                libc::syscall(libc::SYS_close_range, 0, fd - 1, 0);
            }
            libc::syscall(libc::SYS_close_range, fd + 1, libc::c_uint::MAX, 0);
            libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::syscall(libc::SYS_getppid) == *parent {
                loop {
                    libc::syscall(libc::SYS_pause);
                }
            }
            libc::syscall(libc::SYS_exit, 0);
        }
        0
    }
    let arg: &'static mut Linger = Box::leak(Box::new(Linger {
        fd: c_long::from(inotify.as_fd().as_raw_fd()),
        parent: c_long::from(nix::unistd::getpid().as_raw()),
    }));
    let stack: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    // SAFETY: the stack's top is 16-byte aligned and both it and `arg` are
    // leaked; the child touches nothing else of ours. If clone fails, the
    // close below is the last one and simply waits.
    unsafe {
        let top = stack.as_mut_ptr().add(stack.len() & !15);
        libc::clone(
            linger,
            top.cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            std::ptr::from_mut(arg).cast(),
        );
    }
    drop(inotify);
}

/// poll(2)'s timeout for `d`, rounded up to whole milliseconds (at most a
/// minute: callers loop until their deadline).
fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = u32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
    PollTimeout::try_from(ms.min(60_000)).unwrap_or(PollTimeout::MAX)
}

/// The signals that mean "stop waiting and clean up".
pub fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set
}

impl SysEnv {
    /// Reads this host's identity and takes over the stop signals.
    pub fn new() -> SysEnv {
        SysEnv::with_signals(&[])
    }

    /// Like [`SysEnv::new`], and also takes over `extra` signals, which
    /// [`SysEnv::take_others`] hands out instead of treating them as stops.
    pub fn with_signals(extra: &[Signal]) -> SysEnv {
        let mut set = stop_signals();
        for s in extra {
            set.add(*s);
        }
        // If blocking fails we still work; signals then kill us the default
        // way, which may leave a claim for the sweep.
        let signals = set.thread_block().ok().and_then(|()| {
            SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()
        });
        SysEnv {
            identity: sys::identity(),
            rng: Cell::new(sys::random_seed()),
            origin: Instant::now(),
            signals,
            caught: Cell::new(None),
            others: RefCell::new(Vec::new()),
            forwarding: Cell::new(false),
            watch: RefCell::new(None),
        }
    }

    /// Reads every pending signal: stop signals become sticky, the rest
    /// are queued for [`SysEnv::take_others`].
    fn drain(&self) -> Option<i32> {
        if let Some(fd) = &self.signals {
            while let Ok(Some(info)) = fd.read_signal() {
                let signo = info.ssi_signo as i32;
                let stop =
                    stop_signals().contains(Signal::try_from(signo).unwrap_or(Signal::SIGKILL));
                if stop && self.caught.get().is_none() && !self.forwarding.get() {
                    self.caught.set(Some(signo));
                } else {
                    self.others.borrow_mut().push(signo);
                }
            }
        }
        self.caught.get()
    }

    /// For a process about to exit: lets it go without waiting for the
    /// kernel's clean-up of the inotify instance a wait used (see
    /// `close_later`). Not for a program that goes on running: the child
    /// this makes lives as long as the calling thread. Such a program just
    /// drops its `SysEnv`.
    pub fn leave(self) {
        if let Some((inotify, _)) = self.watch.take() {
            close_later(inotify);
        }
    }

    /// From now on stop signals are queued like the others (for `run`,
    /// which forwards them to its child instead of stopping).
    pub fn forward_stops(&self) {
        self.forwarding.set(true);
    }

    /// Signals read so far that were not stop signals (or all of them
    /// after [`SysEnv::forward_stops`]).
    pub fn take_others(&self) -> Vec<i32> {
        self.drain();
        std::mem::take(&mut *self.others.borrow_mut())
    }

    /// Sleeps up to `d`. Returns early with a stop signal that arrived
    /// meanwhile (one not reported before), or with `None` when `change`'s
    /// watch reports anything about its inode (or events were lost).
    fn wait(&self, d: Duration, change: Option<(&Inotify, WatchDescriptor)>) -> Option<i32> {
        if self.signals.is_none() && change.is_none() {
            std::thread::sleep(d);
            return None;
        }
        let before = self.caught.get();
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut fds = Vec::with_capacity(2);
            if let Some(fd) = &self.signals {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            if let Some((inotify, _)) = change {
                fds.push(PollFd::new(inotify.as_fd(), PollFlags::POLLIN));
            }
            if poll(&mut fds, poll_timeout(left)).is_err() {
                continue;
            }
            let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
            drop(fds);
            if self.signals.is_some() && ready[0] {
                let now = self.drain();
                if now.is_some() && now != before {
                    return now;
                }
            }
            if let Some((inotify, wd)) = change {
                if *ready.last().unwrap_or(&false) {
                    let events = inotify.read_events().unwrap_or_default();
                    // Events of a watch we dropped (the previous holder's
                    // inode) are not news.
                    let ours = events
                        .iter()
                        .any(|e| e.wd == wd || e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW));
                    if ours {
                        return None;
                    }
                }
            }
        }
    }

    /// Waits until a signal arrives, `also` becomes readable, or `d`
    /// passes.
    pub fn wait_signal(&self, d: Duration, also: Option<std::os::fd::BorrowedFd<'_>>) {
        let mut fds = Vec::with_capacity(2);
        if let Some(fd) = &self.signals {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = also {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        if fds.is_empty() {
            std::thread::sleep(d);
            return;
        }
        let _ = poll(&mut fds, poll_timeout(d));
    }
}

impl Default for SysEnv {
    fn default() -> Self {
        SysEnv::new()
    }
}

impl Env for SysEnv {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn process(&self, pid: u32) -> ProcState {
        sys::process_state(pid)
    }

    fn pid_gone(&self, pid: u32) -> bool {
        sys::pid_gone(pid)
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, d: Duration) -> Option<i32> {
        self.wait(d, None)
    }

    fn sleep_until_change(&self, lock: &LockPath, claim: &Path, d: Duration) -> Option<i32> {
        // Watch one inode, never the directory: a directory watch wakes
        // every waiter at each claim created or removed beside the lock.
        // The first waiter in line watches the lock: it is woken when the
        // name is moved or unlinked (IN_MOVE_SELF; IN_ATTRIB for the link
        // count), touched, or pinned by a breaker, each a reason to look.
        // Every other waiter watches the claim of the waiter just ahead of
        // it, which changes when that one takes the lock (its link count)
        // or leaves: a release wakes one process, not all of them, and the
        // lock goes to the waiters in the order they came.
        let deadline = Instant::now() + d;
        let mut slot = self.watch.borrow_mut();
        if slot.is_none() {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(i) => *slot = Some((i, None)),
                Err(_) => {
                    drop(slot);
                    return self.sleep(d);
                }
            }
        }
        let (inotify, current) = slot.as_mut().expect("set above");
        let flags = AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_DONT_FOLLOW;
        // Bounded: each turn follows a change in the queue.
        // Set when the waiter we watched has just taken the lock: then we
        // are first in line without listing the directory again.
        let mut first = false;
        for _ in 0..16 {
            let ahead = if first {
                None
            } else {
                waiter_ahead(lock, claim)
            };
            let target = ahead.as_ref().map_or(&lock.path, |(p, _)| p);
            // The same inode gives the same descriptor, so a watch kept
            // since the protocol's last look has queued whatever happened
            // meanwhile. A new watch is set after that look: if the lock
            // changed in between, it is gone (look again at once) or is
            // another busy lock, the one worth watching.
            let wd = match inotify.add_watch(target, flags) {
                Ok(wd) => wd,
                Err(nix::errno::Errno::ENOENT) if ahead.is_some() => continue,
                Err(nix::errno::Errno::ENOENT) => return self.drain(),
                Err(_) => break,
            };
            if *current != Some(wd) {
                if let Some(old) = current.replace(wd) {
                    let _ = inotify.rm_watch(old);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // A waiter ahead that is stopped or gone without a trace (its
            // claim left behind) must not hold the queue for long.
            let span = if ahead.is_some() {
                left.min(QUEUE_FALLBACK)
            } else {
                left
            };
            let began = Instant::now();
            if let Some(signal) = self.wait(span, Some((inotify, wd))) {
                return Some(signal);
            }
            // Woken about the lock itself (or timed out): look at it.
            let (_, ino) = ahead?;
            if began.elapsed() >= span {
                return None;
            }
            first = std::fs::symlink_metadata(&lock.path).is_ok_and(|m| m.ino() == ino);
        }
        drop(slot);
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }

    fn interrupted(&self) -> Option<i32> {
        self.drain()
    }

    fn random(&self) -> u64 {
        xorshift(&self.rng)
    }

    fn token(&self) -> u64 {
        sys::os_random()
    }

    fn event(&self, event: Event<'_>) {
        report(event);
    }
}

/// What the protocol tells as it goes, for people: decisions under `-v`,
/// and whatever changed someone else's lock unless `-q`.
pub fn report(event: Event<'_>) {
    match event {
        Event::Waiting { info } => ui::explain(&format!("waiting: {}", info.describe())),
        // Removing another party's lock is never silent.
        Event::Broke { path, info, .. } => ui::say(&format!(
            "{}: broke the lock {}",
            path.display(),
            info.describe()
        )),
        Event::BreakRaceLost => ui::explain("the lock changed while being broken; left it alone"),
        Event::Retrying { op, path, error } => {
            ui::explain(&format!("{op} {}: {error}; retrying", path.display()))
        }
        Event::Displaced { path } => ui::say(&format!(
            "{}: a lock taken during a removal could not be put back; its holder will find it lost",
            path.display()
        )),
        Event::Swept { path } => ui::explain(&format!("removed leftover {}", path.display())),
        Event::ReleaseFailed { error } => ui::say(&format!("release failed: {error}")),
    }
}

/// How long a waiter trusts the one ahead of it to move the queue on
/// before it looks at the lock itself.
const QUEUE_FALLBACK: Duration = Duration::from_secs(2);

/// The claim of the waiter just ahead of ours, and its inode: the newest
/// claim of this lock born before ours, leaving out the holder's (the
/// lock's inode) and those of processes of this host that no longer exist.
/// Birth times come from statx; where a filesystem has none, the ctime
/// stands in.
fn waiter_ahead(lock: &LockPath, claim: &Path) -> Option<(PathBuf, u64)> {
    let key = |m: &std::fs::Metadata| {
        let born = m
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128);
        (born, m.ino())
    };
    let mine = std::fs::symlink_metadata(claim).ok()?;
    let my_key = key(&mine);
    let my_name = claim.file_name()?;
    let me = lock.parse_aux(my_name)?;
    let holder = std::fs::symlink_metadata(&lock.path).ok().map(|m| m.ino());
    let mut earlier = Vec::new();
    for entry in std::fs::read_dir(&lock.dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(aux) = lock.parse_aux(&name) else {
            continue;
        };
        if aux.kind != AuxKind::Claim || name == my_name {
            continue;
        }
        let Ok(m) = entry.metadata() else { continue };
        let k = key(&m);
        if k < my_key && Some(m.ino()) != holder {
            earlier.push((k, entry.path(), aux));
        }
    }
    // Newest first; a dead process's claim queues for nothing. Only as
    // many pids are probed as it takes to find a live one.
    earlier.sort_by_key(|e| std::cmp::Reverse(e.0));
    earlier
        .into_iter()
        .find(|(_, _, aux)| aux.host != me.host || !sys::pid_gone(aux.pid))
        .map(|(k, path, _)| (path, k.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The child that takes over the last reference holds the inotify
    /// instance and nothing else (no pipe of the caller's stays open), and
    /// goes away with the thread that made it.
    #[test]
    fn an_inotify_instance_is_closed_by_a_child_holding_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("f");
        std::fs::write(&watched, b"").unwrap();
        let helper = std::thread::spawn(move || {
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC).unwrap();
            inotify
                .add_watch(&watched, AddWatchFlags::IN_ATTRIB)
                .unwrap();
            close_later(inotify);
            let tid = nix::unistd::gettid();
            let children =
                std::fs::read_to_string(format!("/proc/self/task/{tid}/children")).unwrap();
            let pid: u32 = children.split_whitespace().last().unwrap().parse().unwrap();
            // It runs beside us: give it the moment it needs to close.
            let fds_of = || -> Vec<String> {
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .unwrap()
                    .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|l| l.to_string_lossy().into_owned())
                    .collect()
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut fds = fds_of();
            while fds.len() > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
                fds = fds_of();
            }
            (pid, fds)
        });
        let (pid, fds) = helper.join().unwrap();
        assert_eq!(fds, ["anon_inode:inotify"]);
        // Its parent thread is gone: the death signal ends it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sys::process_state(pid) != ProcState::Gone {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.starts_with(" Z")));
            if zombie {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
                continue;
            }
            assert!(Instant::now() < deadline, "the child outlived its parent");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
