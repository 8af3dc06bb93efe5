//! Slotted locks (`--slots N`): at most N holders at once, on all hosts
//! together. Slot K of `job.lock` is the ordinary lock `job.lock.slot-K`,
//! with every guarantee a lock has (I1-I10 hold per slot: claim and link,
//! lease, dead-owner and lease-expiry breaking, race-safe break, no
//! litter). N is recorded beside the lock (`.job.lock.nfslock-slots`) so
//! that callers that disagree about it are told (64) instead of silently
//! allowing more holders than either meant; while no slot is held a new N
//! replaces the old one.
//!
//! A contender reads the directory (one listing) to find a slot nobody
//! holds and tries it; with every slot held it polls the listing at the
//! backoff pace, and every `FULL_LOOK` tries each held slot too, which
//! judges it and breaks it if stale.

use super::acquire::{acquire, AcquireOptions, Backoff};
use super::ctx::{Ctx, IoBudget, Phase};
use super::{Held, LockInfo};
use crate::error::Error;
use crate::fs::Durability;
use crate::names::{AuxKind, LockPath};
use crate::sys;
use std::ffi::OsString;
use std::time::Duration;

/// The most slots a lock may have.
pub const MAX_SLOTS: u32 = 1000;

/// How often a contender that finds every slot held judges each of them.
const FULL_LOOK: Duration = Duration::from_secs(5);

/// The lock of slot `k` (1..N) of `lock`.
pub fn slot_lock(lock: &LockPath, k: u32) -> LockPath {
    let mut name = lock.name.clone();
    name.push(format!(".slot-{k}"));
    LockPath {
        path: lock.dir.join(&name),
        dir: lock.dir.clone(),
        name,
    }
}

/// The N recorded beside `ctx.lock`, if any (65 for a file there that
/// says no number).
pub fn recorded_slots(ctx: &Ctx) -> Result<Option<u32>, Error> {
    ctx.read_beside("slots", "the slot count", |_, b| {
        std::str::from_utf8(b)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("slots="))?
            .parse()
            .ok()
            .filter(|n| (1..=MAX_SLOTS).contains(n))
    })
}

/// The slots of the first `upto` that are taken (their lock name exists).
fn taken(ctx: &Ctx, names: &[OsString], upto: u32) -> Vec<u32> {
    (1..=upto)
        .filter(|&k| names.contains(&slot_lock(ctx.lock, k).name))
        .collect()
}

/// Makes sure `n` is the lock's recorded slot count: records it where
/// none is, or where another is but no slot is held; 64 where another is
/// and a slot is held. Callers may do this at once (the first use, from
/// many hosts): each writes its N under a fresh name and renames it into
/// place, and what counts is what is there afterwards.
pub fn settle_slots(ctx: &Ctx, n: u32, durable: Durability) -> Result<(), Error> {
    let mut budget = IoBudget::new(ctx);
    loop {
        let recorded = recorded_slots(ctx)?;
        if recorded == Some(n) {
            return Ok(());
        }
        if let Some(r) = recorded {
            let held = taken(ctx, &ctx.list_dir()?, r.max(n));
            if !held.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: is used with --slots {r} (slot {} held); use --slots {r}, or change it once no slot is held",
                    ctx.lock.path.display(),
                    held[0]
                )));
            }
        }
        let text_for =
            |nonce: &str| format!("nfslock-slots 1\nslots={n}\nnonce={nonce}\n").into_bytes();
        let made = ctx.create_aux(
            AuxKind::Probe,
            &|nonce, _| text_for(nonce),
            durable,
            Phase::Work,
        )?;
        match ctx.fs.rename(&made.path, &ctx.beside("slots")) {
            Ok(()) => {}
            // Its reply lost after it took: nothing is left to remove.
            Err(e) if sys::is_not_found(&e) => {}
            Err(e) => {
                ctx.unlink_ours(&made.path)?;
                if !sys::is_transient(&e) {
                    return Err(ctx.dir_error("rename", &made.path, e));
                }
                budget.pause(ctx, "rename", &made.path, e, Phase::Work)?;
            }
        }
    }
}

/// A slot taken: which, its lock, and the proof.
pub struct TakenSlot {
    pub slot: u32,
    pub lock: LockPath,
    pub held: Held,
}

