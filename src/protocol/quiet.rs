//! Quiet polls: a waiter deep in line on a filesystem that reports no
//! changes (NFS) polls for one round trip instead of four or five. At its
//! poll it asks the server for the lock directory's times (a GETATTR, not
//! a cached copy) instead of trying the lock (a link, and a look at what
//! took the name). Every name made, removed or renamed in the directory
//! moves those times: a release, a new holder, a waiter arriving or
//! leaving, a break. While they stay older than its last try, the lock
//! name still names the instance that try found, and the next try would
//! find it busy again; so it does not try.
//!
//! What moves no name is checked otherwise: a holder of this host that
//! died (a pid probe, no round trip), a lock due to go stale (the time is
//! known from the last look). And at least every [`TRY_EVERY`] it tries
//! whatever the times say.
//!
//! Its claim is refreshed at its tries only: a waiter of another host
//! takes it for no waiter's after `pace::CLAIM_STALE`, which costs pace
//! only, and little: it is behind two live waiters, so whoever counts it
//! counts those two first. A claim is never swept for its age.
//!
//! A time is trusted only when it is fine-grained and settled: a stamp
//! with no sub-second part (a filesystem that keeps whole seconds) never
//! is, nor one within [`SETTLE`] of the try (a change in the same tick of
//! the server's clock could carry the same stamp), nor one older than our
//! own claim (a server that does not keep directory times). Only pace
//! rests on this: a quiet poll takes, breaks and removes nothing, and a
//! try it saves would have found the lock busy; one it saved wrongly
//! would cost a waiter behind two live ones at most [`TRY_EVERY`].

use super::claim::Claim;
use super::ctx::Ctx;
use super::LockInfo;
use crate::fs::{FsTime, Meta};
use crate::stale;
use std::time::Duration;

/// How much older than our last try the directory's times must be to
/// show that nothing changed since: a few ticks of a server's clock and a
/// round trip of our estimate of its time, with room to spare.
pub(super) const SETTLE: Duration = Duration::from_millis(250);

/// The longest a quiet waiter goes without trying the lock: a bound for
/// what the directory's times can miss (a server whose clock stepped
/// back, one that keeps them coarser than it says).
pub(super) const TRY_EVERY: Duration = Duration::from_secs(60);

/// How much older than our claim's mtime the directory's times may be
/// and still be kept by the server.
const BORN_SLACK: Duration = Duration::from_secs(5);

/// Our last try, as quiet polls compare against it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tried {
    /// File-system time at the try's link (estimated from our claim).
    fs: FsTime,
    /// Monotonic time then.
    mono: Duration,
    /// Monotonic time when the lock found may be judged stale.
    stale_at: Option<Duration>,
}

impl Tried {
    /// The try by `claim` whose link was made at `linked_at` (monotonic),
    /// which found a lock due to go stale in `stale_in`.
    pub(super) fn new(claim: &Claim, linked_at: Duration, stale_in: Duration) -> Tried {
        Tried {
            fs: claim
                .fs_base
                .plus(linked_at.saturating_sub(claim.mono_base)),
            mono: linked_at,
            stale_at: linked_at.checked_add(stale_in),
        }
    }

    /// Whether a try is due whatever the directory says: for long, or the
    /// lock may have gone stale, at `now` (monotonic).
    pub(super) fn due(&self, now: Duration) -> bool {
        now >= self.mono + TRY_EVERY || self.stale_at.is_some_and(|at| now >= at)
    }
}

/// Whether the holder `info` named, alive on this host at the look, has
/// died since (a pid probe; another host's owner is judged by age only).
pub(super) fn holder_died(ctx: &Ctx, info: &LockInfo) -> bool {
    match info.record() {
        Some(r) if info.liveness == stale::Liveness::Alive => {
            let me = ctx.env.identity();
            stale::liveness(r, me, |pid| ctx.env.process(pid)) != stale::Liveness::Alive
        }
        _ => false,
    }
}

/// Whether the directory `dir` (its attributes, fresh from the server)
/// shows no change since the try `tried` by our claim, made at `born`
/// (file-system time).
pub(super) fn unchanged(dir: &Meta, tried: &Tried, born: FsTime) -> bool {
    let newest = dir.mtime.max(dir.ctime);
    let fine = newest.0 % 1_000_000_000 != 0;
    // Our claim's creation moved them; its mtime (as its create left it,
    // or of a refresh since) is of that moment or later.
    let kept = born.secs_since(newest) < BORN_SLACK.as_secs_f64();
    fine && kept && tried.fs.secs_since(newest) > SETTLE.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Kind;

    fn dir_at(t: FsTime) -> Meta {
        Meta {
            dev: 1,
            ino: 2,
            nlink: 2,
            size: 4096,
            uid: 0,
            mode: 0o755,
            kind: Kind::Dir,
            mtime: t,
            ctime: t,
            born: None,
        }
    }

    const S: i128 = 1_000_000_000;

    fn tried_at(fs: i128) -> Tried {
        Tried {
            fs: FsTime(fs),
            mono: Duration::from_secs(100),
            stale_at: Some(Duration::from_secs(110)),
        }
    }

    /// Times settled before the try say nothing changed; a change in the
    /// settling margin or after the try, a whole-second stamp, or one older
    /// than our claim (times not kept) say try.
    #[test]
    fn only_fine_settled_times_older_than_the_try_say_unchanged() {
        let born = FsTime(1000 * S + 7);
        let tried = tried_at(1010 * S + 123);
        assert!(unchanged(&dir_at(FsTime(1005 * S + 1)), &tried, born));
        assert!(!unchanged(&dir_at(FsTime(1010 * S)), &tried, born));
        assert!(!unchanged(
            &dir_at(FsTime(1009 * S + 900_000_000)),
            &tried,
            born
        ));
        assert!(!unchanged(&dir_at(FsTime(1011 * S + 5)), &tried, born));
        assert!(!unchanged(&dir_at(FsTime(1005 * S)), &tried, born));
        assert!(unchanged(&dir_at(FsTime(999 * S + 1)), &tried, born));
        assert!(!unchanged(&dir_at(FsTime(990 * S + 1)), &tried, born));
        // The newer of mtime and ctime counts.
        let d = Meta {
            ctime: FsTime(1010 * S + 100),
            ..dir_at(FsTime(1005 * S + 1))
        };
        assert!(!unchanged(&d, &tried, born));
    }

    #[test]
    fn a_try_is_due_at_the_interval_and_when_the_lock_may_be_stale() {
        let t = tried_at(0);
        assert!(!t.due(Duration::from_secs(105)));
        assert!(t.due(Duration::from_secs(110)));
        let t = Tried {
            stale_at: None,
            ..t
        };
        assert!(!t.due(Duration::from_secs(159)));
        assert!(t.due(Duration::from_secs(160)));
    }
}
