//! The protocol's [`Env`] for the real world: /proc identity, the monotonic
//! clock, and waits that SIGINT, SIGTERM and SIGHUP cut short.
//!
//! Those three signals are blocked and read from a signalfd, so they can
//! only arrive between protocol steps, never in the middle of one: a claim
//! is always either made and known, or not made. The caller then cleans up
//! and exits 128+n.

use crate::protocol::{xorshift, Env, Event};
use crate::sys::{self, Identity, ProcState};
use crate::ui;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub struct SysEnv {
    identity: Identity,
    rng: Cell<u64>,
    origin: Instant,
    signals: Option<SignalFd>,
    caught: Cell<Option<i32>>,
    /// Other signals read from the signalfd, for `run` to forward.
    others: RefCell<Vec<Caught>>,
    forwarding: Cell<bool>,
    /// inotify on the lock's directory, set up on the first wait.
    watch: RefCell<Option<(Inotify, PathBuf)>>,
}

/// A signal read from the signalfd, with whether a process sent it with
/// kill(2) (as opposed to the kernel or the terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    pub signo: i32,
    pub sent_by_process: bool,
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
                // SI_USER, SI_QUEUE and friends are <= 0; the terminal's
                // and the kernel's signals carry SI_KERNEL (0x80) or > 0.
                let sent_by_process = info.ssi_code <= 0;
                let stop =
                    stop_signals().contains(Signal::try_from(signo).unwrap_or(Signal::SIGKILL));
                if stop && self.caught.get().is_none() && !self.forwarding.get() {
                    self.caught.set(Some(signo));
                } else {
                    self.others.borrow_mut().push(Caught {
                        signo,
                        sent_by_process,
                    });
                }
            }
        }
        self.caught.get()
    }

    /// From now on stop signals are queued like the others (for `run`,
    /// which forwards them to its child instead of stopping).
    pub fn forward_stops(&self) {
        self.forwarding.set(true);
    }

    /// Signals read so far that were not stop signals (or all of them
    /// after [`SysEnv::forward_stops`]).
    pub fn take_others(&self) -> Vec<Caught> {
        self.drain();
        std::mem::take(&mut *self.others.borrow_mut())
    }

    /// Sleeps up to `d`. Returns early with a stop signal that arrived
    /// meanwhile (one not reported before), or with `None` when `change`
    /// reports that the named entry of the watched directory was removed
    /// or renamed (or that events were lost).
    fn wait(&self, d: Duration, change: Option<(&Inotify, &OsStr)>) -> Option<i32> {
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
            if let Some((inotify, name)) = change {
                if *ready.last().unwrap_or(&false) {
                    let events = inotify.read_events().unwrap_or_default();
                    let ours = events.iter().any(|e| {
                        e.name.as_deref() == Some(name)
                            || e.mask.intersects(
                                AddWatchFlags::IN_Q_OVERFLOW
                                    | AddWatchFlags::IN_DELETE_SELF
                                    | AddWatchFlags::IN_MOVE_SELF,
                            )
                    });
                    if ours {
                        return None;
                    }
                }
            }
        }
    }

    /// Waits until a signal arrives or `d` passes.
    pub fn wait_signal(&self, d: Duration) {
        let Some(fd) = &self.signals else {
            std::thread::sleep(d);
            return;
        };
        let timeout = poll_timeout(d);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, timeout);
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

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, d: Duration) -> Option<i32> {
        self.wait(d, None)
    }

    fn sleep_until_change(&self, dir: &Path, name: &OsStr, d: Duration) -> Option<i32> {
        let fresh = self.watch.borrow().as_ref().is_none_or(|(_, d)| d != dir);
        if fresh {
            let flags = AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF;
            let made = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                .and_then(|i| i.add_watch(dir, flags).map(|_| i));
            match made {
                // A removal before the watch existed went unseen: if the
                // name is gone already, look again at once (one lstat
                // here is cheaper than the protocol's full look).
                Ok(i) => {
                    *self.watch.borrow_mut() = Some((i, dir.to_path_buf()));
                    if std::fs::symlink_metadata(dir.join(name)).is_err() {
                        return self.drain();
                    }
                }
                Err(_) => return self.sleep(d),
            }
        }
        let watch = self.watch.borrow();
        self.wait(d, watch.as_ref().map(|(i, _)| (i, name)))
    }

    fn interrupted(&self) -> Option<i32> {
        self.drain()
    }

    fn random(&self) -> u64 {
        xorshift(&self.rng)
    }

    fn event(&self, event: Event<'_>) {
        match event {
            Event::Waiting { info } => ui::explain(&format!("waiting: {}", info.describe())),
            Event::Broke { info, reason } => ui::explain(&format!(
                "broke a stale lock ({}): {}",
                reason.describe(),
                info.describe()
            )),
            Event::BreakRaceLost => {
                ui::explain("the lock changed while being broken; left it alone")
            }
            Event::Retrying { op, path, error } => {
                ui::explain(&format!("{op} {}: {error}; retrying", path.display()))
            }
            Event::Displaced { path } => ui::say(&format!(
                "{}: a lock taken during a removal could not be put back; its holder will find it lost",
                path.display()
            )),
            Event::Swept { path } => {
                ui::explain(&format!("removed leftover {}", path.display()))
            }
            Event::ReleaseFailed { error } => ui::say(&format!("release failed: {error}")),
        }
    }
}
