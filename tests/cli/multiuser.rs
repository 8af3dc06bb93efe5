//! Several unprivileged users in one lock directory: a /tmp-style sticky
//! directory (1777) and a setgid team directory (2775, one group), with
//! Linux's fs.protected_hardlinks (CI sets it to 1). The users are plain
//! uids without passwd entries, so nothing is added to the system. Needs
//! root to switch users; elsewhere each test says it skipped.
//!
//! These run on local disk even under `NFSLOCK_TEST_DIR`: the NFS lab's
//! client sends every call as root, so owners would not differ there.

use crate::util::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TEAM: u32 = 64100;
const ALICE: u32 = 64101;
const BOB: u32 = 64102;

/// A scratch directory with a sticky and a team directory in it.
struct Shared {
    _dir: tempfile::TempDir,
    sticky: PathBuf,
    team: PathBuf,
}

impl Shared {
    fn new() -> Option<Shared> {
        if !nix::unistd::geteuid().is_root() {
            skip("switching users needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let sticky = dir.path().join("sticky");
        let team = dir.path().join("team");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, PermissionsExt::from_mode(0o1777)).unwrap();
        std::fs::create_dir(&team).unwrap();
        nix::unistd::chown(&team, None, Some(nix::unistd::Gid::from_raw(TEAM))).unwrap();
        std::fs::set_permissions(&team, PermissionsExt::from_mode(0o2775)).unwrap();
        Some(Shared {
            _dir: dir,
            sticky,
            team,
        })
    }
}

/// `program` run as `uid` (member of the team group) with `umask`.
fn as_user(uid: u32, umask: u32, program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let gid = nix::unistd::Gid::from_raw(TEAM);
            nix::unistd::setgroups(&[gid])?;
            nix::unistd::setgid(gid)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
            Ok(())
        });
    }
    c
}

/// nfslock run as `uid` with `args`.
fn nfslock_as(uid: u32, args: &[&str]) -> Command {
    let mut c = as_user(uid, 0o022, BIN);
    c.args(args);
    c
}

fn run_as(uid: u32, args: &[&str]) -> Out {
    Out::from(nfslock_as(uid, args).output().unwrap())
}

/// A long-lived process of `uid`, killed when dropped.
fn sleeper_of(uid: u32) -> Holder {
    sleeper_from(as_user(uid, 0o022, "sleep"))
}

/// A lock at `lock` held by `uid` for an owner that is gone: stale by a
/// dead owner, which any user of this host may tell.
fn dead_lock_of(uid: u32, umask: u32, lock: &Path) {
    let script = format!(
        "sleep 0.05 & {BIN} acquire --pid $! {}; rc=$?; wait; exit $rc",
        lock.display()
    );
    let st = as_user(uid, umask, "sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success(), "{uid} could not take {}", lock.display());
}

fn names_in(dir: &Path) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let uid = e.metadata().unwrap().uid();
            (e.file_name().to_string_lossy().into_owned(), uid)
        })
        .collect();
    v.sort();
    v
}

