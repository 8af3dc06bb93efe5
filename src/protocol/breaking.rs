//! Breaking a lock: only a stale one, unless forced, and exactly the
//! instance judged (I3): pin it, verify through the pin, remove it
//! conditionally. Data at the lock path is never removed; another user's
//! lock in a sticky directory is refused with who may remove it.

use super::ctx::Ctx;
use super::ctx::Phase;
use super::removal::{Removal, Same};
use super::sweep::Sweep;
use super::LockInfo;
use crate::error::Error;
use crate::fs::{Kind, Meta};
use crate::names::AuxKind;
use crate::record::{self, Content, Record};
use crate::stale::StaleReason;
use crate::sys;
use std::time::Duration;

/// What `break` did.
#[derive(Clone, Debug, PartialEq)]
pub enum BreakOutcome {
    /// Nobody held it.
    Free,
    /// The judged lock was removed; `reason` is `None` when forced.
    Broken {
        info: LockInfo,
        reason: Option<StaleReason>,
    },
    /// `dry_run`: it would have been broken.
    WouldBreak {
        info: LockInfo,
        reason: Option<StaleReason>,
    },
    /// Not stale (or not a regular file): left alone.
    Refused { info: LockInfo },
    /// Someone else changed the lock during the break; the current holder.
    LostRace { now: Option<LockInfo> },
    /// Stale (or forced), but we may not remove it; says who may.
    NotPermitted { info: LockInfo, why: String },
}

/// On what grounds a lock is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakBy {
    /// A verdict of staleness, void if the holder refreshes the lock
    /// before it is removed.
    Verdict,
    /// `--force`: the judged instance goes, refreshed or not.
    Force,
}

impl BreakBy {
    pub(super) fn from_force(force: bool) -> BreakBy {
        if force {
            BreakBy::Force
        } else {
            BreakBy::Verdict
        }
    }

    /// What must still hold for the removal to go ahead.
    pub(super) fn same(self) -> Same {
        match self {
            BreakBy::Verdict => Same::Unrefreshed,
            BreakBy::Force => Same::Instance,
        }
    }
}

/// Options of a break: [`crate::Lock::break_stale`] and `nfslock break`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BreakOptions {
    /// Also break a lock without a lease, held from elsewhere, that is
    /// older than this (never a valid lease, never a live owner here).
    pub older_than: Option<Duration>,
    /// Break it whatever its state (only a lock: never someone's data).
    pub force: bool,
    /// Judge only: report what would be broken.
    pub dry_run: bool,
}

/// Breaks the lock if it is stale (or `force`), removing exactly the
/// instance judged. Sweeps leftovers too.
pub fn break_lock(ctx: &Ctx, opts: BreakOptions) -> Result<BreakOutcome, Error> {
    let outcome = break_once(ctx, opts)?;
    if !opts.dry_run {
        let now = ctx.fs_now()?;
        ctx.sweep(now, None, Sweep::Thorough);
    }
    Ok(outcome)
}

pub(super) fn break_once(ctx: &Ctx, opts: BreakOptions) -> Result<BreakOutcome, Error> {
    let Some(info) = ctx.inspect(opts.older_than)? else {
        return Ok(BreakOutcome::Free);
    };
    if super::shared::shared_record(&info.snapshot).is_some() {
        return super::shared::break_shared(ctx, info, opts);
    }
    let reason = info.verdict.stale.clone();
    match &info.content {
        // Someone's data: never removed, not even by --force.
        Some(Content::NotALock { .. }) => {
            return Err(Error::NotALock {
                path: ctx.lock.path.clone(),
                what: info.describe(),
            })
        }
        None if info.snapshot.meta.kind == Kind::File => {
            return Err(Error::NotPermitted {
                path: ctx.lock.path.clone(),
                why: format!("{}; it cannot be judged", info.describe()),
            })
        }
        None => return Ok(BreakOutcome::Refused { info }),
        Some(_) if reason.is_none() && !opts.force => return Ok(BreakOutcome::Refused { info }),
        Some(_) => {}
    }
    if opts.dry_run {
        return Ok(BreakOutcome::WouldBreak { info, reason });
    }
    match ctx.break_instance(&info, BreakBy::from_force(opts.force))? {
        Removal::Removed => Ok(BreakOutcome::Broken { info, reason }),
        Removal::Gone => Ok(BreakOutcome::Free),
        Removal::Changed | Removal::Displaced => Ok(BreakOutcome::LostRace {
            now: ctx.inspect(opts.older_than)?,
        }),
        Removal::Denied(why) => Ok(BreakOutcome::NotPermitted { info, why }),
    }
}

