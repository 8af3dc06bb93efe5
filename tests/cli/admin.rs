//! `list` and `sweep`: whole lock directories, for admins.

use crate::util::*;
use std::os::unix::ffi::OsStrExt;

/// A lock left by a shell that has exited: stale, dead owner.
fn dead_lock(s: &Scratch, name: &str) {
    assert!(s
        .sh(&format!("{BIN} acquire {name}"))
        .status()
        .unwrap()
        .success());
}

#[test]
fn list_shows_held_and_stale_locks_and_not_the_files_beside_them() {
    let s = Scratch::new();
    let _live = s.hold("live.lock", &["--lease", "1h"]);
    dead_lock(&s, "dead.lock");
    std::fs::write(s.path("notes.txt"), "someone's data\n").unwrap();
    std::fs::create_dir(s.path("sub")).unwrap();
    let out = s.run(["list", "."]);
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    let cols: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        cols,
        ["LOCK", "STATE", "HOST", "PID", "USER", "AGE", "LEASE", "ALIVE"]
    );
    // Sorted by path, columns aligned under the header.
    assert!(lines[1].starts_with("./dead.lock"), "{}", out.stdout);
    assert!(lines[2].starts_with("./live.lock"), "{}", out.stdout);
    let state_at = lines[0].find("STATE").unwrap();
    assert_eq!(&lines[1][state_at..state_at + 5], "stale");
    assert_eq!(&lines[2][state_at..state_at + 4], "held");
    assert!(
        lines[2].contains(" 1h00m ") && lines[2].ends_with("yes"),
        "{}",
        lines[2]
    );
    assert!(lines[1].ends_with("no"), "{}", lines[1]);
    // --stale-only, and nothing was changed by listing.
    let stale = s.run(["list", "--stale-only", "."]);
    stale.code(0);
    assert_eq!(stale.stdout.lines().count(), 2, "{}", stale.stdout);
    assert!(s.path("dead.lock").exists() && s.path("notes.txt").exists());
    assert_eq!(s.litter().len(), 2, "the two claims, nothing more");
}

