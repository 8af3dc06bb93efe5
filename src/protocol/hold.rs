//! Holding a lock: [`Held`], the proof a holder keeps, and release and
//! touch, by the holder itself or by a later process (by owner or token).
//! Release removes only its own instance (I2); touch refreshes through our
//! own claim, so it can only change our inode; a holder whose lock was
//! broken is told (76) and leaves nothing behind (I5).

use super::ctx::Ctx;
use super::ctx::Phase;
use super::fstime::server_stamped;
use super::removal::Removal;
use super::removal::Same;
use super::shared::{self, Joined};
use super::{owns, Snapshot, Who};
use crate::error::Error;
use crate::fs::{FsTime, Meta};
use crate::record;
use crate::record::{Content, Record, READ_LIMIT};
use crate::sys;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A held lock: the claim that proves it is ours. Move-only: one value
/// per holding, consumed by its release. Whoever else must refresh the
/// lock (the heartbeat) gets a [`Toucher`], which cannot release it.
#[derive(Debug)]
#[must_use = "a held lock stays held until it is released"]
pub struct Held {
    pub(super) claim: PathBuf,
    pub(super) claim_meta: Meta,
    pub(super) record: Record,
    pub(super) bytes: Vec<u8>,
    /// A reader's place: where its claim is linked among the readers.
    pub(super) shared: Option<Joined>,
    /// Claims of other hosts were beside the lock when we took it after a
    /// wait: the release looks for the first in line, and gives it a
    /// moment to take the lock if it is one of them (`pace::hand_over`).
    pub(super) waiters: bool,
    /// When we took it (monotonic, and file-system time then), where
    /// waiters poll: a long hold looks for waiters at its release.
    pub(super) taken_at: Option<(std::time::Duration, crate::fs::FsTime)>,
}

impl Held {
    pub fn token(&self) -> &str {
        &self.record.token
    }

    /// The inode of the lock we hold (the simulator's oracle tracks it).
    #[cfg(test)]
    pub(crate) fn inode(&self) -> u64 {
        self.claim_meta.ino
    }

    /// A reader's link among the readers (the simulator's oracle tracks it).
    #[cfg(test)]
    pub(crate) fn member(&self) -> Option<&std::path::Path> {
        self.shared.as_ref().map(|j| j.member.as_path())
    }

    /// A handle that refreshes this lock, for another thread.
    pub fn toucher(&self) -> Toucher {
        Toucher {
            claim: self.claim.clone(),
            claim_meta: self.claim_meta,
            token: self.record.token.clone(),
            member: self
                .shared
                .as_ref()
                .map(|j| Box::new((j.member.clone(), j.lock.meta))),
        }
    }
}

/// The right to refresh a held lock, not to release it: what a heartbeat
/// thread keeps while the holder keeps the [`Held`].
#[derive(Clone, Debug)]
pub struct Toucher {
    claim: PathBuf,
    claim_meta: Meta,
    token: String,
    /// A reader's link among the readers, and the lock it joined.
    member: Option<Box<(PathBuf, Meta)>>,
}

impl Toucher {
    /// Refreshes the lock's mtime and checks it is still ours.
    pub fn touch(&self, ctx: &Ctx) -> Result<FsTime, Error> {
        if let Some(m) = &self.member {
            return shared::touch_reader(ctx, &self.claim, &m.0, &m.1);
        }
        let who = Who::Token(self.token.clone());
        touch_claim(ctx, &self.claim, &who, Some(&self.claim_meta))
    }
}

/// The lock is not (or no longer) `who`'s: removes our own leftover claims
/// first, so that a broken holder leaves nothing behind (I5), and says so
/// (76).
fn lost(ctx: &Ctx, who: &Who, why: &str) -> Error {
    ctx.remove_own_leftovers(who);
    Error::NotOwner {
        path: ctx.lock.path.clone(),
        why: why.to_string(),
    }
}

