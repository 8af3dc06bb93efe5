use crate::util::*;

#[test]
fn a_dead_owner_is_broken_at_once() {
    let s = Scratch::new();
    // The owner is the short-lived shell, which is gone when this returns.
    let out = s.sh(&format!("{BIN} acquire l")).output().unwrap();
    assert!(out.status.success());
    let v = s.run(["status", "--json", "l"]).code(1).json();
    assert_eq!(v["state"], "stale");
    assert_eq!(v["reason"], "dead-owner");
    assert_eq!(v["alive"], false);
    s.run(["acquire", "-n", "-v", "l"])
        .code(0)
        .stderr_has("broke");
    assert_eq!(
        s.litter().len(),
        1,
        "dead owner's claim must go: {:?}",
        s.litter()
    );
    s.run(["release", "l"]).code(0);
    s.assert_no_litter();
}

#[test]
fn a_reused_pid_counts_as_dead() {
    let s = Scratch::new();
    let h = s.hold("l", &[]);
    s.run(["status", "l"]).code(75);
    // Same pid, different start time: the process that took the lock is
    // gone and the pid now belongs to someone else.
    edit_record(&s.path("l"), "pid_start", "1");
    let out = s.run(["status", "l"]);
    out.code(1).stdout_has("reused");
    s.run(["break", "l"])
        .code(0)
        .stderr_has(&format!("pid {}", h.pid));
    s.assert_no_litter();
}

#[test]
fn pids_of_other_hosts_boots_and_namespaces_are_never_probed() {
    for (key, value) in [
        ("host", "elsewhere.example"),
        ("boot_id", "00000000-0000-0000-0000-000000000000"),
        ("pidns", "1"),
    ] {
        let s = Scratch::new();
        let mut h = s.hold("l", &[]);
        edit_record(&s.path("l"), key, value);
        if key == "boot_id" {
            // Another machine with our host name (an earlier boot of this
            // very machine is dead: see admin.rs).
            edit_record(&s.path("l"), "machine", "ffffffffffffffffffffffffffffffff");
        }
        h.kill(); // the local pid is now dead, but it is not that pid
        let v = s.run(["status", "--json", "l"]).code(75).json();
        assert!(v["alive"].is_null(), "{key}: {v}");
        s.run(["acquire", "-n", "l"]).code(75);
        s.run(["break", "l"]).code(75);
        assert!(s.path("l").exists());
    }
}

#[test]
fn an_expired_lease_is_judged_in_file_system_time() {
    let s = Scratch::new();
    let _h = s.hold("l", &["--lease", "30s"]);
    s.run(["acquire", "-n", "l"]).code(75);
    age_by(&s.path("l"), 29);
    s.run(["acquire", "-n", "l"]).code(75);
    s.run(["status", "l"]).code(75);
    age_by(&s.path("l"), 2);
    s.run(["status", "l"])
        .code(1)
        .stdout_has("lease of 30s expired");
    s.run(["acquire", "-n", "-v", "l"])
        .code(0)
        .stderr_has("lease");
    s.run(["release", "l"]).code(0);
    s.assert_no_litter();
}

/// `--stale-after` is opt-in, and only for locks nothing else can judge:
/// no lease, and an owner that is not provably alive (here: held from
/// another host). A local owner that lives is never broken by age.
#[test]
fn stale_after_is_opt_in() {
    let s = Scratch::new();
    let _h = s.hold("l", &[]);
    edit_record(&s.path("l"), "host", "elsewhere.example");
    age_by(&s.path("l"), 120);
    s.run(["acquire", "-n", "l"]).code(75);
    s.run(["status", "l"]).code(75);
    s.run(["status", "--stale-after", "1m", "l"]).code(1);
    s.run(["acquire", "-n", "--stale-after", "5m", "l"])
        .code(75);
    s.run(["acquire", "-n", "--stale-after", "1m", "l"]).code(0);
    s.run(["release", "l"]).code(0);
    s.assert_no_litter();
}

