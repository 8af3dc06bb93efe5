//! The sweep of leftovers (I5): claims of provably dead processes, claims
//! of waiters that died here, and old pins, private names and probes.
//! Best effort, and only small regular files with our names.

use super::ctx::Ctx;
use super::Event;
use crate::fs::{FsTime, Kind};
use crate::names::AuxKind;
use crate::record::{self, Content, READ_LIMIT};
use crate::stale::{self, Liveness};
use std::path::Path;
use std::time::Duration;

/// Leftover guard, removal and probe files older than this (in file-system
/// time) belong to a process that died mid-operation.
/// How far a sweep looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// After a contended acquire: only claims that may be litter here.
    Quick,
    /// `break`: every leftover name.
    Thorough,
}

pub const ORPHAN_AGE: Duration = Duration::from_secs(600);

impl Ctx<'_> {
    /// Removes leftovers of processes that died mid-operation (I5): claims
    /// of provably dead owners; claims that are no lock, made on this
    /// machine by a process that is gone (a waiter killed while it waited);
    /// and guard, removal and probe files older than [`ORPHAN_AGE`]. Best
    /// effort. A [`Sweep::Quick`] reads claims are read only when they are of this
    /// host and no process has the pid their name carries (the process that
    /// made them). Only small regular files with our names go, and a record
    /// is believed only from the user it names.
    ///
    /// Everything is judged before anything is removed: unlinking one name
    /// of an inode updates its ctime, which would make a second leftover
    /// name of the same inode (a dead breaker's guard and a dead remover's
    /// private name often share one) look brand new.
    pub fn sweep(&self, now: Option<FsTime>, keep: Option<&Path>, depth: Sweep) -> usize {
        let Ok(names) = self.fs.list(&self.lock.dir) else {
            return 0;
        };
        let host = &self.env.identity().host;
        let mut orphans = Vec::new();
        for name in names {
            let Some(aux) = self.lock.parse_aux(&name) else {
                continue;
            };
            let path = self.lock.in_dir(&name);
            if Some(path.as_path()) == keep {
                continue;
            }
            let ours_here = self.lock.spells_host(&aux.host, host);
            let orphan = match aux.kind {
                // A quick sweep (after a contended acquire, before the
                // holder's command runs) reads only claims that may be
                // litter: of this host, with no process of that pid.
                // Others cannot be judged here or are most likely alive,
                // and on NFS each read is three round trips. `break` reads
                // all.
                AuxKind::Claim
                    if depth == Sweep::Quick && (!ours_here || !self.env.pid_gone(aux.pid)) =>
                {
                    false
                }
                AuxKind::Claim => self.claim_is_litter(&path, &aux, ours_here),
                AuxKind::Guard | AuxKind::Removing | AuxKind::Probe => {
                    match (now, self.fs.lstat(&path)) {
                        (Some(now), Ok(meta)) => {
                            meta.kind == Kind::File
                                && meta.size < READ_LIMIT as u64
                                && now.secs_since(meta.ctime) > ORPHAN_AGE.as_secs_f64()
                        }
                        _ => false,
                    }
                }
            };
            // I5: only our names, small regular files, of the dead.
            if orphan {
                orphans.push(path);
            }
        }
        let mut removed = 0;
        for path in orphans {
            if self.fs.unlink(&path).is_ok() {
                self.env.event(Event::Swept { path: &path });
                removed += 1;
            }
        }
        removed
    }

    /// Whether the claim at `path` is litter: its owner is provably dead,
    /// or it is no lock (one link) and the process that made it, on this
    /// machine (`here`) and in our pid namespace, is gone. A dead owner's
    /// claim can go even while it is linked elsewhere: the lock (or a
    /// private name) keeps the inode, and nobody judges a lock by its
    /// claim's name.
    pub(super) fn claim_is_litter(
        &self,
        path: &Path,
        aux: &crate::names::AuxName,
        here: bool,
    ) -> bool {
        let Ok((meta, Some(bytes))) = self.fs.read(path, READ_LIMIT) else {
            return false;
        };
        let Content::Ours(rec) = record::trusted(&bytes, meta.uid) else {
            return false;
        };
        if rec.token != aux.nonce {
            return false;
        }
        let me = self.env.identity();
        let dead = matches!(
            stale::liveness(&rec, me, |p| self.env.process(p)),
            Liveness::Dead(_)
        );
        let same_system = here
            && me.complete()
            && rec.host == me.host
            && rec.boot_id == me.boot_id
            && rec.pidns == me.pidns;
        dead || (meta.nlink == 1 && same_system && self.env.pid_gone(aux.pid))
    }
}
