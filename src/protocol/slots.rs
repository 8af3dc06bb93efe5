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
//! holds and tries it; with every slot held it waits as `acquire_slot`
//! says.

use super::acquire::{acquire, AcquireOptions, Backoff};
use super::ctx::{Ctx, IoBudget, Phase};
use super::line::{ahead, Ticket};
use super::wait::{until_stale, WATCH_FALLBACK};
use super::{Held, LockInfo, Woken};
use crate::error::Error;
use crate::fs::Durability;
use crate::names::{AuxKind, LockPath};
use crate::sys;
use std::ffi::OsString;
use std::time::Duration;

/// The most slots a lock may have.
pub const MAX_SLOTS: u32 = 1000;

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
    // Callers with another N rewriting it as fast as we do: a pause between
    // tries, and after a few, theirs stands.
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
    let mut rewrite = 0;
    loop {
        let recorded = recorded_slots(ctx)?;
        if recorded == Some(n) {
            return Ok(());
        }
        if rewrite > 0 {
            if let Some(signal) = ctx.env.sleep(backoff.next(ctx.env)) {
                return Err(Error::Interrupted { signal });
            }
        }
        if let Some(r) = recorded.filter(|_| rewrite >= REWRITES) {
            return Err(Error::Usage(format!(
                "{}: another caller keeps recording --slots {r}; agree on one N",
                ctx.lock.path.display()
            )));
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
        rewrite += 1;
    }
}

/// How often [`settle_slots`] records its N against callers recording
/// another before it gives up (64).
const REWRITES: u32 = 5;

/// A slot taken: which, its lock, and the proof.
pub struct TakenSlot {
    pub slot: u32,
    pub lock: LockPath,
    pub held: Held,
}

/// Takes one of the `n` slots of `ctx.lock` for `opts.owner`, waiting as
/// `opts` says: the first free slot, or a stale one broken. Busy (75) at
/// the deadline, naming every holder seen.
///
/// A wait costs about what a wait on one lock costs: one listing per poll
/// (backoff up to `poll_max`; on a local filesystem a sleep that a change
/// of one held slot ends early), and a read of each held slot only when
/// the first of them may have gone stale (its lease, `--stale-after`), or
/// every `WATCH_FALLBACK` for verdicts no clock foretells (a dead owner).
pub fn acquire_slot(ctx: &Ctx, n: u32, opts: &AcquireOptions) -> Result<TakenSlot, Error> {
    let mut ticket = None;
    let taken = wait_for_slot(ctx, n, opts, &mut ticket);
    if let Some(t) = ticket {
        t.leave(ctx);
    }
    taken
}

