//! What an attempt does when it did not take the lock: a busy lock is
//! judged and broken when stale and ours to break (I3, I8), or waited for;
//! a lock that vanished, a lost claim, or link counts that do not add up
//! are looked at again (I4) or refused (69).

use super::acquire::{Attempts, Step};
use super::claim::{abandon, refresh_fs_time, Claim};
use super::ctx::Phase;
use super::look::Look;
use super::removal::Removal;
use super::removal::Same;
use super::BreakBy;
use super::{owns, Event, Snapshot, Who};
use crate::error::Error;
use crate::record::{self, Content};
use crate::stale::StaleReason;
use crate::sys;
use std::io;
use std::time::Duration;

impl Attempts<'_> {
    /// The attempt neither took the lock nor found it busy.
    pub(super) fn missed(
        &mut self,
        slot: &mut Option<Claim>,
        seen: Look,
        linked: io::Result<()>,
    ) -> Result<Step, Error> {
        let ctx = self.ctx;
        let c = slot.as_ref().expect("claim present");
        match seen {
            Look::Vanished => {
                match linked {
                    // A full filesystem, a quota, no permission: no retry
                    // fixes it. The claim goes with the error (acquire).
                    Err(e) if sys::is_persistent(&e) => {
                        return Err(ctx.dir_error("link", &ctx.lock.path, e))
                    }
                    // The server in trouble: retried at the I/O pace,
                    // until --io-timeout or the deadline.
                    Err(e) if sys::is_transient(&e) => {
                        self.budget
                            .pause(&ctx, "link", &ctx.lock.path, e, Phase::Work)?;
                        return Ok(Step::Waited);
                    }
                    _ => self.budget.ok(&ctx),
                }
                // If our link took (its reply lost) and a breaker removed
                // it, the breaker is about to remove this claim too: its
                // pin shows as an extra link. Never link that inode again.
                let pinned = match ctx.fs.lstat(&c.path) {
                    Ok(m) => !m.same_file(&c.meta) || m.nlink > 1,
                    Err(_) => true,
                };
                if pinned {
                    self.give_up_claim(slot);
                }
                Ok(Step::Now)
            }
            Look::ClaimLost => {
                // link(2) said ENOENT: our claim is gone (removed by hand
                // or by mistake), or the directory is.
                let error = linked
                    .err()
                    .unwrap_or_else(|| io::Error::from_raw_os_error(nix::libc::ENOENT));
                ctx.need_dir()?;
                if matches!(ctx.fs.lstat(&c.path), Ok(m) if m.same_file(&c.meta)) {
                    // The claim is there: the error is not about it.
                    self.budget
                        .pause(&ctx, "link", &ctx.lock.path, error, Phase::Work)?;
                    return Ok(Step::Waited);
                }
                // Start over with a fresh claim; the old name, if anything
                // is left under it, is not ours to trust any more.
                self.give_up_claim(slot);
                Ok(Step::Pause)
            }
            Look::Copied(copy) => {
                // The copy carries our random token, so it is ours to remove.
                ctx.remove_instance(&copy, Same::Instance)?;
                Err(Error::Unsupported {
                    path: ctx.lock.path.clone(),
                    why: "link(2) made a copy, not a hard link (different inode, same content)"
                        .into(),
                })
            }
            Look::Anomaly(why) => {
                self.anomalies += 1;
                self.give_up_claim(slot);
                // Once may be a race with a breaker; twice in a row with
                // fresh claims is the filesystem.
                if self.anomalies >= 2 {
                    return Err(Error::Unsupported {
                        path: ctx.lock.path.clone(),
                        why,
                    });
                }
                Ok(Step::Now)
            }
            Look::Ours | Look::Busy(_) => unreachable!("handled by attempt"),
        }
    }

    /// Abandons our claim (releasing the lock if its link took after all),
    /// remembering its token.
    pub(super) fn give_up_claim(&mut self, slot: &mut Option<Claim>) {
        let old = slot.take().expect("claim present");
        abandon(&self.ctx, &old);
        self.abandoned.push(old.record.token);
    }

    /// How long this very instance has been watched unchanged; a new
    /// holder starts the watch (and fast polling) again.
    pub(super) fn watched(&mut self, snap: &Snapshot) -> Duration {
        let now = self.ctx.env.monotonic();
        match &self.watch {
            Some((w, since)) if w == snap => now.saturating_sub(*since),
            _ => {
                if self.watch.is_some() {
                    self.backoff.reset();
                }
                self.watch = Some((snap.clone(), now));
                Duration::ZERO
            }
        }
    }

    /// Someone holds the lock: break it if it is stale and we may, else
    /// wait for it (or give up at the deadline).
    pub(super) fn busy(&mut self, slot: &mut Option<Claim>, snap: Snapshot) -> Result<Step, Error> {
        let (ctx, env, opts) = (self.ctx, self.ctx.env, self.opts);
        self.anomalies = 0;
        self.budget.ok(&ctx);
        self.contended = true;
        let watched = self.watched(&snap);
        if self.is_abandoned_own(&snap) {
            // Our own lock, from a claim we gave up on because its lock had
            // vanished and an extra link looked like a breaker's pin; it was
            // a remover's private name, and the lock has been put back.
            // Nobody else holds an instance with our token: remove it as
            // its owner would, or it stays until its lease ends.
            ctx.remove_instance(&snap, Same::Instance)?;
            self.watch = None;
            return Ok(Step::Now);
        }
        if !opts.shared {
            if let Some(rec) = super::shared::shared_record(&snap) {
                // Whether we read it ourselves is told by the readers
                // (`drain`), not by the opener's record: the opener may
                // have left long ago.
                let info = ctx.judge(snap, None, watched, None);
                return self.drain(slot, info, &rec);
            }
        }
        let c = slot.as_ref().expect("claim present");
        let mut info = ctx.judge(snap, Some(c.estimate_now(env)), watched, opts.stale_after);
        if let Some(Content::NotALock { .. }) = &info.content {
            return Err(Error::NotALock {
                path: ctx.lock.path.clone(),
                what: info.describe(),
            });
        }
        if let Some(reason) = &info.verdict.stale {
            if !matches!(reason, StaleReason::DeadOwner(_)) {
                // I6: an age verdict from an estimate is confirmed with
                // file-system time read just now.
                let fresh = refresh_fs_time(&ctx, slot)?;
                info = ctx.judge(info.snapshot, Some(fresh), watched, opts.stale_after);
            }
        }
        if info.verdict.stale.is_none() {
            if let Some(rec) = info.record() {
                if owns(rec, &Who::Owner(opts.owner), env.identity()) {
                    return Err(Error::AlreadyHeld {
                        path: ctx.lock.path.clone(),
                        why: format!("pid {} took it at {}", rec.pid, rec.acquired_at),
                    });
                }
            }
        }
        if self
            .refused
            .as_ref()
            .is_some_and(|(r, _)| *r != info.snapshot)
        {
            self.refused = None;
        }
        // I3, I8: only a stale verdict breaks (age rules never break a
        // valid lease or a live owner: see stale::age_limit).
        if info.verdict.stale.is_some() && self.refused.is_none() {
            match ctx.break_instance(&info, BreakBy::Verdict)? {
                Removal::Removed => {
                    env.event(Event::Broke {
                        path: &ctx.lock.path,
                        info: &info,
                    });
                    self.backoff.reset();
                    self.watch = None;
                    return Ok(Step::Now);
                }
                Removal::Gone => {
                    self.watch = None;
                    return Ok(Step::Now);
                }
                Removal::Changed | Removal::Displaced => {
                    env.event(Event::BreakRaceLost);
                    self.backoff.reset();
                    self.watch = None;
                    return Ok(Step::Now);
                }
                Removal::Denied(why) => self.refused = Some((info.snapshot.clone(), why)),
            }
        }
        let unbreakable = self.refused.as_ref().map(|(_, why)| why.clone());
        self.wait_for_holder(slot, info, unbreakable)
    }

    /// Whether `snap` is a lock made of a claim we gave up on.
    pub(super) fn is_abandoned_own(&self, snap: &Snapshot) -> bool {
        if self.abandoned.is_empty() {
            return false;
        }
        let uid = self.ctx.env.identity().uid;
        matches!(
            snap.bytes.as_deref().map(|b| record::trusted(b, snap.meta.uid)),
            Some(Content::Ours(r)) if snap.meta.uid == uid && self.abandoned.contains(&r.token)
        )
    }
}