/// Checks the lock as read is `who`'s. On "not yours", removes our own
/// leftover claim first, so a broken holder leaves nothing behind.
fn own_in(
    ctx: &Ctx,
    who: &Who,
    read: std::io::Result<Snapshot>,
) -> Result<(Snapshot, Record), Error> {
    let snap = match read {
        Ok(s) => s,
        Err(e) if sys::is_not_found(&e) => {
            ctx.need_dir()?;
            return Err(lost(
                ctx,
                who,
                "the lock is not held (it was released or broken)",
            ));
        }
        Err(e) => return Err(ctx.dir_error("read", &ctx.lock.path, e)),
    };
    let info = ctx.judge(snap, None, Duration::ZERO, None);
    match info.record() {
        Some(rec) if owns(rec, who, ctx.env.identity()) => {
            let rec = rec.clone();
            Ok((info.snapshot, rec))
        }
        _ => Err(lost(ctx, who, &info.describe())),
    }
}

/// When the lock is shared and `who` reads it: its claim and place.
fn own_reader(
    ctx: &Ctx,
    who: &Who,
    read: &std::io::Result<Snapshot>,
) -> Result<Option<(PathBuf, Joined)>, Error> {
    let Ok(snap) = read else {
        return Ok(None);
    };
    if shared::shared_record(snap).is_none() {
        return Ok(None);
    }
    let me = ctx.env.identity();
    // A reader's name carries its token, and the host (not the owner's
    // pid: the process that made it): read only those that may match.
    let name_may = |aux: &crate::names::AuxName| match who {
        Who::Owner(_) => ctx.lock.spells_host(&aux.host, &me.host),
        Who::Token(t) => aux.nonce == *t,
    };
    match shared::find_reader(ctx, snap, &name_may, &|r| owns(r, who, me))? {
        Some((claim, joined, _)) => Ok(Some((claim, joined))),
        None => Err(lost(
            ctx,
            who,
            "this lock is shared, and not read by this owner",
        )),
    }
}

/// Releases a lock taken by `acquire` in another process.
pub fn release(ctx: &Ctx, who: &Who) -> Result<(), Error> {
    #[cfg(test)]
    if let Some(blind) = super::mutants::blind_release(ctx, None) {
        return blind;
    }
    let read = ctx.snapshot(&ctx.lock.path, Phase::Work)?;
    if let Some((claim, joined)) = own_reader(ctx, who, &read)? {
        return shared::release_reader(ctx, &claim, &joined);
    }
    let (snap, rec) = own_in(ctx, who, read)?;
    match ctx.remove_instance(&snap, Same::Instance)? {
        Removal::Removed => {
            // The record is ours (checked above), so the claim it names,
            // carrying our random token, is ours: no lstat needed.
            if ctx.lock.parse_aux(&rec.claim).map(|a| a.kind.is_claim()) == Some(true) {
                ctx.unlink_ours(&ctx.lock.in_dir(&rec.claim))?;
            }
            Ok(())
        }
        Removal::Gone => Err(lost(
            ctx,
            who,
            "the lock was broken before it could be released",
        )),
        Removal::Changed | Removal::Displaced => Err(lost(
            ctx,
            who,
            "the lock was broken and taken by someone else; it was left alone",
        )),
        Removal::Denied(why) => Err(Error::NotPermitted {
            path: ctx.lock.path.clone(),
            why,
        }),
    }
}

/// Refreshes the lock's mtime to file-system now, through our claim, and
/// returns the new mtime.
pub fn touch(ctx: &Ctx, who: &Who) -> Result<FsTime, Error> {
    let read = ctx.snapshot(&ctx.lock.path, Phase::Work)?;
    if let Some((claim, joined)) = own_reader(ctx, who, &read)? {
        return shared::touch_reader(ctx, &claim, &joined.member, &joined.lock.meta);
    }
    let (_, rec) = own_in(ctx, who, read)?;
    touch_claim(ctx, &ctx.lock.in_dir(&rec.claim), who, None)
}

