//! What the protocol needs from its surroundings besides the filesystem
//! ([`Env`]: identity, process table, clocks, sleeping, randomness) and
//! what it tells them as it goes ([`Event`]). The real world's is
//! [`crate::sysenv::SysEnv`]; tests and the simulator bring their own.

use super::LockInfo;
use crate::error::Error;
use crate::sys::{self, Identity, ProcState};
use std::cell::Cell;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

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
    /// Like [`Env::sleep`], but may wake early when something happens to
    /// the file at `path` (its links or times change, its name is moved or
    /// removed), where the filesystem reports such events (local ones).
    /// Waking early is always allowed; so is sleeping the whole time.
    fn sleep_watching(&self, path: &Path, d: Duration) -> Woken {
        let _ = path;
        match self.sleep(d) {
            Some(signal) => Woken::Signal(signal),
            None => Woken::TimedOut,
        }
    }
    /// Like [`Env::sleep_watching`], but woken only when the file at
    /// `path` loses that name (moved, or removed: any name of it moved,
    /// or its last link gone), not when its times or link count change.
    /// An environment that cannot tell these apart wakes for both.
    fn sleep_until_moved(&self, path: &Path, d: Duration) -> Woken {
        self.sleep_watching(path, d)
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
    fn mutant(&self) -> super::mutants::Mutant {
        super::mutants::Mutant::None
    }
}

/// How a [`Env::sleep_watching`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// A stop signal arrived.
    Signal(i32),
    /// Something happened to the watched file.
    Changed,
    /// The whole time passed.
    TimedOut,
    /// There is no file at the path to watch.
    Missing,
    /// Events cannot be had here; nothing was waited for.
    Unwatchable,
}

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
    /// A writer that had waited gave the lock it just took back to a
    /// reader that came before it.
    GaveWay {
        path: &'a Path,
    },
    ReleaseFailed {
        error: &'a Error,
    },
    /// A waiter on a filesystem without change events counted the live
    /// waiters ahead of it (up to two: then it polls quietly).
    InLine {
        path: &'a Path,
        ahead: usize,
    },
    /// A poll at the cap took the lock, still there, for the instance it
    /// last looked at (its lstat saved, `wait::glance`).
    Glanced,
    /// A waiter behind the first two in line polled the directory's times
    /// instead of trying the lock, and they showed no change (`quiet`).
    QuietPoll,
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
