//! The sweep of leftovers (I5): claims of provably dead processes, claims
//! of waiters that died here, and old pins, private names and probes.
//! Best effort, and only small regular files with our names.

use super::ctx::Ctx;
use super::Event;
use crate::fs::{FsTime, Kind};
use crate::names::{AuxKind, AuxName};
use crate::record::{self, Content, READ_LIMIT};
use crate::stale::{self, Liveness};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How far a sweep looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// After a contended acquire: only claims that may be litter here.
    Quick,
    /// `break` and `sweep`: every leftover name.
    Thorough,
}

/// Leftover guard, removal and probe files older than this (in file-system
/// time) belong to a process that died mid-operation.
pub const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// A file of ours that nobody will ever remove but a sweep, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Leftover {
    pub path: PathBuf,
    pub why: String,
}

impl Ctx<'_> {
    /// Removes leftovers of processes that died mid-operation (I5), as
    /// [`Ctx::leftovers`] finds them; returns how many went.
    pub fn sweep(&self, now: Option<FsTime>, keep: Option<&Path>, depth: Sweep) -> usize {
        let Ok(names) = self.fs.list(&self.lock.dir) else {
            return 0;
        };
        self.sweep_listed(names, now, keep, depth)
    }

    /// [`Ctx::sweep`] of the lock directory's `names`, as just listed.
    pub(crate) fn sweep_listed(
        &self,
        names: Vec<OsString>,
        now: Option<FsTime>,
        keep: Option<&Path>,
        depth: Sweep,
    ) -> usize {
        let ours: Vec<(OsString, AuxName)> = names
            .into_iter()
            .filter_map(|n| self.lock.parse_aux(&n).map(|a| (n, a)))
            .collect();
        let mut removed = 0;
        for left in self.leftovers(&ours, now, keep, depth) {
            if self.remove_leftover(&left, now) {
                self.env.event(Event::Swept { path: &left.path });
                removed += 1;
            }
        }
        removed
    }

    /// Which of this lock's auxiliary files `names` are leftovers: claims
    /// of provably dead owners; claims that are no lock, made on this
    /// machine by a process that is gone (a waiter killed while it waited);
    /// and guard, removal and probe files older than [`ORPHAN_AGE`]. A
    /// [`Sweep::Quick`] reads a claim only when it is of this host and no
    /// process has the pid its name carries (the process that made it).
    /// Only small regular files with our names qualify, and a record is
    /// believed only from the user it names.
    ///
    /// Everything is judged before anything is removed: unlinking one name
    /// of an inode updates its ctime, which would make a second leftover
    /// name of the same inode (a dead breaker's guard and a dead remover's
    /// private name often share one) look brand new.
    pub fn leftovers(
        &self,
        names: &[(OsString, AuxName)],
        now: Option<FsTime>,
        keep: Option<&Path>,
        depth: Sweep,
    ) -> Vec<Leftover> {
        let host = &self.env.identity().host;
        let mut found = Vec::new();
        for (name, aux) in names {
            let path = self.lock.in_dir(name);
            if Some(path.as_path()) == keep {
                continue;
            }
            let ours_here = self.lock.spells_host(&aux.host, host);
            let why = match aux.kind {
                // A quick sweep (after a contended acquire, before the
                // holder's command runs) reads only claims that may be
                // litter: of this host, with no process of that pid.
                // Others cannot be judged here or are most likely alive,
                // and on NFS each read is three round trips. `break` reads
                // all.
                k if k.is_claim()
                    && depth == Sweep::Quick
                    && (!ours_here || !self.env.pid_gone(aux.pid)) =>
                {
                    None
                }
                k if k.is_claim() => self.claim_is_litter(&path, aux, ours_here),
                // A waiter's ticket: of a process gone here, or not
                // refreshed for longer than any waiter leaves it.
                AuxKind::Waiter if ours_here && self.env.pid_gone(aux.pid) => Some(format!(
                    "place in line of a waiter that is gone (pid {})",
                    aux.pid
                )),
                // A readers' directory is emptied by its readers and by
                // writers; a sweep takes only one that no lock names and
                // that nobody has touched for long (an opener that died
                // before it published its lock).
                AuxKind::Epoch if depth == Sweep::Thorough => {
                    now.and_then(|now| self.orphan_epoch(&path, now))
                }
                AuxKind::Epoch => None,
                AuxKind::Claim
                | AuxKind::Share
                | AuxKind::Guard
                | AuxKind::Removing
                | AuxKind::Probe
                | AuxKind::Waiter => self.old_orphan(&path, aux.kind, now),
            };
            // I5: only our names, small regular files, of the dead.
            if let Some(why) = why {
                found.push(Leftover { path, why });
            }
        }
        found
    }

    /// Removes one leftover: a file, or an orphan readers' directory with
    /// the stale readers, pins and seals judged in it. Whether it went.
    pub(super) fn remove_leftover(&self, left: &Leftover, now: Option<FsTime>) -> bool {
        let name = left.path.file_name().unwrap_or_default();
        if self.lock.parse_aux(name).map(|a| a.kind) != Some(AuxKind::Epoch) {
            return self.fs.unlink(&left.path).is_ok();
        }
        // Judged again one by one: only what is stale goes.
        for entry in self.fs.list(&left.path).unwrap_or_default() {
            let path = left.path.join(&entry);
            if !self.epoch_entry_stale(&entry, &path, now) {
                continue;
            }
            let _ = match self.lock.parse_aux(&entry).map(|a| a.kind) {
                Some(AuxKind::Claim) => self.fs.remove_dir(&path),
                _ => self.fs.unlink(&path),
            };
        }
        self.fs.remove_dir(&left.path).is_ok()
    }

    /// Why the readers' directory at `path` is a leftover: a directory of
    /// ours that the lock does not name, unchanged for [`ORPHAN_AGE`] (an
    /// opener makes it just before it publishes its lock), in which every
    /// reader (and every breaker's pin of one) is stale by the usual rules
    /// and every seal's writer is gone. Nobody joins it: readers join only
    /// the directory the lock's record names. Even if the lock is read in
    /// the instant a remover's pin has moved it aside, only stale readers
    /// are judged gone, which any writer may break.
    fn orphan_epoch(&self, path: &Path, now: FsTime) -> Option<String> {
        let meta = self.fs.lstat(path).ok()?;
        let age = now.secs_since(meta.ctime);
        if meta.kind != Kind::Dir
            || meta.uid != self.env.identity().uid
            || age <= ORPHAN_AGE.as_secs_f64()
        {
            return None;
        }
        if let Ok(Ok(snap)) = self.snapshot(&self.lock.path, super::ctx::Phase::Cleanup) {
            let named = super::epoch::shared_record(&snap)
                .and_then(|r| super::epoch::epoch_dir(self.lock, &r.claim));
            if named.as_deref() == Some(path) {
                return None;
            }
        }
        for entry in self.fs.list(path).ok()? {
            if !self.epoch_entry_stale(&entry, &path.join(&entry), Some(now)) {
                return None;
            }
        }
        Some(format!(
            "readers' directory that no lock names, with no live reader in it, left {} ago",
            crate::duration::human(Duration::try_from_secs_f64(age).unwrap_or(Duration::MAX))
        ))
    }

    /// Whether `entry` of a readers' directory (at `path`) is stale: a
    /// reader or a breaker's pin of one by the usual rules, a seal whose
    /// writer is gone. Anything else is not ours to judge.
    fn epoch_entry_stale(&self, entry: &OsStr, path: &Path, now: Option<FsTime>) -> bool {
        match self.lock.parse_aux(entry).map(|a| a.kind) {
            Some(AuxKind::Share) => self.stale_reader(path, now),
            Some(AuxKind::Claim) => super::epoch::seal_is_stale(self, entry, now),
            None if super::epoch::is_readers_pin(self.lock, entry) => self.stale_reader(path, now),
            _ => false,
        }
    }

    /// Whether the reader whose link (or pin) is `path` is stale.
    fn stale_reader(&self, path: &Path, now: Option<FsTime>) -> bool {
        let (Ok(sub), Ok((meta, Some(bytes)))) = (
            crate::names::LockPath::new(path),
            self.fs.read(path, READ_LIMIT),
        ) else {
            return false;
        };
        let snap = super::Snapshot {
            meta,
            bytes: Some(bytes),
        };
        let ctx = Ctx {
            lock: &sub,
            ..*self
        };
        let info = ctx.judge(snap, now, Duration::ZERO, None);
        info.verdict.stale.is_some() && info.record().is_some()
    }

    /// Why a pin, private name or probe at `path` is a leftover: older
    /// than [`ORPHAN_AGE`] in file-system time.
    fn old_orphan(&self, path: &Path, kind: AuxKind, now: Option<FsTime>) -> Option<String> {
        let (now, meta) = (now?, self.fs.lstat(path).ok()?);
        // A pin whose inode has no other name pins nothing, and its ctime
        // moved when the lock it pinned was removed (a dead breaker's pin
        // would look new for as long again): its age is its inode's.
        let since = match (kind, meta.nlink) {
            (AuxKind::Guard, 1) => meta.mtime,
            _ => meta.ctime,
        };
        let age = now.secs_since(since);
        let old = meta.kind == Kind::File
            && meta.size < READ_LIMIT as u64
            && age > ORPHAN_AGE.as_secs_f64();
        old.then(|| {
            format!(
                "{} left {} ago by a process that did not finish",
                kind.describe(),
                crate::duration::human(Duration::try_from_secs_f64(age).unwrap_or(Duration::MAX))
            )
        })
    }

    /// Whether the claim at `path` is litter: its owner is provably dead,
    /// or it is no lock (one link) and the process that made it, on this
    /// machine (`here`) and in our pid namespace, is gone. A dead owner's
    /// claim can go even while it is linked elsewhere: the lock (or a
    /// private name) keeps the inode, and nobody judges a lock by its
    /// claim's name.
    /// Says why, or `None` when it is not.
    pub(super) fn claim_is_litter(&self, path: &Path, aux: &AuxName, here: bool) -> Option<String> {
        let Ok((meta, Some(bytes))) = self.fs.read(path, READ_LIMIT) else {
            return None;
        };
        let Content::Ours(rec) = record::trusted(&bytes, meta.uid) else {
            return None;
        };
        if rec.token != aux.nonce {
            return None;
        }
        let me = self.env.identity();
        if let Liveness::Dead(why) = stale::liveness(&rec, me, |p| self.env.process(p)) {
            return Some(format!("claim of a dead owner: {why}"));
        }
        let same_system = here
            && me.complete()
            && rec.host == me.host
            && rec.boot_id == me.boot_id
            && rec.pidns == me.pidns;
        (meta.nlink == 1 && same_system && self.env.pid_gone(aux.pid))
            .then(|| format!("claim of a waiter that is gone (pid {})", aux.pid))
    }
}
