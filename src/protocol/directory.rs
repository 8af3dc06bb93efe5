//! Directory scale, for `list` and `sweep`: every lock in a directory,
//! from one listing. A name is a lock when the file there holds an nfslock
//! record (believed or not: a forged one shows as foreign), or when our
//! auxiliary files are named after it (then it may be free). Anything
//! else beside the locks is someone's file and is left out.
//!
//! Cost: one listing, one read per name that is not one of our auxiliary
//! files, and one probe (a create and an unlink) for file-system time.
//! Auxiliary files are looked at only when asked for (`list --all`) and
//! by `sweep`. A sweep breaks by exactly the rules and checks of `break`
//! without `--force` (I3, I8) and removes leftovers as the sweep after a
//! break does (I5).

use super::breaking::BreakBy;
use super::ctx::{Ctx, Phase};
use super::removal::Removal;
use super::slots::{recorded_slots, slot_lock};
use super::sweep::{Leftover, Sweep};
use super::window::{last_start, LastStart};
use super::{Env, LockInfo};
use crate::error::Error;
use crate::fs::{FsTime, LockFs};
use crate::names::{parse_any_aux, parse_beside, AuxName, LockPath};
use crate::record::{self, Content, READ_LIMIT};
use crate::stale::{self, Liveness, StaleReason};
use crate::sys;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One lock of a directory.
#[derive(Debug)]
pub struct Entry {
    pub lock: LockPath,
    /// What is at the lock path; `None` when it is free (only auxiliary
    /// files of it are there).
    pub info: Option<LockInfo>,
    /// Its auxiliary files, by name.
    pub aux: Vec<(OsString, AuxName)>,
    /// When `run --min-interval` last started its job, if it keeps a stamp.
    pub last_start: Option<LastStart>,
    /// A slot of a slotted lock (listed free or held).
    pub slot: bool,
}

/// A directory's locks, sorted by path, judged at one file-system "now".
#[derive(Debug)]
pub struct Directory {
    /// `None` where no probe file could be made: ages are unknown.
    pub now: Option<FsTime>,
    pub entries: Vec<Entry>,
}

/// Where the filesystem and the environment for a directory come from.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub fs: &'a dyn LockFs,
    pub env: &'a dyn Env,
    pub io_timeout: Duration,
}

impl Place<'_> {
    fn ctx<'l>(&'l self, lock: &'l LockPath) -> Ctx<'l> {
        Ctx::new(self.fs, self.env, lock, self.io_timeout)
    }
}

/// The lock path standing for the directory itself, for errors about it.
fn dir_itself(dir: &Path) -> LockPath {
    LockPath {
        path: dir.to_path_buf(),
        dir: dir.to_path_buf(),
        name: OsString::new(),
    }
}

/// A directory's names, sorted out: each lock name with its auxiliary
/// files, and which locks keep a start stamp or a slot count beside them.
struct Grouped {
    locks: BTreeMap<OsString, (LockPath, Vec<(OsString, AuxName)>)>,
    stamped: BTreeSet<OsString>,
    slotted: Vec<LockPath>,
}

fn group(dir: &Path, names: Vec<OsString>) -> Grouped {
    let mut locks: BTreeMap<OsString, (LockPath, Vec<(OsString, AuxName)>)> = BTreeMap::new();
    let mut others = Vec::new();
    let (mut stamped, mut slotted) = (BTreeSet::new(), Vec::new());
    for name in names {
        // The files that stay beside a lock are no locks: not read as
        // candidates (a stamp and a slot count are read for their lock).
        if let Some((lock, kind)) = parse_beside(dir, &name) {
            match kind {
                "stamp" => drop(stamped.insert(lock.name)),
                "slots" => slotted.push(lock),
                _ => {}
            }
            continue;
        }
        match parse_any_aux(dir, &name) {
            Some((lock, aux)) => {
                let slot = locks
                    .entry(lock.name.clone())
                    .or_insert_with(|| (lock, Vec::new()));
                slot.1.push((name, aux));
            }
            None => others.push(name),
        }
    }
    for name in others {
        if let Ok(lock) = LockPath::new(&dir.join(&name)) {
            locks.entry(name).or_insert_with(|| (lock, Vec::new()));
        }
    }
    Grouped {
        locks,
        stamped,
        slotted,
    }
}

