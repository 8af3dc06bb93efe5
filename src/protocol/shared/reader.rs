//! A reader's attempts: join the epoch the lock names, or open one when
//! the lock is free, and step aside for a writer that sealed it.

use super::*;

impl Attempts<'_> {
    /// One try of a reader: join the epoch the lock names, or open one if
    /// the lock is free; a writer's lock is judged and waited for as by
    /// any contender.
    pub(crate) fn shared_attempt(
        &mut self,
        slot: &mut Option<Claim>,
    ) -> Result<Result<Joined, Step>, Error> {
        let ctx = self.ctx;
        if slot.as_ref().is_some_and(|c| c.spent) {
            // Never the same readers' directory twice, and never a race
            // with a breaker's removal of it: a new claim.
            let spent = slot.take().expect("claim present");
            let _ = ctx.unlink_ours(&spent.path);
            *slot = Some(crate::protocol::claim::new_claim(&ctx, self.opts)?);
        }
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
        #[cfg(test)]
        if shared_record(&snap).is_none() {
            let c = slot.as_mut().expect("claim present");
            if let Some(joined) = crate::protocol::mutants::read_anyway(&ctx, c, &snap) {
                return Ok(Ok(joined));
            }
        }
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
            // Given up (the deadline): it may have been made unseen.
            let made = ctx
                .retrying("mkdir", &epoch, Phase::Work, || ctx.fs.make_dir(&epoch))
                .inspect_err(|_| {
                    let _ = close_epoch_dir(&ctx, &epoch);
                })?;
            match made {
                Ok(()) => {}
                // A retransmitted mkdir of ours: the name is fresh.
                Err(e) if sys::is_exists(&e) => match self.is_our_dir(&epoch) {
                    Ok(true) => {}
                    Ok(false) => return Err(ctx.dir_error("mkdir", &epoch, e)),
                    Err(unseen) => {
                        // Ours, most likely: it must not outlive us
                        // (found by the simulator, seed 3000100).
                        let _ = close_epoch_dir(&ctx, &epoch);
                        return Err(unseen);
                    }
                },
                Err(e) => {
                    // It may have been made before the error came back.
                    let _ = close_epoch_dir(&ctx, &epoch);
                    return Err(ctx.dir_error("mkdir", &epoch, e));
                }
            }
            // A link that reports success was made (only failures can be
            // false, after a lost reply): look only then.
            let linked = ctx
                .retrying("link", &member, Phase::Work, || {
                    ctx.fs.hard_link(&c.path, &member)
                })
                .inspect_err(|_| {
                    let _ = ctx.unlink_ours(&member);
                    let _ = close_epoch_dir(&ctx, &epoch);
                })?;
            let seen =
                |ctx: &Ctx| ctx.retrying("lstat", &member, Phase::Work, || ctx.fs.lstat(&member));
            match linked.as_ref().map_err(|_| seen(&ctx)) {
                Ok(()) => {}
                Err(Ok(Ok(m))) if m.same_file(&c.meta) => {}
                _ => {
                    let _ = ctx.unlink_ours(&member);
                    let _ = close_epoch_dir(&ctx, &epoch);
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
        match crate::protocol::look::look(&ctx, c, &linked, None)? {
            crate::protocol::look::Look::Ours => {
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
            crate::protocol::look::Look::Busy(snap) => {
                let _ = close_own_epoch(&ctx, slot.as_mut().expect("claim present"));
                match shared_record(&snap) {
                    Some(rec) => self.join(slot, snap, &rec),
                    None => Ok(Err(self.busy(slot, snap)?)),
                }
            }
            other => {
                if !close_own_epoch(&ctx, slot.as_mut().expect("claim present")) {
                    // Readers joined through our lock while we could not see
                    // it (moved aside by a pin): it is theirs now, and our
                    // claim's name goes before the next try.
                    return Ok(Err(Step::Now));
                }
                Ok(Err(self.missed(slot, other, linked)?))
            }
        }
    }

    pub(super) fn is_our_dir(&self, path: &Path) -> Result<bool, Error> {
        let ctx = self.ctx;
        let uid = ctx.env.identity().uid;
        let seen = ctx.retrying("lstat", path, Phase::Work, || ctx.fs.lstat(path))?;
        Ok(matches!(seen, Ok(m) if m.kind == Kind::Dir && m.uid == uid))
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
        let unseen = linked.is_err();
        let inside =
            linked.is_ok() || matches!(ctx.fs.lstat(&member), Ok(m) if m.same_file(&c.meta));
        if !inside {
            return match linked {
                Err(e) if sys::is_not_found(&e) => {
                    if !matches!(ctx.fs.lstat(&c.path), Ok(m) if m.same_file(&c.meta)) {
                        return Ok(Err(self.missed(
                            slot,
                            crate::protocol::look::Look::ClaimLost,
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
        // Our link succeeded, so the directory was there, and it cannot go
        // while we are in: an error here says nothing about the epoch.
        let dir = ctx.retrying("lstat", &epoch, Phase::Work, || ctx.fs.lstat(&epoch))?;
        match dir {
            // Made by the opener, not planted under the name after it went.
            Ok(d) if d.kind == Kind::Dir && d.uid == snap.meta.uid => {
                #[cfg(test)]
                let d = match crate::protocol::mutants::ignores_seals(ctx.env) {
                    true => crate::fs::Meta { nlink: 2, ..d },
                    false => d,
                };
                // The link count is a hint from the reply to our link; a
                // link whose reply was lost leaves a cached count, so then
                // the directory is listed.
                if (d.nlink > 2 || unseen) && self.live_seal(&epoch, slot)? {
                    step_out(&ctx, slot.as_mut().expect("claim present"));
                    let info = ctx.judge(snap, None, Duration::ZERO, None);
                    return Ok(Err(self.wait_behind_writer(slot, info)?));
                }
            }
            Ok(_) => {
                step_out(&ctx, slot.as_mut().expect("claim present"));
                return Ok(Err(self.remove_ended(&snap, Closer::Other)?));
            }
            Err(e) if sys::is_not_found(&e) => {
                step_out(&ctx, slot.as_mut().expect("claim present"));
                return Ok(Err(Step::Pause));
            }
            Err(e) => {
                step_out(&ctx, slot.as_mut().expect("claim present"));
                return Err(ctx.dir_error("lstat", &epoch, e));
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
        // Not knowing counts as sealed: the reader steps out and looks
        // again, rather than overtake a writer it could not see.
        let names = match ctx.fs.list(epoch) {
            Ok(n) => n,
            Err(e) => return Ok(!sys::is_not_found(&e)),
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
            let gone_here = claimant_dead_here(&ctx, &claim, &aux);
            let fresh = match ctx.fs.lstat(&claim) {
                Ok(m) => now.is_none_or(|n| n.secs_since(m.mtime) < SEAL_STALE.as_secs_f64()),
                Err(e) => !sys::is_not_found(&e),
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
    pub(super) fn wait_behind_writer(
        &mut self,
        slot: &mut Option<Claim>,
        info: LockInfo,
    ) -> Result<Step, Error> {
        self.contended = true;
        self.wait_for_holder(slot, info, None)
    }

    /// The lock's readers' directory is gone: remove the lock (only the
    /// instance we read) and look again.
    pub(super) fn remove_ended(&mut self, snap: &Snapshot, closer: Closer) -> Result<Step, Error> {
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
}
