//! A writer meets readers: it seals their epoch, breaks stale readers
//! (and dead breakers' pins of them), waits for the rest, and closes the
//! epoch when only seals are left.

use super::*;

impl Attempts<'_> {
    /// A writer found readers: seal their epoch, break stale readers, and
    /// when none is left close the epoch and free the lock.
    pub(crate) fn drain(
        &mut self,
        slot: &mut Option<Claim>,
        info: LockInfo,
        rec: &Record,
    ) -> Result<Step, Error> {
        let ctx = self.ctx;
        #[cfg(test)]
        if crate::protocol::mutants::skip_drain(&ctx, &info.snapshot) {
            return Ok(Step::Now);
        }
        let Some(epoch) = epoch_dir(ctx.lock, &rec.claim) else {
            return self.wait_for_holder(slot, info, None);
        };
        let c = slot.as_mut().expect("claim present");
        if c.seal
            .as_ref()
            .is_some_and(|s| s.parent() != Some(epoch.as_path()))
        {
            crate::protocol::claim::drop_seal(&ctx, c);
        }
        let seal = epoch.join(name_of(&c.path));
        match ctx.fs.make_dir(&seal) {
            Err(e) if sys::is_not_found(&e) => {
                return self.remove_ended(&info.snapshot, Closer::Other)
            }
            Err(e) if sys::is_persistent(&e) => return Err(ctx.dir_error("mkdir", &seal, e)),
            // Made, there already (ours from an earlier try, or made unseen
            // after a lost reply), or perhaps made before an error came
            // back: the name is our claim's, so it is ours to take down,
            // on every exit path.
            _ => slot.as_mut().expect("claim present").seal = Some(seal.clone()),
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
                    self.not_our_own(&name, &member)?;
                    if !self.break_if_stale(slot, &member)? {
                        live.get_or_insert(member);
                    }
                }
                Some(AuxKind::Claim) => seals.push(epoch.join(&name)),
                None if is_readers_pin(ctx.lock, &name) => {
                    let pin = epoch.join(&name);
                    if !self.break_pin_if_stale(slot, &pin)? {
                        live.get_or_insert(pin);
                    }
                }
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

    /// A writer whose own owner reads the lock would wait for itself: the
    /// reader `member` (named `name`) is read only when its name carries
    /// our owner's pid and host.
    fn not_our_own(&self, name: &OsStr, member: &Path) -> Result<(), Error> {
        let (ctx, owner) = (self.ctx, self.opts.owner);
        let me = ctx.env.identity();
        let Some(aux) = ctx.lock.parse_aux(name) else {
            return Ok(());
        };
        if aux.pid != owner.pid || !ctx.lock.spells_host(&aux.host, &me.host) {
            return Ok(());
        }
        let Ok(Ok(snap)) = ctx.snapshot(member, Phase::Work) else {
            return Ok(());
        };
        match snap
            .bytes
            .as_deref()
            .map(|b| record::trusted(b, snap.meta.uid))
        {
            Some(Content::Ours(r))
                if crate::protocol::owner::owns(&r, &crate::protocol::Who::Owner(owner), me) =>
            {
                Err(Error::AlreadyHeld {
                    path: ctx.lock.path.clone(),
                    why: format!("pid {} reads it (shared) since {}", r.pid, r.acquired_at),
                })
            }
            _ => Ok(()),
        }
    }

    /// A breaker's name for a reader ([`is_readers_pin`]): judged by the
    /// reader's record it holds, and unlinked when stale. A live breaker
    /// puts a live reader back from its pin within a round trip, so only a
    /// stale reader's pin stays long enough to be removed here. Whether it
    /// is gone.
    fn break_pin_if_stale(&mut self, slot: &mut Option<Claim>, pin: &Path) -> Result<bool, Error> {
        let ctx = self.ctx;
        let Some(sub) = LockPath::new(pin).ok() else {
            return Ok(false);
        };
        let snap = match ctx.snapshot(pin, Phase::Work)? {
            Ok(s) => s,
            Err(e) if sys::is_not_found(&e) => return Ok(true),
            Err(e) => return Err(ctx.dir_error("read", pin, e)),
        };
        let now = slot.as_ref().map(|c| c.estimate_now(ctx.env));
        let sctx = Ctx { lock: &sub, ..ctx };
        let info = sctx.judge(snap, now, Duration::ZERO, self.opts.stale_after);
        if info.verdict.stale.is_none() || info.record().is_none() {
            return Ok(false);
        }
        match ctx.fs.unlink(pin) {
            Ok(()) => Ok(true),
            Err(e) => Ok(sys::is_not_found(&e)),
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
                let fresh = crate::protocol::claim::refresh_fs_time(&ctx, slot)?;
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
            // Gone by itself: the reader left, and may be joining again
            // with the same claim, which is not ours to remove.
            Removal::Gone => Ok(true),
            Removal::Removed => {
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
                crate::protocol::Woken::Signal(s) => Some(s),
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
