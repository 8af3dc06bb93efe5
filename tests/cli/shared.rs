//! `--shared`: readers together, never with a writer; a waiting writer
//! goes before readers that come after it.

use crate::util::*;
use std::process::Stdio;

#[test]
fn readers_overlap_and_a_writer_waits_until_the_last_has_left() {
    let s = Scratch::new();
    let a = s.hold("l", &["-s"]);
    let b = s.hold("l", &["--shared"]);
    // A third reader gets in while both hold.
    s.run(["run", "-s", "-n", "l", "--", "true"]).code(0);
    s.run(["acquire", "-n", "-x", "l"]).code(75);
    s.run(["run", "-n", "l", "--", "true"]).code(75);
    let v = s.run(["status", "--json", "l"]).code(75).json();
    assert_eq!(v["mode"], "shared");
    assert_eq!(v["state"], "held");
    assert!(v["holder"].is_null());
    let pids: Vec<String> = v["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].to_string())
        .collect();
    assert_eq!(pids.len(), 2, "{v}");
    assert!(pids.contains(&a.pid) && pids.contains(&b.pid), "{pids:?}");
    s.run(["status", "l"])
        .code(75)
        .stdout_has("held shared by 2 readers");
    s.run(["touch", "--pid", &a.pid, "l"]).code(0);
    s.run(["release", "--pid", &a.pid, "l"]).code(0);
    s.run(["acquire", "-n", "l"]).code(75);
    s.run(["release", "--pid", &b.pid, "l"]).code(0);
    s.assert_no_litter();
    let w = s.hold("l", &[]);
    let v = s.run(["status", "--json", "l"]).code(75).json();
    assert_eq!(v["mode"], "exclusive");
    assert_eq!(v["holder"]["pid"].to_string(), w.pid);
    // A writer holds: readers wait, or with -n are told.
    s.run(["acquire", "-s", "-n", "l"]).code(75);
    s.run(["run", "-s", "-n", "-E", "9", "l", "--", "true"])
        .code(9);
    s.run(["release", "--pid", &w.pid, "l"]).code(0);
    s.assert_no_litter();
}

#[test]
fn a_waiting_writer_goes_before_readers_that_come_after_it() {
    let s = Scratch::new();
    let first = s.hold("l", &["-s"]);
    let mut writer = s.cmd(["run", "l", "--", "sh", "-c", "echo writer ran"]);
    let writer = piped({
        writer.stdout(Stdio::piped());
        writer
    });
    eventually("the writer to wait and seal", || {
        let v = s.run(["status", "--json", "l"]).json();
        !v["waiting_writer"].is_null()
    });
    // The reader already in stays in; a newcomer does not overtake.
    s.run(["acquire", "-s", "-n", "l"]).code(75);
    s.run(["status", "l"])
        .code(75)
        .stdout_has("waiting writer: host");
    s.run(["release", "--pid", &first.pid, "l"]).code(0);
    wait_out(writer, "the writer")
        .code(0)
        .stdout_has("writer ran");
    s.run(["run", "-s", "-n", "l", "--", "true"]).code(0);
    s.assert_no_litter();
}

#[test]
fn a_killed_reader_is_freed_at_once_on_its_own_host() {
    let s = Scratch::new();
    let mut reader = s.hold("l", &["-s"]);
    let _other = s.hold("l", &["-s"]);
    reader.kill();
    let v = s.run(["status", "--json", "l"]).code(75).json();
    let dead: Vec<_> = v["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["alive"] == false)
        .collect();
    assert_eq!(dead.len(), 1, "{v}");
    drop(_other);
    // Both owners gone: a writer breaks them one by one and takes the lock.
    s.run(["run", "-n", "l", "--", "true"]).code(0);
    s.assert_no_litter();
}

#[test]
fn shared_refuses_what_is_for_writers_and_slots() {
    let s = Scratch::new();
    s.run(["run", "-s", "--fence", "l", "--", "true"])
        .code(64)
        .stderr_has("--fence");
    s.run(["acquire", "-s", "--slots", "2", "l"]).code(64);
    s.run(["acquire", "-s", "-x", "l"]).code(64);
    s.run(["run", "-x", "-n", "l", "--", "true"]).code(0);
    s.assert_no_litter();
}

#[test]
fn list_shows_a_shared_lock_with_its_readers() {
    let s = Scratch::new();
    let a = s.hold("l", &["-s"]);
    let _b = s.hold("l", &["-s"]);
    let _w = s.hold("x", &[]);
    let out = s.run(["list", "."]);
    out.code(0).stdout_has("shared:2");
    let all = s.run(["list", "--all", "."]);
    let readers: Vec<&str> = all
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("reader"))
        .collect();
    assert_eq!(readers.len(), 2, "{}", all.stdout);
    assert!(readers.iter().any(|l| l.contains(&a.pid)), "{}", all.stdout);
    let v = s.run(["list", "--json", "."]).code(0).json();
    let locks = v["locks"].as_array().unwrap();
    assert_eq!(locks[0]["mode"], "shared");
    assert_eq!(locks[0]["holders"].as_array().unwrap().len(), 2);
    assert_eq!(locks[1]["mode"], "exclusive");
}

#[test]
fn break_takes_stale_readers_one_by_one_and_force_takes_all() {
    let s = Scratch::new();
    let mut dead = s.hold("l", &["-s"]);
    let live = s.hold("l", &["-s"]);
    dead.kill();
    let out = s.run(["break", "l"]);
    out.code(0).stderr_has(&format!("pid {}", dead.pid));
    let v = s.run(["status", "--json", "l"]).code(75).json();
    assert_eq!(v["holders"].as_array().unwrap().len(), 1, "{v}");
    // A live reader is not stale: left alone.
    s.run(["break", "l"]).code(75);
    s.run(["break", "--force", "l"]).code(0);
    s.run(["status", "l"]).code(0);
    // The broken reader is told at its release, and leaves nothing.
    s.run(["release", "--pid", &live.pid, "l"]).code(76);
    s.assert_no_litter();
}

#[test]
fn a_reader_broken_while_it_runs_is_told_at_its_next_beat() {
    let s = Scratch::new();
    let reader = piped(s.cmd(["run", "-s", "--lease", "600ms", "l", "--", "sleep", "30"]));
    eventually("the reader to be in", || {
        s.run(["status", "--json", "l"]).json()["holders"]
            .as_array()
            .is_some_and(|h| h.len() == 1)
    });
    s.run(["break", "--force", "l"]).code(0);
    wait_out(reader, "the broken reader")
        .code(76)
        .stderr_has("lost");
    s.assert_no_litter();
}

#[test]
fn a_killed_opener_leaves_nothing_once_a_writer_has_been() {
    let s = Scratch::new();
    // The first reader opens the epoch; its claim is the lock file.
    let mut opener = s.hold("l", &["-s"]);
    opener.kill();
    s.run(["run", "-n", "l", "--", "true"]).code(0);
    s.assert_no_litter();
}

/// On local disk the waiters' queue already puts the reader behind the
/// writer's claim; polling waiters (NFS) are ordered by `writer_ahead`,
/// which this test does not reach.
#[test]
fn a_reader_that_came_after_a_waiting_writer_lets_it_go_first() {
    let s = Scratch::new();
    let first = s.hold("l", &[]);
    let claims = || {
        s.litter()
            .iter()
            .filter(|n| n.contains(".nfslock-claim."))
            .count()
    };
    let writer = piped(s.cmd(["run", "l", "--", "sh", "-c", "sleep 0.3; echo w >> order"]));
    eventually("the writer to wait", || claims() == 2);
    // Without birth times (NFS) arrivals are whole seconds: the reader
    // must come in a later one than the writer, or they tie.
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let seen = secs();
    eventually("the next second", || secs() > seen);
    let reader = piped(s.cmd(["run", "-s", "l", "--", "sh", "-c", "echo r >> order"]));
    eventually("the reader to wait", || {
        s.litter().iter().any(|n| n.contains(".nfslock-share."))
    });
    s.run(["release", "--pid", &first.pid, "l"]).code(0);
    wait_out(writer, "the writer").code(0);
    wait_out(reader, "the reader").code(0);
    assert_eq!(std::fs::read_to_string(s.path("order")).unwrap(), "w\nr\n");
    s.assert_no_litter();
}

/// The other way round: a writer that came after a waiting reader gives
/// the lock back to it (on local disk both watch the lock, and the
/// writer, first in the waiters' queue, would otherwise win every time).
#[test]
fn a_reader_waiting_behind_a_writer_goes_before_writers_that_come_after_it() {
    let s = Scratch::new();
    let first = s.hold("l", &[]);
    let reader = piped(s.cmd([
        "run",
        "-s",
        "l",
        "--",
        "sh",
        "-c",
        "sleep 0.3; echo r >> order",
    ]));
    eventually("the reader to wait", || {
        s.litter().iter().any(|n| n.contains(".nfslock-share."))
    });
    // Where the filesystem keeps no birth time (NFS), who came first is
    // the second a claim's record was written: the writer must come in a
    // later one, or they tie and the lock decides.
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let seen = secs();
    eventually("the next second", || secs() > seen);
    // Waiting, not merely started: a writer that finds the lock free
    // before it ever waited takes it (a newcomer between two holders).
    let mut w = s.cmd(["run", "-v", "l", "--", "sh", "-c", "echo w >> order"]);
    w.stdout(Stdio::piped());
    w.stderr(std::fs::File::create(s.path("w.err")).unwrap());
    let writer = w.spawn().unwrap();
    eventually("the writer to wait", || {
        std::fs::read_to_string(s.path("w.err")).is_ok_and(|e| e.contains("waiting: "))
    });
    s.run(["release", "--pid", &first.pid, "l"]).code(0);
    wait_out(reader, "the reader").code(0);
    wait_out(writer, "the writer").code(0);
    assert_eq!(std::fs::read_to_string(s.path("order")).unwrap(), "r\nw\n");
    s.assert_no_litter();
}

/// A reader that came first but is stopped (or a reader's claim another
/// user planted with an old record) stays fresh-looking for a while; a
/// writer gives way to it only briefly, then keeps the lock.
#[test]
fn a_stopped_reader_does_not_keep_a_writer_out() {
    let s = Scratch::new();
    let first = s.hold("l", &[]);
    let reader = piped(s.cmd(["run", "-s", "l", "--", "true"]));
    eventually("the reader to wait", || {
        s.litter().iter().any(|n| n.contains(".nfslock-share."))
    });
    let rpid = nix::unistd::Pid::from_raw(reader.id() as i32);
    nix::sys::signal::kill(rpid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let seen = secs();
    eventually("the next second", || secs() > seen);
    let mut w = s.cmd(["run", "-v", "-w", "10s", "l", "--", "true"]);
    w.stdout(Stdio::piped());
    w.stderr(std::fs::File::create(s.path("w.err")).unwrap());
    let writer = w.spawn().unwrap();
    eventually("the writer to wait", || {
        std::fs::read_to_string(s.path("w.err")).is_ok_and(|e| e.contains("waiting: "))
    });
    s.run(["release", "--pid", &first.pid, "l"]).code(0);
    // The stopped reader's claim looks fresh for 15 s: without a bound the
    // writer would give way until its -w 10s ran out (75).
    wait_out(writer, "the writer").code(0);
    let err = std::fs::read_to_string(s.path("w.err")).unwrap();
    assert!(err.contains("gave the lock back"), "{err}");
    nix::sys::signal::kill(rpid, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_out(reader, "the reader").code(0);
    s.assert_no_litter();
}
