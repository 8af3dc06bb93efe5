use super::*;

/// On local disk a waiter sleeps until the release wakes it: over a
/// 1.5 s wait it tries the link a handful of times at most, where
/// backoff polling from 20 ms would try about seven.
#[test]
fn a_local_waiter_is_woken_by_the_release_not_by_polling() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let (got, waiter_fs) = f.wait_on_local_disk(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(1500));
        held.release(&f.ctx()).unwrap();
    });
    let _taken = got.expect("the waiter takes the lock after the release");
    let links = waiter_fs.calls(Op::Link);
    assert!((2..=4).contains(&links), "{links} link attempts");
}

/// On local disk waiters queue: each watches the claim of the one ahead
/// of it, so a release wakes the oldest waiter, and the lock goes round
/// in arrival order (a herd racing for it would pick any order: the
/// right one by chance one time in 24).
#[test]
fn local_waiters_take_the_lock_in_arrival_order() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let claims = || {
        f.names()
            .iter()
            .filter(|n| n.contains(".nfslock-claim."))
            .count()
    };
    let order = std::sync::Mutex::new(Vec::new());
    let owners: Vec<LiveOwner> = (0..4).map(|_| LiveOwner::new()).collect();
    std::thread::scope(|s| {
        for (i, waiter) in owners.iter().enumerate() {
            let (lock, order) = (f.lock.clone(), &order);
            let mut opts = f.opts();
            opts.owner = waiter.owner;
            opts.wait = Some(Duration::from_secs(60));
            opts.watch = Some(true);
            s.spawn(move || {
                acquire_as_nfslock_does(&RealFs, &lock, &opts, |ctx, held| {
                    order.lock().unwrap().push(i);
                    // Hold long enough for the next to find it busy.
                    std::thread::sleep(Duration::from_millis(20));
                    held.release(ctx).unwrap();
                })
                .unwrap();
            });
            // The next waiter comes once this one waits (its claim is
            // there beside the holder's and the earlier waiters').
            let began = std::time::Instant::now();
            while claims() < i + 2 {
                assert!(
                    began.elapsed() < Duration::from_secs(30),
                    "waiter {i} never waited"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        held.release(&f.ctx()).unwrap();
    });
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// A waiter ahead in the queue that never moves (stopped, or its claim
/// left by a process whose pid lives on) holds the one behind it for
/// 2 s at most, not for the 10 s fallback poll.
#[test]
fn a_stuck_waiter_ahead_holds_the_queue_briefly() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    // A claim older than the waiter's, of a live pid (ours) that will
    // never act on it.
    let stuck = f.claim_of(std::process::id());
    std::fs::write(&stuck, b"stuck").unwrap();
    let began = std::time::Instant::now();
    let (got, _) = f.wait_on_local_disk(WATCH_FALLBACK * 2, || {
        std::thread::sleep(Duration::from_millis(100));
        held.release(&f.ctx()).unwrap();
    });
    let took = began.elapsed();
    got.expect("the waiter gets the lock")
        .release(&f.ctx())
        .unwrap();
    std::fs::remove_file(&stuck).unwrap();
    // Due after 2 s; the fallback poll would be 10 s. The bound leaves
    // a loaded machine 3 s.
    assert!(took < WATCH_FALLBACK / 2, "{took:?}");
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// On a remote filesystem waiters poll (another host's release raises no
/// event here), but the first in line also wakes when a process of this
/// host moves the lock away: with a 5 s poll floor it takes the lock long
/// before its next poll would.
#[test]
fn a_polling_waiter_is_woken_by_a_release_on_this_host() {
    let f = Fixture::new();
    let held = acquire(&f.ctx(), &f.opts()).unwrap();
    let waiter_fs = FaultFs::new(RealFs);
    let waiter = LiveOwner::new();
    let mut opts = f.opts();
    opts.owner = waiter.owner;
    opts.wait = Some(Duration::from_secs(60));
    opts.watch = Some(false);
    opts.poll_min = Duration::from_secs(5);
    opts.poll_max = Duration::from_secs(5);
    let lock = f.lock.clone();
    let (got, took) = std::thread::scope(|s| {
        let w = s.spawn(|| acquire_as_nfslock_does(&waiter_fs, &lock, &opts, |_, held| held));
        // Released once the waiter has found the lock taken.
        let began = std::time::Instant::now();
        while waiter_fs.calls(Op::Link) == 0 {
            assert!(began.elapsed() < Duration::from_secs(30), "never tried");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
        let released = std::time::Instant::now();
        held.release(&f.ctx()).unwrap();
        (w.join().unwrap(), released.elapsed())
    });
    got.expect("the waiter takes the lock after the release")
        .release(&f.ctx())
        .unwrap();
    assert_eq!(waiter_fs.calls(Op::Link), 2);
    // Its next poll was due 5-10 s after the first; the bound leaves a
    // loaded machine 2.5 s.
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// A lock someone keeps touching wakes a remote first in line at every
/// touch (inotify, this host), yet its tries stay at most one per poll
/// floor: an event cuts a pause short, it never makes a spin.
#[test]
fn a_lock_touched_without_pause_paces_a_polling_waiter_like_a_poll() {
    let f = Fixture::new();
    f.plant_other_lock(b"theirs");
    let waiter_fs = FaultFs::new(RealFs);
    let mut opts = f.opts();
    opts.wait = Some(Duration::from_millis(1500));
    opts.watch = Some(false);
    opts.poll_min = Duration::from_millis(100);
    opts.poll_max = Duration::from_secs(5);
    let lock = f.lock.clone();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (got, touches) = std::thread::scope(|s| {
        let toucher = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                set_times(&f.lock.path, 1_000_000_000 + i64::from(n));
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            n
        });
        let got = acquire_as_nfslock_does(&waiter_fs, &lock, &opts, |_, held| held);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (got, toucher.join().unwrap())
    });
    assert!(matches!(got, Err(Error::Busy { .. })), "{got:?}");
    assert!(touches > 200, "{touches}");
    // 1.5 s at one try per 100 ms at most, plus the first and the last.
    let links = waiter_fs.calls(Op::Link);
    assert!(links <= 18, "{links} tries for {touches} touches");
}

/// No event marks a lease running out: a waiter woken by events still
/// wakes when the lock is due to go stale, long before its 10 s
/// fallback poll.
#[test]
fn a_local_waiter_wakes_when_the_lease_runs_out() {
    let f = Fixture::new();
    let mut holder = f.opts();
    holder.lease = Some(Duration::from_millis(500));
    let _held = acquire(&f.ctx(), &holder).unwrap();
    let began = std::time::Instant::now();
    let (got, _) = f.wait_on_local_disk(WATCH_FALLBACK * 2, || {});
    let _taken = got.expect("the expired lease is broken");
    // Due after 0.5 s; a waiter that slept until its fallback poll
    // would take 10 s. The bound leaves a loaded machine 4.5 s.
    assert!(
        began.elapsed() < WATCH_FALLBACK / 2,
        "{:?}",
        began.elapsed()
    );
}

/// A poll of a lock that has not changed costs a link and an lstat:
/// its record is read once, not at every poll (one round trip less per
/// poll on NFS, where a read is an open, a read and a close).
#[test]
fn polling_an_unchanged_lock_reads_it_once() {
    let f = Fixture::new();
    f.plant_other_lock(b"theirs");
    let mut opts = f.opts();
    opts.wait = Some(Duration::from_millis(300));
    opts.poll_max = Duration::from_millis(5);
    let e = acquire(&f.ctx(), &opts).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::BUSY);
    let (links, reads) = (f.fs.calls(Op::Link), f.fs.calls(Op::Read));
    assert!(links > 3, "{links} polls");
    // Once while polling, once more by the clean-up's fresh look.
    assert!(reads <= 2, "{reads} reads in {links} polls");
}

/// Polling (remote filesystems) backs off while the same holder keeps
/// the lock, and starts fast again when the holder changes: the next
/// holder may be quick, and its release should not wait a second. (The
/// second in line, behind another host's waiter: the first keeps its
/// pauses short while a holder is new, see `pace`.)
#[test]
fn polling_backs_off_and_restarts_when_the_holder_changes() {
    let f = Fixture::new();
    f.plant_other_lock(b"first");
    super::pace::plant_claim(&f, "elsewhere", 100, 1000, false);
    // Before the 9th link attempt (after 8 polls), a new holder.
    f.fs.on(Op::Link, Some("claim"), 9, f.replace_lock_with(b"second"));
    let mut opts = f.opts();
    opts.wait = Some(Duration::from_millis(400));
    opts.watch = Some(false);
    opts.poll_min = Duration::from_millis(20);
    opts.poll_max = Duration::from_secs(1);
    acquire(&f.ctx(), &opts).unwrap_err();
    let sleeps = f.env.sleeps.lock().unwrap().clone();
    assert!(sleeps.len() > 10, "{sleeps:?}");
    // Doubling with jitter (half to all of each step, and never past
    // the deadline): the 5th pause is 160-320 ms. After the change of
    // holder it is back to 10-20 ms.
    assert!(sleeps[4] >= Duration::from_millis(160), "{sleeps:?}");
    assert!(sleeps[8] <= Duration::from_millis(20), "{sleeps:?}");
}

/// A fault action for the `nth` link attempt: the holder's lock goes,
/// and with `lost` our link takes at once with its reply lost (the real
/// call then meets EEXIST), as a retransmitted NFS LINK reports it.
fn release_before_link(f: &Fixture, lost: bool) -> Fault {
    let (dir, lock) = (f.dir.path().to_path_buf(), f.lock.path.clone());
    Fault::Before(Box::new(move || {
        std::fs::remove_file(&lock).unwrap();
        if lost {
            let claim = claim_files(&dir).pop().unwrap();
            std::fs::hard_link(claim, &lock).unwrap();
        }
    }))
}

/// Polling at a cap of 1 s from the start (pauses are cut to 5 ms here),
/// no claim refresh, a minute to wait.
fn at_the_cap(f: &Fixture) -> AcquireOptions {
    let mut opts = f.opts();
    opts.watch = Some(false);
    opts.poll_min = Duration::from_secs(1);
    opts.poll_max = Duration::from_secs(1);
    opts.refresh_claim_after = Duration::from_secs(3600);
    opts.wait = Some(Duration::from_secs(60));
    opts
}

/// A waiter at the poll cap takes every other failed link for the
/// instance it last looked at: half an lstat a poll saved (a round trip
/// on NFS), and its pauses keep to the cap's top 15%.
#[test]
fn a_waiter_at_the_cap_looks_every_other_poll() {
    let f = Fixture::new();
    f.plant_other_lock(b"theirs");
    f.fs.on(Op::Link, Some("claim"), 21, release_before_link(&f, false));
    let held = acquire(&f.ctx(), &at_the_cap(&f)).unwrap();
    let (links, lstats) = (f.fs.calls(Op::Link), f.fs.calls(Op::Lstat));
    assert_eq!(links, 21);
    // Ten looks in twenty busy polls, and the one that found it ours.
    assert!(
        (10..=12).contains(&lstats),
        "{lstats} lstats in {links} polls"
    );
    let sleeps = f.env.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 20, "{sleeps:?}");
    let cap = Duration::from_secs(1);
    assert!(
        sleeps.iter().all(|s| *s >= cap * 17 / 20 && *s <= cap),
        "{sleeps:?}"
    );
    held.release(&f.ctx()).unwrap();
    assert!(f.names().is_empty(), "{:?}", f.names());
}

/// A link that took with its reply lost, on a poll at the cap that goes
/// unlooked or not: the lock is found ours at the next look, once held.
#[test]
fn a_lost_link_reply_at_the_cap_is_found_ours() {
    for nth in [10, 11] {
        let f = Fixture::new();
        f.plant_other_lock(b"theirs");
        f.fs.on(Op::Link, Some("claim"), nth, release_before_link(&f, true));
        let held = acquire(&f.ctx(), &at_the_cap(&f)).unwrap();
        assert!(f.fs.calls(Op::Link) <= nth + 1, "found within a poll");
        use std::os::unix::fs::MetadataExt;
        let lock = std::fs::symlink_metadata(&f.lock.path).unwrap();
        let claim = std::fs::symlink_metadata(&held.claim).unwrap();
        assert_eq!((lock.ino(), lock.nlink()), (claim.ino(), 2));
        held.release(&f.ctx()).unwrap();
        assert!(f.names().is_empty(), "{:?}", f.names());
    }
}

/// A waiter whose claim is deleted while the lock is taken (by hand, or
/// by a mistaken sweep) starts over with a fresh claim at its next
/// refresh, whatever its link said, and takes the lock once it is free:
/// no error, and nothing left behind.
#[test]
fn a_waiter_whose_claim_is_deleted_starts_over() {
    let f = Fixture::new();
    f.plant_other_lock(b"theirs");
    let mut opts = at_the_cap(&f);
    opts.refresh_claim_after = Duration::ZERO;
    let dir = f.dir.path().to_path_buf();
    f.fs.on(
        Op::Link,
        Some("claim"),
        3,
        Fault::Before(Box::new(move || {
            for p in claim_files(&dir) {
                std::fs::remove_file(p).unwrap();
            }
        })),
    );
    f.fs.on(Op::Link, Some("claim"), 6, release_before_link(&f, false));
    let held = acquire(&f.ctx(), &opts).expect("the waiter starts over and takes the lock");
    assert_eq!(f.fs.calls(Op::Create), 2, "one claim deleted, one fresh");
    held.release(&f.ctx()).unwrap();
    assert!(f.litter().is_empty(), "{:?}", f.litter());
    assert!(!f.lock.path.exists());
}
