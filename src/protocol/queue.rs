//! The waiters' queue, on filesystems that report changes (local ones): a
//! release wakes one waiter, not all of them, and the lock goes to the
//! waiters in the order they came. Only sleeping is decided here; every
//! guarantee is kept by the attempt that follows, whatever the queue did.
//!
//! Each waiter watches one inode, never the directory (a directory watch
//! wakes every waiter at each claim created or removed beside the lock).
//! The first in line watches the lock: it is woken when the name is moved
//! or unlinked, touched, or pinned by a breaker, each a reason to look.
//! Every other waiter watches the claim of the waiter just ahead of it,
//! which changes when that one takes the lock (its link count) or leaves.
//! A waiter ahead that is stopped, or gone without a trace (its claim left
//! behind), holds the line for at most [`QUEUE_FALLBACK`]. The directory
//! is read through [`crate::fs::LockFs`], so faults and the simulator
//! reach it like every other step.

use super::ctx::Ctx;
use super::env::Woken;
use crate::fs::{FsTime, Meta};
use crate::names::AuxKind;
use std::cmp::Reverse;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a waiter trusts the one ahead of it to move the queue on
/// before it looks at the lock itself.
pub(super) const QUEUE_FALLBACK: Duration = Duration::from_secs(2);

/// Changes in the queue followed within one wait, at most.
const QUEUE_TURNS: usize = 16;

/// Sleeps up to `d` in line for the lock, with `claim` (ours) placing us
/// among the waiters. Returns a stop signal that arrived meanwhile. Waking
/// early is always allowed; so is sleeping the whole time.
pub(super) fn wait_in_line(ctx: &Ctx, claim: &Path, d: Duration) -> Option<i32> {
    let env = ctx.env;
    let deadline = env.monotonic() + d;
    // Set when the waiter we watched has just taken the lock: then we are
    // first in line without reading the directory again.
    let mut first = false;
    for _ in 0..QUEUE_TURNS {
        let ahead = if first {
            None
        } else {
            waiter_ahead(ctx, claim)
        };
        let target = ahead.as_ref().map_or(ctx.lock.path.as_path(), |(p, _)| p);
        let left = deadline.saturating_sub(env.monotonic());
        let span = match ahead {
            Some(_) => left.min(QUEUE_FALLBACK),
            None => left,
        };
        match env.sleep_watching(target, span) {
            Woken::Signal(signal) => return Some(signal),
            // The waiter ahead left: find who is ahead now.
            Woken::Missing if ahead.is_some() => continue,
            // The lock is gone: look at once.
            Woken::Missing => return env.interrupted(),
            Woken::Unwatchable => break,
            // Timed out (the lock's own wait, or the fallback): look.
            Woken::TimedOut => return None,
            Woken::Changed => {
                let (_, theirs) = ahead?;
                first = matches!(ctx.fs.lstat(&ctx.lock.path), Ok(m) if m.same_file(&theirs));
            }
        }
    }
    env.sleep(deadline.saturating_sub(env.monotonic()))
}

/// The claim of the waiter just ahead of ours, and its attributes: the
/// newest claim of this lock born before ours, leaving out the holder's
/// (the lock's inode) and those of processes of this host that no longer
/// exist. Birth times where the filesystem has them; else the ctime.
fn waiter_ahead(ctx: &Ctx, claim: &Path) -> Option<(PathBuf, Meta)> {
    let (fs, lock) = (ctx.fs, ctx.lock);
    let key = |m: &Meta| -> (FsTime, u64) { (m.born.unwrap_or(m.ctime), m.ino) };
    let my_key = key(&fs.lstat(claim).ok()?);
    let my_name = claim.file_name()?;
    let me = lock.parse_aux(my_name)?;
    let holder = fs.lstat(&lock.path).ok();
    let mut earlier = Vec::new();
    for name in fs.list(&lock.dir).ok()? {
        let Some(aux) = lock.parse_aux(&name) else {
            continue;
        };
        if aux.kind != AuxKind::Claim || name == my_name {
            continue;
        }
        let path = lock.in_dir(&name);
        let Ok(m) = fs.lstat(&path) else { continue };
        if key(&m) < my_key && !holder.is_some_and(|h| h.same_file(&m)) {
            earlier.push((key(&m), path, aux, m));
        }
    }
    // Newest first; a dead process's claim queues for nothing. Only as
    // many pids are probed as it takes to find a live one.
    earlier.sort_by_key(|e| Reverse(e.0));
    earlier
        .into_iter()
        .find(|(_, _, aux, _)| aux.host != me.host || !ctx.env.pid_gone(aux.pid))
        .map(|(_, path, _, m)| (path, m))
}
