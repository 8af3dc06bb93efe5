//! `--slots N`: at most N holders at once, each slot an ordinary lock.

use crate::util::*;

#[test]
fn at_most_n_hold_and_the_next_is_told_who_does() {
    let s = Scratch::new();
    let _a = s.hold("j", &["--slots", "2"]);
    let _b = s.hold("j", &["--slots", "2"]);
    assert!(s.path("j.slot-1").exists() && s.path("j.slot-2").exists());
    let busy = s.run(["acquire", "--slots", "2", "-n", "j"]);
    busy.code(75)
        .stderr_has("all 2 slots are taken: slot 1 held by host")
        .stderr_has("slot 2 held by host");
    s.run(["acquire", "--slots", "2", "-n", "-E", "3", "j"])
        .code(3);
    s.run(["run", "--slots", "2", "-n", "j", "--", "true"])
        .code(75);
    let v = s.run(["status", "--json", "j"]).code(75).json();
    assert_eq!(v["slots"], 2);
    assert_eq!(v["state"], "held");
    let holders = v["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 2);
    assert_eq!(holders[0]["slot"], 1);
    assert_eq!(holders[1]["slot"], 2);
    assert_eq!(holders[0]["pid"].as_u64(), Some(_a.pid.parse().unwrap()));
    s.run(["status", "j"])
        .code(75)
        .stdout_has("2 of 2 slots held");
}

#[test]
fn the_command_sees_its_slot_and_a_waiter_gets_the_first_that_frees() {
    let s = Scratch::new();
    let out = s.run([
        "run",
        "--slots",
        "3",
        "j",
        "--",
        "sh",
        "-c",
        "echo $NFSLOCK_SLOT/$NFSLOCK_SLOTS",
    ]);
    out.code(0).stdout_has("1/3");
    let first = s.hold("j", &["--slots", "3"]);
    let out = s.run([
        "run",
        "--slots",
        "3",
        "j",
        "--",
        "sh",
        "-c",
        "echo $NFSLOCK_SLOT/$NFSLOCK_SLOTS",
    ]);
    out.code(0).stdout_has("2/3");
    let _second = s.hold("j", &["--slots", "3"]);
    let _third = s.hold("j", &["--slots", "3"]);
    let waiter = s
        .cmd([
            "run",
            "--slots",
            "3",
            "-w",
            "20",
            "j",
            "--",
            "sh",
            "-c",
            "echo $NFSLOCK_SLOT",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    s.run(["release", "--pid", &first.pid, "j"]).code(0);
    let got = wait_out(waiter, "the waiter");
    got.code(0).stdout_has("1");
}

#[test]
fn a_recorded_count_is_kept_while_held_and_replaced_when_free() {
    let s = Scratch::new();
    let h = s.hold("j", &["--slots", "2"]);
    s.run(["acquire", "--slots", "3", "-n", "j"])
        .code(64)
        .stderr_has("is used with --slots 2");
    s.run(["release", "--pid", &h.pid, "j"]).code(0);
    let _h3 = s.hold("j", &["--slots", "3"]);
    let v = s.run(["status", "--json", "j"]).code(0).json();
    assert_eq!(v["slots"], 3);
    s.run(["acquire", "--slots", "0", "j"]).code(64);
    s.run(["acquire", "--slots", "1001", "j"]).code(64);
}

#[test]
fn release_and_touch_find_the_callers_slot() {
    let s = Scratch::new();
    let _other = s.hold("j", &["--slots", "2"]);
    let mine = sleeper();
    let token = s.run([
        "acquire",
        "--slots",
        "2",
        "--print-token",
        "--pid",
        &mine.pid,
        "j",
    ]);
    token.code(0);
    let token = token.stdout.trim().to_string();
    s.run(["touch", "--pid", &mine.pid, "j"]).code(0);
    s.run(["touch", "--token", &token, "j"]).code(0);
    s.run(["release", "--token", &token, "j"]).code(0);
    assert!(!s.path("j.slot-2").exists());
    assert!(s.path("j.slot-1").exists(), "the other holder's slot stays");
    s.run(["release", "--pid", &mine.pid, "j"]).code(76);
}

#[test]
fn a_killed_holders_slot_is_free_at_once_on_its_host() {
    let s = Scratch::new();
    let mut holder = s
        .cmd(["run", "--slots", "1", "j", "--", "sleep", "600"])
        .spawn()
        .unwrap();
    eventually("the holder", || s.path("j.slot-1").exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    s.run(["run", "--slots", "1", "-n", "j", "--", "true"])
        .code(0);
    s.assert_no_litter_but(&[".j.nfslock-slots"]);
}

#[test]
fn break_slot_breaks_one_slot_by_the_usual_rules() {
    let s = Scratch::new();
    let _live = s.hold("j", &["--slots", "2"]);
    assert!(s
        .sh(&format!("{BIN} acquire --slots 2 j"))
        .status()
        .unwrap()
        .success());
    s.run(["break", "--slot", "1", "j"]).code(75);
    s.run(["break", "--slot", "2", "j"])
        .code(0)
        .stderr_has("broke");
    assert!(s.path("j.slot-1").exists() && !s.path("j.slot-2").exists());
}

#[test]
fn slots_share_one_window() {
    let s = Scratch::new();
    s.run([
        "run",
        "--slots",
        "2",
        "--min-interval",
        "1h",
        "j",
        "--",
        "true",
    ])
    .code(0);
    let _h = s.hold("j", &["--slots", "2"]);
    s.run([
        "run",
        "--slots",
        "2",
        "--min-interval",
        "1h",
        "j",
        "--",
        "true",
    ])
    .code(75)
    .stderr_has("the job last started");
}

#[test]
fn list_shows_every_slot_free_or_held() {
    let s = Scratch::new();
    let _h = s.hold("j", &["--slots", "3"]);
    let out = s.run(["list", "."]);
    out.code(0);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let cells: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        cells,
        [
            ("./j.slot-1", "held"),
            ("./j.slot-2", "free"),
            ("./j.slot-3", "free")
        ],
        "{}",
        out.stdout
    );
    let v = s
        .run(["list", "--json", "--stale-only", "."])
        .code(0)
        .json();
    assert_eq!(v["locks"], serde_json::json!([]));
}

/// A free slot goes to the waiter that has waited longest: a newcomer that
/// finds one free while a waiter is in line (here stopped, so that it
/// cannot be quicker) does not take it; the waiter does, once it runs.
#[test]
fn a_newcomer_does_not_overtake_a_waiter_in_line() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let s = Scratch::new();
    let first = s.hold("j", &["--slots", "1"]);
    let owner = sleeper();
    let waiter = s
        .cmd([
            "acquire", "--slots", "1", "-w", "30", "--pid", &owner.pid, "j",
        ])
        .spawn()
        .unwrap();
    let in_line = || s.litter().iter().any(|n| n.starts_with(".j.nfslock-wait."));
    eventually("the waiter's ticket", in_line);
    let wpid = Pid::from_raw(waiter.id() as i32);
    kill(wpid, Signal::SIGSTOP).unwrap();
    s.run(["release", "--pid", &first.pid, "j"]).code(0);
    let newcomer = s.run(["acquire", "--slots", "1", "-n", "j"]);
    newcomer.code(75);
    assert!(
        !s.path("j.slot-1").exists(),
        "the newcomer took the waiter's slot"
    );
    kill(wpid, Signal::SIGCONT).unwrap();
    let out = wait_out(waiter, "the waiter");
    out.code(0);
    let v = s.run(["status", "--json", "j"]).code(75).json();
    assert_eq!(
        v["holders"][0]["pid"].as_u64(),
        Some(owner.pid.parse().unwrap())
    );
    assert!(!in_line(), "the waiter left the line");
    s.run(["release", "--pid", &owner.pid, "j"]).code(0);
}
