use crate::util::*;

#[test]
fn acquire_then_release_is_silent_and_leaves_nothing() {
    let s = Scratch::new();
    s.run(["acquire", "job.lock"]).code(0).silent();
    assert!(s.path("job.lock").exists());
    assert_eq!(s.litter().len(), 1, "the claim stays for the hold");
    s.run(["status", "job.lock"]).code(75).stdout_has("held");
    s.run(["release", "job.lock"]).code(0).silent();
    assert!(!s.path("job.lock").exists());
    s.assert_no_litter();
    s.run(["status", "job.lock"]).code(0).stdout_has("free");
}

#[test]
fn busy_reports_the_holder_and_honours_e_and_q() {
    let s = Scratch::new();
    let h = s.hold("l", &[]);
    let out = s.run(["acquire", "-n", "l"]);
    out.code(75)
        .stderr_has("held by host")
        .stderr_has(&format!("pid {}", h.pid));
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    s.run(["acquire", "-n", "-q", "l"]).code(75).silent();
    s.run(["acquire", "-n", "-E", "0", "-q", "l"])
        .code(0)
        .silent();
    s.run(["acquire", "-n", "-E", "1", "l"]).code(1);
    s.run(["acquire", "-w", "0", "l"]).code(75);
    s.run(["acquire", "-w", "150ms", "l"])
        .code(75)
        .stderr_has("timed out");
    s.run(["acquire", "--timeout", "0.1", "-E", "9", "l"])
        .code(9);
    assert_eq!(
        s.litter().len(),
        1,
        "only the holder's claim: {:?}",
        s.litter()
    );
}

#[test]
fn verbose_explains_on_stderr_only() {
    let s = Scratch::new();
    let out = s.run(["acquire", "-v", "l"]);
    out.code(0).stderr_has("acquired");
    assert!(out.stdout.is_empty());
    s.run(["release", "-v", "l"]).code(0).stderr_has("released");
}

#[test]
fn token_release() {
    let s = Scratch::new();
    let sleeper = s.hold("tmp", &[]);
    s.run(["release", "--pid", &sleeper.pid, "tmp"]).code(0);
    let out = s.run(["acquire", "--print-token", "--pid", &sleeper.pid, "l"]);
    out.code(0);
    let token = out.stdout.trim().to_string();
    assert_eq!(token.len(), 16, "{token:?}");
    s.run(["release", "--token", "0123456789abcdef", "l"])
        .code(76);
    assert!(s.path("l").exists());
    s.run(["release", "--token", &token, "l"]).code(0);
    assert!(!s.path("l").exists());
    s.assert_no_litter();
}

#[test]
fn release_and_touch_by_a_non_owner_change_nothing() {
    let s = Scratch::new();
    let _h = s.hold("l", &[]);
    let before = std::fs::read(s.path("l")).unwrap();
    age_by(&s.path("l"), 50);
    let m = mtime(&s.path("l"));
    s.run(["release", "l"]).code(76).stderr_has("not yours");
    s.run(["touch", "l"]).code(76).stderr_has("not yours");
    s.run(["release", "--pid", "1", "l"]).code(76);
    assert_eq!(std::fs::read(s.path("l")).unwrap(), before);
    assert_eq!(
        mtime(&s.path("l")),
        m,
        "touch by a non-owner moved the mtime"
    );
    assert_eq!(s.litter().len(), 1);
}

#[test]
fn release_of_a_free_lock_is_76() {
    let s = Scratch::new();
    s.run(["release", "l"]).code(76).stderr_has("not held");
    s.run(["touch", "l"]).code(76);
}

#[test]
fn touch_moves_mtime_to_file_system_now() {
    let s = Scratch::new();
    s.run(["acquire", "l"]).code(0);
    age_by(&s.path("l"), 1000);
    let old = mtime(&s.path("l"));
    s.run(["touch", "l"]).code(0).silent();
    assert!(mtime(&s.path("l")) >= old + 999, "mtime not refreshed");
    s.run(["release", "l"]).code(0);
}

