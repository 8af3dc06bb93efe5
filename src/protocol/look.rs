//! Judging a link attempt by what is at the lock name, never by link(2)'s
//! return code (I1, I4): our claim's inode with two links is ours.

use super::claim::Claim;
use super::ctx::Ctx;
use super::ctx::Phase;
use super::Snapshot;
use crate::error::Error;
use crate::fs::Meta;
use crate::sys;
use std::io;
use std::time::Duration;

/// How long an attribute cache may keep a claim's link count from before
/// the link (NFS acregmin is 3 s by default).
pub const STALE_ATTR_PATIENCE: Duration = Duration::from_secs(5);

/// The state of a contender after it linked.
pub(super) enum Look {
    Ours,
    Busy(Snapshot),
    /// The lock vanished between our link and our look: try again at once.
    Vanished,
    /// Our claim disappeared (swept by mistake, or deleted by hand).
    ClaimLost,
    /// Link counts or inodes that do not add up.
    Anomaly(String),
    /// The lock is a copy of our claim: link(2) copies on this filesystem.
    Copied(Snapshot),
}

/// Judges a link attempt by what is at the lock name. Our claim and the
/// lock are one inode when we hold it, so a single lstat of the lock shows
/// both tests: same inode as our claim, and two links. Only a busy lock
/// costs a read, for its record; a failed link that has no earlier read
/// to compare with goes straight to the read.
pub(super) fn look(
    ctx: &Ctx,
    c: &Claim,
    linked: &io::Result<()>,
    last: Option<&Snapshot>,
) -> Result<Look, Error> {
    #[cfg(test)]
    if let Some(seen) = super::mutants::look_by_return_code(ctx, linked)? {
        return Ok(seen);
    }
    if matches!(linked, Err(e) if sys::is_not_found(e)) {
        // The source of the link is gone (or the directory is).
        return Ok(Look::ClaimLost);
    }
    // After a link that reports success only who is there matters (and a
    // link count the loop below asks again if low): `identify` spares the
    // GETATTR some clients send after the lookup. A poll compares every
    // attribute with its last read, so it asks lstat.
    let stat_lock = |identity: bool| -> Result<Option<Meta>, Error> {
        let path = &ctx.lock.path;
        match ctx.retrying("lstat", path, Phase::Work, || match identity {
            true => ctx.fs.identify(path),
            false => ctx.fs.lstat(path),
        })? {
            Ok(m) => Ok(Some(m)),
            Err(e) if sys::is_not_found(&e) => Ok(None),
            Err(e) => Err(ctx.dir_error("lstat", &ctx.lock.path, e)),
        }
    };
    // A failed link with no earlier read of the lock to compare with: the
    // read below decides anyway, and its fstat shows all an lstat would.
    // Every new contender would pay that lstat (a round trip on NFS).
    let seen = if linked.is_err() && last.is_none() {
        None
    } else {
        match stat_lock(linked.is_ok())? {
            Some(m) => Some(m),
            None => return Ok(Look::Vanished),
        }
    };
    let ours_by_lstat = seen.as_ref().is_some_and(|m| m.same_file(&c.meta));
    // Polling a lock we have read: the same attributes (inode, links,
    // size, mtime, ctime) mean the same instance, so its record is known.
    // A stale cache can only delay us here: our link's EEXIST would then
    // be our own lock, found at a later poll or by the clean-up's fresh
    // read.
    if let (Some(m), Some(last)) = (&seen, last) {
        if linked.is_err() && !ours_by_lstat && *m == last.meta {
            return Ok(Look::Busy(last.clone()));
        }
    }
    let mut lock = match seen {
        Some(m) if ours_by_lstat && linked.is_ok() => m,
        // Busy, or a failed link with our inode at the name: a lost reply
        // to a link that took, or a cached lstat from when this claim was
        // the lock before. No path reuses such a claim today (a writer
        // that gives the lock back makes a new one), but a cached "ours"
        // must never count as holding: the read decides, one round trip
        // on a rare path.
        _ => match read_lock(ctx, c, linked)? {
            Ok(meta) => meta,
            Err(other) => return Ok(other),
        },
    };
    // The lock is our inode but shows one link: an attribute cache (NFS
    // actimeo) may still hold the count from before the link. Give it time
    // to catch up before calling the filesystem a liar.
    let patience = ctx.env.monotonic() + STALE_ATTR_PATIENCE;
    while lock.nlink < 2 && ctx.env.monotonic() < patience {
        if let Some(signal) = ctx.env.sleep(Duration::from_millis(100)) {
            return Err(Error::Interrupted { signal });
        }
        match stat_lock(false)? {
            Some(m) if m.same_file(&c.meta) => lock = m,
            _ => return Ok(Look::Vanished),
        }
    }
    // I1: ours only as our claim's inode with two links, whatever link(2)
    // said.
    Ok(if lock.nlink >= 2 {
        Look::Ours
    } else {
        Look::Anomaly("the lock is our claim's inode but has one link".into())
    })
}

/// The read that decides a look (open revalidates the name on NFS): our
/// claim's attributes as the lock shows them, or what else is there.
fn read_lock(ctx: &Ctx, c: &Claim, linked: &io::Result<()>) -> Result<Result<Meta, Look>, Error> {
    let snap = match ctx.snapshot(&ctx.lock.path, Phase::Work)? {
        Ok(s) => s,
        Err(e) if sys::is_not_found(&e) => return Ok(Err(Look::Vanished)),
        Err(e) => return Err(ctx.dir_error("read", &ctx.lock.path, e)),
    };
    if snap.meta.same_file(&c.meta) {
        return Ok(Ok(snap.meta));
    }
    // I1: a copy of our claim is not our lock.
    Ok(Err(if snap.bytes.as_deref() == Some(c.bytes.as_slice()) {
        Look::Copied(snap)
    } else if linked.is_ok() {
        Look::Anomaly("link(2) reported success but the lock is another file".into())
    } else {
        Look::Busy(snap)
    }))
}
