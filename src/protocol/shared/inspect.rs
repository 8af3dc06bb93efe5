//! Looking at a shared lock from outside: its readers and waiting writers
//! (`status`, `list`), a reader by owner or token (`release`, `touch`),
//! and `break`.

use super::*;
use std::ffi::OsString;

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
/// A transient error is retried, and one that stays is an error: "not
/// among the readers" must never be a guess.
pub(crate) fn find_reader(
    ctx: &Ctx,
    snap: &Snapshot,
    name_may: &dyn Fn(&crate::names::AuxName) -> bool,
    matches: &dyn Fn(&Record) -> bool,
) -> Result<Option<(PathBuf, Joined, Record)>, Error> {
    let Some(epoch) = shared_record(snap).and_then(|rec| epoch_dir(ctx.lock, &rec.claim)) else {
        return Ok(None);
    };
    let names = match ctx.retrying("list", &epoch, Phase::Work, || ctx.fs.list(&epoch))? {
        Ok(n) => n,
        Err(e) if sys::is_not_found(&e) => return Ok(None),
        Err(e) => return Err(ctx.dir_error("list", &epoch, e)),
    };
    // The newest of several: an owner's older link is one a failed
    // release left behind.
    let mut found: Option<(crate::fs::FsTime, OsString, Record)> = None;
    for name in names {
        match ctx.lock.parse_aux(&name) {
            Some(aux) if aux.kind == AuxKind::Share && name_may(&aux) => {}
            _ => continue,
        }
        let member = epoch.join(&name);
        let s = match ctx.snapshot(&member, Phase::Work)? {
            Ok(s) => s,
            Err(e) if sys::is_not_found(&e) => continue,
            Err(e) => return Err(ctx.dir_error("read", &member, e)),
        };
        let Some(bytes) = s.bytes.as_deref() else {
            continue;
        };
        if let Content::Ours(r) = record::trusted(bytes, s.meta.uid) {
            if matches(&r) && found.as_ref().is_none_or(|(t, _, _)| s.meta.mtime > *t) {
                found = Some((s.meta.mtime, name, r));
            }
        }
    }
    Ok(found.map(|(_, name, r)| {
        let joined = Joined {
            epoch: epoch.clone(),
            member: epoch.join(&name),
            lock: snap.clone(),
        };
        (ctx.lock.in_dir(&name), joined, r)
    }))
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
pub(crate) fn break_shared(
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
    let mut first: Option<BreakOutcome> = None;
    let (mut left, mut seals) = (0, Vec::new());
    for name in names {
        match ctx.lock.parse_aux(&name).map(|a| a.kind) {
            Some(AuxKind::Claim) => seals.push(epoch.join(&name)),
            Some(AuxKind::Share) => {
                let (outcome, stays) = break_reader(ctx, &info, &epoch.join(&name), opts)?;
                left += usize::from(stays);
                if let Some(o) = outcome {
                    first.get_or_insert(o);
                }
            }
            // A dead breaker's pin of a reader: judged as the reader.
            None if is_readers_pin(ctx.lock, &name) => {
                let pin = epoch.join(&name);
                let (Ok(sub), Ok(Ok(snap))) =
                    (LockPath::new(&pin), ctx.snapshot(&pin, Phase::Work))
                else {
                    left += 1;
                    continue;
                };
                let sctx = Ctx { lock: &sub, ..*ctx };
                let pinned = sctx.judge(snap, info.now, Duration::ZERO, opts.older_than);
                let gone = (opts.force || pinned.verdict.stale.is_some())
                    && !opts.dry_run
                    && ctx.fs.unlink(&pin).is_ok();
                if !gone {
                    left += 1;
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

/// `break` of one reader (its link `member`): judged by its own claim,
/// removed if stale (or forced) and still the instance judged. What to
/// report of it, and whether it is still in.
fn break_reader(
    ctx: &Ctx,
    lock: &LockInfo,
    member: &Path,
    opts: BreakOptions,
) -> Result<(Option<BreakOutcome>, bool), Error> {
    let Ok(sub) = LockPath::new(member) else {
        return Ok((None, false));
    };
    let sctx = Ctx { lock: &sub, ..*ctx };
    let Ok(snap) = ctx.snapshot(member, Phase::Work)? else {
        return Ok((None, false));
    };
    let reader = sctx.judge(snap, lock.now, Duration::ZERO, opts.older_than);
    let reason = reader.verdict.stale.clone();
    if reason.is_none() && !opts.force {
        return Ok((None, true));
    }
    if opts.dry_run {
        let o = BreakOutcome::WouldBreak {
            info: reader,
            reason,
        };
        return Ok((Some(o), true));
    }
    let by = BreakBy::from_force(opts.force);
    Ok(match sctx.remove_instance(&reader.snapshot, by.same())? {
        // Gone by itself: the reader left (its claim may be in use again);
        // nothing was broken.
        Removal::Gone => (None, false),
        Removal::Removed => {
            if let Some(rec) = reader.record() {
                let _ = ctx.remove_claim_of(rec, &reader.snapshot.meta);
            }
            let o = BreakOutcome::Broken {
                info: reader,
                reason,
            };
            (Some(o), false)
        }
        Removal::Denied(why) => (Some(BreakOutcome::NotPermitted { info: reader, why }), true),
        _ => (None, true),
    })
}
