use super::*;
use crate::fs::Durability;
use crate::protocol::slots::{recorded_slots, settle_slots};

/// The first use from many places at once: every caller with the same N
/// succeeds, and one count is left, with nothing else.
#[test]
fn callers_recording_the_count_at_once_all_agree() {
    for _ in 0..20 {
        let f = Fixture::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let env = TestEnv::new();
                    let ctx = Ctx::new(&f.fs, &env, &f.lock, Duration::from_secs(5));
                    settle_slots(&ctx, 3, Durability::NoSync).unwrap();
                });
            }
        });
        assert_eq!(recorded_slots(&f.ctx()).unwrap(), Some(3));
        assert_eq!(f.names(), [".l.nfslock-slots"]);
    }
}

/// Another N while no slot is held replaces the count; while one is held
/// it is refused (64) and the count stays.
#[test]
fn a_count_changes_only_while_no_slot_is_held() {
    let f = Fixture::new();
    let ctx = f.ctx();
    settle_slots(&ctx, 2, Durability::NoSync).unwrap();
    settle_slots(&ctx, 5, Durability::NoSync).unwrap();
    assert_eq!(recorded_slots(&ctx).unwrap(), Some(5));
    std::fs::write(f.dir.path().join("l.slot-4"), b"x").unwrap();
    let e = settle_slots(&ctx, 2, Durability::NoSync).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::USAGE, "{e}");
    assert!(e.to_string().contains("--slots 5"), "{e}");
    assert_eq!(recorded_slots(&ctx).unwrap(), Some(5));
}
