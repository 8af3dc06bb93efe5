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
