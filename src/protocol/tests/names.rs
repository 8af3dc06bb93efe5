use super::*;
use crate::record::READ_LIMIT;

/// The sweep removes only what our crashed processes can have left: a
/// large file under a guard's name is someone's, whatever its age.
#[test]
fn the_sweep_leaves_a_large_file_under_our_names() {
    let f = Fixture::new();
    let name = f.dir.path().join(".l.nfslock-guard.00000000deadbeef.1.h");
    std::fs::write(&name, vec![b'x'; READ_LIMIT]).unwrap();
    let small = f.dir.path().join(".l.nfslock-probe.00000000deadbeef.1.h");
    std::fs::write(&small, b"").unwrap();
    let later = FsTime(i128::MAX / 2);
    assert_eq!(f.ctx().sweep(Some(later), None, Sweep::Thorough), 1);
    assert!(name.exists() && !small.exists(), "{:?}", f.names());
}

/// A name we draw that someone else took first is never used, and
/// what is there is left alone: we draw another.
#[test]
fn a_planted_name_is_left_alone_and_another_drawn() {
    let f = Fixture::new();
    f.fs.on(
        Op::Create,
        Some("probe"),
        1,
        Fault::Plant(b"someone's".to_vec()),
    );
    f.fs.on(
        Op::Create,
        Some("claim"),
        1,
        Fault::Plant(b"theirs".to_vec()),
    );
    assert!(f.ctx().fs_now().unwrap().is_some());
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    held.release(&f.ctx()).unwrap();
    let mut left: Vec<Vec<u8>> = f
        .names()
        .iter()
        .map(|n| std::fs::read(f.dir.path().join(n)).unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [b"someone's".to_vec(), b"theirs".to_vec()]);
}

/// Found by the NFS lab: a CREATE whose reply was lost before the data
/// was written leaves an empty file of ours under our fresh name; it is
/// ours to remove (the lab's faults suite found 41 of them left).
#[test]
fn an_empty_file_of_ours_from_a_lost_create_is_removed() {
    let f = Fixture::new();
    f.fs.on(Op::Create, Some("claim"), 1, Fault::Plant(Vec::new()));
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty(), "{:?}", f.names());
}
