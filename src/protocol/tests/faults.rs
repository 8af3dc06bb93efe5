use super::*;

#[test]
fn a_lost_link_reply_still_acquires() {
    for errno in [EEXIST, EIO, ESTALE] {
        let f = Fixture::new();
        f.fs.on(Op::Link, Some("claim"), 1, Fault::LostReply(errno));
        let held = acquire(&f.ctx(), &f.opts()).expect("link took effect");
        assert_eq!(f.fs.fired(), 1);
        assert_eq!(f.lock_bytes().unwrap(), held.bytes);
        held.release(&f.ctx()).unwrap();
        assert_eq!(f.names(), Vec::<String>::new());
    }
}

/// Our link took, then a remover moved the lock aside (its private name
/// is the extra link we see on our claim, like a breaker's pin): we
/// give the claim up. The remover finds it moved the wrong instance and
/// puts it back. That lock carries our token and nobody holds it: we
/// remove it as its owner would instead of waiting out its lease.
#[test]
fn a_lock_put_back_after_we_gave_up_its_claim_is_ours_to_remove() {
    let f = Fixture::new();
    let (lock, aside) = (f.lock.path.clone(), f.dir.path().join("aside"));
    let (lock2, aside2) = (lock.clone(), aside.clone());
    f.fs.on(
        Op::Lstat,
        None,
        1,
        Fault::Before(Box::new(move || std::fs::rename(&lock, &aside).unwrap())),
    );
    f.fs.on(
        Op::Create,
        None,
        2,
        Fault::Before(Box::new(move || {
            std::fs::hard_link(&aside2, &lock2).unwrap();
            std::fs::remove_file(&aside2).unwrap();
        })),
    );
    let mut o = f.opts();
    o.wait = Some(Duration::from_secs(5));
    let held = acquire(&f.ctx(), &o).expect("the lock is taken, not waited out");
    assert_eq!(f.fs.fired(), 2);
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty(), "{:?}", f.names());
}

#[test]
fn a_failed_link_is_retried_not_trusted() {
    let f = Fixture::new();
    f.fs.on(Op::Link, Some("claim"), 1, Fault::Fail(EIO));
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    assert!(f.fs.calls(Op::Link) >= 2);
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty());
}

#[test]
fn a_lost_create_reply_leaves_no_orphan() {
    let f = Fixture::new();
    f.fs.on(Op::Create, Some("claim"), 1, Fault::LostReply(EEXIST));
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    assert_eq!(f.litter().len(), 1, "{:?}", f.litter());
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// Found by the NFS lab: a lost CREATE reply followed by a transient
/// error on the check of our own orphan left a claim nobody owned.
#[test]
fn an_orphan_from_a_lost_create_reply_survives_no_transient_error() {
    let f = Fixture::new();
    f.fs.on(Op::Create, Some("claim"), 1, Fault::LostReply(EEXIST));
    f.fs.on(Op::Lstat, Some("claim"), 1, Fault::Fail(EIO));
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// Found by the NFS lab: when a rename's effect was not visible yet,
/// the lock name was renamed again, and by then it could hold the next
/// holder's lock. A removal renames the lock name at most once unless it
/// has re-verified the name still holds the expected instance.
#[test]
fn a_rename_not_yet_visible_is_never_repeated() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    f.fs.on(Op::Read, Some("nfslock-rm"), 1, Fault::Fail(ENOENT));
    let before = f.fs.calls(Op::Rename);
    held.release(&f.ctx()).unwrap();
    assert_eq!(
        f.fs.calls(Op::Rename) - before,
        1,
        "the lock name was renamed twice"
    );
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// Seen in the NFS lab: the private name stayed invisible for a while
/// after a rename that worked, and meanwhile the next holder took the
/// lock. The release succeeded and must say so, leaving theirs alone.
#[test]
fn a_slowly_visible_rename_is_not_reported_as_a_lost_lock() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    f.fs.on(Op::Read, Some("nfslock-rm"), 1, Fault::Fail(ENOENT));
    f.fs.on(Op::Read, Some("nfslock-rm"), 1, Fault::Fail(ENOENT));
    f.fs.on(Op::Read, Some("/l"), 1, f.replace_lock_with(b"theirs"));
    held.release(&f.ctx()).unwrap();
    assert_eq!(f.lock_bytes().unwrap(), b"theirs");
    assert_eq!(f.names(), ["l"]);
}

/// Found by the NFS lab: a contender that waited longer than its lease
/// acquired a lock whose mtime (its claim's, made when the wait began)
/// was already past the lease, and others broke it while it ran.
#[test]
fn a_lock_is_born_fresh_however_long_the_wait() {
    let f = Fixture::new();
    f.plant_other_lock(b"0\n");
    let dir = f.dir.path().to_path_buf();
    let lock = f.lock.path.clone();
    // During the wait: the claim ages an hour and the holder goes away.
    f.fs.on(
        Op::Read,
        Some("/l"),
        1,
        Fault::Before(Box::new(move || {
            for p in claim_files(&dir) {
                set_times(&p, 1_000_000_000);
            }
            std::fs::remove_file(&lock).unwrap();
        })),
    );
    let mut o = f.opts();
    o.wait = Some(Duration::from_secs(10));
    o.refresh_claim_after = Duration::ZERO;
    let held = acquire(&f.ctx(), &o).unwrap();
    let age = SystemTime::now()
        .duration_since(
            std::fs::symlink_metadata(&f.lock.path)
                .unwrap()
                .modified()
                .unwrap(),
        )
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "the new lock is {age:?} old");
    held.release(&f.ctx()).unwrap();
}

