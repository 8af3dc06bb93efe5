//! Test-only: deliberately broken variants of the protocol, so the
//! simulator can show that it catches each of them. Compiled only into
//! test builds. Production code reaches a variant through one
//! `#[cfg(test)]` hook at the top of the function it replaces; a hook
//! returns `None` (or its input) unless its variant is switched on.

use super::claim::Claim;
use super::ctx::{Ctx, Phase};
use super::look::Look;
use super::removal::Removal;
use super::{Env, LockInfo};
use crate::error::Error;
use crate::fs::FsTime;
use crate::record::{self, Content};
use std::io;
use std::path::Path;
use std::time::SystemTime;

/// Deliberately broken protocol variants, selected per simulated client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    None,
    /// Acquire believes link(2)'s return code instead of checking by stat.
    TrustLinkReturn,
    /// Release unlinks the lock name without checking whose it is.
    BlindRelease,
    /// Break unlinks the lock it judged without pinning and re-verifying.
    BreakWithoutReverify,
    /// Ages are measured with the client's own clock, not file-system time.
    ClientClockAges,
    /// A reader ignores writers: it reads while a writer holds the lock
    /// (in a readers' directory of its own), and joins past seals.
    ReaderIgnoresWriter,
    /// A reader joins past writers' seals (and so overtakes a writer that
    /// waits for the readers before it), but never reads beside a writer.
    ReaderPassesSeals,
    /// A writer that finds readers removes the shared lock at once instead
    /// of sealing and waiting for them to leave.
    WriterSkipsDrain,
}

fn on(env: &dyn Env, m: Mutant) -> bool {
    env.mutant() == m
}

/// TrustLinkReturn, in `look`: success is what link(2) said.
pub(super) fn look_by_return_code(
    ctx: &Ctx,
    linked: &io::Result<()>,
) -> Result<Option<Look>, Error> {
    if !on(ctx.env, Mutant::TrustLinkReturn) {
        return Ok(None);
    }
    Ok(Some(match linked {
        Ok(()) => Look::Ours,
        Err(_) => match ctx.snapshot(&ctx.lock.path, Phase::Work)? {
            Ok(s) => Look::Busy(s),
            Err(_) => Look::Vanished,
        },
    }))
}

/// TrustLinkReturn, in `abandon`: a failed link never took, so the claim
/// just goes. Whether the variant took over.
pub(super) fn abandon_by_return_code(ctx: &Ctx, c: &Claim) -> bool {
    if !on(ctx.env, Mutant::TrustLinkReturn) {
        return false;
    }
    let _ = ctx.unlink_ours(&c.path);
    true
}

/// BlindRelease: unlink whatever is at the lock name (and the claim
/// `own_claim`, for a holder).
pub(super) fn blind_release(ctx: &Ctx, own_claim: Option<&Path>) -> Option<Result<(), Error>> {
    if !on(ctx.env, Mutant::BlindRelease) {
        return None;
    }
    if let Some(claim) = own_claim {
        let _ = ctx.unlink_ours(claim);
    }
    if let Ok(Ok(snap)) = ctx.snapshot(&ctx.lock.path, Phase::Work) {
        if let Some(Content::Ours(rec)) = snap.bytes.as_deref().map(record::parse) {
            let _ = ctx.unlink_ours(&ctx.lock.in_dir(&rec.claim));
        }
    }
    Some(ctx.unlink_ours(&ctx.lock.path))
}

/// BreakWithoutReverify: unlink the judged lock, no pin, no check.
pub(super) fn break_without_reverify(
    ctx: &Ctx,
    judged: &LockInfo,
) -> Option<Result<Removal, Error>> {
    if !on(ctx.env, Mutant::BreakWithoutReverify) {
        return None;
    }
    let _ = ctx.fs.unlink(&ctx.lock.path);
    if let Some(rec) = judged.record() {
        let _ = ctx.remove_claim_of(rec, &judged.snapshot.meta);
    }
    Some(Ok(Removal::Removed))
}

/// ClientClockAges: "now" is the local wall clock.
pub(super) fn client_clock(env: &dyn Env, now: Option<FsTime>) -> Option<FsTime> {
    if !on(env, Mutant::ClientClockAges) {
        return now;
    }
    let wall = env.wall_clock().duration_since(SystemTime::UNIX_EPOCH);
    wall.ok().map(|d| FsTime(d.as_nanos() as i128))
}

/// ReaderIgnoresWriter and ReaderPassesSeals, in `join`: the seal check
/// is skipped.
pub(super) fn ignores_seals(env: &dyn Env) -> bool {
    on(env, Mutant::ReaderIgnoresWriter) || on(env, Mutant::ReaderPassesSeals)
}

/// ReaderIgnoresWriter, on a writer's lock: "in" through a readers'
/// directory of its own, beside the writer.
pub(super) fn read_anyway(
    ctx: &Ctx,
    c: &mut Claim,
    lock: &super::Snapshot,
) -> Option<super::shared::Joined> {
    if !on(ctx.env, Mutant::ReaderIgnoresWriter) {
        return None;
    }
    let epoch = super::shared::epoch_dir(ctx.lock, c.path.file_name()?)?;
    let member = epoch.join(c.path.file_name()?);
    ctx.fs.make_dir(&epoch).ok()?;
    if ctx.fs.hard_link(&c.path, &member).is_err() {
        let _ = ctx.fs.remove_dir(&epoch);
        return None;
    }
    c.member = Some((epoch.clone(), member.clone()));
    Some(super::shared::Joined {
        epoch,
        member,
        lock: lock.clone(),
    })
}

/// WriterSkipsDrain: the readers' lock is removed as if it were free.
pub(super) fn skip_drain(ctx: &Ctx, lock: &super::Snapshot) -> bool {
    if !on(ctx.env, Mutant::WriterSkipsDrain) {
        return false;
    }
    let _ = ctx.remove_instance(lock, super::removal::Same::Instance);
    true
}