/// In a sticky directory another user's lock can be removed only by its
/// owner or root. A stale one is reported at once, with who may break it:
/// no endless loop, no claim of a race that did not happen.
#[test]
fn another_users_stale_lock_in_a_sticky_directory_is_refused_at_once() {
    let Some(d) = Shared::new() else { return };
    let lock = d.sticky.join("l");
    let l = lock.to_str().unwrap();
    dead_lock_of(ALICE, 0o022, &lock);
    let before = names_in(&d.sticky);
    let (out, cpu) = run_measured(nfslock_as(BOB, &["acquire", "-n", l]));
    out.code(75)
        .stderr_has("owner is dead")
        .stderr_has("sticky directory")
        .stderr_has(&format!("uid {ALICE}"));
    assert!(cpu < idle_cpu_bound(Duration::ZERO), "{cpu:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // Waiting polls at its pace and gives up at the deadline.
    let began = Instant::now();
    let wait = Duration::from_secs(2);
    let (out, cpu) = run_measured(nfslock_as(BOB, &["acquire", "-w", "2s", l]));
    out.code(75).stderr_has("timed out").stderr_has("sticky");
    assert!(began.elapsed() >= wait, "gave up early");
    assert!(cpu < idle_cpu_bound(wait), "busy loop: {cpu:?} of CPU");
    run_as(BOB, &["run", "-n", l, "--", "touch", "/nonexistent/ran"])
        .code(75)
        .stderr_has("sticky");
    for args in [vec!["break", l], vec!["break", "--force", l]] {
        run_as(BOB, &args)
            .code(77)
            .stderr_has("cannot break it")
            .stderr_has(&format!("uid {ALICE}"));
    }
    let v = run_as(BOB, &["break", "--json", l]).code(77).json();
    assert_eq!(v["action"], "not-permitted", "{v}");
    assert_eq!(names_in(&d.sticky), before, "bob changed or left something");
    // Root may, and does.
    let root = Command::new(BIN).args(["break", l]).output().unwrap();
    Out::from(root).code(0);
    assert!(names_in(&d.sticky).is_empty(), "{:?}", names_in(&d.sticky));
}

/// In a team directory any member may break a colleague's stale lock,
/// however restrictive the colleague's umask: claims are readable by all,
/// and where protected_hardlinks refuses the breaker's pin the removal
/// still checks what it moved.
#[test]
fn a_team_member_breaks_a_colleagues_stale_lock_whatever_the_umask() {
    let Some(d) = Shared::new() else { return };
    let lock = d.team.join("l");
    let l = lock.to_str().unwrap();
    dead_lock_of(ALICE, 0o077, &lock);
    for (name, uid) in names_in(&d.team) {
        assert_eq!(uid, ALICE);
        let mode = std::fs::metadata(d.team.join(&name)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name}: others must be able to read it");
    }
    let bob = sleeper_of(BOB);
    run_as(BOB, &["acquire", "-n", "--pid", &bob.pid, l])
        .code(0)
        .stderr_has("broke the lock")
        .stderr_has("owner is dead");
    let left = names_in(&d.team);
    assert!(left.iter().all(|(_, uid)| *uid == BOB), "{left:?}");
    assert_eq!(left.len(), 2, "bob's lock and claim only: {left:?}");
    // A live colleague's lock is another matter.
    let alice = sleeper_of(ALICE);
    run_as(ALICE, &["acquire", "-n", "--pid", &alice.pid, l])
        .code(75)
        .stderr_has(&format!("pid {}", bob.pid));
    run_as(BOB, &["release", "--pid", &bob.pid, l]).code(0);
    run_as(ALICE, &["acquire", "-n", "--pid", &alice.pid, l]).code(0);
    run_as(BOB, &["acquire", "-n", "--pid", &bob.pid, l]).code(75);
    run_as(BOB, &["break", l]).code(75).stderr_has("refusing");
    run_as(ALICE, &["release", "--pid", &alice.pid, l]).code(0);
    assert!(names_in(&d.team).is_empty(), "{:?}", names_in(&d.team));
}

/// A record is believed only from the user it names: a file of bob's that
/// claims to be alice's lock, held by her live shell, is another tool's
/// lock to everyone; alice's release of "her" lock leaves it alone.
#[test]
fn a_forged_record_is_not_believed() {
    let Some(d) = Shared::new() else { return };
    let alice = sleeper_of(ALICE);
    // A genuine record of alice's, for a lock elsewhere...
    let genuine = d.team.join("hers");
    run_as(
        ALICE,
        &["acquire", "--pid", &alice.pid, genuine.to_str().unwrap()],
    )
    .code(0);
    let record = std::fs::read(&genuine).unwrap();
    // ...copied by bob into a file of his own at the lock path.
    let lock = d.team.join("l");
    let l = lock.to_str().unwrap();
    let mut w = as_user(BOB, 0o022, "sh");
    w.args(["-c", "cat > \"$0\"", l]).stdin(Stdio::piped());
    let mut child = w.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &record).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let v = run_as(ALICE, &["status", "--json", l]).code(75).json();
    assert_eq!(v["reason"], "foreign", "{v}");
    let what = v["holder"]["foreign"].as_str().unwrap().to_string();
    assert!(what.contains("not believed"), "{what}");
    assert!(v["alive"].is_null(), "{v}");
    run_as(ALICE, &["release", "--pid", &alice.pid, l]).code(76);
    run_as(ALICE, &["touch", "--pid", &alice.pid, l]).code(76);
    assert_eq!(
        std::fs::read(&lock).unwrap(),
        record,
        "the file was changed"
    );
    // Naming root helps no more than naming alice.
    let text = String::from_utf8(record).unwrap();
    let as_root: String = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some(("uid", _)) => "uid=0".to_string(),
            _ => line.to_string(),
        })
        .map(|line| line + "\n")
        .collect();
    std::fs::write(&lock, as_root).unwrap();
    nix::unistd::chown(&lock, Some(nix::unistd::Uid::from_raw(BOB)), None).unwrap();
    let v = run_as(ALICE, &["status", "--json", l]).code(75).json();
    assert_eq!(v["reason"], "foreign", "{v}");
    run_as(
        ALICE,
        &["release", "--pid", &alice.pid, genuine.to_str().unwrap()],
    )
    .code(0);
}

