//! The line of slot waiters (`--slots`): a waiter that finds no slot it
//! may take leaves a ticket beside the base lock,
//! `.<lock>.nfslock-wait.<nonce>.<pid>.<host>`, whose nonce begins with
//! the file-system time it was made at, so that names sort in arrival
//! order on every host. A free slot goes to the oldest live waiters: a
//! contender takes one only when fewer live tickets are older than its
//! own (all of them, for a newcomer) than slots are free, so nobody who
//! waits is overtaken for ever by others who keep arriving. A ticket is
//! live while its waiter refreshes it (on its host: while its process
//! exists too); a stopped or dead waiter stops holding the line after
//! `TICKET_STALE`. Only who tries is decided here; every guarantee of a
//! slot is its lock's.

use super::ctx::{Ctx, Phase};
use crate::error::Error;
use crate::fs::{Durability, FsTime};
use crate::names::AuxKind;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// How often a waiter refreshes its ticket.
const TICKET_TOUCH: Duration = Duration::from_secs(2);

/// A ticket not refreshed for this long (file-system time) holds no place.
const TICKET_STALE: Duration = Duration::from_secs(10);

/// Our place in line.
pub(super) struct Ticket {
    path: PathBuf,
    nonce: String,
    /// File-system time at `mono` on our monotonic clock.
    fs_base: FsTime,
    mono: Duration,
    touched: Duration,
}

impl Ticket {
    /// Joins the line: a probe for file-system time, then the ticket.
    /// `None` where no probe can be made (no line, then: first come).
    pub(super) fn join(ctx: &Ctx) -> Result<Option<Ticket>, Error> {
        let Some(now) = ctx.fs_now()? else {
            return Ok(None);
        };
        let ms = (now.0 / 1_000_000).clamp(0, 0xffff_ffff_ffff) as u64;
        let nonce = || format!("{ms:012x}{:04x}", ctx.env.token() & 0xffff);
        let made = ctx.create_aux_with(
            AuxKind::Waiter,
            &nonce,
            &|_, _| Vec::new(),
            Durability::NoSync,
            Phase::Work,
        )?;
        let mono = ctx.env.monotonic();
        Ok(Some(Ticket {
            path: made.path,
            nonce: made.nonce,
            fs_base: made.meta.mtime,
            mono,
            touched: mono,
        }))
    }

    /// File-system "now", estimated from when the ticket was made.
    fn now(&self, ctx: &Ctx) -> FsTime {
        self.fs_base
            .plus(ctx.env.monotonic().saturating_sub(self.mono))
    }

    /// Keeps the place: a touch every `TICKET_TOUCH`.
    pub(super) fn refresh(&mut self, ctx: &Ctx) {
        let now = ctx.env.monotonic();
        if now.saturating_sub(self.touched) >= TICKET_TOUCH {
            let _ = ctx.fs.touch_now(&self.path);
            self.touched = now;
        }
    }

    /// Leaves the line (on every way out of a wait).
    pub(super) fn leave(self, ctx: &Ctx) {
        let _ = ctx.unlink_ours(&self.path);
    }
}

/// How many live waiters in `listed` (the base lock's directory) are
/// ahead of `mine`: all live ones for a newcomer without a ticket. A
/// ticket of a gone process of this host is dead; any other is live while
/// refreshed within `TICKET_STALE` of file-system "now" (ours, estimated
/// in line; a probe for a newcomer, and only when there are tickets).
pub(super) fn ahead(ctx: &Ctx, listed: &[OsString], mine: Option<&Ticket>) -> Result<usize, Error> {
    let me = &ctx.env.identity().host;
    let candidates: Vec<&OsString> = listed
        .iter()
        .filter(|name| {
            ctx.lock.parse_aux(name).is_some_and(|a| {
                a.kind == AuxKind::Waiter
                    && mine.is_none_or(|t| a.nonce < t.nonce)
                    && !(ctx.lock.spells_host(&a.host, me) && ctx.env.pid_gone(a.pid))
            })
        })
        .collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let now = match mine {
        Some(t) => Some(t.now(ctx)),
        None => ctx.fs_now()?,
    };
    let fresh = |name: &OsString| match (now, ctx.fs.lstat(&ctx.lock.in_dir(name))) {
        (Some(now), Ok(m)) => now.secs_since(m.mtime) < TICKET_STALE.as_secs_f64(),
        // No file-system time to tell by: it counts.
        (None, Ok(_)) => true,
        (_, Err(_)) => false,
    };
    Ok(candidates.into_iter().filter(|n| fresh(n)).count())
}
