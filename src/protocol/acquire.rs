//! Acquire: the attempt loop. Each attempt links our claim to the lock
//! name and looks (see `look`); a busy lock is broken if stale or waited
//! for (`contend`, `wait`); every pause is paced and ends at the deadline
//! (I9). On any error no claim is left behind and the lock is not held
//! (I4, I5).

use super::claim::Stamp;
use super::claim::{abandon, new_claim, refresh_claim, Claim};
use super::ctx::{Ctx, IoBudget};
use super::look::{look, Look};
use super::sweep::Sweep;
use super::{Env, Held, LockInfo, Owner, Snapshot};
use crate::error::Error;
use crate::fs::Durability;
use crate::sys;
use std::time::Duration;

/// Options of [`acquire`].
#[derive(Clone, Debug)]
pub struct AcquireOptions {
    /// `None`: wait forever; `Some(ZERO)`: do not wait.
    pub wait: Option<Duration>,
    pub lease: Option<Duration>,
    pub stale_after: Option<Duration>,
    pub poll_min: Duration,
    pub poll_max: Duration,
    pub owner: Owner,
    /// Sync the claim to stable storage before linking it; `None`: where
    /// the filesystem is remote.
    pub durable: Durability,
    pub cmd: Option<String>,
    /// Refresh the claim's mtime before a link attempt once it is older
    /// than this, so that a lock is never born old. With a lease, up to a
    /// sixth of it (at most [`LEASED_REFRESH_MAX`]) is allowed instead: a
    /// lock born that old keeps most of its lease past its holder's first
    /// heartbeat, and a waiter at the poll cap saves a SETATTR a second.
    pub refresh_claim_after: Duration,
    /// Wait for events instead of polling, with a slow poll as a fallback;
    /// `None`: where the filesystem reports changes (a local one).
    pub watch: Option<bool>,
    /// A reader's lock (`--shared`): held together with other readers,
    /// never with a writer (see `shared`).
    pub shared: bool,
}

impl AcquireOptions {
    pub fn new(owner: Owner) -> AcquireOptions {
        AcquireOptions {
            wait: None,
            lease: None,
            stale_after: None,
            poll_min: Duration::from_millis(20),
            poll_max: Duration::from_secs(1),
            owner,
            durable: Durability::IfRemote,
            cmd: None,
            refresh_claim_after: Duration::from_secs(1),
            watch: None,
            shared: false,
        }
    }
}

/// Takes the lock, waiting as `opts` says. On any error, no claim is left
/// behind and the lock is not held.
pub fn acquire(ctx: &Ctx, opts: &AcquireOptions) -> Result<Held, Error> {
    let mut claim: Option<Claim> = None;
    let result = acquire_loop(ctx, opts, &mut claim);
    if result.is_err() {
        if let Some(c) = claim {
            abandon(ctx, &c);
        }
    }
    result
}

/// What an attempt that did not take the lock asks of the next one.
pub(super) enum Step {
    /// Something moved (a stale lock broken, a lock that vanished or
    /// changed): look again at once, a few times in a row at most.
    Now,
    /// Nothing to act on: back off before trying again.
    Pause,
    /// The attempt has waited already (for the holder, or out an error).
    Waited,
}

/// The longest a leased claim goes unrefreshed while its waiter polls:
/// others take a claim not refreshed for `pace::CLAIM_STALE` as no
/// waiter's.
pub const LEASED_REFRESH_MAX: Duration = Duration::from_secs(5);

/// How long a claim may go unrefreshed before a link attempt.
fn refresh_after(opts: &AcquireOptions) -> Duration {
    let leased = opts
        .lease
        .map_or(Duration::ZERO, |l| (l / 6).min(LEASED_REFRESH_MAX));
    opts.refresh_claim_after.max(leased)
}

/// How many attempts in a row may follow each other without a pause.
pub(super) const QUICK_TRIES: u32 = 3;