/// Under /proc's hidepid=invisible (systemd's ProtectProc), other users'
/// processes have no /proc entry. A live holder must not be judged dead
/// for that: alive is unknown, and its lock stays.
#[test]
fn a_holder_hidden_by_hidepid_is_not_dead() {
    let Some(d) = Shared::new() else { return };
    let alice = sleeper_of(ALICE);
    let lock = d.team.join("l");
    let l = lock.to_str().unwrap();
    run_as(ALICE, &["acquire", "--pid", &alice.pid, l]).code(0);
    // Bob, seeing /proc as usual: alice's process is there and alive.
    let v = run_as(BOB, &["status", "--json", l]).code(75).json();
    assert_eq!(v["alive"], true, "{v}");
    // Bob in a mount namespace of his own whose /proc hides other users.
    let hidden = |args: &str| {
        let script = format!(
            "mount -t proc -o hidepid=invisible proc /proc && \
             exec setpriv --reuid={BOB} --regid={TEAM} --groups={TEAM} {BIN} {args}"
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap();
        Out::from(out)
    };
    let probe = hidden(&format!("status --json {l}"));
    if probe.stderr.contains("mount") && probe.code != 75 {
        skip(&format!("cannot mount a private /proc: {}", probe.stderr));
        return;
    }
    let v = probe.code(75).json();
    assert!(v["alive"].is_null(), "a hidden holder was judged: {v}");
    assert_eq!(v["state"], "held", "{v}");
    hidden(&format!("acquire -n {l}")).code(75);
    hidden(&format!("break {l}")).code(75);
    assert!(lock.exists());
    run_as(ALICE, &["release", "--pid", &alice.pid, l]).code(0);
}

/// A lock file we may not read can be neither judged nor removed: it is
/// reported as such (never as "cannot create"), waited for, and a break
/// is not permitted (77).
#[test]
fn a_lock_we_may_not_read_is_reported_as_such() {
    let Some(d) = Shared::new() else { return };
    let alice = sleeper_of(ALICE);
    let lock = d.team.join("l");
    let l = lock.to_str().unwrap();
    run_as(ALICE, &["acquire", "--pid", &alice.pid, l]).code(0);
    let chmod = as_user(ALICE, 0o022, "chmod")
        .args(["600", l])
        .status()
        .unwrap();
    assert!(chmod.success());
    let status = run_as(BOB, &["status", l]);
    status.code(75).stdout_has("may not read");
    let v = run_as(BOB, &["status", "--json", l]).code(75).json();
    assert_eq!(v["reason"], "unreadable", "{v}");
    let busy = run_as(BOB, &["acquire", "-n", l]);
    busy.code(75).stderr_has("may not read");
    assert!(!busy.stderr.contains("cannot create"), "{}", busy.stderr);
    run_as(BOB, &["break", "--force", l]).code(77);
    run_as(ALICE, &["release", "--pid", &alice.pid, l]).code(0);
}

/// `list` in a directory another user may read but not write: no probe
/// can be made there, so ages are unknown (never the local clock), and the
/// listing is still complete. Nothing is created or changed.
#[test]
fn list_in_a_directory_it_may_not_write_shows_ages_as_unknown() {
    let Some(s) = Shared::new() else { return };
    let team = &s.team;
    let _held = sleeper_of(ALICE);
    dead_lock_of(ALICE, 0o022, &team.join("job.lock"));
    let readonly = team.parent().unwrap().join("readonly");
    std::fs::create_dir(&readonly).unwrap();
    std::fs::set_permissions(&readonly, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(team.join("job.lock"), readonly.join("job.lock")).unwrap();
    for (name, _) in names_in(team) {
        std::fs::rename(team.join(&name), readonly.join(&name)).unwrap();
    }
    let before = names_in(&readonly);
    let out = run_as(BOB, &["list", "--json", readonly.to_str().unwrap()]);
    out.code(0);
    let v = out.json();
    let lock = &v["locks"][0];
    assert_eq!(v["locks"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(lock["age_s"], serde_json::Value::Null, "{v}");
    assert_eq!(lock["fs_now"], serde_json::Value::Null, "{v}");
    assert_eq!(
        lock["state"], "stale",
        "a dead owner is known without a clock"
    );
    let text = run_as(BOB, &["list", readonly.to_str().unwrap()]);
    text.code(0);
    let row = text.stdout.lines().nth(1).unwrap();
    assert_eq!(row.split_whitespace().nth(5), Some("-"), "{row}");
    assert_eq!(names_in(&readonly), before, "list changed the directory");
}

/// Readers of two users share a lock in a team directory when the first
/// reader's umask lets the group write into its readers' directory; with
/// 022 the second user is told it may not, and nothing is left behind.
#[test]
fn readers_of_two_users_share_a_lock_with_a_group_umask() {
    let Some(d) = Shared::new() else { return };
    let lock = d.team.join("l");
    let l = lock.to_str().unwrap();
    for (umask, want) in [(0o002, 0), (0o022, 73)] {
        let alice = sleeper_of(ALICE);
        let st = as_user(ALICE, umask, BIN)
            .args(["acquire", "-s", "-n", "--pid", &alice.pid, l])
            .status()
            .unwrap();
        assert!(st.success());
        let out = run_as(BOB, &["run", "-s", "-n", l, "--", "true"]);
        out.code(want);
        if want != 0 {
            out.stderr_has("Permission denied");
        }
        let st = as_user(ALICE, umask, BIN)
            .args(["release", "--pid", &alice.pid, l])
            .status()
            .unwrap();
        assert!(st.success());
        let left: Vec<_> = names_in(&d.team)
            .into_iter()
            .filter(|(n, _)| n.contains(".nfslock-"))
            .collect();
        assert!(left.is_empty(), "umask {umask:o}: {left:?}");
    }
}
