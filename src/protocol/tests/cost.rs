use super::*;

/// Keeping a waiting claim fresh costs one SETATTR per refresh, not a
/// SETATTR and a GETATTR: file-system time is only read back when a
/// verdict of age depends on it.
#[test]
fn refreshing_a_waiting_claim_costs_one_operation() {
    let f = Fixture::new();
    f.plant_other_lock(b"theirs");
    let mut opts = f.opts();
    opts.wait = Some(Duration::from_millis(200));
    opts.watch = Some(false);
    opts.poll_max = Duration::from_millis(5);
    opts.refresh_claim_after = Duration::ZERO;
    acquire(&f.ctx(), &opts).unwrap_err();
    let (links, touches, lstats) = (
        f.fs.calls(Op::Link),
        f.fs.calls(Op::Touch),
        f.fs.calls(Op::Lstat),
    );
    assert!(links > 3, "{links} polls");
    // A refresh before every link but the first.
    assert!(touches + 1 >= links, "{touches} touches for {links} links");
    // One lstat per poll (of the lock), a few for the clean-up.
    assert!(lstats <= links + 3, "{lstats} lstats for {links} polls");
}

/// Every lock-directory operation is a round trip on NFS: an
/// uncontended cycle costs eight, whichever way it is released
/// (docs/protocol.md, "What a lock costs").
#[test]
fn an_uncontended_cycle_costs_eight_operations() {
    let ops = [
        Op::Create,
        Op::Link,
        Op::Lstat,
        Op::Read,
        Op::Rename,
        Op::Unlink,
        Op::Touch,
        Op::List,
    ];
    let count = |f: &Fixture| -> Vec<usize> { ops.iter().map(|&o| f.fs.calls(o)).collect() };
    // Held (run, the library): create, link, lstat | lstat, rename,
    // read, unlink, unlink.
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    assert_eq!(count(&f), [1, 1, 1, 0, 0, 0, 0, 0]);
    held.release(&f.ctx()).unwrap();
    assert_eq!(count(&f), [1, 1, 2, 1, 1, 2, 0, 0]);
    // `nfslock release`: the record is read instead of the lstat.
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    release(&f.ctx(), &Who::Token(held.token().into())).unwrap();
    assert_eq!(count(&f), [1, 1, 1, 2, 1, 2, 0, 0]);
    // A heartbeat: touch the claim, read the lock (open(2) revalidates
    // the name on NFS; a cached lstat may show a removed lock).
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    held.touch(&f.ctx()).unwrap();
    assert_eq!(count(&f), [1, 1, 1, 1, 0, 0, 1, 0]);
    assert!(f.names().len() == 2);
}

/// An uncontended shared cycle: opening an epoch costs the claim, a read
/// of the lock (free), the readers' directory, the claim's link into it,
/// the link to the lock and its lstat; leaving costs the link out, the
/// directory, the lock's conditional removal (rename, read, unlink) and
/// the claim: twelve. Joining an open epoch costs seven: the claim, a
/// read of the lock, the link in, an lstat of the directory (a writer's
/// seal shows as a third link); the link out, the directory (not empty),
/// the claim.
#[test]
fn an_uncontended_shared_cycle_costs_twelve_operations_and_a_join_eight() {
    let ops = [
        Op::Create,
        Op::Link,
        Op::Lstat,
        Op::Read,
        Op::Rename,
        Op::Unlink,
        Op::Touch,
        Op::List,
        Op::MakeDir,
        Op::RemoveDir,
    ];
    let total = |f: &Fixture| -> usize { ops.iter().map(|&o| f.fs.calls(o)).sum() };
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.shared = true;
    let first = acquire(&f.ctx(), &opts).unwrap();
    let opened = total(&f);
    let second = acquire(&f.ctx(), &opts).unwrap();
    let joined = total(&f) - opened;
    // A reader's beat: touch and lstat its claim, read the lock name, read
    // its link among the readers (docs/protocol.md counts four).
    second.toucher().touch(&f.ctx()).unwrap();
    let beat = total(&f) - opened - joined;
    second.release(&f.ctx()).unwrap();
    let left = total(&f) - opened - joined - beat;
    first.release(&f.ctx()).unwrap();
    let closed = total(&f) - opened - joined - beat - left;
    assert_eq!((opened, closed), (6, 6), "open, close");
    assert_eq!((joined, left), (4, 3), "join, leave");
    assert_eq!(beat, 4, "a reader's touch");
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// A waiter with a lease refreshes its claim once a sixth of the lease
/// (at most 5 s) has passed, not every second: a lock born that old
/// keeps most of its lease. Without a lease, every second as before.
#[test]
fn a_leased_waiter_refreshes_its_claim_by_its_lease() {
    let touches = |lease: Option<Duration>| {
        let f = Fixture::new();
        f.plant_other_lock(b"theirs");
        let mut opts = f.opts();
        opts.wait = Some(Duration::from_millis(1500));
        opts.watch = Some(false);
        opts.poll_max = Duration::from_millis(5);
        opts.lease = lease;
        acquire(&f.ctx(), &opts).unwrap_err();
        f.fs.calls(Op::Touch)
    };
    assert!(touches(None) >= 1);
    assert_eq!(touches(Some(Duration::from_secs(60))), 0);
    // A short lease: a sixth of it is less than a second; a second it is.
    assert!(touches(Some(Duration::from_secs(3))) >= 1);
}

/// A contender that finds the lock taken reads it once: the read's own
/// fstat shows what an lstat before it would, so a first look costs no
/// lstat (each is a round trip on NFS, paid by every new contender).
#[test]
fn a_first_look_at_a_busy_lock_reads_it_without_an_lstat() {
    let f = Fixture::new();
    let _held = acquire(&f.ctx(), &f.opts()).unwrap();
    let ops = [Op::Create, Op::Link, Op::Lstat, Op::Read, Op::Unlink];
    let count = || -> Vec<usize> { ops.iter().map(|&o| f.fs.calls(o)).collect() };
    let before = count();
    let other = LiveOwner::new();
    let mut opts = f.opts();
    opts.owner = other.owner;
    let err = acquire(&f.ctx(), &opts).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    let spent: Vec<usize> = count().iter().zip(&before).map(|(a, b)| a - b).collect();
    // The claim, its link, the read of the lock; giving up, a look
    // (lstat, then a read: `Ctx::lock_meta`) that the lock did not become
    // ours after all, and the claim's removal.
    assert_eq!(spent, [1, 1, 1, 2, 1]);
}
