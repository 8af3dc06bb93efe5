use super::*;

/// The sweep after a contended acquire (before the holder's command
/// runs; three round trips per read on NFS) leaves a live process's
/// claim unread; `break` reads every claim.
#[test]
fn a_quick_sweep_reads_no_claim_of_a_live_process() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let mine = f.claim_of(std::process::id());
    let now = FsTime(i128::MAX / 2);
    assert_eq!(f.ctx().sweep(Some(now), Some(&mine), Sweep::Quick), 0);
    assert_eq!(f.fs.calls(Op::Read), 0);
    assert_eq!(f.ctx().sweep(Some(now), None, Sweep::Thorough), 0);
    assert_eq!(f.fs.calls(Op::Read), 1);
    held.release(&f.ctx()).unwrap();
}

/// What the quick sweep is for: the claim a killed waiter of this host
/// left behind goes at the next contended acquire, for one read. The
/// claim's name carries the waiter's pid, not its owner's: an owner
/// shell that lives on keeps nothing alive (the claim is no lock).
#[test]
fn a_quick_sweep_removes_a_dead_waiters_claim() {
    let f = Fixture::new();
    let killed_waiter = dead_owner().pid;
    f.env.pid.set(Some(killed_waiter));
    let left = new_claim(&f.ctx(), &f.opts()).unwrap();
    f.env.pid.set(None);
    assert!(
        left.path
            .to_string_lossy()
            .contains(&format!(".{killed_waiter}.")),
        "{:?}",
        left.path
    );
    assert_eq!(left.record.pid, std::process::id(), "the owner lives");
    let mine = f.claim_of(std::process::id());
    let now = FsTime(i128::MAX / 2);
    assert_eq!(f.ctx().sweep(Some(now), Some(&mine), Sweep::Quick), 1);
    assert_eq!(f.fs.calls(Op::Read), 1);
    assert!(!left.path.exists(), "{:?}", f.names());
    // A dead owner's claim goes too, once `break` reads every claim.
    let mut o = f.opts();
    o.owner = dead_owner();
    let dead = new_claim(&f.ctx(), &o).unwrap();
    assert_eq!(f.ctx().sweep(Some(now), Some(&mine), Sweep::Quick), 0);
    assert_eq!(f.ctx().sweep(Some(now), None, Sweep::Thorough), 1);
    assert!(!dead.path.exists(), "{:?}", f.names());
}

/// Found by the simulator (seed 7): one sweep must remove a dead owner's
/// claim although a dead remover's private name links the same inode.
#[test]
fn sweep_removes_dead_claims_that_other_names_link() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.owner = dead_owner();
    let held = acquire(&f.ctx(), &opts).unwrap();
    let private = f.dir.path().join(".l.nfslock-rm.0.1.h");
    std::fs::rename(&f.lock.path, &private).unwrap();
    let now = FsTime(i128::MAX / 2);
    assert_eq!(f.ctx().sweep(Some(now), None, Sweep::Thorough), 2);
    assert!(!held.claim.exists() && !private.exists(), "{:?}", f.names());
}

#[test]
fn the_sweep_removes_dead_claims_and_old_pins_only() {
    let f = Fixture::new();
    let live = acquire(&f.ctx(), &f.opts()).unwrap();
    // A waiter that was killed: claim with one link, owner gone.
    let mut o = f.opts();
    o.owner = Owner {
        pid: 4_194_305,
        start: Some(1),
    };
    o.lease = Some(Duration::from_secs(1));
    let c = new_claim(&f.ctx(), &o).unwrap();
    // A pin left by a breaker killed long ago, and a fresh one.
    let old = f.ctx().my_aux(AuxKind::Guard);
    std::fs::write(&old, b"").unwrap();
    let young = f.ctx().my_aux(AuxKind::Removing);
    std::fs::write(&young, b"").unwrap();
    let now =
        f.fs.lstat(&young)
            .unwrap()
            .mtime
            .plus(ORPHAN_AGE + Duration::from_secs(1));
    // Only `old` is old: judge `young` against its own ctime.
    let removed = f.ctx().sweep(Some(now), None, Sweep::Thorough);
    assert_eq!(removed, 3, "{:?}", f.names());
    assert!(!c.path.exists() && !old.exists() && !young.exists());
    assert!(
        f.dir.path().join(&live.record.claim).exists(),
        "the holder's claim stays"
    );
    let removed = f.ctx().sweep(
        Some(f.fs.lstat(&live.claim).unwrap().mtime),
        None,
        Sweep::Thorough,
    );
    assert_eq!(removed, 0);
}

/// An opener that died between making its readers' directory and
/// publishing its lock: `break` and `sweep` take the directory (and the
/// reader in it) once it is ORPHAN_AGE old and its reader is stale, and
/// never before, nor while a live reader is in one.
#[test]
fn the_sweep_takes_an_old_readers_directory_no_lock_names_with_only_stale_readers() {
    let f = Fixture::new();
    let orphan = |owner: Owner, lease: Option<Duration>| {
        let mut o = f.opts();
        o.owner = owner;
        o.shared = true;
        o.lease = lease;
        let c = new_claim(&f.ctx(), &o).unwrap();
        let name = c.path.file_name().unwrap().to_owned();
        let epoch = super::epoch::epoch_dir(&f.lock, &name).unwrap();
        std::fs::create_dir(&epoch).unwrap();
        std::fs::hard_link(&c.path, epoch.join(&name)).unwrap();
        (c, epoch)
    };
    let dead_owner = Owner {
        pid: 4_194_305,
        start: Some(1),
    };
    let (dead, dead_epoch) = orphan(dead_owner, Some(Duration::from_secs(1)));
    // A live reader of this host without a lease is never stale.
    let (live, live_epoch) = orphan(f.opts().owner, None);
    let made = f.fs.lstat(&dead_epoch).unwrap().ctime;
    // Young: an opener may be about to publish.
    let young = made.plus(Duration::from_secs(60));
    f.ctx().sweep(Some(young), None, Sweep::Thorough);
    assert!(
        dead_epoch.exists() && live_epoch.exists(),
        "{:?}",
        f.names()
    );
    let old = made.plus(ORPHAN_AGE + Duration::from_secs(1));
    f.ctx().sweep(Some(old), None, Sweep::Thorough);
    assert!(!dead_epoch.exists(), "{:?}", f.names());
    assert!(!dead.path.exists(), "the dead reader's claim goes too");
    assert!(live_epoch.exists() && live.path.exists(), "{:?}", f.names());
}
