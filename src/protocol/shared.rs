//! Shared (reader) locks: many readers at once, never with a writer, and a
//! waiting writer is not overtaken by readers that come after it.
//!
//! A shared lock is an *epoch*: a readers' directory `E` beside the lock
//! (`.<lock>.nfslock-epoch.<nonce>.<pid>.<host>`, named after the claim of
//! the reader that opened it), and the opener's claim linked to the lock
//! name, its record saying `mode=shared`. A reader is in while its own
//! claim is linked into `E` (`E/<its claim name>`); it is refreshed and
//! judged stale exactly as a writer's claim is, by its own inode.
//!
//! Why it is safe without trusting a listing or a negative lookup:
//! - A reader joins only through link(2) *into* `E`, which the server
//!   refuses once `E` is gone; `E` goes only by rmdir(2), which the server
//!   refuses while any reader is linked in. So a reader is in only while
//!   `E` exists, and the lock name keeps the opener's claim until `E` is
//!   gone: no writer's link can succeed meanwhile (I1 as before).
//! - `E` names are fresh and never made again, so "`E` is gone" cannot be
//!   a cached negative lookup of a name that will come back: a lock whose
//!   `E` is gone is free, and is removed as a stale lock is (I3).
//! - A writer that finds readers seals `E` with a subdirectory named after
//!   its claim (a positive mark: `E` shows more than two links), so readers
//!   that join after it leave again and wait (writer preference); it
//!   breaks stale readers one by one, and when only seals are left it
//!   removes them and `E`, then the lock, and takes it as usual. A reader
//!   that slips in while the seals are down makes rmdir fail: the writer
//!   seals again and waits for it.
//! - Seals are fairness only: a seal whose writer's claim is gone, dead, or
//!   unrefreshed for [`SEAL_STALE`] is removed by any reader.

use super::acquire::{Attempts, Step};
use super::claim::Claim;
use super::ctx::{Ctx, Phase};
use super::removal::{Removal, Same};
use super::{BreakBy, BreakOptions, BreakOutcome, Event, LockInfo, Snapshot};
use crate::error::Error;
use crate::fs::Kind;
use crate::names::{AuxKind, LockPath};
use crate::record::{self, Content, Record};
use crate::sys;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A seal whose writer's claim has not been refreshed for this long is
/// stale (writers refresh theirs at every attempt, at least every few
/// seconds while they wait for readers).
pub const SEAL_STALE: Duration = Duration::from_secs(15);

/// Longest sleep of a writer waiting for readers, so its seal stays fresh.
const DRAIN_NAP: Duration = Duration::from_secs(3);

/// How long a lock whose epoch has ended is left to the one who ended it
/// before anyone else removes it (its closer may have died).
const ENDED_PATIENCE: Duration = Duration::from_secs(2);

/// Who closed an epoch that has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closer {
    Us,
    Other,
}

/// Where a reader is in: the readers' directory, its claim's link in it,
/// and the lock as read when it joined (the opener's claim).
#[derive(Clone, Debug)]
pub(crate) struct Joined {
    pub(crate) epoch: PathBuf,
    pub(crate) member: PathBuf,
    pub(crate) lock: Snapshot,
}

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

fn name_of(path: &Path) -> &OsStr {
    path.file_name().unwrap_or_default()
}