/// The state of one [`acquire`] between its attempts: the deadline, the
/// pace, and what it has seen of the lock.
pub(super) struct Attempts<'a> {
    pub(super) ctx: Ctx<'a>,
    pub(super) opts: &'a AcquireOptions,
    pub(super) deadline: Option<Duration>,
    pub(super) backoff: Backoff,
    pub(super) budget: IoBudget,
    pub(super) quick: u32,
    pub(super) contended: bool,
    pub(super) announced: bool,
    pub(super) anomalies: u32,
    /// The instance we are watching, and since when (monotonic).
    pub(super) watch: Option<(Snapshot, Duration)>,
    /// A stale instance we may not break, and why: not tried again while
    /// it stays the same.
    pub(super) refused: Option<(Snapshot, String)>,
    /// Tokens of claims we gave up on while their link may have taken.
    pub(super) abandoned: Vec<String>,
    /// The last busy lock seen, for a deadline that passes between looks.
    pub(super) last: Option<LockInfo>,
    /// Our first refresh was read back: touches stamp file-system time.
    pub(super) touch_verified: bool,
    /// When this acquisition first gave the lock back to a waiting reader
    /// (monotonic): it does so only for a while (`shared::GIVE_WAY_FOR`).
    pub(super) gave_way_at: Option<Duration>,
    /// Our place in line (`pace`) and the holder (device, inode) it was
    /// counted under.
    pub(super) line: Option<((u64, u64), super::pace::Place)>,
    /// The pace of a waiter behind the first in line: at the cap, never
    /// started over.
    pub(super) quiet: Backoff,
    /// When a remote wait last ended early on an event (monotonic): the
    /// next early end waits out the poll floor from then (`wait`).
    pub(super) woke_early_at: Option<Duration>,
    /// Whether the next failed link may go unlooked (`wait::glance`).
    pub(super) glance: Glance,
    /// When our last link was tried (monotonic): what quiet polls compare
    /// the directory's times with (`quiet`).
    pub(super) linked_at: Duration,
}

/// A poll at the cap looks at a lock that is still there only every
/// other time (`Attempts::glance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Glance {
    /// The next failed link is looked at.
    Look,
    /// The next failed link may stand for the instance last looked at.
    Allowed,
    /// The last one did: the next is looked at.
    Taken,
}

pub(super) fn acquire_loop(
    ctx: &Ctx,
    opts: &AcquireOptions,
    slot: &mut Option<Claim>,
) -> Result<Held, Error> {
    let start = ctx.env.monotonic();
    let deadline = opts.wait.map(|w| start + w);
    // No retry of a transient error goes past a caller's `-w` either. `-n`
    // does not wait for a holder, but a lost reply is still retried.
    let io_deadline = deadline.filter(|_| opts.wait.is_some_and(|w| !w.is_zero()));
    let ctx = Ctx {
        deadline: io_deadline,
        ..*ctx
    };
    let mut a = Attempts {
        ctx,
        opts,
        deadline,
        backoff: Backoff::new(opts.poll_min, opts.poll_max),
        budget: IoBudget::new(&ctx),
        quick: 0,
        contended: false,
        announced: false,
        anomalies: 0,
        watch: None,
        refused: None,
        abandoned: Vec::new(),
        last: None,
        touch_verified: false,
        gave_way_at: None,
        line: None,
        quiet: Backoff::new(opts.poll_max, opts.poll_max),
        woke_early_at: None,
        glance: Glance::Look,
        linked_at: Duration::ZERO,
    };
    loop {
        if let Some(signal) = ctx.env.interrupted() {
            return Err(Error::Interrupted { signal });
        }
        let step = match a.attempt(slot)? {
            Ok(held) => return Ok(held),
            Err(step) => step,
        };
        a.pace(step)?;
    }
}

/// Exponential backoff with jitter between polls of a busy lock.
pub(super) struct Backoff {
    pub(super) min: Duration,
    pub(super) max: Duration,
    pub(super) cur: Duration,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.min(max);
        Backoff { min, max, cur: min }
    }

    pub(super) fn reset(&mut self) {
        self.cur = self.min;
    }

    /// Whether the next pause is drawn from the cap.
    pub(super) fn at_cap(&self) -> bool {
        self.cur >= self.max
    }

    pub(super) fn next(&mut self, env: &dyn Env) -> Duration {
        // Jitter between half and all of the step keeps contenders from
        // polling in lock step; at the cap, where every poll is a cost and
        // none is urgent, its top 15% is spread enough (150 ms at the
        // default 1 s, against a poll's round trips of a few ms).
        let (floor, width) = if self.at_cap() {
            (0.85, 0.15)
        } else {
            (0.5, 0.5)
        };
        let frac = floor + (env.random() % 1000) as f64 / 1000.0 * width;
        let d = self.cur.mul_f64(frac);
        self.cur = (self.cur * 2).min(self.max);
        d
    }
}

