use super::*;
use crate::protocol::directory::{read_dir, sweep_dir, Action, Place, SweepOptions};

fn place(f: &Fixture) -> Place<'_> {
    Place {
        fs: &f.fs,
        env: &f.env,
        io_timeout: Duration::from_millis(300),
    }
}

/// Takes the lock `name` beside the fixture's lock for `owner`.
fn take(f: &Fixture, name: &str, owner: Owner) -> Held {
    let lock = LockPath::new(&f.dir.path().join(name)).unwrap();
    let ctx = Ctx::new(&f.fs, &f.env, &lock, Duration::from_millis(300));
    let mut o = f.opts();
    o.owner = owner;
    acquire(&ctx, &o).unwrap()
}

/// `list` reads a directory with one listing, one read per lock and one
/// probe: no claim is read, nothing is looked up twice.
#[test]
fn a_listing_costs_one_read_per_lock_and_one_probe() {
    let f = Fixture::new();
    let me = f.opts().owner;
    let _held: Vec<Held> = (0..5).map(|i| take(&f, &format!("l{i}"), me)).collect();
    // The files that stay beside a lock are known by name: a fencing
    // counter is not read at all.
    std::fs::write(f.dir.path().join(".l0.nfslock-fence"), "7\n").unwrap();
    f.fs.clear();
    let before = |op| f.fs.calls(op);
    let counts = [Op::List, Op::Read, Op::Create, Op::Unlink, Op::Lstat].map(before);
    let dir = read_dir(place(&f), f.dir.path(), None).unwrap();
    let spent: Vec<usize> = [Op::List, Op::Read, Op::Create, Op::Unlink, Op::Lstat]
        .iter()
        .zip(counts)
        .map(|(op, was)| f.fs.calls(*op) - was)
        .collect();
    assert_eq!(dir.entries.len(), 5);
    assert!(dir
        .entries
        .iter()
        .all(|e| e.info.is_some() && e.aux.len() == 1));
    assert!(dir.now.is_some());
    // list, reads, the probe's create and unlink, no lstat.
    assert_eq!(spent, [1, 5, 1, 1, 0]);
}

/// A file beside the locks that holds no record of ours is not a lock.
#[test]
fn a_data_file_beside_the_locks_is_not_listed() {
    let f = Fixture::new();
    let _held = take(&f, "job", f.opts().owner);
    std::fs::write(f.dir.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(f.dir.path().join("other.pid"), "4242\n").unwrap();
    let dir = read_dir(place(&f), f.dir.path(), None).unwrap();
    let names: Vec<_> = dir.entries.iter().map(|e| e.lock.name.clone()).collect();
    assert_eq!(names, ["job"]);
}

/// A lock re-taken between the sweep's judgement and its removal
/// survives, and the sweep says it lost the race.
#[test]
fn a_sweep_spares_a_lock_retaken_before_its_pin() {
    let f = Fixture::new();
    let _dead = take(&f, "l", dead_owner());
    f.fs.on(
        Op::Link,
        Some("nfslock-guard"),
        1,
        f.replace_lock_with(b"fresh"),
    );
    let actions = sweep_dir(place(&f), f.dir.path(), SweepOptions::default()).unwrap();
    assert!(
        actions.iter().any(|a| matches!(a, Action::LostRace { .. })),
        "{actions:?}"
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Broken { .. })));
    assert_eq!(f.lock_bytes().unwrap(), b"fresh");
}

/// A dry sweep changes nothing at all.
#[test]
fn a_dry_sweep_changes_nothing() {
    let f = Fixture::new();
    let _dead = take(&f, "l", dead_owner());
    let before = f.names();
    let opts = SweepOptions {
        dry_run: true,
        ..SweepOptions::default()
    };
    let actions = sweep_dir(place(&f), f.dir.path(), opts).unwrap();
    assert!(
        matches!(actions[0], Action::WouldBreak { .. }),
        "{actions:?}"
    );
    assert_eq!(f.names(), before);
}

/// A listing that keeps failing ends with 74 after `--io-timeout`, paced.
#[test]
fn a_listing_that_keeps_failing_ends_with_an_io_error() {
    let f = Fixture::new();
    let _held = take(&f, "job", f.opts().owner);
    f.fs.on(Op::List, None, 0, Fault::Fail(EIO));
    let err = read_dir(place(&f), f.dir.path(), None).unwrap_err();
    assert_eq!(err.exit_code(), crate::exit::IO, "{err}");
    assert!(f.fs.calls(Op::List) > 1, "retried");
    assert!(!f.env.sleeps.lock().unwrap().is_empty(), "with pauses");
}

/// A slotted lock costs one more read, its slot count; each slot is then
/// read as the lock it is (a free one too: it is listed).
#[test]
fn a_slotted_lock_costs_its_count_and_its_slots() {
    use crate::fs::Durability;
    use crate::protocol::slots::{settle_slots, slot_lock};
    let f = Fixture::new();
    settle_slots(&f.ctx(), 3, Durability::NoSync).unwrap();
    let lock = slot_lock(&f.lock, 2);
    let ctx = Ctx::new(&f.fs, &f.env, &lock, Duration::from_millis(300));
    let _held = acquire(&ctx, &f.opts()).unwrap();
    let reads = f.fs.calls(Op::Read);
    let dir = read_dir(place(&f), f.dir.path(), None).unwrap();
    assert_eq!(f.fs.calls(Op::Read) - reads, 1 + 3);
    let slots: Vec<(String, bool)> = dir
        .entries
        .iter()
        .map(|e| (e.lock.name.to_string_lossy().into_owned(), e.info.is_some()))
        .collect();
    assert_eq!(
        slots,
        [
            ("l.slot-1".to_string(), false),
            ("l.slot-2".to_string(), true),
            ("l.slot-3".to_string(), false)
        ]
    );
    assert!(dir.entries.iter().all(|e| e.slot));
}
