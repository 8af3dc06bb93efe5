use super::*;

#[test]
fn release_never_removes_a_lock_taken_in_the_meantime() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let who = Who::Token(held.token().to_string());
    // Our lock is broken and re-taken between release's check and its
    // rename.
    f.fs.on(
        Op::Rename,
        Some("nfslock-rm"),
        1,
        f.replace_lock_with(b"theirs"),
    );
    let e = release(&f.ctx(), &who).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
    assert_eq!(f.lock_bytes().unwrap(), b"theirs");
    assert_eq!(f.litter(), Vec::<String>::new(), "our claim is cleaned up");
}

#[test]
fn touch_never_refreshes_a_replaced_lock() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let who = Who::Token(held.token().to_string());
    f.fs.on(Op::Touch, None, 1, f.replace_lock_with(b"theirs"));
    let theirs_before = {
        // The replacement happens inside touch; read its mtime after.
        let e = touch(&f.ctx(), &who).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
        std::fs::symlink_metadata(&f.lock.path)
            .unwrap()
            .modified()
            .unwrap()
    };
    // Touching went through our claim, which is no longer the lock.
    std::thread::sleep(Duration::from_millis(20));
    let theirs_after = std::fs::symlink_metadata(&f.lock.path)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(theirs_before, theirs_after);
    assert_eq!(f.lock_bytes().unwrap(), b"theirs");
    assert!(f.litter().is_empty(), "{:?}", f.litter());
}

/// Found by the simulator (seed 196): a holder told its lock was lost
/// kept its claim because a dead breaker's guard still linked it.
#[test]
fn a_lost_holder_removes_its_claim_even_with_other_links() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    // A crashed breaker's pin on our inode, then our lock is replaced.
    std::fs::hard_link(&held.claim, f.dir.path().join(".l.nfslock-guard.0.1.h")).unwrap();
    f.plant_other_lock(b"theirs");
    let e = held.touch(&f.ctx()).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
    assert!(!held.claim.exists(), "our claim is not left behind");
    assert_eq!(f.lock_bytes().unwrap(), b"theirs");
}

/// Found by the simulator (seed 1000031): a holder whose lock had been
/// broken and taken over renamed the new holder's lock aside (and back)
/// when it released; it must look first and move nothing.
#[test]
fn a_broken_holder_releases_without_touching_the_new_lock() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    f.plant_other_lock(b"theirs");
    let e = held.release(&f.ctx()).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::NOT_OWNER);
    assert_eq!(f.fs.calls(Op::Rename), 0);
    assert_eq!(f.lock_bytes().unwrap(), b"theirs");
    assert!(f.litter().is_empty(), "{:?}", f.litter());
}
