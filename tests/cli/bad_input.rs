use crate::util::*;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_symlink_at_the_lock_path_is_never_followed() {
    let s = Scratch::new();
    std::fs::write(s.path("target"), "precious\n").unwrap();
    std::os::unix::fs::symlink(s.path("target"), s.path("l")).unwrap();
    s.run(["acquire", "-n", "l"])
        .code(75)
        .stderr_has("a symbolic link");
    s.run(["status", "l"]).code(75).stdout_has("symbolic link");
    s.run(["break", "--force", "l"])
        .code(75)
        .stderr_has("symbolic link");
    s.run(["release", "l"]).code(76);
    s.run(["touch", "l"]).code(76);
    assert_eq!(
        std::fs::read_to_string(s.path("target")).unwrap(),
        "precious\n"
    );
    assert!(s
        .path("l")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    s.assert_no_litter();
}

#[test]
fn a_symlink_at_a_claim_name_is_left_alone() {
    let s = Scratch::new();
    std::fs::write(s.path("target"), "precious\n").unwrap();
    let planted = s.path(".l.nfslock-claim.00000000deadbeef.1.somehost");
    std::os::unix::fs::symlink(s.path("target"), &planted).unwrap();
    let guard = s.path(".l.nfslock-guard.00000000deadbeef.1.somehost");
    std::os::unix::fs::symlink(s.path("target"), &guard).unwrap();
    for _ in 0..3 {
        s.run(["acquire", "l"]).code(0);
        s.run(["break", "--force", "-q", "l"]).code(0);
    }
    assert_eq!(
        std::fs::read_to_string(s.path("target")).unwrap(),
        "precious\n"
    );
    assert!(planted.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(guard.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn directories_and_fifos_at_the_lock_path_are_busy_not_hangs() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("d")).unwrap();
    nix::unistd::mkfifo(
        &s.path("f"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    for (name, what) in [("d", "a directory"), ("f", "a fifo")] {
        s.run(["acquire", "-n", name]).code(75).stderr_has(what);
        s.run(["status", "--json", name]).code(75);
        s.run(["break", "--force", name]).code(75);
        s.run(["release", name]).code(76);
    }
    assert!(s.path("d").is_dir());
    s.assert_no_litter();
}

#[test]
fn other_tools_locks_are_judged_by_age_only() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotlockfile", b"0\n".to_vec()),
        ("shlock", b"      4242\n".to_vec()),
        ("empty", vec![]),
        ("one line", b"web3.example.com 4242\n".to_vec()),
        ("damaged record", b"nfslock-record 1\nhost=\xff\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let s = Scratch::new();
        std::fs::write(s.path("l"), &bytes).unwrap();
        let v = s.run(["status", "--json", "l"]).code(75).json();
        assert_eq!(v["reason"], "foreign", "{name}: {v}");
        assert!(v["holder"]["foreign"].is_string(), "{name}: {v}");
        assert!(v["alive"].is_null());
        s.run(["acquire", "-n", "l"])
            .code(75)
            .stderr_has("another tool");
        s.run(["release", "l"]).code(76);
        s.run(["break", "l"]).code(75);
        assert_eq!(
            std::fs::read(s.path("l")).unwrap(),
            bytes,
            "{name}: changed"
        );
        age_by(&s.path("l"), 600);
        s.run(["break", "--older-than", "5m", "l"]).code(0);
        assert!(!s.path("l").exists(), "{name}");
        s.assert_no_litter();
    }
}

/// A file that no lock tool would write is someone's data: refused with 65
/// by every command that could change it, whatever its age and whatever
/// the options, and left exactly as it was.
#[test]
fn a_data_file_at_the_lock_path_is_never_removed() {
    let big = vec![b'x'; 1 << 20];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "csv",
            b"date,amount\n2026-11-30,12.50\n2026-12-01,3.00\n".to_vec(),
        ),
        ("binary", (0u8..=255).cycle().take(3000).collect()),
        ("huge", big),
    ];
    for (name, bytes) in cases {
        let s = Scratch::new();
        std::fs::write(s.path("ledger.csv"), &bytes).unwrap();
        age_by(&s.path("ledger.csv"), 7200);
        s.run([
            "run",
            "--stale-after",
            "1h",
            "ledger.csv",
            "--",
            "touch",
            "ran",
        ])
        .code(65)
        .stderr_has("not a lock file");
        s.run(["acquire", "-n", "--stale-after", "1s", "ledger.csv"])
            .code(65);
        s.run(["break", "--force", "ledger.csv"])
            .code(65)
            .stderr_has("not a lock file");
        s.run(["break", "--older-than", "1s", "ledger.csv"])
            .code(65);
        let v = s.run(["status", "--json", "ledger.csv"]).code(65).json();
        assert_eq!(v["reason"], "not-a-lock", "{name}: {v}");
        s.run(["release", "ledger.csv"]).code(76);
        assert_eq!(
            std::fs::read(s.path("ledger.csv")).unwrap(),
            bytes,
            "{name}: changed"
        );
        assert!(!s.path("ran").exists(), "{name}: the command ran");
        s.assert_no_litter();
    }
}

#[test]
fn a_missing_directory_is_66() {
    let s = Scratch::new();
    for cmd in ["acquire", "status", "release", "touch", "break"] {
        s.run([cmd, "no/such/dir/l"])
            .code(66)
            .stderr_has("does not exist");
    }
    std::fs::write(s.path("file"), "").unwrap();
    s.run(["acquire", "-n", "file/l"]).code(66);
}

#[test]
fn a_name_too_long_is_73_and_creates_nothing() {
    let s = Scratch::new();
    let long = "n".repeat(200);
    s.run(["acquire", "-n", &long])
        .code(73)
        .stderr_has("too long");
    s.run(["status", &long]).code(73);
    s.assert_no_litter();
}

#[test]
fn non_utf8_paths_work() {
    let s = Scratch::new();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.lock");
    s.run([name]).code(64);
    let mut acquire = s.cmd(["acquire".as_ref(), name]);
    assert!(acquire.status().unwrap().success());
    s.run([std::ffi::OsStr::new("status"), name]).code(75);
    s.run([std::ffi::OsStr::new("release"), name]).code(0);
    s.assert_no_litter();
}

/// Mounts a small tmpfs (root only); `None` elsewhere.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &std::path::Path, opts: &str) -> Option<Mount> {
        if !nix::unistd::geteuid().is_root() {
            skip("mounting needs root");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs failed");
        Some(Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_filesystem_is_73() {
    let s = Scratch::new();
    let Some(m) = Mount::tmpfs(&s.path("ro"), "ro,size=1m") else {
        return;
    };
    s.run(["acquire", "-n", "ro/l"])
        .code(73)
        .stderr_has("Read-only");
    s.run(["status", "ro/l"]).code(0);
    drop(m);
}

#[test]
fn a_full_filesystem_is_73_and_leaves_nothing() {
    let s = Scratch::new();
    let Some(m) = Mount::tmpfs(&s.path("full"), "size=64k") else {
        return;
    };
    // Fill it to the last block.
    let _ = std::fs::write(s.path("full/filler"), vec![0u8; 1 << 20]);
    s.run(["acquire", "-n", "full/l"])
        .code(73)
        .stderr_has("No space");
    let left: Vec<_> = std::fs::read_dir(s.path("full"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "filler")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(m);
}

/// Started with stderr closed (as some daemons and cron setups do),
/// nfslock must not let its own files take that number: its messages would
/// go into them. With `-v`, `run` writes to stderr while it holds the lock.
#[test]
fn a_closed_stderr_never_becomes_one_of_our_files() {
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    let mut cmd = s.cmd(["-v", "run", "l", "--", "sh", "-c", "echo into-stderr >&2"]);
    // SAFETY: only close(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::libc::close(2);
            Ok(())
        });
    }
    let status = cmd.status().expect("run nfslock");
    assert_eq!(status.code(), Some(0), "the command's stderr is /dev/null");
    s.assert_no_litter();
    assert!(!s.path("l").exists());
}

/// `job.lock/` names a directory, not a lock: a usage error at once,
/// where link(2) used to fail with ENOENT thousands of times a second.
#[test]
fn a_trailing_slash_is_a_usage_error() {
    let s = Scratch::new();
    for args in [
        vec!["run", "-n", "job.lock/", "--", "true"],
        vec!["acquire", "-n", "job.lock/"],
        vec!["status", "job.lock/"],
        vec!["break", "job.lock/"],
        vec!["release", "job.lock/"],
    ] {
        s.run(&args).code(64).stderr_has("trailing '/'");
    }
    let (out, cpu) = run_measured(s.cmd(["run", "-w", "2s", "job.lock/", "--", "true"]));
    out.code(64);
    assert!(cpu < idle_cpu_bound(Duration::ZERO), "{cpu:?}");
    s.assert_no_litter();
}

/// A filesystem out of inodes refuses the link after the claim was made
/// (tmpfs counts links): 73 at once, the claim removed, no retry loop.
#[test]
fn a_link_refused_for_space_is_73_at_once() {
    let s = Scratch::new();
    let Some(m) = Mount::tmpfs(&s.path("few"), "size=1m,nr_inodes=4") else {
        return;
    };
    std::fs::write(s.path("few/a"), "").unwrap();
    std::fs::write(s.path("few/b"), "").unwrap();
    let mut c = s.cmd(["acquire", "-w", "2s", "few/l"]);
    c.current_dir(s.dir());
    let (out, cpu) = run_measured(c);
    out.code(73).stderr_has("No space");
    assert!(cpu < idle_cpu_bound(Duration::ZERO), "{cpu:?}");
    let mut left: Vec<_> = std::fs::read_dir(s.path("few"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["a", "b"]);
    drop(m);
}

/// Records are anyone's to write: a record whose fields carry escape
/// sequences and newlines never puts them on the reader's terminal.
#[test]
fn record_fields_are_escaped_on_the_terminal() {
    let s = Scratch::new();
    let _h = s.hold("l", &[]);
    let text = std::fs::read_to_string(s.path("l")).unwrap();
    let evil: String = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some(("host", _)) => "host=evil%1B%5B2J%0Aspoofed".to_string(),
            Some(("acquired_at", _)) => "acquired_at=\x1b]0;pwned\x07".to_string(),
            _ => line.to_string(),
        })
        .map(|line| line + "\n")
        .collect();
    std::fs::write(s.path("l"), evil).unwrap();
    let status = s.run(["status", "l"]);
    status.code(75).stdout_has("evil\\x1b[2J\\x0aspoofed");
    let busy = s.run(["acquire", "-n", "l"]);
    busy.code(75);
    for text in [&status.stdout, &busy.stderr] {
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    }
    assert_eq!(busy.stderr.lines().count(), 1, "{}", busy.stderr);
    // JSON stays JSON: the value as written, escaped by JSON itself.
    let v = s.run(["status", "--json", "l"]).json();
    assert_eq!(v["holder"]["host"], "evil\x1b[2J\nspoofed");
}

