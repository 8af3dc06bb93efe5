//! Staleness: when may a lock be broken? A pure function of what was read,
//! so its whole decision table is unit-tested with made-up clocks.
//!
//! Ages are differences of two file-system timestamps (the lock's mtime and
//! the mtime of a file we just created or touched in the same directory), so
//! a client whose clock is hours off judges exactly like one that is right.
//! Liveness is only judged where it can be known: same host name, same boot,
//! same pid namespace; then a pid the kernel says is gone, or that started
//! at another time, means a dead owner. A process we may not see (another
//! user's, under /proc's hidepid) is not gone. Everyone else is alive until
//! its lease runs out.
//!
//! Age rules (`--stale-after`, `--older-than`) are for locks without a
//! lease: they never break a lock whose lease is still valid, nor one whose
//! owner is provably alive.

use crate::fs::FsTime;
use crate::record::{Content, Record};
use crate::sys::{Identity, ProcState};
use std::time::Duration;

/// An mtime this far ahead of file-system "now" is suspicious.
pub const FUTURE_SLOP: Duration = Duration::from_secs(5);

/// Is the owner still there?
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead(String),
    /// Cannot be known from here; the reason says why.
    Unknown(String),
}

impl Liveness {
    /// JSON's `alive`: true, false, or null when unknowable.
    pub fn as_option(&self) -> Option<bool> {
        match self {
            Liveness::Alive => Some(true),
            Liveness::Dead(_) => Some(false),
            Liveness::Unknown(_) => None,
        }
    }
}

/// Whether `rec` was written during an earlier boot of this very machine
/// (same host name, same machine, another boot): that boot is over, so
/// every process of it is gone, in every pid namespace it had. Says so
/// when it was. Where either side has no machine or no boot id, or the
/// machines differ (two machines that share a host name), nothing is
/// known.
pub fn rebooted(rec: &Record, me: &Identity) -> Option<String> {
    let same_machine = rec.host == me.host && rec.machine.is_some() && rec.machine == me.machine;
    match (&rec.boot_id, &me.boot_id) {
        (Some(theirs), Some(ours)) if same_machine && theirs != ours => {
            Some(format!("host {} rebooted (boot {theirs})", rec.host))
        }
        _ => None,
    }
}

/// Judges whether the owner of `rec` is alive, probing pids only when host,
/// boot and pid namespace all match ours.
pub fn liveness(rec: &Record, me: &Identity, probe: impl Fn(u32) -> ProcState) -> Liveness {
    if rec.host != me.host {
        return Liveness::Unknown(format!("held from another host ({})", rec.host));
    }
    if let Some(why) = rebooted(rec, me) {
        return Liveness::Dead(why);
    }
    let (Some(my_boot), Some(my_ns)) = (&me.boot_id, me.pidns) else {
        return Liveness::Unknown("this system cannot tell process identity".into());
    };
    if rec.boot_id.as_deref() != Some(my_boot.as_str()) {
        return Liveness::Unknown("same host name but another boot or machine".into());
    }
    if rec.pidns != Some(my_ns) {
        return Liveness::Unknown("held from another pid namespace (container)".into());
    }
    match (probe(rec.pid), rec.pid_start) {
        (ProcState::Gone, _) => Liveness::Dead(format!("pid {} is gone", rec.pid)),
        (ProcState::Running { start }, Some(want)) if start != want => {
            Liveness::Dead(format!("pid {} was reused by another process", rec.pid))
        }
        (ProcState::Running { .. }, Some(_)) => Liveness::Alive,
        (ProcState::Running { .. }, None) => {
            Liveness::Unknown("the record has no process start time".into())
        }
        (ProcState::Unknown, _) => Liveness::Unknown(format!(
            "pid {} exists but cannot be looked at (another user's process?)",
            rec.pid
        )),
    }
}

