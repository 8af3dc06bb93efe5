//! Waiting for a holder: woken by an event on local filesystems (with a
//! slow poll as a fallback and when the lock is due to go stale), polling
//! with backoff on remote ones; at the deadline, busy (I9).

use super::acquire::{Attempts, Glance, Step};
use super::claim::Claim;
use super::ctx::Ctx;
use super::env::Woken;
use super::pace;
use super::quiet;
use super::{Event, LockInfo, Snapshot};
use crate::error::Error;
use crate::stale::{self, Liveness};
use crate::sys;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Attempts<'_> {
    /// Sleeps until the holder may have gone: woken by an event on local
    /// filesystems (polling only as a fallback and when the lock is due to
    /// go stale), polling with backoff on remote ones. At the deadline,
    /// busy.
    pub(super) fn wait_for_holder(
        &mut self,
        slot: &mut Option<Claim>,
        info: LockInfo,
        unbreakable: Option<String>,
    ) -> Result<Step, Error> {
        let claim = slot.as_ref().expect("claim present");
        let tried = quiet::Tried::new(claim, self.linked_at, self.stale_in(&info, &unbreakable));
        // Quiet polls only under the holder our last try found too: a lock
        // that changes hands between our tries keeps the directory's times
        // moving, and a GETATTR would only delay the try.
        let m = &info.snapshot.meta;
        let steady = matches!(&self.line, Some((h, _)) if *h == (m.dev, m.ino));
        let plain = || super::shared::shared_record(&info.snapshot).is_none();
        let mut first = true;
        loop {
            let (remaining, unbreakable) = self.may_wait(&info, unbreakable.clone())?;
            let claim = slot.as_ref().expect("claim present");
            let pause = self.next_pause(claim, &info, &unbreakable, remaining);
            if first {
                // Plain locks only (parsed only at the cap): a readers'
                // epoch is looked into at every poll.
                self.glance = match self.glance {
                    Glance::Look if pause.capped && plain() => Glance::Allowed,
                    _ => Glance::Look,
                };
                first = false;
            }
            let (quiet, behind) = (pause.quiet, matches!(pause.wake, Wake::Behind(_)));
            let woke = sleep_through(&self.ctx, claim, pause);
            let woken = match woke {
                Woke::Signal(signal) => Some(signal),
                Woke::Slept if quiet && steady && plain() => {
                    if self.nothing_moved(claim, &info, &tried) {
                        continue;
                    }
                    // Something moved: what the try finds is looked at,
                    // not taken for the instance we knew.
                    self.glance = Glance::Look;
                    None
                }
                Woke::Slept => None,
                Woke::Moved => {
                    // The lock changed, or the waiter ahead released it or
                    // left the line: the next failed link is looked at,
                    // not taken for the holder we knew; a move ahead
                    // recounts our place.
                    self.glance = Glance::Look;
                    if behind {
                        self.line = None;
                    }
                    self.after_early_wake()
                }
            };
            self.last = Some(info);
            return match woken {
                Some(signal) => Err(Error::Interrupted { signal }),
                None => Ok(Step::Waited),
            };
        }
    }

    /// The next pause: the queue's where the filesystem reports changes
    /// (a slow poll as a fallback, and when the lock is due to go stale),
    /// the line's elsewhere; never past the deadline (`remaining`).
    fn next_pause(
        &mut self,
        claim: &Claim,
        info: &LockInfo,
        unbreakable: &Option<String>,
        remaining: Option<Duration>,
    ) -> Pause {
        let mut p = if self.watching(claim) {
            Pause {
                pause: WATCH_FALLBACK.min(self.stale_in(info, unbreakable)),
                capped: false,
                quiet: false,
                wake: Wake::Queue,
            }
        } else {
            self.remote_pause(claim, info)
        };
        if let Some(r) = remaining {
            p.pause = p.pause.min(r);
        }
        p
    }

    /// How long until the lock `info` may be judged stale (never, for one
    /// we may not break: it goes stale no further).
    fn stale_in(&self, info: &LockInfo, unbreakable: &Option<String>) -> Duration {
        match unbreakable {
            Some(_) => Duration::MAX,
            None => until_stale(info, self.opts.stale_after),
        }
    }

    /// At a quiet waiter's poll: whether it may skip its try, as nothing
    /// that try would act on has moved since `tried` found `info` (see
    /// `quiet`): one GETATTR of the directory. An error is "try", and the
    /// try reports it.
    fn nothing_moved(&self, claim: &Claim, info: &LockInfo, tried: &quiet::Tried) -> bool {
        let (ctx, env) = (self.ctx, self.ctx.env);
        if tried.due(env.monotonic()) || quiet::holder_died(&ctx, info) {
            return false;
        }
        match ctx.fs.stat_dir_fresh(&ctx.lock.dir) {
            Ok(dir) if quiet::unchanged(&dir, tried, claim.meta.mtime) => {
                env.event(Event::QuietPoll);
                true
            }
            _ => false,
        }
    }
}

