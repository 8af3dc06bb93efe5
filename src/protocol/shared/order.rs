//! Who goes first when a lock falls free while both readers and writers
//! wait: the one that came first. A reader that has waited lets an older
//! waiting writer have the lock (writer preference), and a writer that
//! has waited gives the lock back to an older waiting reader, so that a
//! stream of writers cannot starve a reader either. Fairness only, from a
//! listing that may be stale: safety never depends on it. Only contenders
//! that waited pay for it, and only when the lock is free for them.

use super::*;
use crate::fs::{FsTime, Meta};

/// How long one writer's acquisition keeps giving the lock back to older
/// readers, from its first give-back. An older reader that is really
/// waiting gets in within a poll or two; one that is stopped, or a reader's
/// claim planted by another user with an old record, must not keep a
/// writer out for longer than this (each later writer gives way again, so
/// a real reader still cannot starve).
pub(crate) const GIVE_WAY_FOR: Duration = Duration::from_secs(2);

/// When a contender came: its claim's birth time where the filesystem
/// keeps one, else the time its record was written (whole seconds, by its
/// own host's clock). A claim's mtime and ctime move at every refresh, so
/// neither can say who came first.
#[derive(Clone, Debug, PartialEq)]
enum Arrival {
    Born(FsTime),
    Written(String),
}

impl Arrival {
    /// Strictly earlier; arrivals of different kinds are not ordered, and
    /// ties go to nobody (both try, the lock decides).
    fn before(&self, other: &Arrival) -> bool {
        match (self, other) {
            (Arrival::Born(a), Arrival::Born(b)) => a < b,
            // ISO 8601 UTC of one width sorts as time does.
            (Arrival::Written(a), Arrival::Written(b)) => a.len() == b.len() && a < b,
            _ => false,
        }
    }
}

fn own_arrival(c: &Claim) -> Arrival {
    match c.meta.born {
        Some(t) => Arrival::Born(t),
        None => Arrival::Written(c.record.acquired_at.clone()),
    }
}

/// The arrival of the contender whose claim is `path`, read only when the
/// filesystem keeps no birth time (a record believed only from its uid).
fn arrival(ctx: &Ctx, path: &Path, meta: &Meta) -> Option<Arrival> {
    if let Some(t) = meta.born {
        return Some(Arrival::Born(t));
    }
    let (m, bytes) = ctx.fs.read(path, record::READ_LIMIT).ok()?;
    match record::trusted(&bytes?, m.uid) {
        Content::Ours(r) => Some(Arrival::Written(r.acquired_at)),
        _ => None,
    }
}

impl Attempts<'_> {
    /// Whether a waiting contender of `kind` (claims of readers or of
    /// writers) came before us: its claim is fresh, older than ours, and
    /// not of a process gone here.
    fn ahead_of_us(&self, c: &Claim, names: &[std::ffi::OsString], kind: AuxKind) -> bool {
        let ctx = self.ctx;
        let mine = own_arrival(c);
        let now = c.estimate_now(ctx.env);
        names.iter().any(|name| {
            let Some(aux) = ctx.lock.parse_aux(name) else {
                return false;
            };
            let path = ctx.lock.in_dir(name);
            if aux.kind != kind || path == c.path {
                return false;
            }
            let Ok(m) = ctx.fs.lstat(&path) else {
                return false;
            };
            now.secs_since(m.mtime) < SEAL_STALE.as_secs_f64()
                && arrival(&ctx, &path, &m).is_some_and(|a| a.before(&mine))
                && !claimant_dead_here(&ctx, &path, &aux)
        })
    }

    /// Whether a writer that came before us still waits: a reader that has
    /// waited lets it have the free lock first.
    pub(super) fn writer_ahead(&self, slot: &Option<Claim>) -> bool {
        let ctx = self.ctx;
        let Some(c) = slot.as_ref() else {
            return false;
        };
        let Ok(names) = ctx.fs.list(&ctx.lock.dir) else {
            return false;
        };
        self.ahead_of_us(c, &names, AuxKind::Claim)
    }

    /// A writer that has waited and just took the lock: if a reader that
    /// came before it still waits, the lock is given back and the writer
    /// pauses (for at most [`GIVE_WAY_FOR`] in all). Returns the listing
    /// it read, for the sweep that follows a contended take.
    ///
    /// The claim goes with the lock, and the next try makes a new one: a
    /// claim that has been a lock is never a waiter's again. A breaker of
    /// that lock (it may have expired under a stalled writer) removes the
    /// claim as its broken holder's, and a cached lstat can show it at the
    /// lock name after it left; either would confuse a later try.
    pub(crate) fn yield_to_reader(
        &mut self,
        slot: &mut Option<Claim>,
    ) -> Result<Result<Option<Vec<std::ffi::OsString>>, Step>, Error> {
        let ctx = self.ctx;
        let c = slot.as_ref().expect("claim present");
        let Ok(names) = ctx.fs.list(&ctx.lock.dir) else {
            return Ok(Ok(None));
        };
        let now = ctx.env.monotonic();
        let patient = self
            .gave_way_at
            .is_none_or(|first| now.saturating_sub(first) < GIVE_WAY_FOR);
        if !patient || !self.ahead_of_us(c, &names, AuxKind::Share) {
            return Ok(Ok(Some(names)));
        }
        self.gave_way_at.get_or_insert(now);
        ctx.env.event(Event::GaveWay {
            path: &ctx.lock.path,
        });
        // Its token is remembered: a remover that had our lock aside in
        // that instant puts it back, held by nobody, and our next look
        // removes it as its owner would.
        self.give_up_claim(slot);
        Ok(Err(Step::Pause))
    }
}