/// An age rule never breaks a provably alive owner, nor a valid lease: a
/// `run` whose heartbeat keeps its lease fresh survives any
/// `--stale-after`, and so does a live local `acquire` without a lease.
#[test]
fn age_rules_never_break_a_live_owner_or_a_valid_lease() {
    let s = Scratch::new();
    let live = s.hold("live", &[]);
    age_by(&s.path("live"), 3600);
    s.run(["acquire", "-n", "--stale-after", "1m", "live"])
        .code(75);
    s.run(["break", "--older-than", "1m", "live"]).code(75);
    s.run(["status", "--stale-after", "1m", "live"]).code(75);
    drop(live);
    // A heartbeating holder: lease 60 s, refreshed; its lock is a few
    // seconds old when the contender asks with a rule of one second.
    let run = piped(s.cmd(["run", "--lease", "60s", "hb", "--", "sleep", "30"]));
    eventually("the holder", || s.path("hb").exists());
    age_by(&s.path("hb"), 5);
    s.run([
        "run",
        "-n",
        "--stale-after",
        "1s",
        "hb",
        "--",
        "touch",
        "second",
    ])
    .code(75);
    s.run(["break", "--older-than", "1s", "hb"]).code(75);
    assert!(!s.path("second").exists(), "two holders");
    let mut run = run;
    let _ = run.kill();
    let _ = run.wait();
}

#[test]
fn a_future_mtime_is_suspicious_not_fresh() {
    let s = Scratch::new();
    let _h = s.hold("l", &["--lease", "1s"]);
    let m = mtime(&s.path("l"));
    set_mtime(&s.path("l"), m + 3600);
    let v = s.run(["status", "--json", "l"]).code(75).json();
    assert!(v["suspicious"].as_str().unwrap().contains("future"), "{v}");
    s.run(["status", "l"]).stdout_has("suspicious");
    // A waiter watches it unchanged past its lease and then breaks it.
    s.run(["acquire", "-w", "30s", "-v", "l"])
        .code(0)
        .stderr_has("broke");
    s.run(["release", "l"]).code(0);
    s.assert_no_litter();
}

/// Runs nfslock under libfaketime with the given offset, the way a client
/// with a wrong clock would.
fn skewed(s: &Scratch, offset: &str, args: &[&str]) -> Option<Out> {
    let lib = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(lib) = lib else {
        skip("libfaketime is not installed");
        return None;
    };
    let mut c = s.cmd(args);
    c.env("LD_PRELOAD", lib)
        .env("FAKETIME", offset)
        .env("FAKE_UTIME", "1")
        .env("DONT_FAKE_MONOTONIC", "1");
    Some(Out::from(c.output().unwrap()))
}

#[test]
fn clock_skew_neither_breaks_fresh_locks_nor_keeps_stale_ones() {
    let s = Scratch::new();
    let _h = s.hold("l", &["--lease", "60s"]);
    for offset in ["+2h", "-2h", "+30d"] {
        let Some(out) = skewed(&s, offset, &["acquire", "-n", "l"]) else {
            return;
        };
        out.code(75);
        skewed(&s, offset, &["break", "l"]).unwrap().code(75);
    }
    assert!(s.path("l").exists());
    age_by(&s.path("l"), 61);
    skewed(&s, "-2h", &["acquire", "-n", "--pid", &_h.pid, "l"])
        .unwrap()
        .code(0);
    skewed(&s, "-2h", &["release", "--pid", &_h.pid, "l"])
        .unwrap()
        .code(0);
    s.assert_no_litter();
}

/// `--min-interval` judges the window in file-system time: a second
/// caller whose clock is 2 h ahead does not find the window over.
#[test]
fn min_interval_windows_ignore_the_callers_clock() {
    let s = Scratch::new();
    s.run(["run", "--min-interval", "1h", "l", "--", "true"])
        .code(0);
    for offset in ["+2h", "+30d", "-2h"] {
        let Some(out) = skewed(
            &s,
            offset,
            &["run", "--min-interval", "1h", "l", "--", "true"],
        ) else {
            return;
        };
        out.code(75).stderr_has("may start again in");
    }
}
