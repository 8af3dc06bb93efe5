//! A contender's claim: the record of its owner under a fresh name that
//! carries the waiting process's pid (so a claim whose maker is gone is
//! litter, I5), kept fresh while it waits so that a lock made of it is
//! born fresh (I6), and given up on every error path without leaving a
//! lock nobody knows it holds (I4).

use super::ctx::Ctx;
use super::ctx::Phase;
use super::removal::Same;
use super::{AcquireOptions, Env, Snapshot};
use crate::error::Error;
use crate::fs::{FsTime, Meta};
use crate::names::AuxKind;
use crate::record::{self, Record};
use std::path::PathBuf;
use std::time::Duration;

/// The claim a contender holds while it tries.
pub(super) struct Claim {
    pub(super) path: PathBuf,
    pub(super) meta: Meta,
    pub(super) record: Record,
    pub(super) bytes: Vec<u8>,
    /// File-system time at `made_at` on our monotonic clock: lets us
    /// estimate file-system "now" without a round trip.
    pub(super) fs_base: FsTime,
    pub(super) mono_base: Duration,
    /// A reader's claim's link into a readers' directory: (directory, link).
    pub(super) member: Option<(PathBuf, PathBuf)>,
    /// A writer's seal on the readers' directory it waits for.
    pub(super) seal: Option<PathBuf>,
    /// A reader's claim to replace before the next try: a readers'
    /// directory was made and closed with it (that name is never made
    /// again), a breaker took its link while it was joining (and removes
    /// the claim), or it became the lock of readers who joined while its
    /// opener could not see it.
    pub(super) spent: bool,
}

impl Claim {
    pub(super) fn estimate_now(&self, env: &dyn Env) -> FsTime {
        self.fs_base
            .plus(env.monotonic().saturating_sub(self.mono_base))
    }
}

/// Writes a new claim: the record of `opts.owner`, under a fresh name that
/// carries the pid of this process (the one that waits with it, so a
/// claim whose maker is gone is recognisable as litter).
pub(super) fn new_claim(ctx: &Ctx, opts: &AcquireOptions) -> Result<Claim, Error> {
    let env = ctx.env;
    let me = env.identity();
    let acquired_at = record::iso8601(env.wall_clock());
    let record_for = |token: &str, name: &std::ffi::OsStr| Record {
        host: me.host.clone(),
        boot_id: me.boot_id.clone(),
        machine: me.machine.clone(),
        pidns: me.pidns,
        pid: opts.owner.pid,
        pid_start: opts.owner.start,
        uid: me.uid,
        user: me.user().to_string(),
        token: token.to_string(),
        acquired_at: acquired_at.clone(),
        lease: opts.lease,
        claim: name.to_os_string(),
        cmd: opts.cmd.clone(),
        shared: opts.shared,
    };
    // An exclusive claim's nonce begins with its time: the waiters' line
    // on NFS is read off the names (`pace`). A reader's stays random: its
    // order is the writers' (`shared::order`), and its name is also its
    // link among the readers.
    let made = ctx.create_aux_with(
        if opts.shared {
            AuxKind::Share
        } else {
            AuxKind::Claim
        },
        &|| {
            if opts.shared {
                super::files::hex_token(env)
            } else {
                super::pace::claim_nonce(env)
            }
        },
        &|token, name| record_for(token, name).encode(),
        opts.durable,
        Phase::Work,
    )?;
    let name = made.path.file_name().unwrap_or_default().to_os_string();
    Ok(Claim {
        record: record_for(&made.nonce, &name),
        path: made.path,
        meta: made.meta,
        bytes: made.data,
        fs_base: made.meta.mtime,
        mono_base: env.monotonic(),
        member: None,
        seal: None,
        spent: false,
    })
}

/// Whether a refresh of our claim reads its mtime back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stamp {
    /// Go on from the last reading of file-system time.
    Estimate,
    /// Read it back and check the server stamped it (I6).
    Verify,
}

impl Stamp {
    /// A waiter's first refresh verifies; later ones estimate.
    pub(super) fn first(first: bool) -> Stamp {
        if first {
            Stamp::Verify
        } else {
            Stamp::Estimate
        }
    }
}

