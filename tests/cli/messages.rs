//! What a person reads when something goes wrong: for every exit code the
//! binary can be made to give here, one line on stderr in one style,
//! `nfslock: LOCK: what happened[; what to do next]`. (69, 70 and 77 need
//! a filesystem, a bug or a second user: `error.rs` walks every code's
//! message, and `multiuser.rs` meets 77 for real.)

use crate::util::*;
use std::process::Stdio;

/// One line, naming `lock` first, saying `what`.
fn says(out: &Out, lock: &str, what: &str) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    let prefix = format!("nfslock: {lock}: ");
    assert!(
        lines[0].starts_with(&prefix),
        "{:?} does not start {prefix:?}",
        lines[0]
    );
    assert!(
        lines[0].contains(what),
        "{:?} does not say {what:?}",
        lines[0]
    );
}

#[test]
fn every_exit_code_says_what_happened_in_one_line_naming_the_lock() {
    let s = Scratch::new();
    // 0 and 1: not errors; nothing on stderr.
    let ok = s.run(["run", "-n", "l", "--", "true"]);
    ok.code(0);
    assert_eq!(ok.stderr, "");
    // 64: a usage error the command line parser cannot see.
    let o = s.run(["acquire", "-n", "--pid", "999999", "l"]);
    o.code(64);
    says(&o, "l", "no such process");
    // 65: someone's data at the lock path.
    std::fs::write(s.path("data"), "a\nb\nc\n").unwrap();
    let o = s.run(["break", "--force", "data"]);
    o.code(65);
    says(&o, "data", "choose another lock path");
    // 66: no directory, and what to do.
    let o = s.run(["acquire", "-n", "no/dir/l"]);
    o.code(66);
    says(&o, "no/dir/l", "directory no/dir does not exist; create it");
    // 73: a name that cannot be made.
    let long = "n".repeat(200);
    let o = s.run(["acquire", "-n", &long]);
    o.code(73);
    says(&o, &long, "use a shorter lock name");
    // 74: the token cannot be written (and the lock is given back).
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut c = s.cmd(["acquire", "--print-token", "t"]);
    let o = Out::from(c.stdout(full).output().unwrap());
    o.code(74);
    says(&o, "t", "cannot write the token (the lock is given back)");
    // 75: busy, with who holds it.
    let h = s.hold("l", &[]);
    let o = s.run(["acquire", "-n", "l"]);
    o.code(75);
    says(&o, "l", &format!("pid {}", h.pid));
    let o = s.run(["break", "l"]);
    o.code(75);
    says(&o, "l", "--force");
    // 76: not yours, and where to look.
    let o = s.run(["release", "--pid", "1", "l"]);
    o.code(76);
    says(&o, "l", "`nfslock status` shows who holds it");
    // 126 and 127: the command could not be run (the lock is let go).
    let o = s.run(["run", "-n", "c", "--", "./no-such-command"]);
    o.code(127);
    says(
        &o,
        "c",
        "./no-such-command: command not found; the lock was released",
    );
    std::fs::write(s.path("not-executable"), "").unwrap();
    let o = s.run(["run", "-n", "c", "--", "./not-executable"]);
    o.code(126);
    says(&o, "c", "cannot execute");
    // 128+n: stopped while waiting.
    let mut c = s.cmd(["acquire", "-w", "30s", "l"]);
    let child = c.stderr(Stdio::piped()).spawn().unwrap();
    eventually("the waiter's claim", || s.litter().len() >= 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let o = Out::from(child.wait_with_output().unwrap());
    o.code(143);
    says(
        &o,
        "l",
        "interrupted by signal 15 while waiting; nothing was taken",
    );
    s.run(["release", "--pid", &h.pid, "l"]).code(0);
    s.assert_no_litter();
}