impl Attempts<'_> {
    /// Every other poll at the cap, a link that failed with EEXIST is taken
    /// as the instance last looked at, and its lstat is saved: a waiter at
    /// the cap then costs 1.5 operations a poll instead of 2. EEXIST says
    /// the name is taken; what it may hide is only ever a delay of one
    /// poll: a new holder (counted in line and backed off for at the next
    /// look), or our own link taken with its reply lost (found ours at the
    /// next look, or by the clean-up's look at a deadline: `abandon`). A
    /// stale verdict from the older look breaks nothing the break does not
    /// find again (`break_instance` pins the lock and compares it with what
    /// was judged, mtime included: a holder's refresh since wins). Only plain
    /// exclusive locks: a readers' epoch is looked into at every poll.
    pub(super) fn glance(&mut self, linked: &io::Result<()>) -> Option<Snapshot> {
        let allowed = self.glance == Glance::Allowed;
        self.glance = Glance::Look;
        if !allowed || !matches!(linked, Err(e) if sys::is_exists(e)) {
            return None;
        }
        let (snap, _) = self.watch.as_ref()?;
        self.glance = Glance::Taken;
        self.ctx.env.event(super::Event::Glanced);
        Some(snap.clone())
    }

    /// A poll's pause on a filesystem that reports no changes, by our
    /// place in line (see `pace`), asked again at each new holder: the
    /// first two in line back off from the poll floor, starting over at
    /// each new holder (the first no further than twice the floor while
    /// the holder is new); the rest poll quietly, at the cap. Any of them
    /// wakes early when the waiter just ahead, if of this host, releases
    /// the lock or leaves; with nobody ahead here, a fast place wakes at
    /// this host's changes to the lock. Readers keep the plain backoff (their
    /// line is the writers' order, `shared`).
    fn remote_pause(&mut self, claim: &Claim, info: &LockInfo) -> Pause {
        let env = self.ctx.env;
        if self.opts.shared {
            return Pause::plain(self.backoff.next(env), false);
        }
        let m = &info.snapshot.meta;
        let holder = (m.dev, m.ino);
        let place = match &self.line {
            Some((h, place)) if *h == holder => place.clone(),
            _ => {
                let mine = claim.path.file_name().unwrap_or_default();
                let theirs = info.record().map(|r| r.claim.as_os_str());
                let now = claim.estimate_now(env);
                let place = pace::waiters_ahead(&self.ctx, mine, &claim.record.token, theirs, now);
                env.event(Event::InLine {
                    path: &self.ctx.lock.path,
                    ahead: place.ahead,
                });
                self.line = Some((holder, place.clone()));
                place
            }
        };
        let held_for = self.watch.as_ref().map_or(Duration::ZERO, |(_, since)| {
            env.monotonic().saturating_sub(*since)
        });
        let fast = place.ahead < pace::FAST_PLACES;
        let (pause, capped) = match place.ahead {
            // The first in line keeps up with a holder that holds briefly
            // (a releaser that saw it waiting gives it `pace::HAND_OVER_WAIT`).
            0 if held_for < pace::HEAD_FAST_FOR => {
                let fast = self.opts.poll_min * pace::HEAD_FAST_STEPS;
                let capped = self.backoff.at_cap() && fast >= self.backoff.max;
                (self.backoff.next(env).min(fast), capped)
            }
            _ if fast => {
                let capped = self.backoff.at_cap();
                (self.backoff.next(env), capped)
            }
            _ => (self.quiet.next(env), true),
        };
        // Behind a waiter of this host we wait for it to be done with the
        // lock, not for the lock: one process wakes at a release here, the
        // one whose turn it is.
        let wake = match place.next_here {
            Some(ahead) => Wake::Behind(ahead),
            None if fast => Wake::OnLock,
            None => Wake::Never,
        };
        Pause {
            pause,
            capped,
            quiet: !fast,
            wake,
        }
    }

    /// After a pause an event cut short: two early wakes in a row are at
    /// least the poll floor apart (within the deadline), so that a lock
    /// someone keeps touching, or a claim ahead that keeps moving, paces us
    /// like a poll instead of spinning us. The first wake after a quiet
    /// spell costs nothing: it is the hand-over. A stop signal meanwhile
    /// is returned.
    fn after_early_wake(&mut self) -> Option<i32> {
        let env = self.ctx.env;
        let now = env.monotonic();
        let mut nap = self.woke_early_at.map_or(Duration::ZERO, |t| {
            (t + self.opts.poll_min).saturating_sub(now)
        });
        if let Some(d) = self.deadline {
            nap = nap.min(d.saturating_sub(now));
        }
        let signal = if nap.is_zero() { None } else { env.sleep(nap) };
        self.woke_early_at = Some(env.monotonic());
        signal
    }

    /// Before a wait: busy at the deadline, else the time left (`None`:
    /// no deadline), announced once.
    pub(super) fn may_wait(
        &mut self,
        info: &LockInfo,
        unbreakable: Option<String>,
    ) -> Result<(Option<Duration>, Option<String>), Error> {
        let env = self.ctx.env;
        let remaining = self.deadline.map(|d| d.saturating_sub(env.monotonic()));
        if remaining == Some(Duration::ZERO) {
            return Err(self.busy_error(Some(info.clone()), unbreakable));
        }
        if !self.announced {
            env.event(Event::Waiting { info });
            self.announced = true;
        }
        Ok((remaining, unbreakable))
    }

    /// Whether to wait for events rather than poll, from the claim's
    /// device: no round trip.
    pub(super) fn watching(&self, claim: &Claim) -> bool {
        let ctx = self.ctx;
        self.opts
            .watch
            .unwrap_or_else(|| !ctx.fs.is_remote(claim.meta.dev, &ctx.lock.dir))
    }
}