/// Reads every lock in `dir` (see the module's cost), judged with
/// `stale_after` as `status --stale-after` would. Every slot of a slotted
/// lock is an entry, free or held.
pub fn read_dir(
    place: Place,
    dir: &Path,
    stale_after: Option<Duration>,
) -> Result<Directory, Error> {
    let this = dir_itself(dir);
    let Grouped {
        mut locks,
        stamped,
        slotted,
    } = group(dir, place.ctx(&this).list_dir()?);
    let mut slots = BTreeSet::new();
    for base in &slotted {
        let n = recorded_slots(&place.ctx(base)).ok().flatten().unwrap_or(0);
        for k in 1..=n {
            let lock = slot_lock(base, k);
            slots.insert(lock.name.clone());
            locks
                .entry(lock.name.clone())
                .or_insert_with(|| (lock, Vec::new()));
        }
    }
    // One probe, from the first lock's context: a file of ours like any.
    let now = match locks.values().next() {
        Some((lock, _)) => place.ctx(lock).fs_now()?,
        None => None,
    };
    let mut entries = Vec::new();
    for (_, (lock, aux)) in locks {
        let ctx = place.ctx(&lock);
        let info = match ctx.snapshot(&lock.path, Phase::Work)? {
            Ok(snap) => Some(ctx.judge(snap, now, Duration::ZERO, stale_after)),
            Err(e) if sys::is_not_found(&e) => None,
            Err(e) => return Err(ctx.dir_error("read", &lock.path, e)),
        };
        // A name nothing of ours points at is a lock only if it says so.
        let looks_ours = info
            .as_ref()
            .and_then(|i| i.snapshot.bytes.as_deref())
            .is_some_and(|b| matches!(record::parse(b), Content::Ours(_)));
        let slot = slots.contains(&lock.name);
        if aux.is_empty() && !looks_ours && !slot {
            continue;
        }
        let last_start = match stamped.contains(&lock.name) {
            true => last_start(&ctx).ok().flatten(),
            false => None,
        };
        entries.push(Entry {
            lock,
            info,
            aux,
            last_start,
            slot,
        });
    }
    entries.sort_by(|a, b| a.lock.path.cmp(&b.lock.path));
    Ok(Directory { now, entries })
}

/// What one auxiliary file is, for `list --all`.
#[derive(Clone, Debug)]
pub struct AuxState {
    pub path: PathBuf,
    pub aux: AuxName,
    /// Whether the process behind it lives, where that can be known.
    pub liveness: Liveness,
    /// Its age in file-system time (from its ctime), when known.
    pub age: Option<Duration>,
}

/// Looks at each auxiliary file of `entry`: a claim is read, its record
/// judged as a lock's would be; the others are judged by the pid in their
/// name, on this host only.
pub fn aux_states(place: Place, entry: &Entry, now: Option<FsTime>) -> Vec<AuxState> {
    let ctx = place.ctx(&entry.lock);
    let me = place.env.identity();
    entry
        .aux
        .iter()
        .map(|(name, aux)| {
            let path = entry.lock.in_dir(name);
            let read = place.fs.read(&path, READ_LIMIT).ok();
            let meta = read.as_ref().map(|(m, _)| *m);
            let record = read.and_then(|(m, bytes)| match record::trusted(&bytes?, m.uid) {
                Content::Ours(r) if r.token == aux.nonce => Some(r),
                _ => None,
            });
            let liveness = match record {
                Some(rec) if aux.kind.is_claim() => {
                    stale::liveness(&rec, me, |p| place.env.process(p))
                }
                _ if !ctx.lock.spells_host(&aux.host, &me.host) => {
                    Liveness::Unknown(format!("made on another host ({})", aux.host))
                }
                _ => match place.env.process(aux.pid) {
                    sys::ProcState::Gone => Liveness::Dead(format!("pid {} is gone", aux.pid)),
                    sys::ProcState::Running { .. } => Liveness::Alive,
                    sys::ProcState::Unknown => {
                        Liveness::Unknown(format!("pid {} cannot be looked at", aux.pid))
                    }
                },
            };
            let age = match (now, meta) {
                (Some(now), Some(m)) => {
                    Duration::try_from_secs_f64(now.secs_since(m.ctime).max(0.0)).ok()
                }
                _ => None,
            };
            AuxState {
                path,
                aux: aux.clone(),
                liveness,
                age,
            }
        })
        .collect()
}