impl Attempts<'_> {
    /// One try of a reader: join the epoch the lock names, or open one if
    /// the lock is free; a writer's lock is judged and waited for as by
    /// any contender.
    pub(super) fn shared_attempt(
        &mut self,
        slot: &mut Option<Claim>,
    ) -> Result<Result<Joined, Step>, Error> {
        let ctx = self.ctx;
        let snap = match ctx.snapshot(&ctx.lock.path, Phase::Work)? {
            Ok(s) => s,
            Err(e) if sys::is_not_found(&e) => {
                if self.contended && self.writer_ahead(slot) {
                    return Ok(Err(Step::Pause));
                }
                return self.open_epoch(slot);
            }
            Err(e) => return Err(ctx.dir_error("read", &ctx.lock.path, e)),
        };
        match shared_record(&snap) {
            Some(rec) => self.join(slot, snap, &rec),
            None => Ok(Err(self.busy(slot, snap)?)),
        }
    }

    /// Opens an epoch: its directory with our claim in it first, then our
    /// claim linked to the lock name, judged by `look` as a writer's is.
    fn open_epoch(&mut self, slot: &mut Option<Claim>) -> Result<Result<Joined, Step>, Error> {
        let ctx = self.ctx;
        let c = slot.as_mut().expect("claim present");
        let epoch = epoch_dir(ctx.lock, name_of(&c.path)).expect("a reader's claim name");
        let member = epoch.join(name_of(&c.path));
        if c.member.is_none() {
            match ctx.fs.make_dir(&epoch) {
                Ok(()) => {}
                // A retransmitted mkdir of ours: the name is fresh.
                Err(e) if sys::is_exists(&e) && self.is_our_dir(&epoch) => {}
                Err(e) => return Err(ctx.dir_error("mkdir", &epoch, e)),
            }
            // A link that reports success was made (only failures can be
            // false, after a lost reply): look only then.
            let linked = ctx.fs.hard_link(&c.path, &member);
            match linked.as_ref().map_err(|_| ctx.fs.lstat(&member)) {
                Ok(()) => {}
                Err(Ok(m)) if m.same_file(&c.meta) => {}
                _ => {
                    let _ = ctx.fs.remove_dir(&epoch);
                    let e = linked
                        .err()
                        .unwrap_or_else(|| std::io::Error::other("no link"));
                    return Err(ctx.dir_error("link", &member, e));
                }
            }
            c.member = Some((epoch.clone(), member.clone()));
        }
        let c = slot.as_ref().expect("claim present");
        let linked = ctx.fs.hard_link(&c.path, &ctx.lock.path);
        match super::look::look(&ctx, c, &linked, None)? {
            super::look::Look::Ours => {
                let lock = Snapshot {
                    meta: c.meta,
                    bytes: Some(c.bytes.clone()),
                };
                let joined = Joined {
                    epoch,
                    member,
                    lock,
                };
                Ok(Ok(joined))
            }
            super::look::Look::Busy(snap) => {
                close_own_epoch(&ctx, slot.as_mut().expect("claim present"));
                match shared_record(&snap) {
                    Some(rec) => self.join(slot, snap, &rec),
                    None => Ok(Err(self.busy(slot, snap)?)),
                }
            }
            other => {
                close_own_epoch(&ctx, slot.as_mut().expect("claim present"));
                Ok(Err(self.missed(slot, other, linked)?))
            }
        }
    }

    /// Whether a writer that came before us still waits (its claim is
    /// older than ours, fresh, and not of a process gone here): a reader
    /// that has waited lets it have the free lock first. Fairness only,
    /// from a listing; only readers that waited pay for it.
    fn writer_ahead(&self, slot: &Option<Claim>) -> bool {
        let ctx = self.ctx;
        let Some(c) = slot.as_ref() else {
            return false;
        };
        let Ok(names) = ctx.fs.list(&ctx.lock.dir) else {
            return false;
        };
        let key = |m: &crate::fs::Meta| m.born.unwrap_or(m.ctime);
        let now = c.estimate_now(ctx.env);
        let me = &ctx.env.identity().host;
        names.iter().any(|name| {
            let Some(aux) = ctx.lock.parse_aux(name) else {
                return false;
            };
            if aux.kind != AuxKind::Claim
                || (ctx.lock.spells_host(&aux.host, me) && ctx.env.pid_gone(aux.pid))
            {
                return false;
            }
            matches!(ctx.fs.lstat(&ctx.lock.in_dir(name)), Ok(m)
                if key(&m) < key(&c.meta)
                    && now.secs_since(m.mtime) < SEAL_STALE.as_secs_f64())
        })
    }

    fn is_our_dir(&self, path: &Path) -> bool {
        let uid = self.ctx.env.identity().uid;
        matches!(self.ctx.fs.lstat(path), Ok(m) if m.kind == Kind::Dir && m.uid == uid)
    }

    /// Joins the epoch of the shared lock `snap`: our claim linked into its
    /// directory; out again at once if a live writer has sealed it.
    fn join(
        &mut self,
        slot: &mut Option<Claim>,
        snap: Snapshot,
        rec: &Record,
    ) -> Result<Result<Joined, Step>, Error> {
        let ctx = self.ctx;
        let Some(epoch) = epoch_dir(ctx.lock, &rec.claim) else {
            // A shared record that names no readers' directory: damaged,
            // or not ours to understand; judged like any other lock.
            return Ok(Err(self.busy(slot, snap)?));
        };
        let c = slot.as_ref().expect("claim present");
        let member = epoch.join(name_of(&c.path));
        let linked = ctx.fs.hard_link(&c.path, &member);
        let inside =
            linked.is_ok() || matches!(ctx.fs.lstat(&member), Ok(m) if m.same_file(&c.meta));
        if !inside {
            return match linked {
                Err(e) if sys::is_not_found(&e) => {
                    if !matches!(ctx.fs.lstat(&c.path), Ok(m) if m.same_file(&c.meta)) {
                        return Ok(Err(self.missed(
                            slot,
                            super::look::Look::ClaimLost,
                            Err(e),
                        )?));
                    }
                    // The readers' directory is gone for good (its name is
                    // never made again): the lock is free, its remains stale.
                    Ok(Err(self.remove_ended(&snap, Closer::Other)?))
                }
                Err(e) if sys::is_persistent(&e) => Err(ctx.dir_error("link", &member, e)),
                Err(e) => {
                    self.budget.pause(&ctx, "link", &member, e, Phase::Work)?;
                    Ok(Err(Step::Waited))
                }
                Ok(()) => Ok(Err(Step::Pause)),
            };
        }
        self.budget.ok(&ctx);
        let c = slot.as_mut().expect("claim present");
        c.member = Some((epoch.clone(), member.clone()));
        let dir = ctx.fs.lstat(&epoch);
        match dir {
            // Made by the opener, not planted under the name after it went.
            Ok(d) if d.kind == Kind::Dir && d.uid == snap.meta.uid => {
                if d.nlink > 2 && self.live_seal(&epoch, slot)? {
                    leave(&ctx, slot.as_mut().expect("claim present"));
                    let info = ctx.judge(snap, None, Duration::ZERO, None);
                    return Ok(Err(self.wait_behind_writer(slot, info)?));
                }
            }
            _ => {
                leave(&ctx, slot.as_mut().expect("claim present"));
                return Ok(Err(self.remove_ended(&snap, Closer::Other)?));
            }
        }
        let joined = Joined {
            epoch,
            member,
            lock: snap,
        };
        Ok(Ok(joined))
    }

    /// Whether a writer that is still waiting has sealed `epoch`; stale
    /// seals are taken down on the way.
    fn live_seal(&mut self, epoch: &Path, slot: &mut Option<Claim>) -> Result<bool, Error> {
        let ctx = self.ctx;
        let Ok(names) = ctx.fs.list(epoch) else {
            return Ok(false);
        };
        let now = slot.as_ref().map(|c| c.estimate_now(ctx.env));
        let mut live = false;
        for name in names {
            let Some(aux) = ctx.lock.parse_aux(&name) else {
                continue;
            };
            if aux.kind != AuxKind::Claim {
                continue;
            }
            let claim = ctx.lock.in_dir(&name);
            let gone_here = ctx.lock.spells_host(&aux.host, &ctx.env.identity().host)
                && ctx.env.pid_gone(aux.pid);
            let fresh = match ctx.fs.lstat(&claim) {
                Ok(m) => now.is_none_or(|n| n.secs_since(m.mtime) < SEAL_STALE.as_secs_f64()),
                Err(_) => false,
            };
            if fresh && !gone_here {
                live = true;
            } else {
                let _ = ctx.fs.remove_dir(&epoch.join(&name));
            }
        }
        Ok(live)
    }

    /// A reader that met a writer's seal: busy, or wait for the writer's
    /// turn to come and go.
    fn wait_behind_writer(
        &mut self,
        slot: &mut Option<Claim>,
        info: LockInfo,
    ) -> Result<Step, Error> {
        self.contended = true;
        self.wait_for_holder(slot, info, None)
    }

    /// The lock's readers' directory is gone: remove the lock (only the
    /// instance we read) and look again.
    fn remove_ended(&mut self, snap: &Snapshot, closer: Closer) -> Result<Step, Error> {
        let ctx = self.ctx;
        // Whoever closed the epoch removes the lock; everyone else gives
        // it that time, so that many contenders do not move one lock name
        // about at once (each removal moves the name aside for a round
        // trip, and a lock taken in that instant would be displaced).
        if closer == Closer::Other && self.watched(snap) < ENDED_PATIENCE {
            return Ok(Step::Pause);
        }
        match ctx.fs.lstat(&ctx.lock.path) {
            Ok(m) if m.same_file(&snap.meta) => {}
            _ => return Ok(Step::Now),
        }
        match remove_ended_lock(&ctx, snap)? {
            Removal::Denied(why) => {
                let info = ctx.judge(snap.clone(), None, Duration::ZERO, None);
                Err(self.busy_error(Some(info), Some(why)))
            }
            _ => Ok(Step::Now),
        }
    }

    /// A writer found readers: seal their epoch, break stale readers, and
    /// when none is left close the epoch and free the lock.
    pub(super) fn drain(
        &mut self,
        slot: &mut Option<Claim>,
        info: LockInfo,
        rec: &Record,
    ) -> Result<Step, Error> {
        let ctx = self.ctx;
        let Some(epoch) = epoch_dir(ctx.lock, &rec.claim) else {
            return self.wait_for_holder(slot, info, None);
        };
        let c = slot.as_ref().expect("claim present");
        let seal = epoch.join(name_of(&c.path));
        match ctx.fs.make_dir(&seal) {
            Ok(()) => slot.as_mut().expect("claim present").seal = Some(seal.clone()),
            Err(e) if sys::is_exists(&e) => {}
            Err(e) if sys::is_not_found(&e) => {
                return self.remove_ended(&info.snapshot, Closer::Other)
            }
            Err(e) if sys::is_persistent(&e) => return Err(ctx.dir_error("mkdir", &seal, e)),
            Err(_) => {}
        }
        let names = match ctx.fs.list(&epoch) {
            Ok(n) => n,
            Err(e) if sys::is_not_found(&e) => {
                return self.remove_ended(&info.snapshot, Closer::Other)
            }
            Err(e) => return Err(ctx.dir_error("list", &epoch, e)),
        };
        let mut live: Option<PathBuf> = None;
        let mut seals = Vec::new();
        for name in names {
            match ctx.lock.parse_aux(&name).map(|a| a.kind) {
                Some(AuxKind::Share) => {
                    let member = epoch.join(&name);
                    if !self.break_if_stale(slot, &member)? {
                        live.get_or_insert(member);
                    }
                }
                Some(AuxKind::Claim) => seals.push(epoch.join(&name)),
                _ => {}
            }
        }
        if let Some(reader) = live {
            return self.wait_for_readers(slot, info, &reader);
        }
        for s in seals {
            let _ = ctx.fs.remove_dir(&s);
        }
        slot.as_mut().expect("claim present").seal = None;
        match ctx.fs.remove_dir(&epoch) {
            Ok(()) => self.remove_ended(&info.snapshot, Closer::Us),
            Err(e) if sys::is_not_found(&e) => self.remove_ended(&info.snapshot, Closer::Other),
            // A reader slipped in while the seals were down: seal again.
            Err(_) => Ok(Step::Now),
        }
    }

    /// Judges one reader by its own claim and breaks it when stale (the
    /// usual rules, race-safe: the reader's link in the epoch is removed
    /// only if it is still the instance judged). Whether it is gone.
    fn break_if_stale(&mut self, slot: &mut Option<Claim>, member: &Path) -> Result<bool, Error> {
        let ctx = self.ctx;
        let Some(sub) = LockPath::new(member).ok() else {
            return Ok(false);
        };
        let sctx = Ctx { lock: &sub, ..ctx };
        let snap = match ctx.snapshot(member, Phase::Work)? {
            Ok(s) => s,
            Err(e) if sys::is_not_found(&e) => return Ok(true),
            Err(e) => return Err(ctx.dir_error("read", member, e)),
        };
        let now = slot.as_ref().map(|c| c.estimate_now(ctx.env));
        let info = sctx.judge(snap, now, Duration::ZERO, self.opts.stale_after);
        if info.verdict.stale.is_none() || info.record().is_none() {
            return Ok(false);
        }
        let info = match (&info.verdict.stale, slot.as_mut()) {
            (Some(crate::stale::StaleReason::DeadOwner(_)), _) | (_, None) => info,
            (_, Some(_)) => {
                let fresh = super::claim::refresh_fs_time(&ctx, slot)?;
                sctx.judge(
                    info.snapshot,
                    Some(fresh),
                    Duration::ZERO,
                    self.opts.stale_after,
                )
            }
        };
        if info.verdict.stale.is_none() {
            return Ok(false);
        }
        match sctx.remove_instance(&info.snapshot, Same::Unrefreshed)? {
            Removal::Removed | Removal::Gone => {
                ctx.env.event(Event::Broke {
                    path: member,
                    info: &info,
                });
                if let Some(rec) = info.record() {
                    let _ = ctx.remove_claim_of(rec, &info.snapshot.meta);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sleeps until a reader may have left: woken by the reader whose link
    /// we watch on local filesystems, polling with backoff elsewhere; never
    /// longer than keeps our seal fresh.
    fn wait_for_readers(
        &mut self,
        slot: &mut Option<Claim>,
        info: LockInfo,
        reader: &Path,
    ) -> Result<Step, Error> {
        let env = self.ctx.env;
        self.contended = true;
        let (remaining, _) = self.may_wait(&info, None)?;
        let watching = self.watching(slot.as_ref().expect("claim present"));
        let mut nap = if watching {
            DRAIN_NAP
        } else {
            self.backoff.next(env)
        };
        nap = nap.min(DRAIN_NAP);
        if let Some(r) = remaining {
            nap = nap.min(r);
        }
        let signal = if watching {
            match env.sleep_watching(reader, nap) {
                super::Woken::Signal(s) => Some(s),
                _ => None,
            }
        } else {
            env.sleep(nap)
        };
        self.last = Some(info);
        match signal {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(Step::Waited),
        }
    }
}

/// Removes a shared lock whose readers' directory is gone (only the
/// instance read), and its opener's claim if the opener left it (died).
fn remove_ended_lock(ctx: &Ctx, snap: &Snapshot) -> Result<Removal, Error> {
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
fn last_out(ctx: &Ctx, claim: &Path, lock: &Snapshot) -> Result<Removal, Error> {
    let opener = shared_record(lock).map(|r| r.claim);
    if opener.as_deref() == Some(name_of(claim)) {
        return ctx.remove_instance(lock, Same::Instance);
    }
    remove_ended_lock(ctx, lock)
}

/// Takes our claim out of the epoch we opened but did not publish.
fn close_own_epoch(ctx: &Ctx, c: &mut Claim) {
    if let Some((epoch, member)) = c.member.take() {
        let _ = ctx.unlink_ours(&member);
        let _ = ctx.fs.remove_dir(&epoch);
    }
}

/// Takes our claim out of an epoch we joined and will not stay in.
fn leave(ctx: &Ctx, c: &mut Claim) {
    if let Some((_, member)) = c.member.take() {
        let _ = ctx.unlink_ours(&member);
    }
}

/// A reader leaves: its link out of the epoch; the last one out closes
/// the epoch and removes the lock (only the instance it joined).
pub(super) fn release_reader(ctx: &Ctx, claim: &Path, joined: &Joined) -> Result<(), Error> {
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
    if ctx.fs.remove_dir(&joined.epoch).is_ok() {
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

/// Refreshes a reader: its claim's mtime, then checks it is still in.
pub(super) fn touch_reader(
    ctx: &Ctx,
    claim: &Path,
    member: &Path,
) -> Result<crate::fs::FsTime, Error> {
    let lost = || Error::NotOwner {
        path: ctx.lock.path.clone(),
        why: "the shared lock was broken; this reader is no longer in".into(),
    };
    match ctx.retrying("touch", claim, Phase::Work, || ctx.fs.touch_now(claim))? {
        Ok(()) => {}
        Err(e) if sys::is_not_found(&e) => return Err(lost()),
        Err(e) => return Err(ctx.dir_error("touch", claim, e)),
    }
    let c = match ctx.retrying("lstat", claim, Phase::Work, || ctx.fs.lstat(claim))? {
        Ok(m) => m,
        Err(_) => return Err(lost()),
    };
    match ctx.snapshot(member, Phase::Work)? {
        Ok(m) if m.meta.same_file(&c) => Ok(c.mtime),
        _ => {
            let _ = ctx.unlink_ours(claim);
            Err(lost())
        }
    }
}

/// The readers of a shared lock and the writers waiting for them, for
/// `status` and `list`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readers {
    pub holders: Vec<LockInfo>,
    pub waiting_writers: Vec<LockInfo>,
    /// The readers' directory is gone: the lock is free, its file stale.
    pub ended: bool,
}

/// Finds a reader of the shared lock `snap` that `matches` its record.
pub(super) fn find_reader(
    ctx: &Ctx,
    snap: &Snapshot,
    matches: &dyn Fn(&Record) -> bool,
) -> Option<(PathBuf, Joined, Record)> {
    let rec = shared_record(snap)?;
    let epoch = epoch_dir(ctx.lock, &rec.claim)?;
    for name in ctx.fs.list(&epoch).ok()? {
        if ctx.lock.parse_aux(&name).map(|a| a.kind) != Some(AuxKind::Share) {
            continue;
        }
        let member = epoch.join(&name);
        let Ok(Ok(s)) = ctx.snapshot(&member, Phase::Work) else {
            continue;
        };
        let Some(bytes) = s.bytes.as_deref() else {
            continue;
        };
        if let Content::Ours(r) = record::trusted(bytes, s.meta.uid) {
            if matches(&r) {
                let joined = Joined {
                    epoch: epoch.clone(),
                    member,
                    lock: snap.clone(),
                };
                return Some((ctx.lock.in_dir(&name), joined, r));
            }
        }
    }
    None
}

impl Ctx<'_> {
    /// Who reads the shared lock `snap`, and which writers wait.
    pub fn readers(&self, snap: &Snapshot, now: Option<crate::fs::FsTime>) -> Option<Readers> {
        let rec = shared_record(snap)?;
        let epoch = epoch_dir(self.lock, &rec.claim)?;
        let names = match self.fs.list(&epoch) {
            Ok(n) => n,
            Err(_) => {
                return Some(Readers {
                    ended: true,
                    ..Readers::default()
                })
            }
        };
        let mut out = Readers::default();
        for name in names {
            let (path, writer) = match self.lock.parse_aux(&name).map(|a| a.kind) {
                Some(AuxKind::Share) => (epoch.join(&name), false),
                Some(AuxKind::Claim) => (self.lock.in_dir(&name), true),
                _ => continue,
            };
            let Ok(Ok(s)) = self.snapshot(&path, Phase::Work) else {
                continue;
            };
            let Ok(sub) = LockPath::new(&path) else {
                continue;
            };
            let info = Ctx {
                lock: &sub,
                ..*self
            }
            .judge(s, now, Duration::ZERO, None);
            match writer {
                false => out.holders.push(info),
                true => out.waiting_writers.push(info),
            }
        }
        Some(out)
    }
}

/// `break` of a shared lock: its stale readers one by one (every reader
/// with `--force`), each only if still the instance judged; once none is
/// left, the seals, the readers' directory and the lock. A reader broken
/// finds its link gone at its next touch or release.
pub(super) fn break_shared(
    ctx: &Ctx,
    info: LockInfo,
    opts: BreakOptions,
) -> Result<BreakOutcome, Error> {
    let Some(epoch) = shared_record(&info.snapshot).and_then(|r| epoch_dir(ctx.lock, &r.claim))
    else {
        return Ok(BreakOutcome::Refused { info });
    };
    let names = match ctx.fs.list(&epoch) {
        Ok(n) => n,
        Err(e) if sys::is_not_found(&e) => Vec::new(),
        Err(e) => return Err(ctx.dir_error("list", &epoch, e)),
    };
    let by = BreakBy::from_force(opts.force);
    let mut first: Option<BreakOutcome> = None;
    let (mut left, mut seals) = (0, Vec::new());
    for name in names {
        match ctx.lock.parse_aux(&name).map(|a| a.kind) {
            Some(AuxKind::Claim) => seals.push(epoch.join(&name)),
            Some(AuxKind::Share) => {
                let member = epoch.join(&name);
                let Ok(sub) = LockPath::new(&member) else {
                    continue;
                };
                let sctx = Ctx { lock: &sub, ..*ctx };
                let Ok(snap) = ctx.snapshot(&member, Phase::Work)? else {
                    continue;
                };
                let reader = sctx.judge(snap, info.now, Duration::ZERO, opts.older_than);
                let reason = reader.verdict.stale.clone();
                if reason.is_none() && !opts.force {
                    left += 1;
                    continue;
                }
                if opts.dry_run {
                    first.get_or_insert(BreakOutcome::WouldBreak {
                        info: reader,
                        reason,
                    });
                    left += 1;
                    continue;
                }
                match sctx.remove_instance(&reader.snapshot, by.same())? {
                    Removal::Removed | Removal::Gone => {
                        if let Some(rec) = reader.record() {
                            let _ = ctx.remove_claim_of(rec, &reader.snapshot.meta);
                        }
                        first.get_or_insert(BreakOutcome::Broken {
                            info: reader,
                            reason,
                        });
                    }
                    Removal::Denied(why) => {
                        left += 1;
                        first.get_or_insert(BreakOutcome::NotPermitted { info: reader, why });
                    }
                    _ => left += 1,
                }
            }
            _ => {}
        }
    }
    if left == 0 && !opts.dry_run {
        for s in seals {
            let _ = ctx.fs.remove_dir(&s);
        }
        match ctx.fs.remove_dir(&epoch) {
            Ok(()) => {}
            Err(e) if sys::is_not_found(&e) => {}
            // A reader came in meanwhile: it holds the lock.
            Err(_) => return Ok(first.unwrap_or(BreakOutcome::Refused { info })),
        }
        if let Removal::Denied(why) = remove_ended_lock(ctx, &info.snapshot)? {
            return Ok(BreakOutcome::NotPermitted { info, why });
        }
        return Ok(first.unwrap_or(BreakOutcome::Broken { info, reason: None }));
    }
    Ok(first.unwrap_or(BreakOutcome::Refused { info }))
}
