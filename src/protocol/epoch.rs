//! The names and judgments of shared locks that need no contender: which
//! lock is a shared one, where its readers' directory is, and whether a
//! writer's seal or a breaker's pin in it is stale. `sweep` and `status`
//! use them as well as the shared-lock protocol itself.

use super::ctx::Ctx;
use super::Snapshot;
use crate::names::{AuxKind, LockPath};
use crate::record::{self, Content, Record};
use crate::sys;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A seal whose writer's claim has not been refreshed for this long is
/// stale (writers refresh theirs at every attempt, at least every few
/// seconds while they wait for readers).
pub const SEAL_STALE: Duration = Duration::from_secs(15);

/// The record of a shared lock, if `snap` is one (believed only from the
/// uid that owns the file, as every record).
pub(crate) fn shared_record(snap: &Snapshot) -> Option<Record> {
    match record::trusted(snap.bytes.as_deref()?, snap.meta.uid) {
        Content::Ours(r) if r.shared => Some(r),
        _ => None,
    }
}

/// The readers' directory of the epoch opened with claim `claim_name`.
pub(crate) fn epoch_dir(lock: &LockPath, claim_name: &OsStr) -> Option<PathBuf> {
    let aux = lock.parse_aux(claim_name)?;
    (aux.kind == AuxKind::Share)
        .then(|| lock.in_dir(&lock.aux_name(AuxKind::Epoch, &aux.nonce, aux.pid, &aux.host)))
}

/// Whether the contender (writer or reader) whose claim is at `claim`
/// (named `aux`) is certainly dead: its name says this host and no process
/// here has its pid, and its record (read only then) agrees, boot and pid
/// namespace included (a container on this host has the same host name
/// and other pids).
pub(crate) fn claimant_dead_here(ctx: &Ctx, claim: &Path, aux: &crate::names::AuxName) -> bool {
    let me = ctx.env.identity();
    if !ctx.lock.spells_host(&aux.host, &me.host) || !ctx.env.pid_gone(aux.pid) {
        return false;
    }
    let Ok((meta, Some(bytes))) = ctx.fs.read(claim, crate::record::READ_LIMIT) else {
        return false;
    };
    match record::trusted(&bytes, meta.uid) {
        Content::Ours(rec) => matches!(
            crate::stale::liveness(&rec, me, |p| ctx.env.process(p)),
            crate::stale::Liveness::Dead(_)
        ),
        _ => false,
    }
}

/// Whether the seal `name` (named after a writer's claim) is stale: its
/// writer's claim is gone, unrefreshed for [`SEAL_STALE`], or of a process
/// certainly dead here.
pub(crate) fn seal_is_stale(ctx: &Ctx, name: &OsStr, now: Option<crate::fs::FsTime>) -> bool {
    let Some(aux) = ctx.lock.parse_aux(name) else {
        return false;
    };
    let claim = ctx.lock.in_dir(name);
    match ctx.fs.lstat(&claim) {
        Err(e) => sys::is_not_found(&e),
        Ok(m) => {
            now.is_some_and(|n| n.secs_since(m.mtime) >= SEAL_STALE.as_secs_f64())
                || claimant_dead_here(ctx, &claim, &aux)
        }
    }
}

/// Whether `name`, in a readers' directory, is a breaker's own name for
/// one of the readers (its pin or private name, `.<reader's link>.nfslock-
/// ...`): in use for a round trip by a breaker at work, or left by one
/// that died. It holds the reader's claim, and keeps the directory from
/// going until it is judged and removed.
pub(crate) fn is_readers_pin(lock: &LockPath, name: &OsStr) -> bool {
    let mut share = lock.aux_prefix();
    share.extend_from_slice(AuxKind::Share.tag().as_bytes());
    share.push(b'.');
    name.as_bytes()
        .strip_prefix(b".")
        .is_some_and(|rest| rest.starts_with(&share) && rest.windows(9).any(|w| w == b".nfslock-"))
}

/// How an rmdir(2) of a readers' directory went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Removed: nobody was in it.
    Closed,
    /// Readers (or seals) are still in it.
    Others,
    /// Not there: removed by someone else, or by our own try whose reply
    /// was lost (`after_failed_try`).
    Gone { after_failed_try: bool },
    /// It could not be told (an error that stayed).
    Unknown,
}

impl Closing {
    /// Nobody else is in it any more.
    pub(crate) fn nobody_in(self) -> bool {
        matches!(self, Closing::Closed | Closing::Gone { .. })
    }
}

/// Tries to remove the readers' directory `epoch`, transient errors
/// retried ("not empty" is an answer, not a fault).
pub(crate) fn close_epoch_dir(ctx: &Ctx, epoch: &Path) -> Result<Closing, crate::error::Error> {
    let mut failed = false;
    let seen = ctx.retrying("rmdir", epoch, super::ctx::Phase::Cleanup, || {
        match ctx.fs.remove_dir(epoch) {
            Ok(()) => Ok(Closing::Closed),
            Err(e) if sys::is_not_empty(&e) => Ok(Closing::Others),
            Err(e) => {
                failed |= sys::is_transient(&e);
                Err(e)
            }
        }
    })?;
    Ok(match seen {
        Ok(c) => c,
        Err(e) if sys::is_not_found(&e) => Closing::Gone {
            after_failed_try: failed,
        },
        Err(_) => Closing::Unknown,
    })
}
