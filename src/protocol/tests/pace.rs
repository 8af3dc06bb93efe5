use super::*;
use crate::protocol::pace::{waiters_ahead, Place, FAST_PLACES};

fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    d.as_millis() as i64
}

/// A claim of `host`'s `pid` whose nonce says it was made `ms_ago`
/// milliseconds ago, with a fresh mtime unless `old`.
pub(super) fn plant_claim(f: &Fixture, host: &str, pid: u32, ms_ago: i64, old: bool) -> PathBuf {
    let nonce = format!("{:012x}0000", now_ms() - ms_ago);
    let path = f
        .lock
        .in_dir(&f.lock.aux_name(AuxKind::Claim, &nonce, pid, host));
    let file = std::fs::File::create(&path).unwrap();
    if old {
        file.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }
    path
}

/// Our place in line counts the waiters that came before us and still
/// wait: not those that came after, nor the holder's claim, nor a claim
/// with two links (the holder's, or one a breaker pinned), nor one not
/// refreshed for long, nor one of a process gone from this host.
#[test]
fn a_place_counts_live_earlier_waiters_only() {
    let f = Fixture::new();
    let ctx = f.ctx();
    let here = f.env.identity().host.clone();
    let place = |holder: Option<&std::ffi::OsStr>| {
        let mine = plant_claim(&f, &here, std::process::id(), 0, false);
        let nonce = f.lock.parse_aux(mine.file_name().unwrap()).unwrap().nonce;
        let ms = now_ms();
        let now = FsTime::from_parts(ms / 1000, ms % 1000 * 1_000_000);
        let n = waiters_ahead(&ctx, mine.file_name().unwrap(), &nonce, holder, now);
        std::fs::remove_file(&mine).unwrap();
        n
    };
    assert_eq!(place(None).ahead, 0);
    // Later, stale, pinned, gone: none of them counts.
    plant_claim(&f, "elsewhere", 7, -5000, false);
    plant_claim(&f, "elsewhere", 8, 5000, true);
    let pinned = plant_claim(&f, "elsewhere", 9, 5000, false);
    std::fs::hard_link(&pinned, f.dir.path().join("pin")).unwrap();
    let dead = LiveOwner::new();
    let gone = dead.owner.pid;
    drop(dead);
    plant_claim(&f, &here, gone, 5000, false);
    assert_eq!(place(None).ahead, 0, "{:?}", f.names());
    // A live waiter of another host, and the holder's claim.
    let theirs = plant_claim(&f, "elsewhere", 10, 4000, false);
    // Its changes raise no events here: nothing to watch.
    assert_eq!(
        place(None),
        Place {
            ahead: 1,
            next_here: None
        }
    );
    assert_eq!(place(theirs.file_name()).ahead, 0);
    // A live process of this host: counted without a look at its claim.
    let alive = LiveOwner::new();
    let ours = plant_claim(&f, &here, alive.owner.pid, 3000, false);
    let lstats = f.fs.calls(Op::Lstat);
    // The nearest, of this host: the one a quiet waiter watches.
    assert_eq!(
        place(None),
        Place {
            ahead: FAST_PLACES,
            next_here: Some(ours)
        }
    );
    // Nearest first, and no further than two live ones: one lstat at most
    // (the other host's claim), none for this host's.
    assert!(f.fs.calls(Op::Lstat) - lstats <= 1);
}

/// On NFS (no change events) a waiter with two live waiters ahead of it
/// polls quietly, at its poll cap, where the first two in line start at
/// the poll floor; and it says so under -v. The first in line, while the
/// holder is new (a second), pauses no more than two poll floors; the
/// second backs off to the cap.
#[test]
fn a_waiter_behind_two_others_polls_at_the_cap() {
    let pauses = |ahead: usize| {
        let f = Fixture::new();
        f.plant_other_lock(b"theirs");
        for k in 0..ahead {
            plant_claim(&f, "elsewhere", 100 + k as u32, 2000 + k as i64, false);
        }
        let mut opts = f.opts();
        opts.watch = Some(false);
        opts.wait = Some(Duration::from_millis(300));
        opts.poll_min = Duration::from_millis(20);
        opts.poll_max = Duration::from_millis(200);
        acquire(&f.ctx(), &opts).unwrap_err();
        assert!(f.env.saw(&format!("ahead: {}", ahead.min(FAST_PLACES))));
        let sleeps = f.env.sleeps.lock().unwrap().clone();
        sleeps
    };
    let first = pauses(0);
    assert!(first[0] <= Duration::from_millis(20));
    assert!(
        first.iter().all(|&p| p <= Duration::from_millis(40)),
        "{first:?}"
    );
    let second = pauses(1);
    assert!(second[0] <= Duration::from_millis(20));
    assert!(
        second.iter().any(|&p| p > Duration::from_millis(40)),
        "{second:?}"
    );
    let quiet = pauses(2)[0];
    assert!(quiet >= Duration::from_millis(100), "{quiet:?}");
}

