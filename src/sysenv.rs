//! The protocol's [`Env`] for the real world: /proc identity, the monotonic
//! clock, and waits that SIGINT, SIGTERM and SIGHUP cut short; on local
//! filesystems, waits woken by inotify (the queue that decides what to
//! watch is the protocol's, see `protocol::queue`).
//!
//! Those three signals are blocked and read from a signalfd, so they can
//! only arrive between protocol steps, never in the middle of one: a claim
//! is always either made and known, or not made. The caller then cleans up
//! and exits 128+n.

use crate::protocol::{xorshift, Env, Event, Woken};
use crate::sys::{self, Identity, ProcState};
use crate::ui;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::cell::{Cell, RefCell};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The real world's [`Env`]. [`SysEnv::new`] changes nothing in the
/// process; [`SysEnv::taking_signals`] takes the stop signals over on the
/// calling thread (and gives them back when dropped).
pub struct SysEnv {
    identity: Identity,
    rng: Cell<u64>,
    origin: Instant,
    signals: Option<SignalFd>,
    /// The calling thread's signal mask before `taking_signals`, put back
    /// on drop.
    previous_mask: Option<SigSet>,
    caught: Cell<Option<i32>>,
    /// Other signals read from the signalfd, for `run` to forward.
    others: RefCell<Vec<i32>>,
    forwarding: Cell<bool>,
    /// inotify, set up on the first wait, and the one watch it keeps.
    watch: RefCell<Option<Watcher>>,
}

/// How [`SysEnv::wait`] ended.
enum Waited {
    Signal(i32),
    /// The time ran out.
    Out,
    /// An event of the watch.
    Event,
}

/// The one inotify watch of this process: on the inode a name last led
/// to, and, while nothing has happened to it since it was set, that name
/// and mask (`kept`), so that a wait on the same name sets nothing again.
/// Setting a watch looks the name up, a round trip on NFS, where a
/// waiter behind others may wait on one name for many polls. A name that
/// leaves its inode with no event of the mask (one of several links
/// unlinked, watched without IN_ATTRIB) keeps a kept watch on the old
/// inode until a wait times out: an early wake is only ever a hint.
struct Watcher {
    inotify: Inotify,
    wd: Option<WatchDescriptor>,
    kept: Option<(PathBuf, AddWatchFlags)>,
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
    /// Reads this host's identity. No process-wide effect: signals keep
    /// their dispositions, and a wait is never cut short by one (a signal
    /// that kills the process may leave a claim behind, for the sweep).
    pub fn new() -> SysEnv {
        SysEnv::with(None, None)
    }