impl Ctx<'_> {
    /// Breaks exactly the judged instance (I3): pin it with a guard link,
    /// verify it through the pin, remove the lock name, and remove the
    /// holder's claim if it is that inode. A judgement of age is void if the
    /// lock was refreshed meanwhile; [`BreakBy::Force`] breaks it regardless.
    /// Only a lock is ever broken, never data at the lock path.
    pub fn break_instance(&self, judged: &LockInfo, judged_by: BreakBy) -> Result<Removal, Error> {
        let expected = &judged.snapshot;
        // I3: only a lock is ever broken, never data at the lock path.
        match &judged.content {
            Some(c) if c.is_lock() => {}
            _ => {
                return Err(Error::NotALock {
                    path: self.lock.path.clone(),
                    what: judged.describe(),
                })
            }
        }
        #[cfg(test)]
        if let Some(broken) = super::mutants::break_without_reverify(self, judged) {
            return broken;
        }
        // In a sticky directory only root, the directory's owner and the
        // lock's owner may remove it: say so before leaving a pin behind
        // that we could not remove either.
        let me = self.env.identity().uid;
        if expected.meta.uid != me && me != 0 {
            if let Ok(d) = self.fs.lstat(&self.lock.dir) {
                if d.is_sticky() && d.uid != me {
                    return Ok(Removal::Denied(self.why_denied(&expected.meta, Some(d))));
                }
            }
        }
        let guard = self.my_aux(AuxKind::Guard);
        let linked = match self.fs.hard_link(&self.lock.path, &guard) {
            // protected_hardlinks: no pin of another user's file we may not
            // write. The removal alone still keeps I3: it checks what it
            // moved (inode, content, and the mtime unless forced) and puts
            // anything else back.
            Err(e) if sys::is_denied(&e) => {
                let r = self.remove_instance(expected, judged_by.same())?;
                if let (Removal::Removed, Some(rec)) = (&r, judged.record()) {
                    let _ = self.remove_claim_of(rec, &expected.meta);
                }
                return Ok(r);
            }
            Err(e) if sys::is_persistent(&e) => return Err(self.dir_error("link", &guard, e)),
            other => other.is_ok(),
        };
        let pinned = match self.snapshot(&guard, Phase::Cleanup)? {
            Ok(p) => p,
            Err(e) if sys::is_not_found(&e) => {
                // No pin: the lock vanished, or link failed. Look again.
                return match self.fs.lstat(&self.lock.path) {
                    Err(e) if sys::is_not_found(&e) => Ok(Removal::Gone),
                    _ => Ok(Removal::Changed),
                };
            }
            Err(e) => return Err(self.dir_error("read", &guard, e)),
        };
        // After EEXIST (our own link, its reply lost, whatever the lock
        // has become since) the name is ours if it holds a lock record: a
        // file someone put there under our fresh random name stays.
        let ours = linked
            || matches!(
                pinned
                    .bytes
                    .as_deref()
                    .map(|b| record::trusted(b, pinned.meta.uid)),
                Some(Content::Ours(_))
            );
        // I3: through the pin, the very instance judged, unrefreshed.
        let unchanged = pinned.meta.same_file(&expected.meta)
            && pinned.bytes == expected.bytes
            && (judged_by == BreakBy::Force || pinned.meta.mtime == expected.meta.mtime);
        let result = if unchanged {
            let r = self.remove_instance(expected, judged_by.same());
            if let (Ok(Removal::Removed), Some(rec)) = (&r, judged.record()) {
                // Best effort: the guard must go whatever happens here.
                let _ = self.remove_claim_of(rec, &pinned.meta);
            }
            r
        } else {
            Ok(Removal::Changed)
        };
        if ours {
            self.unlink_ours(&guard)?;
        }
        result
    }

    /// Removes the claim named in `rec` if it is the inode `meta`.
    pub(super) fn remove_claim_of(&self, rec: &Record, meta: &Meta) -> Result<(), Error> {
        if self.lock.parse_aux(&rec.claim).map(|a| a.kind.is_claim()) != Some(true) {
            return Ok(());
        }
        let claim = self.lock.in_dir(&rec.claim);
        if let Ok(Ok(m)) = self.retrying("lstat", &claim, Phase::Cleanup, || self.fs.lstat(&claim))
        {
            // Its owner may have linked the same claim again meanwhile (its
            // first link's reply was lost, then it saw no lock): then the
            // claim is a live lock's and must stay.
            let relinked = match self.lock_meta(meta, Phase::Cleanup)? {
                Ok(l) => l.same_file(meta),
                Err(e) => !sys::is_not_found(&e),
            };
            if m.same_file(meta) && !relinked {
                self.unlink_ours(&claim)?;
            }
        }
        Ok(())
    }
}