/// Takes the lock after a wait: someone else's lock is there until a
/// helper removes it. With `waiter`, another host's claim waits too.
fn take_after_a_wait(f: &Fixture, waiter: bool) -> Held {
    f.plant_other_lock(b"theirs");
    if waiter {
        plant_claim(f, "elsewhere", 100, 1000, false);
    }
    let mut opts = f.opts();
    opts.watch = Some(false);
    opts.wait = Some(Duration::from_secs(20));
    let lock = f.lock.path.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::remove_file(&lock).unwrap();
        });
        acquire(&f.ctx(), &opts).unwrap()
    })
}

/// Releases `held`: the naps the release took, and its listings.
fn release_counting(f: &Fixture, held: Held) -> (Vec<Duration>, usize) {
    let (lists, before) = (f.fs.calls(Op::List), f.env.sleeps.lock().unwrap().len());
    held.release(&f.ctx()).unwrap();
    let naps = f.env.sleeps.lock().unwrap()[before..].to_vec();
    (naps, f.fs.calls(Op::List) - lists)
}

/// A holder that took the lock after a wait, with another's claim beside
/// it, gives that waiter a moment after its release (naps from 5 ms,
/// at most 80 ms in all, each followed by an lstat of the lock), so that
/// the releaser's own next acquisition does not take the lock again
/// first. Without waiters the release returns at once.
#[test]
fn a_release_with_waiters_behind_gives_them_a_moment() {
    let naps_after_release = |waiter: bool| {
        let f = Fixture::new();
        let held = take_after_a_wait(&f, waiter);
        let before = (f.env.sleeps.lock().unwrap().len(), f.fs.calls(Op::Lstat));
        held.release(&f.ctx()).unwrap();
        let naps = f.env.sleeps.lock().unwrap()[before.0..].to_vec();
        (naps, f.fs.calls(Op::Lstat) - before.1)
    };
    let (naps, _) = naps_after_release(false);
    assert!(naps.is_empty(), "{naps:?}");
    let (naps, lstats) = naps_after_release(true);
    assert_eq!(naps.first(), Some(&Duration::from_millis(5)), "{naps:?}");
    assert!(naps.iter().sum::<Duration>() <= Duration::from_millis(80));
    // The release's own lstat, one of the waiter's claim (is it live?),
    // then one after each nap.
    assert_eq!(lstats, 2 + naps.len(), "{naps:?}");
}

/// A first in line of this host is woken by the release itself (on NFS
/// too: the kernel reports its own mount's changes), so the releaser
/// returns at once; a waiter of another host behind it does not matter.
#[test]
fn a_release_gives_no_moment_when_the_first_in_line_is_of_this_host() {
    let f = Fixture::new();
    let here = f.env.identity().host.clone();
    let alive = LiveOwner::new();
    plant_claim(&f, &here, alive.owner.pid, 3000, false);
    let held = take_after_a_wait(&f, true);
    let (naps, lists) = release_counting(&f, held);
    assert_eq!(lists, 1);
    assert!(naps.is_empty(), "{naps:?}");
    // Gone, it is no first in line: the other host's waiter gets its moment.
    drop(alive);
    let f = Fixture::new();
    let dead = LiveOwner::new();
    let gone = dead.owner.pid;
    drop(dead);
    plant_claim(&f, &here, gone, 3000, false);
    let held = take_after_a_wait(&f, true);
    let (naps, _) = release_counting(&f, held);
    assert_eq!(naps.first(), Some(&Duration::from_millis(5)), "{naps:?}");
}

/// A holder that took the lock after a wait with only this host's claims
/// beside it does not list the directory at its release: the release
/// itself wakes those waiters, and on NFS a listing is a round trip
/// through the client the next holder is using.
#[test]
fn a_release_with_only_this_hosts_waiters_behind_does_not_look() {
    let f = Fixture::new();
    let here = f.env.identity().host.clone();
    let alive = LiveOwner::new();
    plant_claim(&f, &here, alive.owner.pid, 3000, false);
    let held = take_after_a_wait(&f, false);
    let (naps, lists) = release_counting(&f, held);
    assert_eq!(lists, 0);
    assert!(naps.is_empty(), "{naps:?}");
    drop(alive);
}

/// A claim nobody refreshes (a crashed host's, or one planted to slow us)
/// is no waiter: the release looks once and returns at once.
#[test]
fn a_dead_waiters_claim_gets_no_moment() {
    let f = Fixture::new();
    // There when the lock is taken, so the release looks (the take's
    // listing sees a claim by name).
    plant_claim(&f, "elsewhere", 101, 2000, true);
    let held = take_after_a_wait(&f, false);
    let (naps, lists) = release_counting(&f, held);
    assert_eq!(lists, 1);
    assert!(naps.is_empty(), "{naps:?}");
}