/// A fast place's pause on a remote filesystem, cut short when a process
/// of this host moves, removes or touches the lock: a kernel reports the
/// changes made through its own mount (not another host's), so a release
/// on this host reaches the first in line at once instead of at its next
/// poll. Costs the watch's lookup of the lock name, no poll; another
/// host's release is still found by polling at the line's pace. Only
/// with no waiter of this host ahead: it is that one's turn.
fn wake_on_this_host(ctx: &Ctx, pause: Duration) -> Woke {
    let lock = ctx.fs.watch_path(&ctx.lock.path);
    match ctx.env.sleep_watching(&lock, pause) {
        Woken::Signal(signal) => Woke::Signal(signal),
        Woken::Unwatchable => Woke::from(ctx.env.sleep(pause)),
        Woken::TimedOut => Woke::Slept,
        Woken::Changed | Woken::Missing => Woke::Moved,
    }
}

/// Sleeps through `p`, or until what it names ends it early.
fn sleep_through(ctx: &Ctx, claim: &Claim, p: Pause) -> Woke {
    match p.wake {
        Wake::Queue => Woke::from(super::queue::wait_in_line(ctx, &claim.path, p.pause)),
        Wake::Never => Woke::from(ctx.env.sleep(p.pause)),
        Wake::OnLock => wake_on_this_host(ctx, p.pause),
        Wake::Behind(ahead) => wake_behind(ctx, &ahead, p.pause),
    }
}

/// How a pause ended.
enum Woke {
    Signal(i32),
    /// The whole pause, or an early end that says nothing of the lock or
    /// our place.
    Slept,
    /// The lock changed, or the waiter just ahead released it or left.
    Moved,
}

impl From<Option<i32>> for Woke {
    fn from(signal: Option<i32>) -> Woke {
        signal.map_or(Woke::Slept, Woke::Signal)
    }
}

/// A pause on a remote filesystem, cut short when the waiter just ahead,
/// a process of this host, releases the lock or leaves the line: its
/// claim loses its name (a release renames the lock, a name of that very
/// inode, then removes the claim; a waiter that gives up removes it). Then
/// it is our turn, and we try at once rather than at our next poll. Its
/// taking the lock and the refreshes of its claim (times, links) do not
/// wake us. A claim gone before we watch it (our listing was old) leaves
/// us watching the lock instead, as if first in line.
fn wake_behind(ctx: &Ctx, ahead: &Path, pause: Duration) -> Woke {
    let env = ctx.env;
    match env.sleep_until_moved(&ctx.fs.watch_path(ahead), pause) {
        Woken::Signal(signal) => Woke::Signal(signal),
        Woken::TimedOut => Woke::Slept,
        Woken::Unwatchable => Woke::from(env.sleep(pause)),
        Woken::Missing => wake_on_this_host(ctx, pause),
        Woken::Changed => Woke::Moved,
    }
}

/// A poll's pause, and what may end it early.
struct Pause {
    pause: Duration,
    /// The pause is the cap's.
    capped: bool,
    /// A waiter behind the first two in line: its polls may be quiet.
    quiet: bool,
    wake: Wake,
}

impl Pause {
    fn plain(pause: Duration, capped: bool) -> Pause {
        Pause {
            pause,
            capped,
            quiet: false,
            wake: Wake::Never,
        }
    }
}

/// What ends a pause early, beside a signal.
enum Wake {
    /// On a filesystem that reports changes: our turn in the waiters'
    /// queue (`queue`).
    Queue,
    Never,
    /// A change to the lock made on this host.
    OnLock,
    /// The claim just ahead, of a waiter of this host, losing its name.
    Behind(PathBuf),
}

/// How long a waiter that is woken by events still polls: a lock that
/// goes stale raises no event, and events can be lost (queue overflow).
pub(super) const WATCH_FALLBACK: Duration = Duration::from_secs(10);

/// Time until a busy lock may be judged stale (lease or `--stale-after`),
/// plus a little; unbounded when it never will be by age.
pub(super) fn until_stale(info: &LockInfo, stale_after: Option<Duration>) -> Duration {
    let alive = info.liveness == Liveness::Alive;
    let limit = stale::age_limit(info.record().and_then(|r| r.lease), stale_after, alive);
    match (limit, info.verdict.age) {
        (Some(limit), Some(age)) => limit.saturating_sub(age) + Duration::from_millis(10),
        (Some(limit), None) => limit,
        _ => Duration::MAX,
    }
}