#[test]
fn list_json_has_status_json_fields_for_each_lock() {
    let s = Scratch::new();
    let _live = s.hold("a.lock", &["--lease", "10m"]);
    dead_lock(&s, "b.lock");
    let v = s.run(["list", "--json", "."]).code(0).json();
    let locks = v["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 2);
    for (lock, name) in locks.iter().zip(["a.lock", "b.lock"]) {
        let status = s.run(["status", "--json", name]).json();
        let fields: Vec<&String> = status.as_object().unwrap().keys().collect();
        let listed: Vec<&String> = lock.as_object().unwrap().keys().collect();
        assert_eq!(fields, listed, "{name}");
        for key in [
            "state", "reason", "holder", "lease_s", "alive", "inode", "nlink",
        ] {
            assert_eq!(lock[key], status[key], "{name}: {key}");
        }
        assert!(lock["age_s"].as_f64().unwrap() >= 0.0);
        assert_eq!(lock["path"], format!("./{name}"));
    }
    assert_eq!(locks[0]["state"], "held");
    assert_eq!(locks[0]["lease_s"], 600.0);
    assert_eq!(locks[1]["state"], "stale");
    assert_eq!(locks[1]["reason"], "dead-owner");
}

#[test]
fn list_all_shows_litter_with_whether_its_process_lives() {
    let s = Scratch::new();
    dead_lock(&s, "x.lock");
    let v = s
        .run(["list", "--all", "--json", "x.lock", "."])
        .code(0)
        .json();
    let locks = v["locks"].as_array().unwrap();
    // Given twice (as a path and in its directory): listed twice.
    assert_eq!(locks.len(), 2);
    let with_aux = locks.iter().find(|l| l.get("aux").is_some()).unwrap();
    let aux = with_aux["aux"].as_array().unwrap();
    assert_eq!(aux.len(), 1, "{aux:?}");
    assert_eq!(aux[0]["kind"], "claim");
    assert_eq!(aux[0]["alive"], false);
    let text = s.run(["list", "--all", "."]);
    text.code(0);
    let claim = text.stdout.lines().nth(2).unwrap();
    assert!(
        claim.starts_with("  .x.lock.nfslock-claim."),
        "{}",
        text.stdout
    );
    assert!(claim.ends_with("no"), "{claim}");
}

#[test]
fn list_shows_another_tools_lock_only_when_named() {
    let s = Scratch::new();
    std::fs::write(s.path("other.lock"), "12345\n").unwrap();
    assert_eq!(s.run(["list", "."]).code(0).stdout.lines().count(), 1);
    let v = s.run(["list", "--json", "other.lock"]).code(0).json();
    assert_eq!(v["locks"][0]["reason"], "foreign");
    let text = s.run(["list", "other.lock"]);
    text.code(0);
    assert!(
        text.stdout.lines().nth(1).unwrap().contains(" foreign "),
        "{}",
        text.stdout
    );
}

#[test]
fn list_exit_codes() {
    let s = Scratch::new();
    s.run(["list"]).code(64);
    s.run(["list", "missing-dir"])
        .code(66)
        .stderr_has("missing-dir: no such file or directory");
    s.run(["list", "missing-dir/x.lock"]).code(66);
    // An empty directory: a header and nothing else.
    assert_eq!(s.run(["list", "."]).code(0).stdout.lines().count(), 1);
}

#[test]
fn list_names_a_non_utf8_lock_without_raw_bytes() {
    let s = Scratch::new();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9\x1b[31m.lock");
    let held = s
        .cmd([
            std::ffi::OsStr::new("acquire"),
            std::ffi::OsStr::new("--lease"),
            std::ffi::OsStr::new("1h"),
            name,
        ])
        .output()
        .unwrap();
    assert!(held.status.success(), "{held:?}");
    let out = s.run(["list", "."]);
    out.code(0);
    assert!(!out.stdout.contains('\x1b'), "{:?}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    s.cmd([std::ffi::OsStr::new("release"), name])
        .status()
        .unwrap();
}

#[test]
fn list_counts_ten_thousand_locks() {
    let s = Scratch::new();
    dead_lock(&s, "seed.lock");
    let record = std::fs::read(s.path("seed.lock")).unwrap();
    for i in 0..10_000 {
        std::fs::write(s.path(&format!("l{i:05}.lock")), &record).unwrap();
    }
    let v = s.run(["list", "--json", "."]).code(0).json();
    assert_eq!(v["locks"].as_array().unwrap().len(), 10_001);
}

#[test]
fn sweep_breaks_the_stale_spares_the_live_and_says_what_it_did() {
    let s = Scratch::new();
    let _live = s.hold("live.lock", &[]);
    dead_lock(&s, "dead.lock");
    std::fs::write(s.path("notes.txt"), "data\n").unwrap();
    // Dry: nothing changes, and it says so.
    let dry = s.run(["sweep", "--dry-run", "."]);
    dry.code(0);
    assert!(
        dry.stderr.contains("would break ./dead.lock held by host"),
        "{}",
        dry.stderr
    );
    assert!(s.path("dead.lock").exists());
    let v = s.run(["sweep", "--dry-run", "--json", "."]).code(0).json();
    let actions = v["actions"].as_array().unwrap();
    // The break, and the dead owner's claim it would remove with it.
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[1]["action"], "would-remove");
    assert!(actions[1]["path"]
        .as_str()
        .unwrap()
        .starts_with("./.dead.lock.nfslock-claim."));
    assert_eq!(actions[0]["action"], "would-break");
    assert_eq!(actions[0]["path"], "./dead.lock");
    assert!(actions[0]["reason"]
        .as_str()
        .unwrap()
        .contains("owner is dead"));
    assert!(actions[0]["holder"]["pid"].as_u64().is_some());
    // For real.
    let done = s.run(["sweep", "."]);
    done.code(0);
    assert!(
        done.stderr.contains("broke ./dead.lock held by host"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains(": owner is dead: pid"),
        "{}",
        done.stderr
    );
    assert!(!s.path("dead.lock").exists());
    assert!(s.path("live.lock").exists() && s.path("notes.txt").exists());
    assert_eq!(
        s.litter().len(),
        1,
        "only the live holder's claim: {:?}",
        s.litter()
    );
    let again = s.run(["sweep", "--json", "."]).code(0).json();
    assert_eq!(again["actions"], serde_json::json!([]));
}

#[test]
fn sweep_removes_a_dead_waiters_claim_as_a_leftover() {
    let s = Scratch::new();
    let _live = s.hold("l", &[]);
    // A waiter killed while it waited leaves its claim.
    let mut waiter = s.cmd(["acquire", "-w", "60", "l"]).spawn().unwrap();
    eventually("the waiter's claim", || s.litter().len() == 2);
    waiter.kill().unwrap();
    waiter.wait().unwrap();
    let v = s.run(["sweep", "--json", "."]).code(0).json();
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["action"], "removed");
    assert!(actions[0]["reason"]
        .as_str()
        .unwrap()
        .contains("waiter that is gone"));
    assert_eq!(s.litter().len(), 1);
}

#[test]
fn sweep_exit_codes() {
    let s = Scratch::new();
    s.run(["sweep"]).code(64);
    s.run(["sweep", "nowhere"]).code(66);
    std::fs::write(s.path("f"), "").unwrap();
    s.run(["sweep", "f"]).code(64).stderr_has("not a directory");
}

#[test]
fn a_rebooted_hosts_lock_is_dead_but_a_twins_is_not() {
    if !std::path::Path::new("/etc/machine-id").exists() {
        skip("no /etc/machine-id on this machine");
        return;
    }
    let s = Scratch::new();
    let _a = s.hold("old-boot.lock", &[]);
    let _b = s.hold("twin.lock", &[]);
    let boot = "0123456789abcdef0123456789abcdef";
    edit_record(&s.path("old-boot.lock"), "boot_id", boot);
    edit_record(&s.path("twin.lock"), "boot_id", boot);
    edit_record(
        &s.path("twin.lock"),
        "machine",
        "ffffffffffffffffffffffffffffffff",
    );
    let v = s.run(["status", "--json", "old-boot.lock"]).code(1).json();
    assert_eq!(v["alive"], false);
    let machine = v["holder"]["machine"].as_str().unwrap();
    assert!(
        machine.len() == 32 && machine.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    let id = std::fs::read_to_string("/etc/machine-id").unwrap();
    assert!(
        !id.contains(machine) && !machine.contains(id.trim()),
        "the id itself is shown"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("rebooted (boot {boot})")),
        "{v}"
    );
    s.run(["status", "old-boot.lock"])
        .code(1)
        .stdout_has(&format!("rebooted (boot {boot})"));
    let twin = s.run(["status", "--json", "twin.lock"]).code(75).json();
    assert_eq!(twin["alive"], serde_json::Value::Null);
    let done = s.run(["sweep", "--rebooted", "."]);
    done.code(0);
    assert!(
        done.stderr.contains("broke ./old-boot.lock"),
        "{}",
        done.stderr
    );
    assert!(!s.path("old-boot.lock").exists());
    assert!(s.path("twin.lock").exists());
}

#[test]
fn sweep_rebooted_leaves_other_stale_locks() {
    let s = Scratch::new();
    dead_lock(&s, "dead.lock");
    let v = s.run(["sweep", "--rebooted", "--json", "."]).code(0).json();
    assert!(
        v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["action"] != "broken"),
        "{v}"
    );
    assert!(s.path("dead.lock").exists());
}

/// A sweep racing acquirers that break the same dead owner's lock and take
/// it: the sweep never removes a lock taken meanwhile (each acquirer still
/// holds its lock when the sweep is done), and nothing is left behind.
#[test]
fn a_sweep_racing_acquirers_never_breaks_a_lock_taken_meanwhile() {
    let s = Scratch::new();
    for round in 0..10 {
        dead_lock(&s, "l");
        let holder = sleeper();
        let mut taker = s
            .cmd(["acquire", "-w", "10", "-q", "--pid", &holder.pid, "l"])
            .spawn()
            .unwrap();
        let sweeps: Vec<Out> = (0..3).map(|_| s.run(["sweep", "-q", "."])).collect();
        assert!(taker.wait().unwrap().success(), "round {round}");
        for sw in &sweeps {
            sw.code(0);
        }
        let v = s.run(["status", "--json", "l"]).code(75).json();
        assert_eq!(
            v["holder"]["pid"].as_u64(),
            Some(holder.pid.parse().unwrap()),
            "round {round}: {v}"
        );
        s.run(["release", "--pid", &holder.pid, "l"]).code(0);
        s.assert_no_litter();
    }
}