#[test]
fn status_json_has_the_documented_fields() {
    let s = Scratch::new();
    let v = s.run(["status", "--json", "l"]).code(0).json();
    assert_eq!(v["state"], "free");
    assert!(v["holder"].is_null() && v["reason"].is_null() && v["alive"].is_null());
    assert!(v["age_s"].is_null() && v["lease_s"].is_null());
    let h = s.hold("l", &["--lease", "90s"]);
    let v = s.run(["inspect", "--json", "l"]).code(75).json();
    assert_eq!(v["state"], "held");
    assert_eq!(v["reason"], "held");
    assert_eq!(v["holder"]["pid"].as_u64().unwrap().to_string(), h.pid);
    assert_eq!(v["holder"]["token"].as_str().unwrap().len(), 16);
    assert!(v["holder"]["host"].is_string() && v["holder"]["user"].is_string());
    assert!(v["holder"]["acquired_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["lease_s"], 90.0);
    assert_eq!(v["alive"], true);
    assert!(v["age_s"].as_f64().unwrap() < 60.0);
    assert!(v["path"].as_str().unwrap().ends_with('l'));
}

#[test]
fn break_refuses_a_live_lock_unless_forced() {
    let s = Scratch::new();
    let h = s.hold("l", &[]);
    s.run(["break", "l"]).code(75).stderr_has("refusing");
    s.run(["break", "--older-than", "1h", "l"]).code(75);
    assert!(s.path("l").exists());
    let v = s
        .run(["break", "--dry-run", "--force", "--json", "l"])
        .code(0)
        .json();
    assert_eq!(v["action"], "would-break");
    assert_eq!(v["forced"], true);
    let v = s.run(["break", "--json", "l"]).code(75).json();
    assert_eq!(
        (v["action"].as_str(), v["forced"].as_bool()),
        (Some("refused"), Some(false))
    );
    assert!(s.path("l").exists(), "dry run changed something");
    s.run(["break", "--force", "l"])
        .code(0)
        .stderr_has("broke")
        .stderr_has(&format!("pid {}", h.pid));
    assert!(!s.path("l").exists());
    s.assert_no_litter();
    s.run(["break", "l"]).code(0);
    s.run(["release", "--pid", &h.pid, "l"]).code(76);
}

#[test]
fn broken_holder_learns_at_release_and_leaves_nothing() {
    let s = Scratch::new();
    s.run(["acquire", "l"]).code(0);
    // Another tool removes the lock blindly (as `rm` or dotlockfile -u
    // would) and someone takes it anew: our claim is left behind.
    std::fs::remove_file(s.path("l")).unwrap();
    let h = s.hold("l", &[]);
    assert_eq!(s.litter().len(), 2);
    let theirs = std::fs::read(s.path("l")).unwrap();
    s.run(["release", "l"])
        .code(76)
        .stderr_has(&format!("pid {}", h.pid));
    s.run(["touch", "l"]).code(76);
    assert_eq!(std::fs::read(s.path("l")).unwrap(), theirs);
    assert_eq!(s.litter().len(), 1, "{:?}", s.litter());
}

#[test]
fn usage_errors_are_64_help_and_version_are_0() {
    let s = Scratch::new();
    s.run(Vec::<&str>::new()).code(64);
    s.run(["acquire"]).code(64);
    s.run(["acquire", "--bogus", "l"]).code(64);
    s.run(["acquire", "-w", "5x", "l"])
        .code(64)
        .stderr_has("invalid duration");
    s.run(["acquire", "-E", "300", "l"]).code(64);
    s.run(["acquire", "--pid", "4194305", "l"])
        .code(64)
        .stderr_has("no such process");
    s.run(["status", "/"]).code(64);
    s.run(["--help"]).code(0).stdout_has("acquire");
    s.run(["--version"]).code(0).stdout_has("nfslock");
    s.assert_no_litter();
}
