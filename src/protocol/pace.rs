//! The waiters' line on filesystems that report no changes (NFS): how
//! fast a waiter polls, by its place among the waiters. Each poll is a
//! round trip or two on NFS, and waiters that all poll fast crowd out the
//! holder's own round trips; so only the first two in line poll fast
//! (backing off, and starting over at each new holder), and every waiter
//! behind them polls quietly, at its poll cap, whatever the holder does
//! (and while the holder stays, with one round trip: `quiet`).
//!
//! A place is told by names: an exclusive claim's nonce begins with the
//! wall-clock time it was made at ([`claim_nonce`]), so one listing shows
//! the line in arrival order (across hosts, as far as their clocks agree).
//! A claim ahead counts while its waiter lives: on this host, while its
//! process exists; on another, while its link count says it waits and its
//! mtime (a waiter refreshes its claim at every try) is recent.
//!
//! A holder that took the lock after a wait, with other hosts' claims
//! beside it, gives the first live waiter, if of another host, a moment
//! after its release ([`after_release`], [`hand_over`]) before it returns:
//! otherwise the releaser's own next acquisition, a newcomer that links at
//! once, would take the lock again before the first in line polls. A
//! waiter of this host needs no moment: the release wakes it.
//! One that took it at once looks for waiters (a listing) only if it held
//! it for [`LOOK_AFTER`]: an uncontended short cycle spends nothing more.
//!
//! Only pace is decided here. Nobody defers to the line: a quiet waiter
//! still polls, tries the lock whenever the directory changed, and takes
//! it when it is free, so a waiter ahead that crashed, stalled or lost its
//! claim costs the ones behind it at most their poll cap per hand-over,
//! and every guarantee is kept by the attempt that follows, whatever the
//! line said.

use super::ctx::Ctx;
use super::Env;
use crate::fs::FsTime;
use crate::names::{AuxKind, AuxName};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// For how long after a new holder appears the first in line polls at
/// most [`HEAD_FAST_STEPS`] poll floors apart, whatever its backoff says.
pub(super) const HEAD_FAST_FOR: Duration = Duration::from_secs(1);

/// The first in line's longest pause while the holder is new, in poll
/// floors: within [`HAND_OVER_WAIT`] with its round trips.
pub(super) const HEAD_FAST_STEPS: u32 = 2;

/// How many live waiters ahead make a waiter quiet.
pub(super) const FAST_PLACES: usize = 2;

/// A claim of another host not refreshed for this long (file-system
/// time) holds no place: its waiter polls at least every poll cap.
pub(super) const CLAIM_STALE: Duration = Duration::from_secs(10);

/// A claim's nonce: 12 hex digits of wall-clock milliseconds, then 4
/// random ones. The names sort in arrival order; the creation never
/// adopts a taken name, so uniqueness does not rest on the random part.
pub(super) fn claim_nonce(env: &dyn Env) -> String {
    let ms = env
        .wall_clock()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .min(0xffff_ffff_ffff) as u64;
    format!("{ms:012x}{:04x}", env.token() & 0xffff)
}

/// Our place in line: how many live waiters are ahead, and the claim of
/// the nearest of them if it is of this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Place {
    /// Counted up to [`FAST_PLACES`].
    pub ahead: usize,
    /// Its changes raise events here, even on NFS: we watch it to learn
    /// at once that its waiter released the lock or left (`wait`).
    pub next_here: Option<PathBuf>,
}

/// Our place behind the live waiters ahead of our claim `mine` (its nonce
/// `my_nonce`): one listing, a pid probe for each claim of this host, an
/// lstat for each of another host's (nearest first, only until
/// [`FAST_PLACES`] are found). The holder's claim (`holder`, as its record
/// names it) does not wait; `now` is file-system time, estimated. A
/// listing that fails puts us first: the pace of today.
pub(super) fn waiters_ahead(
    ctx: &Ctx,
    mine: &OsStr,
    my_nonce: &str,
    holder: Option<&OsStr>,
    now: FsTime,
) -> Place {
    let Ok(names) = ctx.fs.list(&ctx.lock.dir) else {
        return Place::default();
    };
    let me = &ctx.env.identity().host;
    // Nearest first: the exclusive claims older than ours, newest first.
    let ahead = claims_by_arrival(ctx, &names, &[Some(mine), holder])
        .into_iter()
        .filter(|(_, a)| a.kind == AuxKind::Claim && a.nonce.as_str() < my_nonce)
        .rev();
    let mut place = Place::default();
    for (name, aux) in ahead {
        if !waits(ctx, name, &aux, me, now) {
            continue;
        }
        if place.ahead == 0 && ctx.lock.spells_host(&aux.host, me) {
            place.next_here = Some(ctx.lock.in_dir(name));
        }
        place.ahead += 1;
        if place.ahead >= FAST_PLACES {
            break;
        }
    }
    place
}