/// Sets the mtime through our claim and checks the lock is that inode.
/// `ino` is the claim's inode when known (a holder created it), which
/// saves looking at the claim again.
pub(super) fn touch_claim(
    ctx: &Ctx,
    claim: &Path,
    who: &Who,
    ino: Option<&Meta>,
) -> Result<FsTime, Error> {
    // I2: touching through our own claim name can only change our own inode,
    // whatever happened to the lock; the check afterwards decides.
    match ctx.retrying("touch", claim, Phase::Work, || ctx.fs.touch_now(claim))? {
        Ok(()) => {}
        Err(e) if sys::is_not_found(&e) => {
            return Err(lost(
                ctx,
                who,
                "our claim file is gone, so the lock cannot be refreshed safely",
            ))
        }
        Err(e) => return Err(ctx.dir_error("touch", claim, e)),
    }
    let after = match ino {
        Some(m) => Ok(*m),
        None => ctx.retrying("lstat", claim, Phase::Work, || ctx.fs.lstat(claim))?,
    };
    // Through open(2), not lstat: an NFS client may still serve the lock
    // name from its cache after another host removed it, with our inode's
    // fresh attributes (two links while a breaker's pin lasts), and "ours"
    // would then be a lie; opening revalidates the name (seed 3001416).
    let mut lock_now = ctx.snapshot(&ctx.lock.path, Phase::Work)?.map(|s| s.meta);
    if let (Ok(c), Ok(l)) = (&after, &lock_now) {
        if l.same_file(c) && !server_stamped(l) {
            // The probe costs round trips, and the verdict "ours" must be
            // the last thing we looked at: look at the lock again after it.
            ctx.verify_server_touch(l)?;
            lock_now = ctx.snapshot(&ctx.lock.path, Phase::Work)?.map(|s| s.meta);
        }
    }
    let why = "the lock was broken; it now belongs to someone else or nobody";
    match (after, lock_now) {
        (Ok(c), Ok(l)) if l.same_file(&c) => Ok(l.mtime),
        // The lock is another file or none, so our claim is only a
        // leftover: remove it by name (retrying), not by a best-effort scan.
        (Ok(_), lock) if lock.as_ref().err().is_none_or(sys::is_not_found) => {
            ctx.unlink_ours(claim)?;
            Err(Error::NotOwner {
                path: ctx.lock.path.clone(),
                why: why.into(),
            })
        }
        _ => Err(lost(ctx, who, why)),
    }
}

impl Held {
    /// Refreshes the lock's mtime and checks it is still ours.
    pub fn touch(&self, ctx: &Ctx) -> Result<FsTime, Error> {
        self.toucher().touch(ctx)
    }

    /// Releases the lock; 76-style error if it was lost meanwhile.
    pub fn release(self, ctx: &Ctx) -> Result<(), Error> {
        #[cfg(test)]
        if let Some(blind) = super::mutants::blind_release(ctx, Some(&self.claim)) {
            return blind;
        }
        if let Some(joined) = &self.shared {
            return shared::release_reader(ctx, &self.claim, joined);
        }
        let expected = Snapshot {
            meta: self.claim_meta,
            bytes: Some(self.bytes.clone()),
        };
        // I2: look before moving anything: a holder whose lock was broken and
        // taken over must not move the new holder's lock aside, not even
        // for the round trip it takes to put it back.
        let still_ours = match ctx.lock_meta(&self.claim_meta, Phase::Cleanup)? {
            Ok(m) => m.same_file(&self.claim_meta),
            Err(e) if sys::is_not_found(&e) => false,
            Err(e) => return Err(ctx.dir_error("lstat", &ctx.lock.path, e)),
        };
        if !still_ours {
            ctx.unlink_ours(&self.claim)?;
            return Err(Error::NotOwner {
                path: ctx.lock.path.clone(),
                why: "the lock was broken while held".into(),
            });
        }
        let result = match ctx.remove_instance(&expected, Same::Instance)? {
            Removal::Removed => {
                super::pace::after_release(ctx, self.waiters, self.taken_at, &self.claim);
                Ok(())
            }
            Removal::Denied(why) => Err(Error::NotPermitted {
                path: ctx.lock.path.clone(),
                why,
            }),
            _ => Err(Error::NotOwner {
                path: ctx.lock.path.clone(),
                why: "the lock was broken while held".into(),
            }),
        };
        ctx.unlink_ours(&self.claim)?;
        result
    }
}

