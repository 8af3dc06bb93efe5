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
