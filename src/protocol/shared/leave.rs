//! A reader leaves, is refreshed, or gives up its place; the last one out
//! closes the epoch and removes the lock.

use super::*;

/// Removes a shared lock whose readers' directory is gone (only the
/// instance read), and its opener's claim if the opener left it (died).
pub(super) fn remove_ended_lock(ctx: &Ctx, snap: &Snapshot) -> Result<Removal, Error> {
    let removed = ctx.remove_instance(snap, Same::Instance)?;
    if removed == Removal::Removed {
        if let Some(rec) = shared_record(snap) {
            let _ = ctx.remove_claim_of(&rec, &snap.meta);
        }
    }
    Ok(removed)
}

/// The last reader out removes the lock; its opener's claim too, unless
/// the opener is this reader (its claim goes next anyway).
pub(super) fn last_out(ctx: &Ctx, claim: &Path, lock: &Snapshot) -> Result<Removal, Error> {
    let opener = shared_record(lock).map(|r| r.claim);
    if opener.as_deref() == Some(name_of(claim)) {
        return ctx.remove_instance(lock, Same::Instance);
    }
    remove_ended_lock(ctx, lock)
}

/// Takes our claim out of the epoch we opened but did not publish (or
/// whose lock vanished), and the directory with it unless a reader got in.
/// Whether nobody else is in (then our claim's lock, if it is one, is ours
/// alone to give up; otherwise it is theirs).
pub(super) fn close_own_epoch(ctx: &Ctx, c: &mut Claim) -> bool {
    let Some((epoch, member)) = c.member.take() else {
        return true;
    };
    c.spent = true;
    let _ = ctx.unlink_ours(&member);
    close_epoch_dir(ctx, &epoch).is_ok_and(Closing::nobody_in)
}

/// Takes our claim out of an epoch we joined and will not stay in.
pub(super) fn step_out(ctx: &Ctx, c: &mut Claim) {
    if let Some((_, member)) = c.member.take() {
        let out = ctx.retrying("unlink", &member, Phase::Cleanup, || ctx.fs.unlink(&member));
        // Gone before we took it out: a breaker judged us stale.
        c.spent |= matches!(out, Ok(Err(e)) if sys::is_not_found(&e));
    }
}

/// A reader leaves: its link out of the epoch; the last one out closes
/// the epoch and removes the lock (only the instance it joined).
pub(crate) fn release_reader(ctx: &Ctx, claim: &Path, joined: &Joined) -> Result<(), Error> {
    let lost = |ctx: &Ctx| {
        let _ = ctx.unlink_ours(claim);
        Err(Error::NotOwner {
            path: ctx.lock.path.clone(),
            why: "the shared lock was broken while held".into(),
        })
    };
    // Our link's name is ours alone: gone means a breaker took it (or,
    // rarely, a retransmitted unlink after a lost reply: then 76 is a
    // false alarm, never a second holder).
    match ctx.retrying("unlink", &joined.member, Phase::Cleanup, || {
        ctx.fs.unlink(&joined.member)
    })? {
        Ok(()) => {}
        Err(e) if sys::is_not_found(&e) => return lost(ctx),
        Err(e) => return Err(ctx.dir_error("unlink", &joined.member, e)),
    }
    // Readers still in is the usual answer, not a fault to retry.
    // Gone after a failed try: ours may have gone through unseen, and then
    // nobody else would close the epoch soon. Gone at once: whoever
    // removed it removes its lock.
    let closed = close_epoch_dir(ctx, &joined.epoch)?;
    if matches!(
        closed,
        Closing::Closed
            | Closing::Gone {
                after_failed_try: true
            }
    ) {
        // Last out: nobody can join any more, so the lock is free.
        if let Removal::Denied(why) = last_out(ctx, claim, &joined.lock)? {
            let _ = ctx.unlink_ours(claim);
            return Err(Error::NotPermitted {
                path: ctx.lock.path.clone(),
                why,
            });
        }
    }
    ctx.unlink_ours(claim)
}

/// Refreshes a reader: its claim's mtime, then checks it is still in
/// (its link among the readers is its claim) and that the lock name is
/// still the shared lock it joined (`lock`). That lock moves only through
/// the removal window (a remover's pin, with a writer's link in the same
/// instant): a reader learns it here, as a writer does at its touch, and
/// leaves.
pub(crate) fn touch_reader(
    ctx: &Ctx,
    claim: &Path,
    member: &Path,
    lock: &crate::fs::Meta,
) -> Result<crate::fs::FsTime, Error> {
    let lost = |why: &str| {
        let _ = ctx.unlink_ours(member);
        if let Some(epoch) = member.parent() {
            // Empty once we are out, and no longer the lock's: ours to tidy.
            let _ = ctx.fs.remove_dir(epoch);
        }
        let _ = ctx.unlink_ours(claim);
        Error::NotOwner {
            path: ctx.lock.path.clone(),
            why: why.into(),
        }
    };
    let broken = "the shared lock was broken; this reader is no longer in";
    match ctx.retrying("touch", claim, Phase::Work, || ctx.fs.touch_now(claim))? {
        Ok(()) => {}
        Err(e) if sys::is_not_found(&e) => return Err(lost(broken)),
        Err(e) => return Err(ctx.dir_error("touch", claim, e)),
    }
    let c = match ctx.retrying("lstat", claim, Phase::Work, || ctx.fs.lstat(claim))? {
        Ok(m) => m,
        Err(e) if sys::is_not_found(&e) => return Err(lost(broken)),
        Err(e) => return Err(ctx.dir_error("lstat", claim, e)),
    };
    // Opened, not looked up: an open revalidates the name on NFS.
    match ctx.snapshot(&ctx.lock.path, Phase::Work)? {
        Ok(m) if m.meta.same_file(lock) => {}
        Ok(_) => {
            return Err(lost(
                "the shared lock was moved aside and taken while held; this reader left",
            ))
        }
        Err(e) if sys::is_not_found(&e) => {
            return Err(lost(
                "the shared lock was moved aside while held; this reader left",
            ))
        }
        Err(e) => return Err(ctx.dir_error("read", &ctx.lock.path, e)),
    }
    // Last, so that "still in" is the newest fact (breaks come this way).
    match ctx.snapshot(member, Phase::Work)? {
        Ok(m) if m.meta.same_file(&c) => Ok(c.mtime),
        Ok(_) => Err(lost(broken)),
        Err(e) if sys::is_not_found(&e) => Err(lost(broken)),
        Err(e) => Err(ctx.dir_error("read", member, e)),
    }
}
