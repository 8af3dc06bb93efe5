use crate::util::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[test]
fn stop_signals_while_waiting_leave_no_claim() {
    let s = Scratch::new();
    let _h = s.hold("l", &[]);
    for (sig, code) in [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
    ] {
        let waiter = piped(s.cmd(["acquire", "l"]));
        eventually("the waiter's claim", || s.litter().len() == 2);
        kill(Pid::from_raw(waiter.id() as i32), sig).unwrap();
        wait_out(waiter, "waiter").code(code);
        assert_eq!(s.litter().len(), 1, "{sig}: {:?}", s.litter());
    }
}

#[test]
fn break_sweeps_the_claim_of_a_killed_waiter() {
    let s = Scratch::new();
    let _h = s.hold("l", &[]);
    let mut owner = sleeper();
    let waiter = piped(s.cmd(["acquire", "--pid", &owner.pid, "l"]));
    eventually("the waiter's claim", || s.litter().len() == 2);
    // SIGKILL leaves no chance to clean up; then its owner dies too.
    kill(Pid::from_raw(waiter.id() as i32), Signal::SIGKILL).unwrap();
    let _ = wait_out(waiter, "waiter");
    assert_eq!(s.litter().len(), 2, "the killed waiter's claim is there");
    owner.kill();
    // The lock is live, so break refuses; the dead waiter's claim goes anyway.
    s.run(["break", "l"]).code(75);
    assert_eq!(s.litter().len(), 1, "{:?}", s.litter());
}

/// A waiter killed while it waited leaves a claim named after itself, not
/// after its owner: the owner shell that lives on keeps nothing alive, and
/// the next contended acquire sweeps the claim.
#[test]
fn a_killed_waiters_claim_is_litter_while_its_owner_lives() {
    let s = Scratch::new();
    let holder = s.hold("l", &[]);
    let owner = sleeper();
    let waiter = piped(s.cmd(["acquire", "--pid", &owner.pid, "l"]));
    eventually("the waiter's claim", || s.litter().len() == 2);
    kill(Pid::from_raw(waiter.id() as i32), Signal::SIGKILL).unwrap();
    let _ = wait_out(waiter, "waiter");
    let next = sleeper();
    let second = piped(s.cmd(["acquire", "-w", "30s", "--pid", &next.pid, "l"]));
    eventually("the second waiter's claim", || s.litter().len() == 3);
    s.run(["release", "--pid", &holder.pid, "l"]).code(0);
    wait_out(second, "second waiter").code(0);
    assert_eq!(s.litter().len(), 1, "{:?}", s.litter());
    s.run(["release", "--pid", &next.pid, "l"]).code(0);
    s.assert_no_litter();
    drop(owner);
}

/// The break line gives its reason once.
#[test]
fn a_break_says_its_reason_once() {
    let s = Scratch::new();
    let mut h = s.hold("l", &[]);
    h.kill();
    let out = s.run(["break", "l"]);
    out.code(0);
    assert_eq!(out.stderr.matches("is gone").count(), 1, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}