/// [`acquire_slot`]'s loop; `ticket` is our place in line once we wait.
fn wait_for_slot(
    ctx: &Ctx,
    n: u32,
    opts: &AcquireOptions,
    ticket: &mut Option<Ticket>,
) -> Result<TakenSlot, Error> {
    let env = ctx.env;
    let deadline = opts.wait.map(|w| env.monotonic() + w);
    let once = AcquireOptions {
        wait: Some(Duration::ZERO),
        ..opts.clone()
    };
    let mut backoff = Backoff::new(opts.poll_min, opts.poll_max);
    let mut judge_at = env.monotonic();
    let mut holders: Vec<(u32, Option<Box<LockInfo>>)> = Vec::new();
    // Asked (one lstat of the directory) only once we are about to wait.
    let mut watching = opts.watch;
    let waits = opts.wait != Some(Duration::ZERO);
    loop {
        if let Some(signal) = env.interrupted() {
            return Err(Error::Interrupted { signal });
        }
        let listed = ctx.list_dir()?;
        let held = taken(ctx, &listed, n);
        let free: Vec<u32> = (1..=n).filter(|k| !held.contains(k)).collect();
        // Free slots go to those who have waited longest.
        let first = free.is_empty() || ahead(ctx, &listed, ticket.as_ref())? < free.len();
        if first {
            for &k in &free {
                if let Some(t) = try_slot(ctx, k, &once)? {
                    return Ok(t);
                }
            }
        }
        if ticket.is_none() && waits {
            *ticket = Ticket::join(ctx)?;
        }
        if let Some(t) = ticket.as_mut() {
            t.refresh(ctx);
        }
        if env.monotonic() >= judge_at {
            let (found, soonest) = judge_held(ctx, &held, &once, first)?;
            if let Found::Taken(t) = found {
                return Ok(*t);
            }
            if let Found::Holders(h) = found {
                holders = h;
            }
            judge_at = env.monotonic() + soonest;
        }
        let now = env.monotonic();
        let remaining = deadline.map(|d| d.saturating_sub(now));
        if remaining == Some(Duration::ZERO) {
            return Err(busy(ctx, n, &holders, opts));
        }
        let mut nap = backoff.next(env).min(judge_at.saturating_sub(now));
        if let Some(r) = remaining {
            nap = nap.min(r);
        }
        // Spread over the held slots, so that a release wakes some waiter.
        let watched = match held.len() {
            0 => None,
            len => Some(held[env.pid() as usize % len]),
        };
        let watch = *watching.get_or_insert_with(|| {
            matches!(ctx.fs.lstat(&ctx.lock.dir), Ok(d) if !ctx.fs.is_remote(d.dev, &ctx.lock.dir))
        });
        let woken = match watched.filter(|_| watch) {
            Some(k) => match env.sleep_watching(&slot_lock(ctx.lock, k).path, nap) {
                Woken::Signal(s) => Some(s),
                _ => None,
            },
            None => env.sleep(nap),
        };
        if let Some(signal) = woken {
            return Err(Error::Interrupted { signal });
        }
    }
}

/// What a look at the held slots found.
enum Found {
    Taken(Box<TakenSlot>),
    Holders(Vec<(u32, Option<Box<LockInfo>>)>),
}

/// Reads and judges each held slot at one file-system "now", taking (by
/// breaking) the first that is stale; else the holders, and how long until
/// the first may be judged stale (at most `WATCH_FALLBACK`).
/// `take`: whether this contender may take a slot it frees (it is first
/// in line); else the verdicts are only remembered.
fn judge_held(
    ctx: &Ctx,
    held: &[u32],
    once: &AcquireOptions,
    take: bool,
) -> Result<(Found, Duration), Error> {
    let now = ctx.fs_now()?;
    let mut soonest = WATCH_FALLBACK;
    let mut holders = Vec::new();
    for &k in held {
        let lock = slot_lock(ctx.lock, k);
        let sctx = Ctx::new(ctx.fs, ctx.env, &lock, ctx.io_timeout);
        let info = match sctx.snapshot(&lock.path, Phase::Work)? {
            Ok(snap) => sctx.judge(snap, now, Duration::ZERO, once.stale_after),
            // Freed since the listing.
            Err(e) if sys::is_not_found(&e) => {
                if !take {
                    continue;
                }
                if let Some(t) = try_slot(ctx, k, once)? {
                    return Ok((Found::Taken(Box::new(t)), soonest));
                }
                continue;
            }
            Err(e) => return Err(sctx.dir_error("read", &lock.path, e)),
        };
        if info.verdict.stale.is_some() && take {
            if let Some(t) = try_slot(ctx, k, once)? {
                return Ok((Found::Taken(Box::new(t)), soonest));
            }
        } else {
            soonest = soonest.min(until_stale(&info, once.stale_after));
        }
        holders.push((k, Some(Box::new(info))));
    }
    Ok((Found::Holders(holders), soonest))
}

/// One attempt at slot `k`, without waiting: the slot, or `None` when it
/// is busy (or held by this owner already).
fn try_slot(ctx: &Ctx, k: u32, once: &AcquireOptions) -> Result<Option<TakenSlot>, Error> {
    let lock = slot_lock(ctx.lock, k);
    let sctx = Ctx::new(ctx.fs, ctx.env, &lock, ctx.io_timeout);
    match acquire(&sctx, once) {
        Ok(held) => Ok(Some(TakenSlot {
            slot: k,
            lock,
            held,
        })),
        Err(Error::Busy { .. } | Error::AlreadyHeld { .. }) => Ok(None),
        Err(e) => Err(e),
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
