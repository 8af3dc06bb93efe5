//! What the protocol needs from its surroundings besides the filesystem
//! ([`Env`]: identity, process table, clocks, sleeping, randomness) and
//! what it tells them as it goes ([`Event`]). The real world's is
//! [`crate::sysenv::SysEnv`]; tests and the simulator bring their own.

use super::LockInfo;
use crate::error::Error;
use crate::names::LockPath;
use crate::stale::StaleReason;
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
    fn mutant(&self) -> super::mutants::Mutant {
        super::mutants::Mutant::None
    }
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

/// One step of xorshift64: cheap jitter and tokens from a kernel seed.
pub fn xorshift(state: &Cell<u64>) -> u64 {
    let mut x = state.get().max(1);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.set(x);
    x
}