/// Why a lock may be broken.
#[derive(Clone, Debug, PartialEq)]
pub enum StaleReason {
    DeadOwner(String),
    LeaseExpired { age: Duration, lease: Duration },
    OlderThan { age: Duration, limit: Duration },
}

impl StaleReason {
    pub fn describe(&self) -> String {
        use crate::duration::human;
        match self {
            StaleReason::DeadOwner(why) => format!("owner is dead: {why}"),
            StaleReason::LeaseExpired { age, lease } => format!(
                "lease of {} expired (not refreshed for {})",
                human(*lease),
                human(*age)
            ),
            StaleReason::OlderThan { age, limit } => {
                format!("older than {} (age {})", human(*limit), human(*age))
            }
        }
    }

    /// Short machine-readable tag for JSON.
    pub fn tag(&self) -> &'static str {
        match self {
            StaleReason::DeadOwner(_) => "dead-owner",
            StaleReason::LeaseExpired { .. } => "lease-expired",
            StaleReason::OlderThan { .. } => "older-than",
        }
    }
}

/// The inputs of a judgement besides the lock itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clocks {
    /// File-system "now", when it could be read.
    pub now: Option<FsTime>,
    /// How long this very lock instance has been watched unchanged, on the
    /// observer's monotonic clock. Used instead of an age when the mtime is
    /// in the future, so a future mtime never means "fresh forever".
    pub watched: Duration,
    /// `--stale-after` / `--older-than`.
    pub stale_after: Option<Duration>,
}

/// The verdict on one lock instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Age in file-system time; `None` if it cannot be told.
    pub age: Option<Duration>,
    /// How far the mtime is ahead of file-system "now", when suspicious.
    pub future: Option<Duration>,
    pub stale: Option<StaleReason>,
}

/// The age past which a lock is stale by age alone ([`judge`]'s rule): its
/// lease when it has one (an age rule never overrides a valid lease), else
/// the caller's `--stale-after`, unless its owner is provably alive.
pub fn age_limit(
    lease: Option<Duration>,
    stale_after: Option<Duration>,
    provably_alive: bool,
) -> Option<Duration> {
    match lease {
        Some(l) => Some(l),
        None if provably_alive => None,
        None => stale_after,
    }
}