/// What `sweep` may do.
#[derive(Clone, Copy, Debug, Default)]
pub struct SweepOptions {
    /// As `break --older-than`: also locks without a lease older than this.
    pub older_than: Option<Duration>,
    /// Only locks of an earlier boot of this machine.
    pub rebooted: bool,
    pub dry_run: bool,
}

/// One thing a sweep did (or, dry, would do).
#[derive(Debug)]
pub enum Action {
    Broken {
        lock: PathBuf,
        info: Box<LockInfo>,
        reason: StaleReason,
    },
    WouldBreak {
        lock: PathBuf,
        info: Box<LockInfo>,
        reason: StaleReason,
    },
    /// The lock changed between judgement and removal: left alone.
    LostRace {
        lock: PathBuf,
        info: Box<LockInfo>,
    },
    /// Stale, but ours may not remove it; says who may.
    NotPermitted {
        lock: PathBuf,
        info: Box<LockInfo>,
        why: String,
    },
    Removed(Leftover),
    WouldRemove(Leftover),
}

/// Breaks every stale lock of `dir` and removes its leftovers.
pub fn sweep_dir(place: Place, dir: &Path, opts: SweepOptions) -> Result<Vec<Action>, Error> {
    let listing = read_dir(place, dir, opts.older_than)?;
    let mut actions = Vec::new();
    for entry in &listing.entries {
        if let Some(info) = &entry.info {
            if let Some(a) = break_stale(place, entry, info, opts)? {
                actions.push(a);
            }
        }
        let ctx = place.ctx(&entry.lock);
        for left in ctx.leftovers(&entry.aux, listing.now, None, Sweep::Thorough) {
            if opts.dry_run {
                actions.push(Action::WouldRemove(left));
            } else if ctx.remove_leftover(&left, listing.now) {
                actions.push(Action::Removed(left));
            }
        }
    }
    Ok(actions)
}

/// Breaks `info` if it is a stale lock (by `--rebooted` only a rebooted
/// owner's), as `break` would: through the pin, never a lock re-taken.
fn break_stale(
    place: Place,
    entry: &Entry,
    info: &LockInfo,
    opts: SweepOptions,
) -> Result<Option<Action>, Error> {
    let Some(reason) = info.verdict.stale.clone() else {
        return Ok(None);
    };
    if !info.content.as_ref().is_some_and(Content::is_lock) {
        return Ok(None);
    }
    let rebooted = info
        .record()
        .and_then(|r| stale::rebooted(r, place.env.identity()))
        .is_some();
    if opts.rebooted && !rebooted {
        return Ok(None);
    }
    let (lock, boxed) = (entry.lock.path.clone(), Box::new(info.clone()));
    if opts.dry_run {
        return Ok(Some(Action::WouldBreak {
            lock,
            info: boxed,
            reason,
        }));
    }
    let ctx = place.ctx(&entry.lock);
    Ok(match ctx.break_instance(info, BreakBy::Verdict)? {
        Removal::Removed => Some(Action::Broken {
            lock,
            info: boxed,
            reason,
        }),
        Removal::Gone => None,
        Removal::Changed | Removal::Displaced => Some(Action::LostRace { lock, info: boxed }),
        Removal::Denied(why) => Some(Action::NotPermitted {
            lock,
            info: boxed,
            why,
        }),
    })
}
