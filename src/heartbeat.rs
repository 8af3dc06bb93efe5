//! The heartbeat of a held lock. A thread of its own refreshes the lock
//! every lease/3 and checks that it is still ours, so that the process that
//! keeps time (the supervisor of `run`, the keeper of `acquire
//! --keepalive`) never waits for the file server: it forwards signals and
//! notices its command's end whatever the server does. A server that stops
//! answering stops the beats, not the supervisor, which then sees no
//! refresh for longer than the lease, on its own monotonic clock, and
//! calls the lock lost (others may have taken it meanwhile).

use crate::error::Error;
use crate::fs::LockFs;
use crate::names::LockPath;
use crate::protocol::{self, xorshift, Ctx, Env, Event, Toucher, Who};
use crate::sys::{self, Identity, ProcState};
use crate::ui;
use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Why a held lock no longer protects its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Broken and perhaps taken: not ours any more (exit 76).
    NotOurs(String),
    /// Not refreshed for longer than the lease: others may have it (76).
    Unrefreshed(String),
    /// The filesystem turned out unable to keep file-system time (69).
    Unsupported(String),
}

impl Lost {
    pub fn describe(&self) -> &str {
        match self {
            Lost::NotOurs(w) | Lost::Unrefreshed(w) | Lost::Unsupported(w) => w,
        }
    }
}

/// What the beats are refreshing.
pub enum Target {
    /// A lock this process holds.
    Held(Toucher),
    /// A lock taken by `acquire` in another process, by its token.
    Token(String),
}