/// Decides whether a lock (its content, mtime and owner liveness) is stale.
/// Something that is not a lock is never stale.
pub fn judge(content: &Content, mtime: FsTime, alive: &Liveness, clocks: Clocks) -> Verdict {
    let mut future = None;
    let age = clocks.now.and_then(|now| {
        let ahead = mtime.secs_since(now);
        if ahead > FUTURE_SLOP.as_secs_f64() {
            future = Some(Duration::from_secs_f64(ahead));
            (!clocks.watched.is_zero()).then_some(clocks.watched)
        } else {
            Some(Duration::from_secs_f64(now.secs_since(mtime).max(0.0)))
        }
    });
    let stale = match (content, alive) {
        (Content::NotALock { .. }, _) => None,
        (_, Liveness::Dead(why)) => Some(StaleReason::DeadOwner(why.clone())),
        (_, alive) => {
            let lease = match content {
                Content::Ours(r) => r.lease,
                _ => None,
            };
            let limit = age_limit(lease, clocks.stale_after, *alive == Liveness::Alive);
            match (age, limit) {
                (Some(age), Some(limit)) if age > limit => Some(match lease {
                    Some(lease) => StaleReason::LeaseExpired { age, lease },
                    None => StaleReason::OlderThan { age, limit },
                }),
                _ => None,
            }
        }
    };
    Verdict { age, future, stale }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn me() -> Identity {
        Identity {
            host: "h1".into(),
            boot_id: Some("boot-a".into()),
            machine: None,
            pidns: Some(7),
            uid: 1000,
            user: "u".to_string().into(),
        }
    }

    fn rec(lease: Option<u64>) -> Record {
        Record {
            host: "h1".into(),
            boot_id: Some("boot-a".into()),
            machine: None,
            pidns: Some(7),
            pid: 100,
            pid_start: Some(555),
            uid: 0,
            user: "root".into(),
            token: "ab".into(),
            acquired_at: "x".into(),
            lease: lease.map(Duration::from_secs),
            claim: OsString::from("c"),
            cmd: None,
            shared: false,
        }
    }

    const T0: i64 = 1_000_000;

    fn at(secs: i64) -> FsTime {
        FsTime::from_parts(T0 + secs, 0)
    }

    fn clocks(now: i64, stale_after: Option<u64>) -> Clocks {
        Clocks {
            now: Some(at(now)),
            watched: Duration::ZERO,
            stale_after: stale_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn liveness_table() {
        let running = |start| move |_| ProcState::Running { start };
        assert_eq!(liveness(&rec(None), &me(), running(555)), Liveness::Alive);
        assert!(
            matches!(liveness(&rec(None), &me(), running(556)), Liveness::Dead(w) if w.contains("reused"))
        );
        assert!(matches!(
            liveness(&rec(None), &me(), |_| ProcState::Gone),
            Liveness::Dead(_)
        ));
        assert!(matches!(
            liveness(&rec(None), &me(), |_| ProcState::Unknown),
            Liveness::Unknown(_)
        ));
        // Anything that differs in host, boot or namespace is never probed.
        let never = |_| -> ProcState { panic!("probed a pid it cannot know") };
        for change in [
            |r: &mut Record| r.host = "h2".into(),
            |r: &mut Record| r.boot_id = Some("boot-b".into()),
            |r: &mut Record| r.boot_id = None,
            |r: &mut Record| r.pidns = Some(8),
            |r: &mut Record| r.pidns = None,
        ] {
            let mut r = rec(None);
            change(&mut r);
            assert!(matches!(liveness(&r, &me(), never), Liveness::Unknown(_)));
        }
        let incomplete = Identity {
            pidns: None,
            ..me()
        };
        assert!(matches!(
            liveness(&rec(None), &incomplete, never),
            Liveness::Unknown(_)
        ));
        let mut no_start = rec(None);
        no_start.pid_start = None;
        assert!(matches!(
            liveness(&no_start, &me(), running(1)),
            Liveness::Unknown(_)
        ));
    }

    /// Another boot of this very machine is over; a machine that only
    /// shares our host name is never judged, nor a record without one.
    #[test]
    fn a_rebooted_machines_owner_is_dead_and_a_twins_is_unknown() {
        let never = |_| -> ProcState { panic!("probed a pid of another boot") };
        let m = |s: &str| Some(s.to_string());
        let me = Identity {
            machine: m("aa"),
            ..me()
        };
        let mut old = rec(None);
        old.machine = m("aa");
        old.boot_id = m("boot-0");
        assert_eq!(
            liveness(&old, &me, never),
            Liveness::Dead("host h1 rebooted (boot boot-0)".into())
        );
        assert!(rebooted(&old, &me).is_some());
        for change in [
            |r: &mut Record| r.machine = Some("bb".into()),
            |r: &mut Record| r.machine = None,
            |r: &mut Record| r.host = "h2".into(),
            |r: &mut Record| r.boot_id = None,
        ] {
            let mut r = old.clone();
            change(&mut r);
            assert!(rebooted(&r, &me).is_none(), "{r:?}");
            assert!(matches!(liveness(&r, &me, never), Liveness::Unknown(_)));
        }
        // This boot: judged by its pid as ever.
        let mut now = old.clone();
        now.boot_id = m("boot-a");
        assert!(rebooted(&now, &me).is_none());
        let no_boot = Identity {
            boot_id: None,
            ..me.clone()
        };
        assert!(rebooted(&old, &no_boot).is_none());
    }

    #[test]
    fn staleness_table() {
        let ours = |l| Content::Ours(rec(l));
        let foreign = Content::Foreign { what: "0".into() };
        let alive = Liveness::Alive;
        let unknown = Liveness::Unknown("remote".into());
        let dead = Liveness::Dead("gone".into());
        // (content, mtime, liveness, now, stale_after) -> stale tag
        type Row<'a> = (
            Content,
            i64,
            &'a Liveness,
            i64,
            Option<u64>,
            Option<&'a str>,
        );
        let table: Vec<Row> = vec![
            (ours(None), 0, &alive, 10_000, None, None),
            (ours(None), 0, &dead, 0, None, Some("dead-owner")),
            (ours(Some(60)), 0, &unknown, 59, None, None),
            (ours(Some(60)), 0, &unknown, 60, None, None),
            (ours(Some(60)), 0, &unknown, 61, None, Some("lease-expired")),
            (ours(Some(60)), 0, &alive, 61, None, Some("lease-expired")),
            (ours(None), 0, &unknown, 3600, Some(600), Some("older-than")),
            (ours(None), 0, &unknown, 599, Some(600), None),
            // An age rule never breaks a valid lease, nor a live owner.
            (ours(Some(60)), 0, &unknown, 30, Some(5), None),
            (ours(Some(60)), 0, &alive, 59, Some(5), None),
            (ours(None), 0, &alive, 3600, Some(600), None),
            (ours(Some(60)), 0, &dead, 1, Some(600), Some("dead-owner")),
            (foreign.clone(), 0, &unknown, 10_000, None, None),
            (
                foreign.clone(),
                0,
                &unknown,
                301,
                Some(300),
                Some("older-than"),
            ),
            // Lease beats --stale-after when both apply.
            (
                ours(Some(10)),
                0,
                &unknown,
                700,
                Some(600),
                Some("lease-expired"),
            ),
            (
                Content::NotALock { what: "csv".into() },
                0,
                &unknown,
                1_000_000,
                Some(1),
                None,
            ),
        ];
        for (i, (content, mtime, alive, now, sa, want)) in table.into_iter().enumerate() {
            let v = judge(&content, at(mtime), alive, clocks(now, sa));
            assert_eq!(
                v.stale.as_ref().map(StaleReason::tag),
                want,
                "row {i}: {v:?}"
            );
        }
    }

    #[test]
    fn ages_use_file_system_time_only() {
        // The same server timestamps give the same verdict whatever the
        // local clock says: judge() never reads a clock of its own.
        let v = judge(
            &Content::Ours(rec(Some(60))),
            at(0),
            &Liveness::Alive,
            clocks(30, None),
        );
        assert_eq!(v.age, Some(Duration::from_secs(30)));
        assert!(v.stale.is_none());
        // Unknown file-system time: no age, so no age-based verdict.
        let blind = Clocks {
            now: None,
            ..clocks(0, Some(1))
        };
        let v = judge(&Content::Ours(rec(Some(1))), at(0), &Liveness::Alive, blind);
        assert_eq!((v.age, v.stale), (None, None));
    }

    #[test]
    fn a_future_mtime_is_suspicious_and_not_fresh_forever() {
        let c = Content::Ours(rec(Some(60)));
        // Within the slop: a normal young lock.
        let v = judge(&c, at(4), &Liveness::Alive, clocks(0, None));
        assert_eq!((v.future, v.age), (None, Some(Duration::ZERO)));
        // An hour ahead: flagged, and no age until it has been watched.
        let v = judge(&c, at(3600), &Liveness::Alive, clocks(0, None));
        assert_eq!(v.future, Some(Duration::from_secs(3600)));
        assert_eq!((v.age, v.stale.is_none()), (None, true));
        // Watched unchanged for longer than its lease: expired after all.
        let watched = Clocks {
            watched: Duration::from_secs(61),
            ..clocks(0, None)
        };
        let v = judge(&c, at(3600), &Liveness::Alive, watched);
        assert_eq!(
            v.stale.as_ref().map(StaleReason::tag),
            Some("lease-expired")
        );
    }
}