#[test]
fn lost_rename_and_unlink_replies_do_not_fail_a_release() {
    for (op, errno) in [
        (Op::Rename, ENOENT),
        (Op::Rename, EIO),
        (Op::Unlink, ENOENT),
        (Op::Unlink, EIO),
    ] {
        let f = Fixture::new();
        let held = acquire(&f.ctx(), &f.opts()).unwrap();
        f.fs.on(op, None, 1, Fault::LostReply(errno));
        let who = Who::Token(held.token().to_string());
        release(&f.ctx(), &who).unwrap_or_else(|e| panic!("{op:?}/{errno}: {e}"));
        assert_eq!(f.fs.fired(), 1);
        assert!(f.names().is_empty(), "{op:?}: {:?}", f.names());
    }
}

#[test]
fn calls_executed_twice_do_not_fail_a_cycle_or_leave_litter() {
    for (op, path) in [
        (Op::Create, "claim"),
        (Op::Link, "claim"),
        (Op::Rename, "nfslock-rm"),
        (Op::Unlink, "nfslock-rm"),
        (Op::Unlink, "claim"),
        (Op::Touch, "claim"),
    ] {
        let f = Fixture::new();
        f.fs.on(op, Some(path), 1, Fault::Twice);
        let held = acquire(&f.ctx(), &f.opts()).unwrap_or_else(|e| panic!("{op:?}: {e}"));
        held.touch(&f.ctx())
            .unwrap_or_else(|e| panic!("{op:?}: {e}"));
        held.release(&f.ctx())
            .unwrap_or_else(|e| panic!("{op:?}: {e}"));
        assert_eq!(f.fs.fired(), 1, "{op:?} {path}");
        assert!(f.names().is_empty(), "{op:?}: {:?}", f.names());
    }
}

/// Errors a client maps oddly (a FUSE client gives EFAULT for a read
/// of a file another host just removed) are retried like EIO, not a
/// reason to give up.
#[test]
fn an_unexpected_errno_is_retried_like_eio() {
    let f = Fixture::new();
    f.plant_other_lock(b"0\n");
    f.fs.on(Op::Read, Some("/l"), 1, Fault::Fail(nix::libc::EFAULT));
    f.fs.on(Op::Link, Some("claim"), 1, Fault::Fail(nix::libc::EBADMSG));
    let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::BUSY, "{e}");
    assert!(f.env.saw("Retrying"), "not retried");
    assert_eq!(f.litter(), Vec::<String>::new());
}

/// ENOSPC, EDQUOT, EACCES from link(2) after the claim was made: no
/// retry fixes them. 73, the claim removed, and a handful of calls.
#[test]
fn a_persistent_link_error_ends_the_acquire() {
    for errno in [nix::libc::ENOSPC, nix::libc::EDQUOT, nix::libc::EACCES] {
        let f = Fixture::new();
        f.fs.on(Op::Link, Some("claim"), 0, Fault::Fail(errno));
        let mut o = f.opts();
        o.wait = Some(Duration::from_secs(30));
        let e = acquire(&f.ctx(), &o).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::CANT_CREATE, "{errno}: {e}");
        assert_eq!(f.fs.calls(Op::Link), 1, "{errno}: retried");
        assert!(f.names().is_empty(), "{:?}", f.names());
    }
}

/// A link that keeps failing with EIO while no lock is there (a server
/// in trouble) is retried with pauses until --io-timeout, never in a
/// tight loop.
#[test]
fn a_link_failing_with_eio_is_paced_and_ends() {
    let f = Fixture::new();
    f.fs.on(Op::Link, Some("claim"), 0, Fault::Fail(EIO));
    let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::IO, "{e}");
    let links = f.fs.calls(Op::Link);
    let slept = f.env.sleeps.lock().unwrap().len();
    assert!(links <= slept + 1, "{links} links, {slept} pauses");
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// Found by the simulator (seed 3000100): a reader whose mkdir of its
/// readers' directory ran twice (EEXIST for its own directory) and whose
/// look at it then failed gave up with the directory left behind.
#[test]
fn a_reader_that_cannot_see_its_new_directory_leaves_none() {
    let f = Fixture::new();
    f.fs.on(Op::MakeDir, Some("nfslock-epoch"), 1, Fault::Twice);
    f.fs.on(
        Op::Lstat,
        Some("nfslock-epoch"),
        0,
        Fault::Fail(nix::libc::EIO),
    );
    let mut opts = f.opts();
    opts.shared = true;
    opts.wait = Some(Duration::from_millis(200));
    acquire(&f.ctx(), &opts).unwrap_err();
    assert!(f.names().is_empty(), "{:?}", f.names());
}