struct State {
    last_ok: Instant,
    lost: Option<Lost>,
    /// A beat is under way (it may be stuck in a call to a dead server).
    busy: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// The heartbeat: created when the lock is taken, started at its first
/// beat (a command shorter than lease/3 never needs the thread).
pub struct Heartbeat {
    shared: Arc<Shared>,
    /// Written by the thread after every beat, polled by the supervisor;
    /// made with the thread.
    wake: Option<Arc<OwnedFd>>,
    beat: Duration,
    lease: Duration,
    taken: Instant,
    job: Option<Job>,
    thread: Option<JoinHandle<()>>,
}

/// What the thread needs, kept until it starts.
struct Job {
    fs: Arc<dyn LockFs>,
    lock: LockPath,
    io_timeout: Duration,
    identity: Identity,
    target: Target,
}

impl Heartbeat {
    /// A heartbeat for `target` at `ctx`'s lock under `lease`, which was
    /// taken or last refreshed just now; the thread works through `fs`.
    pub fn new(ctx: &Ctx, fs: Arc<dyn LockFs>, lease: Duration, target: Target) -> Heartbeat {
        let beat = lease / 3;
        Heartbeat {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    last_ok: Instant::now(),
                    lost: None,
                    busy: false,
                    stop: false,
                }),
                cv: Condvar::new(),
            }),
            wake: None,
            beat,
            lease,
            taken: Instant::now(),
            job: Some(Job {
                fs,
                lock: ctx.lock.clone(),
                // A beat that cannot finish within its period is late.
                io_timeout: ctx.io_timeout.min(beat),
                identity: ctx.env.identity().clone(),
                target,
            }),
            thread: None,
        }
    }

    /// Readable after each beat (once the thread runs): the supervisor
    /// waits on it beside its signals.
    pub fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        self.wake.as_deref().map(AsFd::as_fd)
    }

    /// When the supervisor must look at the heartbeat next, at the latest:
    /// the first beat (to start the thread), or the end of the lease since
    /// the last refresh.
    pub fn due(&self) -> Instant {
        if self.job.is_some() {
            return self.taken + self.beat;
        }
        self.lock().last_ok + self.lease + Duration::from_millis(1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the thread when the first beat is due, and says whether the
    /// lock is lost.
    pub fn check(&mut self, now: Instant) -> Result<Option<Lost>, Error> {
        if let Some(wake) = &self.wake {
            let mut buf = [0u8; 8];
            // SAFETY: reading 8 bytes into a buffer of 8 from our eventfd.
            let _ = unsafe { nix::libc::read(wake.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        }
        if now >= self.taken + self.beat {
            self.start()?;
        }
        let state = self.lock();
        if let Some(lost) = &state.lost {
            return Ok(Some(lost.clone()));
        }
        let unrefreshed = now.saturating_duration_since(state.last_ok);
        Ok((unrefreshed > self.lease).then(|| {
            Lost::Unrefreshed(format!(
                "not refreshed for {}, longer than its lease: others may have taken it",
                crate::duration::human(unrefreshed)
            ))
        }))
    }

    fn start(&mut self) -> Result<(), Error> {
        let Some(job) = self.job.take() else {
            return Ok(());
        };
        // SAFETY: eventfd(2) with valid flags; the new descriptor is ours.
        let fd = unsafe { nix::libc::eventfd(0, nix::libc::EFD_CLOEXEC | nix::libc::EFD_NONBLOCK) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Internal(format!(
                "cannot make the heartbeat's event: {e}"
            )));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        self.wake = Some(Arc::clone(&wake));
        let (shared, beat) = (Arc::clone(&self.shared), self.beat);
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || beats(&job, &shared, &wake, beat))
            .map_err(|e| Error::Internal(format!("cannot start the heartbeat: {e}")))?;
        self.thread = Some(thread);
        Ok(())
    }

    /// Stops the beats before the lock is released, waiting up to
    /// `patience` for one under way to finish. False if one is stuck in a
    /// call to a server that does not answer: the thread is left to die
    /// with the process.
    pub fn stop(mut self, patience: Duration) -> bool {
        let mut state = self.lock();
        state.stop = true;
        self.shared.cv.notify_all();
        let end = Instant::now() + patience;
        while state.busy {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .cv
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(state);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        true
    }
}

/// The thread: a beat at once, then one every `beat` until stopped or lost.
fn beats(job: &Job, shared: &Shared, wake: &OwnedFd, beat: Duration) {
    let env = ThreadEnv::new(job.identity.clone());
    let ctx = Ctx::new(&*job.fs, &env, &job.lock, job.io_timeout);
    fn guard(s: &Shared) -> std::sync::MutexGuard<'_, State> {
        s.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    loop {
        {
            let mut state = guard(shared);
            if state.stop {
                return;
            }
            state.busy = true;
        }
        let outcome = beat_once(&ctx, &job.target);
        let mut state = guard(shared);
        state.busy = false;
        let done = matches!(outcome, Beat::Lost(_));
        match outcome {
            Beat::Refreshed => state.last_ok = Instant::now(),
            // Not a refresh: the lease runs on.
            Beat::Failed => {}
            Beat::Lost(l) => state.lost = Some(l),
        }
        shared.cv.notify_all();
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes to our eventfd.
        let _ = unsafe { nix::libc::write(wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        if done {
            return;
        }
        let next = Instant::now() + beat;
        while !state.stop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = shared
                .cv
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// What one beat found.
enum Beat {
    Refreshed,
    /// The refresh failed (the lease runs on towards its end).
    Failed,
    Lost(Lost),
}

/// One refresh.
fn beat_once(ctx: &Ctx, target: &Target) -> Beat {
    let result = match target {
        Target::Held(held) => held.touch(ctx).map(drop),
        Target::Token(token) => protocol::touch(ctx, &Who::Token(token.clone())).map(drop),
    };
    match result {
        Ok(()) => Beat::Refreshed,
        Err(e @ Error::NotOwner { .. }) => {
            let now = match ctx.inspect(None) {
                Ok(Some(info)) => format!("now {}", info.describe()),
                Ok(None) => "nobody holds it now".into(),
                Err(e) => format!("cannot tell who holds it now: {e}"),
            };
            Beat::Lost(Lost::NotOurs(format!("{e}; {now}")))
        }
        Err(e @ Error::Unsupported { .. }) => Beat::Lost(Lost::Unsupported(e.to_string())),
        Err(e) => {
            ui::say(&format!(
                "{}: heartbeat failed: {e}; trying again at the next beat",
                ctx.lock.path.display()
            ));
            Beat::Failed
        }
    }
}

/// The protocol's environment on the heartbeat thread: our identity, the
/// monotonic clock, plain sleeps (signals are the supervisor's business).
struct ThreadEnv {
    identity: Identity,
    origin: Instant,
    rng: Cell<u64>,
}

impl ThreadEnv {
    fn new(identity: Identity) -> ThreadEnv {
        ThreadEnv {
            identity,
            origin: Instant::now(),
            rng: Cell::new(sys::random_seed()),
        }
    }
}

impl Env for ThreadEnv {
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
        std::thread::sleep(d);
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
    fn event(&self, event: Event<'_>) {
        crate::sysenv::report(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faultfs::{Fault, FaultFs, Op};
    use crate::protocol::{acquire, AcquireOptions, Held, Owner};
    use crate::realfs::RealFs;
    use crate::sysenv::SysEnv;

    fn held_lock(dir: &std::path::Path) -> (LockPath, SysEnv, Held) {
        let lock = LockPath::new(&dir.join("l")).unwrap();
        let env = SysEnv::new();
        let me = Owner::of_pid(&env, std::process::id()).unwrap();
        let held = {
            let ctx = Ctx::new(&RealFs, &env, &lock, Duration::from_secs(5));
            acquire(&ctx, &AcquireOptions::new(me)).unwrap()
        };
        (lock, env, held)
    }

    /// A beat stuck in a call that does not return (a file server that
    /// stopped answering) stops nothing but the beats: the lock is found
    /// lost once a lease has passed without a refresh, on the supervisor's
    /// own clock.
    #[test]
    fn a_stuck_beat_makes_the_lock_lost_after_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, env, held) = held_lock(dir.path());
        let hung = FaultFs::new(RealFs);
        hung.on(
            Op::Touch,
            None,
            0,
            Fault::Before(Box::new(|| std::thread::sleep(Duration::from_secs(3)))),
        );
        let ctx = Ctx::new(&RealFs, &env, &lock, Duration::from_secs(5));
        let lease = Duration::from_millis(300);
        let mut heart = Heartbeat::new(&ctx, Arc::new(hung), lease, Target::Held(held.toucher()));
        let began = Instant::now();
        let lost = loop {
            std::thread::sleep(Duration::from_millis(10));
            if let Some(lost) = heart.check(Instant::now()).unwrap() {
                break lost;
            }
            assert!(began.elapsed() < Duration::from_secs(2), "never lost");
        };
        assert!(matches!(lost, Lost::Unrefreshed(_)), "{lost:?}");
        assert!(began.elapsed() >= lease);
        assert!(!heart.stop(Duration::from_millis(10)), "the beat is stuck");
        held.release(&ctx).unwrap();
    }

    /// Beats that fail (here every touch refused) are no refreshes: the lock
    /// is lost once a lease has passed without one.
    #[test]
    fn failing_beats_do_not_keep_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, env, held) = held_lock(dir.path());
        let refusing = FaultFs::new(RealFs);
        refusing.on(Op::Touch, None, 0, Fault::Fail(nix::libc::EPERM));
        let ctx = Ctx::new(&RealFs, &env, &lock, Duration::from_secs(5));
        let lease = Duration::from_millis(300);
        let target = Target::Held(held.toucher());
        let mut heart = Heartbeat::new(&ctx, Arc::new(refusing), lease, target);
        let began = Instant::now();
        let lost = loop {
            env.wait_signal(Duration::from_millis(20), heart.wake_fd());
            if let Some(lost) = heart.check(Instant::now()).unwrap() {
                break lost;
            }
            assert!(began.elapsed() < Duration::from_secs(5), "never lost");
        };
        assert!(matches!(lost, Lost::Unrefreshed(_)), "{lost:?}");
        assert!(heart.stop(Duration::from_secs(1)));
        held.release(&ctx).unwrap();
    }

    /// A lock broken under a beating holder is reported as not ours at the
    /// next beat, with who holds it now.
    #[test]
    fn a_broken_lock_is_lost_at_the_next_beat() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, env, held) = held_lock(dir.path());
        let ctx = Ctx::new(&RealFs, &env, &lock, Duration::from_secs(5));
        let mut heart = Heartbeat::new(
            &ctx,
            Arc::new(RealFs),
            Duration::from_millis(300),
            Target::Held(held.toucher()),
        );
        std::fs::remove_file(&lock.path).unwrap();
        let began = Instant::now();
        let lost = loop {
            env.wait_signal(Duration::from_millis(50), heart.wake_fd());
            if let Some(lost) = heart.check(Instant::now()).unwrap() {
                break lost;
            }
            assert!(began.elapsed() < Duration::from_secs(5), "never lost");
        };
        assert!(
            matches!(&lost, Lost::NotOurs(w) if w.contains("nobody holds it")),
            "{lost:?}"
        );
        assert!(heart.stop(Duration::from_secs(1)));
        assert!(held.release(&ctx).is_err());
    }
}