/// Whether the claim `name` (parsed: `aux`) is a live waiter's: of this
/// host (`me`), while its pid exists; of another, while it has one link
/// (two: the holder's claim, or one pinned by a breaker) and was refreshed
/// within [`CLAIM_STALE`] of `now` (file-system time, estimated). One
/// lstat for another host's claim, none for ours.
fn waits(ctx: &Ctx, name: &OsStr, aux: &AuxName, me: &str, now: FsTime) -> bool {
    if ctx.lock.spells_host(&aux.host, me) {
        return !ctx.env.pid_gone(aux.pid);
    }
    matches!(ctx.fs.lstat(&ctx.lock.in_dir(name)),
        Ok(m) if m.nlink == 1 && now.secs_since(m.mtime) < CLAIM_STALE.as_secs_f64())
}

/// How long a releasing holder waits, at most, for a waiter to take the
/// lock: a few of the first waiter's polls from the poll floor.
pub(super) const HAND_OVER_WAIT: Duration = Duration::from_millis(80);

/// A hold at least this long, taken without a wait, lists the directory
/// at its release to see whether anyone waits: long enough that a quick
/// uncontended cycle never does, short against the holds it serves.
pub(super) const LOOK_AFTER: Duration = Duration::from_millis(20);

/// After our release of a lock we took at `taken` (monotonic, and
/// file-system time then; `None` where waiters are woken by events, not
/// polling): a moment for the first in line if it is a live waiter of
/// another host. It is looked for (one listing, after the release: the
/// next holder does not wait for it) if `waiters` (claims of other
/// hosts, [`others_wait`]) were seen when we took the lock after a wait,
/// or the hold was long. Only live waiters count: a
/// claim left by a crashed host, or planted, would cost every release the
/// moment. A first in line of this host needs none: our release wakes it
/// (`wait::wake_on_this_host`), and its link is a round trip away where
/// our caller's next acquisition is a process start and a new claim away.
pub(super) fn after_release(
    ctx: &Ctx,
    waiters: bool,
    taken: Option<(Duration, FsTime)>,
    ours: &Path,
) {
    let Some((at, fs_at)) = taken else { return };
    let held = ctx.env.monotonic().saturating_sub(at);
    if !waiters && held < LOOK_AFTER {
        return;
    }
    let Ok(names) = ctx.fs.list(&ctx.lock.dir) else {
        return;
    };
    let me = &ctx.env.identity().host;
    let now = fs_at.plus(held);
    // The first live one is the first in line.
    let first = claims_by_arrival(ctx, &names, &[ours.file_name()])
        .into_iter()
        .find(|(n, a)| waits(ctx, n, a, me, now));
    if first.is_some_and(|(_, a)| !ctx.lock.spells_host(&a.host, me)) {
        hand_over(ctx);
    }
}

/// The claims among `names` (the lock's directory, as listed), but for
/// those named in `skip`, in the order they arrived as far as names tell:
/// exclusive claims by their nonce, which begins with the time they were
/// made ([`claim_nonce`]), then readers' claims, whose nonces are random
/// and tell no order.
fn claims_by_arrival<'n>(
    ctx: &Ctx,
    names: &'n [OsString],
    skip: &[Option<&OsStr>],
) -> Vec<(&'n OsString, AuxName)> {
    let mut claims: Vec<_> = names
        .iter()
        .filter(|n| !skip.contains(&Some(n.as_os_str())))
        .filter_map(|n| ctx.lock.parse_aux(n).map(|a| (n, a)))
        .filter(|(_, a)| a.kind.is_claim())
        .collect();
    claims.sort_by(|(_, x), (_, y)| {
        let readers = |a: &AuxName| a.kind != AuxKind::Claim;
        readers(x)
            .cmp(&readers(y))
            .then_with(|| x.nonce.cmp(&y.nonce))
    });
    claims
}

/// Whether `names` (the lock's directory, as listed) hold a claim of
/// another host than ours, by name alone: whether to look again at the
/// release. Waiters of this host need no look: the release wakes them,
/// and a listing on NFS is a round trip through the same client as the
/// next holder's.
pub(super) fn others_wait(ctx: &Ctx, names: &[OsString], ours: &Path) -> bool {
    let me = &ctx.env.identity().host;
    let ours = ours.file_name();
    names.iter().any(|n| {
        Some(n.as_os_str()) != ours
            && ctx
                .lock
                .parse_aux(n)
                .is_some_and(|a| a.kind.is_claim() && !ctx.lock.spells_host(&a.host, me))
    })
}

/// After a release: waits until someone holds the lock again (an lstat
/// after 5, 15, 35 and 75 ms, at most [`HAND_OVER_WAIT`]), so that the
/// first in line can take it before our caller's next acquisition would.
/// Best effort: a signal ends it, and an lstat that fails is "not yet".
pub(super) fn hand_over(ctx: &Ctx) {
    let env = ctx.env;
    let end = env.monotonic() + HAND_OVER_WAIT;
    let mut nap = Duration::from_millis(5);
    while env.monotonic() + nap <= end {
        if env.sleep(nap).is_some() {
            return;
        }
        if ctx.fs.lstat(&ctx.lock.path).is_ok() {
            return;
        }
        nap *= 2;
    }
}
