use super::*;

/// Found by the simulator (seed 1000049): a forced break removed the
/// claim of a holder that had linked the same claim again meanwhile.
#[test]
fn a_break_leaves_the_claim_of_a_lock_linked_again() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let (claim, lock) = (held.claim.clone(), f.lock.path.clone());
    f.fs.on(
        Op::Lstat,
        Some("nfslock-claim"),
        1,
        Fault::Before(Box::new(move || std::fs::hard_link(&claim, &lock).unwrap())),
    );
    let force = BreakOptions {
        force: true,
        ..BreakOptions::default()
    };
    assert!(matches!(
        break_lock(&f.ctx(), force),
        Ok(BreakOutcome::Broken { .. })
    ));
    assert!(held.claim.exists(), "the claim of a live lock stays");
    held.touch(&f.ctx()).expect("it still holds the lock");
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty(), "{:?}", f.names());
}

#[test]
fn a_forced_break_ignores_a_refresh_after_the_judgement() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let claim = held.claim.clone();
    f.fs.on(
        Op::Rename,
        None,
        1,
        Fault::Before(Box::new(move || {
            set_times(&claim, 4_000_000_000);
        })),
    );
    let force = BreakOptions {
        force: true,
        ..BreakOptions::default()
    };
    assert!(matches!(
        break_lock(&f.ctx(), force),
        Ok(BreakOutcome::Broken { .. })
    ));
    assert!(f.lock_bytes().is_none());
    assert_eq!(
        held.touch(&f.ctx()).unwrap_err().exit_code(),
        crate::exit::NOT_OWNER
    );
}

#[test]
fn break_spares_a_lock_replaced_before_the_pin() {
    let f = Fixture::new();
    f.plant_other_lock(b"0\n");
    f.fs.on(
        Op::Link,
        Some("nfslock-guard"),
        1,
        f.replace_lock_with(b"fresh"),
    );
    let opts = BreakOptions {
        force: true,
        ..Default::default()
    };
    let out = break_lock(&f.ctx(), opts).unwrap();
    assert!(
        matches!(out, BreakOutcome::LostRace { now: Some(_) }),
        "{out:?}"
    );
    assert_eq!(f.lock_bytes().unwrap(), b"fresh");
    assert!(f.litter().is_empty(), "{:?}", f.litter());
}

#[test]
fn break_spares_a_lock_replaced_after_the_pin() {
    let f = Fixture::new();
    f.plant_other_lock(b"0\n");
    f.fs.on(
        Op::Rename,
        Some("nfslock-rm"),
        1,
        f.replace_lock_with(b"fresh"),
    );
    let opts = BreakOptions {
        force: true,
        ..Default::default()
    };
    let out = break_lock(&f.ctx(), opts).unwrap();
    assert!(matches!(out, BreakOutcome::LostRace { .. }), "{out:?}");
    assert_eq!(
        f.lock_bytes().unwrap(),
        b"fresh",
        "the new lock was put back"
    );
    assert!(f.litter().is_empty(), "{:?}", f.litter());
}

#[test]
fn a_failed_restore_is_reported_and_leaves_no_litter() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let who = Who::Token(held.token().to_string());
    let lock = f.lock.path.clone();
    let dir = f.dir.path().to_path_buf();
    // Our lock is replaced before our rename, and a third party links
    // a lock in the instant the name is empty.
    f.fs.on(
        Op::Rename,
        Some("nfslock-rm"),
        1,
        Fault::Before(Box::new({
            let (lock, dir) = (lock.clone(), dir.clone());
            move || {
                std::fs::write(dir.join("other"), b"second").unwrap();
                std::fs::rename(dir.join("other"), &lock).unwrap();
            }
        })),
    );
    f.fs.on(
        Op::Link,
        Some("nfslock-rm"),
        1,
        Fault::Before(Box::new(move || {
            std::fs::write(&lock, b"third").unwrap();
        })),
    );
    let e = release(&f.ctx(), &who).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
    assert!(f.env.saw("Displaced"));
    assert_eq!(f.lock_bytes().unwrap(), b"third");
    assert!(f.litter().is_empty(), "{:?}", f.litter());
}

#[test]
fn a_dead_owner_is_broken_and_its_claim_removed() {
    let f = Fixture::new();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    let owner = Owner::of_pid(&f.env, pid);
    child.wait().unwrap();
    let mut o = f.opts();
    o.owner = owner.unwrap_or(Owner {
        pid,
        start: Some(1),
    });
    let dead = acquire(&f.ctx(), &o).unwrap();
    assert!(f.dir.path().join(&dead.record.claim).exists());
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    assert!(f.env.saw("Broke"));
    assert!(!f.dir.path().join(&dead.record.claim).exists());
    drop(crate::lock::Guard::new(f.ctx(), held));
    assert!(
        f.names().is_empty(),
        "the guard released on drop: {:?}",
        f.names()
    );
}

/// Found by the simulator (seed 6000216, readers' claims named by time):
/// a holder's release met its lock moved aside by another remover (which
/// checks what it moved and puts back what it may not remove). Once put
/// back, the lock is still the holder's to remove: calling it gone left a
/// lock that nobody knew it held.
#[test]
fn a_release_removes_its_lock_put_back_by_another_remover() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let (lock, aside) = (f.lock.path.clone(), f.dir.path().join("aside"));
    let (lock2, aside2) = (lock.clone(), aside.clone());
    f.fs.on(
        Op::Rename,
        Some("nfslock-rm"),
        1,
        Fault::Before(Box::new(move || std::fs::rename(&lock, &aside).unwrap())),
    );
    f.fs.on(
        Op::Read,
        Some("nfslock-rm"),
        5,
        Fault::Before(Box::new(move || std::fs::rename(&aside2, &lock2).unwrap())),
    );
    held.release(&f.ctx()).expect("released after all");
    assert!(f.names().is_empty(), "{:?}", f.names());
}