/// The record is world-readable: `run` keeps the command's name in it,
/// never its arguments (a cron line may carry a password).
#[test]
fn the_record_keeps_the_command_name_only() {
    let s = Scratch::new();
    let out = s.run([
        "run",
        "l",
        "--",
        "sh",
        "-c",
        "cat \"$NFSLOCK_PATH\"",
        "--password=hunter2",
    ]);
    out.code(0).stdout_has("\ncmd=sh\n");
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
}

/// A closed or full stdout ends the output, never the command: status
/// keeps its exit code, and acquire --print-token, whose caller could not
/// learn the token, gives the lock back and says so (74), never 70.
#[test]
fn a_closed_or_full_stdout_is_no_internal_error() {
    use std::os::fd::OwnedFd;
    let s = Scratch::new();
    let closed_pipe = || {
        let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
        drop(read);
        std::process::Stdio::from(write)
    };
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    for stdout in [closed_pipe(), full().into()] {
        let mut c = s.cmd(["acquire", "--print-token", "l"]);
        let out = Out::from(c.stdout(stdout).output().unwrap());
        out.code(74).stderr_has("standard output");
        s.run(["status", "l"]).code(0);
        s.assert_no_litter();
    }
    let _h = s.hold("l", &[]);
    for json in [false, true] {
        let args: &[&str] = if json {
            &["status", "--json", "l"]
        } else {
            &["status", "l"]
        };
        for stdout in [closed_pipe(), full().into()] {
            let mut c = s.cmd(args);
            let out = Out::from(c.stdout(stdout).output().unwrap());
            out.code(75);
            assert!(!out.stderr.contains("internal"), "{}", out.stderr);
        }
    }
}