/// The moment ends as soon as someone holds the lock again.
#[test]
fn a_hand_over_ends_when_the_lock_is_taken() {
    let f = Fixture::new();
    let held = take_after_a_wait(&f, true);
    let before = f.env.sleeps.lock().unwrap().len();
    // The release's own lstat is the first; the next finds a new holder.
    f.fs.on(Op::Lstat, None, 2, f.replace_lock_with(b"next"));
    held.release(&f.ctx()).unwrap();
    let naps = f.env.sleeps.lock().unwrap()[before..].to_vec();
    assert_eq!(naps, [Duration::from_millis(5)]);
}

/// A lock taken at once looks for waiters at its release only after a
/// hold of 20 ms or more (one listing): a quick uncontended cycle spends
/// nothing more, a long one gives a waiter that came meanwhile its moment.
/// Where waiters are woken by events (local disk), never.
#[test]
fn a_long_hold_taken_at_once_looks_for_waiters_at_its_release() {
    let release_as = |hold: Duration, watch: bool| {
        let f = Fixture::new();
        let mut opts = f.opts();
        opts.watch = Some(watch);
        f.env.stop_clock();
        let held = acquire(&f.ctx(), &opts).unwrap();
        plant_claim(&f, "elsewhere", 100, 0, false);
        // The hold, on the stopped clock (not counted as a nap below).
        f.env.sleep(hold);
        let (lists, naps) = (f.fs.calls(Op::List), f.env.sleeps.lock().unwrap().len());
        held.release(&f.ctx()).unwrap();
        let naps = f.env.sleeps.lock().unwrap().len() - naps;
        (f.fs.calls(Op::List) - lists, naps)
    };
    let release = |hold| release_as(hold, false);
    assert_eq!(release(Duration::ZERO), (0, 0));
    let (lists, naps) = release(Duration::from_millis(30));
    assert_eq!(lists, 1);
    assert!(naps >= 1);
    assert_eq!(release_as(Duration::from_millis(30), true), (0, 0));
}