/// Takes one of the `n` slots of `ctx.lock` for `opts.owner`, waiting as
/// `opts` says: the first free slot, or a stale one broken. Busy (75) at
/// the deadline, naming every holder seen.
pub fn acquire_slot(ctx: &Ctx, n: u32, opts: &AcquireOptions) -> Result<TakenSlot, Error> {
    let env = ctx.env;
    let deadline = opts.wait.map(|w| env.monotonic() + w);
    let once = AcquireOptions {
        wait: Some(Duration::ZERO),
        ..opts.clone()
    };
    let mut backoff = Backoff::new(opts.poll_min, opts.poll_max);
    let mut judged_at: Option<Duration> = None;
    loop {
        if let Some(signal) = env.interrupted() {
            return Err(Error::Interrupted { signal });
        }
        let listed = ctx.list_dir()?;
        let held = taken(ctx, &listed, n);
        let now = env.monotonic();
        let full = judged_at.is_none_or(|t| now.saturating_sub(t) >= FULL_LOOK);
        // Free slots first; held ones too when it is time to judge them.
        let mut order: Vec<u32> = (1..=n).filter(|k| !held.contains(k)).collect();
        if full {
            order.extend(&held);
            judged_at = Some(now);
        }
        let mut holders = Vec::new();
        for k in order {
            let lock = slot_lock(ctx.lock, k);
            let sctx = Ctx::new(ctx.fs, env, &lock, ctx.io_timeout);
            match acquire(&sctx, &once) {
                Ok(held) => {
                    return Ok(TakenSlot {
                        slot: k,
                        lock,
                        held,
                    })
                }
                Err(Error::Busy { info, .. }) => holders.push((k, info)),
                // This owner has that slot already: another one, then.
                Err(Error::AlreadyHeld { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let remaining = deadline.map(|d| d.saturating_sub(env.monotonic()));
        if remaining == Some(Duration::ZERO) {
            return Err(busy(ctx, n, &holders, opts));
        }
        let mut nap = backoff.next(env);
        if let Some(r) = remaining {
            nap = nap.min(r);
        }
        if let Some(signal) = env.sleep(nap) {
            return Err(Error::Interrupted { signal });
        }
    }
}

/// Every slot busy: one line naming the holders seen.
fn busy(
    ctx: &Ctx,
    n: u32,
    holders: &[(u32, Option<Box<LockInfo>>)],
    opts: &AcquireOptions,
) -> Error {
    let who: Vec<String> = holders
        .iter()
        .map(|(k, info)| match info {
            Some(i) => format!("slot {k} {}", i.describe()),
            None => format!("slot {k} busy"),
        })
        .collect();
    let seen = match who.is_empty() {
        true => "held".to_string(),
        false => who.join("; "),
    };
    Error::SlotsBusy {
        path: ctx.lock.path.clone(),
        why: format!("all {n} slots are taken: {seen}"),
        timed_out: opts.wait.is_some_and(|w| !w.is_zero()),
    }
}

/// The slot of `ctx.lock` that `try_one` accepts, trying slots 1..N of
/// the recorded N in turn; `None` where the lock has no slots recorded.
pub fn find_slot<T>(
    ctx: &Ctx,
    mut try_one: impl FnMut(&Ctx) -> Result<T, Error>,
) -> Result<Option<(u32, T)>, Error> {
    let Some(n) = recorded_slots(ctx)? else {
        return Ok(None);
    };
    let listed = ctx.list_dir()?;
    let mut last = None;
    for k in taken(ctx, &listed, n) {
        let lock = slot_lock(ctx.lock, k);
        let sctx = Ctx::new(ctx.fs, ctx.env, &lock, ctx.io_timeout);
        match try_one(&sctx) {
            Ok(t) => return Ok(Some((k, t))),
            Err(e @ Error::NotOwner { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(Error::NotOwner {
        path: ctx.lock.path.clone(),
        why: format!("none of its {n} slots is held"),
    }))
}

/// Every slot of a slotted lock, judged at one file-system "now": `(slot,
/// info)`, `None` for a free one. One probe and a read per slot.
pub fn inspect_slots(
    ctx: &Ctx,
    n: u32,
    stale_after: Option<Duration>,
) -> Result<Vec<(u32, Option<LockInfo>)>, Error> {
    let now = ctx.fs_now()?;
    let mut out = Vec::new();
    for k in 1..=n {
        let lock = slot_lock(ctx.lock, k);
        let sctx = Ctx::new(ctx.fs, ctx.env, &lock, ctx.io_timeout);
        let info = match sctx.snapshot(&lock.path, Phase::Work)? {
            Ok(snap) => Some(sctx.judge(snap, now, Duration::ZERO, stale_after)),
            Err(e) if sys::is_not_found(&e) => None,
            Err(e) => return Err(sctx.dir_error("read", &lock.path, e)),
        };
        out.push((k, info));
    }
    Ok(out)
}
