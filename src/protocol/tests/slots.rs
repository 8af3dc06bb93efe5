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

/// A waiter that finds every slot held by a live owner lists the
/// directory at its pace, reads each held slot once (the next look is due
/// when one may go stale), and makes no claim: waiting on N slots costs
/// what waiting on one lock costs, not N times that.
#[test]
fn a_blocked_slot_waiter_lists_and_reads_each_held_slot_once() {
    use crate::protocol::slots::{acquire_slot, slot_lock};
    let f = Fixture::new();
    let holder = LiveOwner::new();
    for k in 1..=2 {
        let lock = slot_lock(&f.lock, k);
        let ctx = Ctx::new(&f.fs, &f.env, &lock, Duration::from_secs(5));
        let mut o = f.opts();
        o.owner = holder.owner;
        std::mem::forget(acquire(&ctx, &o).unwrap());
    }
    settle_slots(&f.ctx(), 2, Durability::NoSync).unwrap();
    let count = || [Op::List, Op::Read, Op::Create].map(|op| f.fs.calls(op));
    let before = count();
    let mut o = f.opts();
    o.wait = Some(Duration::from_millis(400));
    o.watch = Some(false);
    let err = acquire_slot(&f.ctx(), 2, &o).err().unwrap();
    assert_eq!(err.exit_code(), crate::exit::BUSY, "{err}");
    let after = count();
    let (lists, reads, creates) = (
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2],
    );
    assert!(lists >= 3, "it polled: {lists} listings");
    // The probe of the one look, and the place in line (a probe for its
    // time, the ticket): no claim.
    assert_eq!(creates, 3, "claims made while every slot was held");
    assert!(
        f.names().iter().all(|n| !n.contains("nfslock-wait")),
        "the waiter left the line: {:?}",
        f.names()
    );
    assert_eq!(reads, 2, "each held slot read once");
    assert!(
        err.to_string().contains("slot 1 held by") && err.to_string().contains("slot 2 held by"),
        "{err}"
    );
}

/// Callers that keep recording different counts do not spin: they pause
/// between tries, and after a few one gives up (64) while the other's
/// count stands.
#[test]
fn callers_disagreeing_about_the_count_pause_and_one_gives_up() {
    let f = Fixture::new();
    let ctx = f.ctx();
    // Every time we put our 2 in place, another caller's 3 replaces it.
    let path = f.dir.path().join(".l.nfslock-slots");
    let theirs = path.clone();
    f.fs.on(
        Op::Read,
        Some("nfslock-slots"),
        0,
        Fault::Before(Box::new(move || {
            if std::fs::read_to_string(&theirs).is_ok_and(|t| t.contains("slots=2")) {
                std::fs::write(&theirs, "nfslock-slots 1\nslots=3\nnonce=ff\n").unwrap();
            }
        })),
    );
    let e = settle_slots(&ctx, 2, Durability::NoSync).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::USAGE, "{e}");
    assert!(e.to_string().contains("--slots 3"), "{e}");
    let slept = f.env.sleeps.lock().unwrap().len();
    assert!(slept >= 5, "no pause between tries: {slept}");
    assert!(std::fs::read_to_string(&path).unwrap().contains("slots=3"));
}

/// A newcomer defers to a waiter of another host only while that waiter
/// keeps its ticket fresh: a crashed one's ticket does not keep a free
/// slot from it.
#[test]
fn a_newcomer_defers_only_to_a_live_waiter_elsewhere() {
    use crate::protocol::slots::acquire_slot;
    let f = Fixture::new();
    settle_slots(&f.ctx(), 1, Durability::NoSync).unwrap();
    let ticket = f
        .dir
        .path()
        .join(".l.nfslock-wait.0000000000000001.1.elsewhere");
    std::fs::write(&ticket, b"").unwrap();
    let mut o = f.opts();
    o.wait = Some(Duration::ZERO);
    let busy = acquire_slot(&f.ctx(), 1, &o).err().unwrap();
    assert_eq!(busy.exit_code(), crate::exit::BUSY, "{busy}");
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&ticket)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let taken = acquire_slot(&f.ctx(), 1, &o).unwrap();
    assert_eq!(taken.slot, 1);
}