/// A quiet waiter (two live waiters ahead) whose nearest is a process of
/// this host wakes when that waiter's claim loses its name (its waiter
/// released the lock, or left), long before its poll cap, and tries the
/// lock; that waiter refreshing its claim or taking the lock (a new link)
/// wakes nothing, and costs nothing.
#[test]
fn a_quiet_waiter_wakes_when_the_waiter_ahead_here_is_done() {
    let f = Fixture::new();
    f.plant_other_lock(b"theirs");
    let here = crate::sysenv::SysEnv::new().identity().host.clone();
    plant_claim(&f, "elsewhere", 100, 5000, false);
    let alive = LiveOwner::new();
    let ahead = plant_claim(&f, &here, alive.owner.pid, 3000, false);
    let waiter_fs = FaultFs::new(RealFs);
    let mut opts = f.opts();
    opts.watch = Some(false);
    opts.wait = Some(Duration::from_secs(4));
    opts.poll_max = Duration::from_secs(30);
    let lock = f.lock.clone();
    let calls = || (waiter_fs.calls(Op::Link), waiter_fs.calls(Op::Lstat));
    let (got, woke_in) = std::thread::scope(|s| {
        let w = s.spawn(|| acquire_as_nfslock_does(&waiter_fs, &lock, &opts, |_, held| held));
        let began = Instant::now();
        while calls().0 == 0 {
            assert!(began.elapsed() < Duration::from_secs(3), "never tried");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
        let quiet = calls();
        set_times(&ahead, 2_000_000_000);
        std::fs::hard_link(&ahead, f.dir.path().join("pin")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            calls(),
            quiet,
            "a refresh or a link ahead is no reason to look"
        );
        std::fs::remove_file(f.dir.path().join("pin")).unwrap();
        std::fs::remove_file(&ahead).unwrap();
        let done = Instant::now();
        while calls().0 < 2 && done.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let woke_in = done.elapsed();
        (w.join().unwrap(), woke_in)
    });
    assert!(matches!(got, Err(Error::Busy { .. })), "{got:?}");
    // Then second in line: it polls from the floor up.
    assert!(calls().0 > 3, "{:?}", calls());
    // Its poll cap is 30 s (cut to the 4 s wait); the bound leaves a
    // loaded machine 2 s.
    assert!(woke_in < Duration::from_secs(2), "{woke_in:?}");
}

/// A waiter behind the two planted ones, polling as on NFS (every 50 ms
/// at most) through the directory's descriptor, as the command does there;
/// it gives up after `wait`.
fn quiet_waiter(f: &Fixture, wait: Duration) -> (FaultFs<AnchoredFs>, AcquireOptions) {
    plant_claim(f, "elsewhere", 100, 5000, false);
    plant_claim(f, "elsewhere", 101, 4000, false);
    let mut opts = f.opts();
    opts.watch = Some(false);
    opts.wait = Some(wait);
    opts.poll_max = Duration::from_millis(50);
    (FaultFs::new(AnchoredFs::new(&f.lock.dir)), opts)
}

/// Watches `fs` for 300 ms: its counts of tries and of looks at the
/// directory then, if it made no try and looked at least three times.
fn quiet_for_a_while(fs: &FaultFs<AnchoredFs>) -> Option<(usize, usize)> {
    let calls = || (fs.calls(Op::Link), fs.calls(Op::StatDir));
    let before = calls();
    std::thread::sleep(Duration::from_millis(300));
    let after = calls();
    (after.0 == before.0 && after.1 >= before.1 + 3).then_some(after)
}

/// A waiter behind two live waiters, under a holder that stays, asks for
/// the directory's times (one call) instead of trying the lock while no
/// name in the directory changes; a change there makes it try at its next
/// poll. Through the directory's descriptor, as the command does on NFS.
#[test]
fn a_quiet_waiter_polls_the_directory_until_a_name_in_it_changes() {
    let f = Fixture::new();
    f.plant_other_lock(b"theirs");
    let (waiter_fs, opts) = quiet_waiter(&f, Duration::from_secs(5));
    let lock = f.lock.clone();
    let quiet = |since: Instant, what: &str| {
        let counts = quiet_for_a_while(&waiter_fs);
        assert!(since.elapsed() < Duration::from_secs(4), "{what}");
        counts
    };
    let got = std::thread::scope(|s| {
        let w = s.spawn(|| acquire_as_nfslock_does(&waiter_fs, &lock, &opts, |_, held| held));
        let began = Instant::now();
        let still = loop {
            if let Some(c) = quiet(began, "never quiet") {
                break c;
            }
        };
        std::fs::write(f.dir.path().join("new-name"), b"").unwrap();
        let changed = Instant::now();
        while waiter_fs.calls(Op::Link) == still.0 {
            assert!(
                changed.elapsed() < Duration::from_secs(1),
                "no try after a change"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // Then quiet again, once the change is older than its try.
        while quiet(changed, "not quiet again").is_none() {}
        w.join().unwrap()
    });
    assert!(matches!(got, Err(Error::Busy { .. })), "{got:?}");
}

/// A quiet waiter whose holder is a process of this host tries the lock
/// as soon as that process is gone (a pid probe at its poll), though no
/// name in the directory moved: it breaks the dead owner's lock and takes
/// it within a poll or two, not at its minute's try.
#[test]
fn a_quiet_waiter_tries_when_its_holder_here_dies() {
    let f = Fixture::new();
    let alive = LiveOwner::new();
    let mut theirs = f.opts();
    theirs.owner = alive.owner;
    let _held = acquire(&f.ctx(), &theirs).unwrap();
    let (waiter_fs, opts) = quiet_waiter(&f, Duration::from_secs(8));
    let lock = f.lock.clone();
    let (got, took) = std::thread::scope(|s| {
        let w = s.spawn(|| acquire_as_nfslock_does(&waiter_fs, &lock, &opts, |_, held| held));
        let began = Instant::now();
        while quiet_for_a_while(&waiter_fs).is_none() {
            assert!(began.elapsed() < Duration::from_secs(4), "never quiet");
        }
        let died = Instant::now();
        drop(alive);
        (w.join().unwrap(), died.elapsed())
    });
    let held = got.expect("the dead owner's lock broken and taken");
    held.release(&f.ctx()).unwrap();
    // Its poll cap is 50 ms; the bound leaves a loaded machine 2 s.
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// A reader's claim tells no arrival (its nonce is random): a release
/// looks for the first in line among exclusive claims first, so a reader
/// of this host whose nonce happens to sort low does not take away the
/// moment of a writer of another host that came first.
#[test]
fn a_readers_random_nonce_does_not_put_it_first_in_line() {
    let f = Fixture::new();
    let here = f.env.identity().host.clone();
    let alive = LiveOwner::new();
    let name = f
        .lock
        .aux_name(AuxKind::Share, "0000000000000000", alive.owner.pid, &here);
    std::fs::File::create(f.lock.in_dir(&name)).unwrap();
    let held = take_after_a_wait(&f, true);
    let (naps, _) = release_counting(&f, held);
    assert_eq!(naps.first(), Some(&Duration::from_millis(5)), "{naps:?}");
    drop(alive);
}
