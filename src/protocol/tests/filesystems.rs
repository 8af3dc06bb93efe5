use super::*;

#[test]
fn a_filesystem_that_copies_instead_of_linking_is_refused() {
    let f = Fixture::new();
    f.fs.on(Op::Link, Some("claim"), 0, Fault::Copy);
    match acquire(&f.ctx(), &f.opts()) {
        Err(Error::Unsupported { why, .. }) => assert!(why.contains("copy"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// A failed link that still bumps the claim's count (proot's link
/// emulation) cannot fool us: only the lock name's inode decides.
#[test]
fn a_link_count_that_grows_on_a_failed_link_does_not_fool_us() {
    let f = Fixture::new();
    f.plant_other_lock(b"0\n");
    let dir = f.dir.path().to_path_buf();
    let extra = Cell::new(0);
    // Like proot's link emulation: a failed link still bumps nlink.
    f.fs.on(
        Op::Link,
        Some("claim"),
        0,
        Fault::Before(Box::new(move || {
            for p in claim_files(&dir) {
                extra.set(extra.get() + 1);
                let _ = std::fs::hard_link(&p, dir.join(format!("x{}", extra.get())));
            }
        })),
    );
    let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::BUSY, "{e}");
    assert_eq!(f.lock_bytes().unwrap(), b"0\n");
    assert!(f.litter().is_empty(), "{:?}", f.litter());
}

/// Found by the NFS lab: after a lost LINK reply, an attribute cache
/// kept the claim's old link count; that is not a lying filesystem.
#[test]
fn a_stale_link_count_is_waited_out_not_refused() {
    let f = Fixture::new();
    f.fs.on(Op::Link, Some("claim"), 1, Fault::LostReply(EEXIST));
    f.fs.on(Op::Lstat, None, 1, Fault::StaleNlink);
    f.fs.on(Op::Lstat, None, 1, Fault::StaleNlink);
    let held = acquire(&f.ctx(), &f.opts()).expect("the cache catches up");
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty(), "{:?}", f.names());
}

#[test]
fn a_filesystem_without_hard_links_is_refused() {
    let f = Fixture::new();
    f.fs.on(Op::Link, None, 0, Fault::Fail(EPERM));
    let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::UNSUPPORTED, "{e}");
    assert!(f.names().is_empty());
}