impl Attempts<'_> {
    /// One try: link our claim (made or refreshed first) to the lock name
    /// and look at what is there.
    pub(super) fn attempt(
        &mut self,
        slot: &mut Option<Claim>,
    ) -> Result<Result<Held, Step>, Error> {
        let ctx = self.ctx;
        let (ctx, env) = (&ctx, ctx.env);
        if slot.is_none() {
            *slot = Some(new_claim(ctx, self.opts)?);
        }
        // The lock will be the claim's inode, so its mtime is the claim's:
        // a claim kept through a long wait would make a brand-new lock look
        // as old as the wait, and others would break it as expired. (Not
        // after the link instead: a breaker could judge the newborn lock
        // in between, and the simulator finds the lock it then puts back
        // held by nobody.)
        if env
            .monotonic()
            .saturating_sub(slot.as_ref().expect("claim present").mono_base)
            > refresh_after(self.opts)
        {
            match refresh_claim(ctx, slot, Stamp::first(!self.touch_verified)) {
                // Our claim is gone (by hand, or by mistake) and the
                // directory is there: start over with a fresh claim, as
                // when a link finds it gone (`Look::ClaimLost`). A link
                // by the claim's descriptor finds it gone only once the
                // lock is free; its refresh, sooner.
                Err(Error::Io {
                    op: "touch",
                    source,
                    ..
                }) if sys::is_not_found(&source) => {
                    self.give_up_claim(slot);
                    return Ok(Err(Step::Pause));
                }
                touched => touched?,
            }
            self.touch_verified = true;
        }
        if self.opts.shared {
            return Ok(match self.shared_attempt(slot)? {
                Ok(joined) => {
                    let mut held = self.take(slot, None);
                    held.shared = Some(joined);
                    Ok(held)
                }
                Err(step) => Err(step),
            });
        }
        let c = slot.as_ref().expect("claim present");
        self.linked_at = env.monotonic();
        // I1: the reply is advice; `look` decides.
        let linked = ctx.fs.hard_link(&c.path, &ctx.lock.path);
        if let Err(e) = &linked {
            if sys::is_link_unsupported(e) {
                return Err(Error::Unsupported {
                    path: ctx.lock.path.clone(),
                    why: format!("link(2) failed: {e}"),
                });
            }
        }
        if let Some(snap) = self.glance(&linked) {
            return Ok(Err(self.busy(slot, snap)?));
        }
        let seen = look(ctx, c, &linked, self.watch.as_ref().map(|(s, _)| s))?;
        Ok(match seen {
            Look::Ours if self.contended => match self.yield_to_reader(slot)? {
                Ok(names) => Ok(self.take(slot, names)),
                Err(step) => Err(step),
            },
            Look::Ours => Ok(self.take(slot, None)),
            Look::Busy(snap) => Err(self.busy(slot, snap)?),
            other => Err(self.missed(slot, other, linked)?),
        })
    }

    /// Waits as `step` says before the next attempt. Every pause checks
    /// the deadline first, and only a few attempts in a row go without one.
    pub(super) fn pace(&mut self, step: Step) -> Result<(), Error> {
        let env = self.ctx.env;
        match step {
            Step::Now if self.quick < QUICK_TRIES => {
                self.quick += 1;
                return Ok(());
            }
            Step::Waited => {
                self.quick = 0;
                return Ok(());
            }
            Step::Now | Step::Pause => self.quick = 0,
        }
        let remaining = self.deadline.map(|d| d.saturating_sub(env.monotonic()));
        if remaining == Some(Duration::ZERO) {
            return Err(self.busy_error(self.last.clone(), None));
        }
        let mut nap = self.backoff.next(env);
        if let Some(r) = remaining {
            nap = nap.min(r);
        }
        match env.sleep(nap) {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(()),
        }
    }

    pub(super) fn busy_error(&self, info: Option<LockInfo>, unbreakable: Option<String>) -> Error {
        Error::Busy {
            path: self.ctx.lock.path.clone(),
            info: info.map(Box::new),
            timed_out: self.opts.wait.is_some_and(|w| !w.is_zero()),
            unbreakable,
        }
    }

    /// The lock is ours: sweep what a contended wait may have left around
    /// it (from `listed`, the directory as just read, if given), and hand
    /// it over.
    pub(super) fn take(
        &mut self,
        slot: &mut Option<Claim>,
        listed: Option<Vec<std::ffi::OsString>>,
    ) -> Held {
        let mut c = slot.take().expect("claim present");
        super::claim::drop_seal(&self.ctx, &mut c);
        // Waiters woken by events (local disk) need no moment: the first
        // is woken by the release itself.
        let polled = !self.watching(&c);
        let taken_at = polled.then(|| (self.ctx.env.monotonic(), c.estimate_now(self.ctx.env)));
        let mut waiters = false;
        if self.contended {
            let now = Some(c.estimate_now(self.ctx.env));
            let names = listed.or_else(|| self.ctx.fs.list(&self.ctx.lock.dir).ok());
            if let Some(names) = names {
                waiters = super::pace::others_wait(&self.ctx, &names, &c.path);
                self.ctx
                    .sweep_listed(names, now, Some(&c.path), Sweep::Quick);
            }
        }
        Held {
            claim: c.path,
            claim_meta: c.meta,
            record: c.record,
            bytes: c.bytes,
            shared: None,
            waiters: waiters && polled,
            taken_at,
        }
    }
}
