use crate::util::*;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

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
            eprintln!("skipping: mounting needs root");
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