#[test]
fn nonsense_pids_and_leases_are_usage_errors() {
    let s = Scratch::new();
    for args in [
        vec!["acquire", "--pid", "0", "l"],
        vec!["acquire", "--pid", "-1", "l"],
        vec!["release", "--pid", "0", "l"],
        vec!["acquire", "--lease", "1ms", "l"],
        vec!["acquire", "--lease", "0", "l"],
        vec!["run", "--lease", "50ms", "l", "true"],
    ] {
        s.run(&args).code(64);
    }
    s.assert_no_litter();
    assert!(!s.path("l").exists());
}

/// The fencing counter never wraps: at its maximum a fenced run is
/// refused (65), the command does not run, and the counter stays.
#[test]
fn the_fence_counter_refuses_to_wrap() {
    let s = Scratch::new();
    let fence = s.path(".l.nfslock-fence");
    std::fs::write(&fence, format!("{}\n", u64::MAX)).unwrap();
    s.run(["run", "--fence", "l", "touch", "ran"])
        .code(65)
        .stderr_has("maximum");
    assert!(!s.path("ran").exists());
    assert_eq!(
        std::fs::read_to_string(&fence).unwrap(),
        format!("{}\n", u64::MAX)
    );
    std::fs::write(&fence, "not a number\n").unwrap();
    s.run(["run", "--fence", "l", "true"]).code(65);
    assert!(!s.path("l").exists(), "the lock was left behind");
}

/// The owner that holds the lock asking again gets an answer at once,
/// not a wait for itself.
#[test]
fn a_second_acquire_by_the_holder_fails_at_once() {
    let s = Scratch::new();
    let h = s.hold("l", &[]);
    let (out, _) = run_measured(s.cmd(["acquire", "--pid", &h.pid, "l"]));
    out.code(75).stderr_has("you already hold");
    s.run(["release", "--pid", &h.pid, "l"]).code(0);
    s.assert_no_litter();
}

#[test]
fn quiet_silences_status_but_not_its_answer() {
    let s = Scratch::new();
    s.run(["status", "-q", "l"]).code(0).silent();
    let _h = s.hold("l", &[]);
    s.run(["-q", "status", "l"]).code(75).silent();
    // --json is asked for explicitly: printed.
    s.run(["status", "-q", "--json", "l"])
        .code(75)
        .stdout_has("\"state\":\"held\"");
}