    /// For a program that must clean up when asked to stop (the CLI):
    /// blocks SIGINT, SIGTERM and SIGHUP, and `extra`, on the calling
    /// thread and reads them from a signalfd, so they arrive only between
    /// protocol steps. A stop signal ends a wait with
    /// [`crate::error::Error::Interrupted`]; `extra` signals are handed out
    /// by [`SysEnv::take_others`]. Dropping the value puts the thread's
    /// previous signal mask back ([`SysEnv::leave`] does not).
    pub fn taking_signals(extra: &[Signal]) -> SysEnv {
        let mut set = stop_signals();
        for s in extra {
            set.add(*s);
        }
        // If blocking fails we still work; signals then kill us the default
        // way, which may leave a claim for the sweep.
        let Ok(previous) = set.thread_swap_mask(SigmaskHow::SIG_BLOCK) else {
            return SysEnv::new();
        };
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC);
        SysEnv::with(signals.ok(), Some(previous))
    }

    fn with(signals: Option<SignalFd>, previous_mask: Option<SigSet>) -> SysEnv {
        SysEnv {
            identity: sys::identity(),
            rng: Cell::new(sys::random_seed()),
            origin: Instant::now(),
            signals,
            previous_mask,
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
    /// `crate::process::close_later`). Not for a program that goes on running: the child
    /// this makes lives as long as the calling thread. Such a program just
    /// drops its `SysEnv`. The stop signals stay blocked: one arriving
    /// now must not kill the process halfway through its exit status.
    pub fn leave(mut self) {
        self.previous_mask = None;
        if let Some(Watcher { inotify, .. }) = self.watch.take() {
            crate::process::close_later(inotify);
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

    /// Sleeps up to `d` watching `path` for `flags` (see
    /// [`Env::sleep_watching`]). One watch at a time: the same inode gives
    /// the same descriptor (its mask replaced), so a watch kept since the
    /// protocol's last look has queued whatever happened meanwhile. The
    /// watch is set again after that look, unless the last wait on this
    /// very name and mask saw nothing (`Watcher::kept`): if the file changed
    /// in between, it is gone (Missing) or is another file, the one worth
    /// watching. Resolving the path may wait for the file server: the hang
    /// watchdog sees it.
    fn sleep_on(&self, path: &Path, d: Duration, flags: AddWatchFlags) -> Woken {
        let mut slot = self.watch.borrow_mut();
        if slot.is_none() {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(inotify) => {
                    *slot = Some(Watcher {
                        inotify,
                        wd: None,
                        kept: None,
                    })
                }
                Err(_) => return Woken::Unwatchable,
            }
        }
        let w = slot.as_mut().expect("set above");
        let flags = flags | AddWatchFlags::IN_DONT_FOLLOW;
        let wd = match (&w.kept, w.wd) {
            // Nothing happened to it since: the name still leads there (a
            // move or removal of it would have been an event), and any
            // event since the last wait is queued.
            (Some((p, f)), Some(wd)) if p == path && *f == flags => wd,
            _ => {
                let inotify = &w.inotify;
                let wd = match crate::hang::guarded("watch", || inotify.add_watch(path, flags)) {
                    Ok(wd) => wd,
                    Err(nix::errno::Errno::ENOENT) => return Woken::Missing,
                    Err(_) => return Woken::Unwatchable,
                };
                if w.wd != Some(wd) {
                    if let Some(old) = w.wd.replace(wd) {
                        let _ = w.inotify.rm_watch(old);
                    }
                }
                wd
            }
        };
        let woken = match self.wait(d, Some((&w.inotify, wd))) {
            Waited::Signal(signal) => Woken::Signal(signal),
            Waited::Out => Woken::TimedOut,
            Waited::Event => Woken::Changed,
        };
        w.kept = match woken {
            Woken::Changed => None,
            _ => Some((path.to_path_buf(), flags)),
        };
        woken
    }

    /// Sleeps up to `d`. Returns early with a stop signal that arrived
    /// meanwhile (one not reported before), or when `change`'s watch
    /// reports anything about its inode (or events were lost).
    fn wait(&self, d: Duration, change: Option<(&Inotify, WatchDescriptor)>) -> Waited {
        if self.signals.is_none() && change.is_none() {
            std::thread::sleep(d);
            return Waited::Out;
        }
        let before = self.caught.get();
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Out;
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
                if let Some(signal) = now.filter(|_| now != before) {
                    return Waited::Signal(signal);
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
                        return Waited::Event;
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

impl Drop for SysEnv {
    fn drop(&mut self) {
        // A signal that arrived since our last look is still pending, and
        // is delivered now as if we had never blocked it.
        if let Some(mask) = self.previous_mask.take() {
            let _ = mask.thread_set_mask();
        }
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
        match self.wait(d, None) {
            Waited::Signal(signal) => Some(signal),
            Waited::Out | Waited::Event => None,
        }
    }

    fn sleep_watching(&self, path: &Path, d: Duration) -> Woken {
        // IN_ATTRIB: links and times; the other two: the name moved or gone.
        let flags =
            AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_DELETE_SELF;
        self.sleep_on(path, d, flags)
    }

    fn sleep_until_moved(&self, path: &Path, d: Duration) -> Woken {
        let flags = AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_DELETE_SELF;
        self.sleep_on(path, d, flags)
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
        Event::GaveWay { path } => ui::explain(&format!(
            "{}: gave the lock back to a reader that came first",
            path.display()
        )),
        Event::ReleaseFailed { error } => ui::say(&format!("release failed: {error}")),
        Event::InLine { path, ahead } if ahead >= 2 => ui::explain(&format!(
            "{}: {ahead} or more waiters ahead in line; polling at the poll cap",
            path.display()
        )),
        Event::InLine { .. } | Event::Glanced | Event::QuietPoll => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watch that saw nothing is kept for the next wait on the same name
    /// (no second lookup), and loses nothing by it: a move of the file
    /// meanwhile is queued and ends that wait at once. A wait until moved
    /// does not wake for the file's times or links.
    #[test]
    fn a_quiet_watch_is_kept_and_still_sees_what_happened_between_waits() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claim");
        std::fs::write(&file, b"x").unwrap();
        let env = SysEnv::new();
        let kept = || env.watch.borrow().as_ref().unwrap().kept.is_some();
        let short = Duration::from_millis(20);
        assert!(matches!(
            env.sleep_until_moved(&file, short),
            Woken::TimedOut
        ));
        assert!(kept());
        std::fs::hard_link(&file, dir.path().join("pin")).unwrap();
        let f = std::fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert!(matches!(
            env.sleep_until_moved(&file, short),
            Woken::TimedOut
        ));
        std::fs::rename(&file, dir.path().join("moved")).unwrap();
        let began = Instant::now();
        let woken = env.sleep_until_moved(&file, Duration::from_secs(10));
        assert!(matches!(woken, Woken::Changed), "{woken:?}");
        assert!(began.elapsed() < Duration::from_secs(5));
        assert!(!kept());
        assert!(matches!(
            env.sleep_until_moved(&file, short),
            Woken::Missing
        ));
    }

    /// The library's environment changes nothing in the process; the
    /// CLI's blocks the stop signals and gives them back when dropped.
    #[test]
    fn only_taking_signals_blocks_them_and_only_until_dropped() {
        std::thread::spawn(|| {
            let blocked = || SigSet::thread_get_mask().unwrap().contains(Signal::SIGTERM);
            assert!(!blocked());
            let plain = SysEnv::new();
            assert!(!blocked(), "SysEnv::new blocked SIGTERM");
            drop(plain);
            let taking = SysEnv::taking_signals(&[Signal::SIGUSR1]);
            assert!(blocked());
            assert!(SigSet::thread_get_mask().unwrap().contains(Signal::SIGUSR1));
            drop(taking);
            assert!(!blocked(), "the mask was not put back");
            assert!(!SigSet::thread_get_mask().unwrap().contains(Signal::SIGUSR1));
        })
        .join()
        .unwrap();
    }

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
            crate::process::close_later(inotify);
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
