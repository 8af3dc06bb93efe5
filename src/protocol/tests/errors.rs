use super::*;

/// Where protected_hardlinks refuses the breaker's pin (another user's
/// file), the break still removes exactly the judged instance: by a
/// rename that it checks, and undoes for any other instance.
#[test]
fn a_refused_pin_still_breaks_precisely() {
    let f = Fixture::new();
    let mut o = f.opts();
    o.owner = dead_owner();
    let _dead = acquire(&f.ctx(), &o).unwrap();
    f.fs.on(Op::Link, Some("guard"), 0, Fault::Fail(EPERM));
    let out = break_lock(&f.ctx(), BreakOptions::default()).unwrap();
    assert!(matches!(out, BreakOutcome::Broken { .. }), "{out:?}");
    assert!(f.names().is_empty(), "{:?}", f.names());
    // A lock that was replaced after the judgement survives.
    let _dead = acquire(&f.ctx(), &o).unwrap();
    let judged = f.ctx().inspect(None).unwrap().unwrap();
    f.plant_other_lock(b"0\n");
    assert_eq!(
        f.ctx().break_instance(&judged, BreakBy::Verdict).unwrap(),
        Removal::Changed
    );
    assert_eq!(f.lock_bytes().unwrap(), b"0\n");
}

/// We may not move another user's lock (a sticky directory): the
/// break says so, changes nothing, and acquire waits at its pace.
#[test]
fn a_lock_we_may_not_move_is_refused_and_waited_for() {
    let f = Fixture::new();
    let mut o = f.opts();
    o.owner = dead_owner();
    let _dead = acquire(&f.ctx(), &o).unwrap();
    let lock = f.lock_bytes();
    f.fs.on(Op::Rename, Some("/l ->"), 0, Fault::Fail(EPERM));
    f.fs.on(Op::Link, Some("guard"), 0, Fault::Fail(EPERM));
    let out = break_lock(&f.ctx(), BreakOptions::default()).unwrap();
    assert!(matches!(out, BreakOutcome::NotPermitted { .. }), "{out:?}");
    assert_eq!(f.lock_bytes(), lock);
    // (Its sweep removed the dead owner's claim: no fault refused that.)
    let before = f.names();
    let mut w = f.opts();
    w.wait = Some(Duration::from_millis(300));
    let e = acquire(&f.ctx(), &w).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Busy {
                unbreakable: Some(_),
                timed_out: true,
                ..
            }
        ),
        "{e}"
    );
    // Tried to break once, not at every poll.
    assert_eq!(f.fs.calls(Op::Rename), 2, "one break, one for break_lock");
    assert_eq!(f.names(), before);
}

#[test]
fn a_persistent_error_gives_up_cleanly() {
    let f = Fixture::new();
    f.fs.on(Op::Lstat, None, 0, Fault::Fail(EIO));
    let e = acquire(&f.ctx(), &f.opts()).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::IO, "{e}");
    assert!(f.env.saw("Retrying"));
    // It could not tell whether its link took: what it left is its own,
    // and its owner's release removes all of it once the server answers.
    f.fs.clear();
    let me = Who::Owner(f.opts().owner);
    let _ = release(&f.ctx(), &me);
    assert!(f.names().is_empty(), "{:?}", f.names());
}