/// Touches our claim so that a lock made of it is born fresh: one SETATTR.
/// File-system "now" is not read back (that would be a second round trip
/// per poll on NFS); the estimate goes on from the last reading, and any
/// verdict of age taken from an estimate is confirmed by
/// [`refresh_fs_time`] before it is acted on. With [`Stamp::Verify`] (a waiter's
/// first refresh) it is read back once, to check the touch took the file
/// server's time before a lock is made of it.
pub(super) fn refresh_claim(
    ctx: &Ctx,
    slot: &mut Option<Claim>,
    stamp: Stamp,
) -> Result<(), Error> {
    let c = slot.as_mut().expect("claim present");
    let path = c.path.clone();
    let touched = ctx.retrying("touch", &path, Phase::Work, || ctx.fs.touch_now(&path))?;
    if let Err(e) = touched {
        return Err(ctx.dir_error("touch", &path, e));
    }
    let now = ctx.env.monotonic();
    if stamp == Stamp::Verify {
        match ctx.retrying("lstat", &path, Phase::Work, || ctx.fs.lstat(&path))? {
            Ok(m) => {
                ctx.verify_server_touch(&m)?;
                c.fs_base = m.mtime;
            }
            Err(e) => return Err(ctx.dir_error("lstat", &path, e)),
        }
    } else {
        c.fs_base = c.fs_base.plus(now.saturating_sub(c.mono_base));
    }
    c.mono_base = now;
    Ok(())
}

/// Touches our claim and reads its mtime back: file-system "now".
pub(super) fn refresh_fs_time(ctx: &Ctx, slot: &mut Option<Claim>) -> Result<FsTime, Error> {
    refresh_claim(ctx, slot, Stamp::Estimate)?;
    let c = slot.as_mut().expect("claim present");
    let path = c.path.clone();
    match ctx.retrying("lstat", &path, Phase::Work, || ctx.fs.lstat(&path))? {
        Ok(m) => {
            ctx.verify_server_touch(&m)?;
            c.fs_base = m.mtime;
            c.mono_base = ctx.env.monotonic();
            Ok(m.mtime)
        }
        Err(e) => Err(ctx.dir_error("lstat", &path, e)),
    }
}

/// Gives a claim up on an error path, releasing the lock first if the claim
/// turns out to hold it (a link whose success we had not seen yet).
pub(super) fn abandon(ctx: &Ctx, c: &Claim) {
    #[cfg(test)]
    if super::mutants::abandon_by_return_code(ctx, c) {
        return;
    }
    // A reader's lock (its claim, when it opened the epoch) is everyone's
    // who joined: it goes only if we were the last one in.
    if !abandon_member(ctx, c) {
        let _ = ctx.unlink_ours(&c.path);
        return;
    }
    // I4: retry transient errors here too: giving up on this look would
    // leave a lock that nobody knows it holds.
    if let Ok(Ok(l)) = ctx.lock_meta(&c.meta, Phase::Cleanup) {
        if l.same_file(&c.meta) {
            let expected = Snapshot {
                meta: c.meta,
                bytes: Some(c.bytes.clone()),
            };
            let _ = ctx.remove_instance(&expected, Same::Instance);
        }
    }
    let _ = ctx.unlink_ours(&c.path);
}

/// Takes down a writer's seal when its wait for those readers is over,
/// and their directory with it if that left it empty: a directory with
/// nobody in it is no longer the lock's (the writer moved on because the
/// lock changed) or is closed by the writer itself next.
pub(super) fn drop_seal(ctx: &Ctx, c: &mut Claim) {
    if let Some(seal) = c.seal.take() {
        take_down_seal(ctx, &seal);
    }
}

/// Removes our seal (transient errors retried: one left behind keeps its
/// readers' directory from ever going), then its directory if that left it
/// empty.
fn take_down_seal(ctx: &Ctx, seal: &std::path::Path) {
    let _ = ctx.retrying("rmdir", seal, Phase::Cleanup, || ctx.fs.remove_dir(seal));
    if let Some(epoch) = seal.parent() {
        let _ = ctx.fs.remove_dir(epoch);
    }
}

/// An error path: our seal down, our claim out of any epoch, and the
/// epoch gone if nobody else is in it. Whether nobody else is (always,
/// for a writer).
fn abandon_member(ctx: &Ctx, c: &Claim) -> bool {
    if let Some(seal) = &c.seal {
        take_down_seal(ctx, seal);
    }
    let Some((epoch, member)) = &c.member else {
        return true;
    };
    let _ = ctx.unlink_ours(member);
    super::epoch::close_epoch_dir(ctx, epoch).is_ok_and(super::epoch::Closing::nobody_in)
}