impl Ctx<'_> {
    /// Finds and removes our own claims that no longer hold the lock: what a
    /// holder whose lock was broken leaves behind.
    pub(super) fn remove_own_leftovers(&self, who: &Who) {
        let Ok(Ok(names)) = self.retrying("list", &self.lock.dir, Phase::Cleanup, || {
            self.fs.list(&self.lock.dir)
        }) else {
            return;
        };
        let me = self.env.identity();
        let mut lock_now: Option<Result<Option<Meta>, ()>> = None;
        for name in &names {
            let Some(aux) = self.lock.parse_aux(name) else {
                continue;
            };
            // A claim's name carries the pid of the process that made it,
            // not the owner's: by owner, every claim of this host may be one.
            let plausible = aux.kind.is_claim()
                && match who {
                    Who::Token(t) => &aux.nonce == t,
                    Who::Owner(_) => self.lock.spells_host(&aux.host, &me.host),
                };
            if !plausible {
                continue;
            }
            let path = self.lock.in_dir(name);
            let Ok(Ok((meta, Some(bytes)))) = self.retrying("read", &path, Phase::Cleanup, || {
                self.fs.read(&path, READ_LIMIT)
            }) else {
                continue;
            };
            let Content::Ours(rec) = record::trusted(&bytes, meta.uid) else {
                continue;
            };
            if rec.token != aux.nonce || !owns(&rec, who, me) {
                continue;
            }
            // Other names may link a claim too (a dead breaker's guard, a
            // dead remover's private name): only the lock itself makes it
            // worth keeping, and then it is not a leftover.
            // A reader's claim is never needed by name: a shared lock
            // lives at the lock name and in its readers' directory.
            if meta.nlink != 1 && !rec.shared {
                // Retried and confirmed like every give-up path's look: one
                // EIO here used to leave the claim behind (seed 3000520).
                let lock =
                    lock_now.get_or_insert_with(|| match self.lock_meta(&meta, Phase::Cleanup) {
                        Ok(Ok(m)) => Ok(Some(m)),
                        Ok(Err(e)) if sys::is_not_found(&e) => Ok(None),
                        _ => Err(()),
                    });
                // Unknown, or the lock itself: keep it.
                if lock.is_err() || lock.is_ok_and(|l| l.is_some_and(|l| l.same_file(&meta))) {
                    continue;
                }
            }
            if rec.shared {
                self.leave_epochs(&names, name);
            }
            let _ = self.unlink_ours(&path);
        }
    }

    /// A reader told it is no longer in: its link out of whichever readers'
    /// directory (of `names`, the listing) still has it, and that directory
    /// too if it was the last one in (an empty readers' directory holds
    /// nobody, whether a lock still names it or not), and the one it opened
    /// itself if that is empty.
    fn leave_epochs(&self, names: &[std::ffi::OsString], claim: &std::ffi::OsStr) {
        let own = shared::epoch_dir(self.lock, claim);
        for name in names {
            if self.lock.parse_aux(name).map(|a| a.kind) != Some(crate::names::AuxKind::Epoch) {
                continue;
            }
            let epoch = self.lock.in_dir(name);
            let was_in = self.fs.unlink(&epoch.join(claim)).is_ok();
            if was_in || own.as_deref() == Some(epoch.as_path()) {
                let _ = self.fs.remove_dir(&epoch);
            }
        }
    }
}
