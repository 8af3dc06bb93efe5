//! The test harness: a scratch directory, the binary, and assertions that
//! print everything on failure.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_nfslock");

/// Where a test's locks live. `NFSLOCK_TEST_DIR` points the whole suite at
/// another filesystem (the NFS lab mount); default is a local temp dir.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = match std::env::var_os("NFSLOCK_TEST_DIR") {
            Some(base) => tempfile::Builder::new().prefix("t").tempdir_in(base),
            None => tempfile::tempdir(),
        }
        .expect("scratch dir");
        Scratch { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with a scrubbed environment, running in the scratch dir.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.dir()).env_clear();
        c.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        c
    }

    /// `sh -c script` in the scratch dir (the environment inherited, so
    /// that scripts find what they call).
    pub fn sh(&self, script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script).current_dir(self.dir());
        c
    }

    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Out::from(self.cmd(args).output().expect("run nfslock"))
    }

    /// Names of our auxiliary files left in the directory.
    pub fn litter(&self) -> Vec<String> {
        std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".nfslock-"))
            .collect()
    }

    /// No leftovers but `kept` (files that stay by design).
    pub fn assert_no_litter_but(&self, kept: &[&str]) {
        let l: Vec<String> = self
            .litter()
            .into_iter()
            .filter(|n| !kept.contains(&n.as_str()))
            .collect();
        assert!(l.is_empty(), "leftover files: {l:?}");
    }

    pub fn assert_no_litter(&self) {
        let l = self.litter();
        assert!(l.is_empty(), "leftover files: {l:?}");
    }

    /// Takes `lock` for a fresh long-lived process and returns it.
    pub fn hold(&self, lock: &str, extra: &[&str]) -> Holder {
        let holder = sleeper();
        let pid = holder.pid.clone();
        let mut args = vec!["acquire", "-n", "--pid", &pid];
        args.extend_from_slice(extra);
        args.push(lock);
        self.run(&args).code(0);
        holder
    }
}

/// A long-lived process to own locks, killed when dropped (a leftover
/// would keep the test runner's output pipe open).
pub fn sleeper() -> Holder {
    sleeper_from(Command::new("sleep"))
}

/// [`sleeper`] from a prepared `sleep` command (run as another user, say).
pub fn sleeper_from(mut sleep: Command) -> Holder {
    let child = sleep
        .arg("600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    Holder { child, pid }
}

/// A process that owns a lock; killed when dropped.
pub struct Holder {
    pub child: Child,
    pub pid: String,
}

impl Holder {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A finished run.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    #[track_caller]
    pub fn code(&self, want: i32) -> &Out {
        assert_eq!(
            self.code, want,
            "exit {} (want {want})\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Out {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Out {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn silent(&self) -> &Out {
        assert!(
            self.stdout.is_empty() && self.stderr.is_empty(),
            "expected no output:\n--- stdout\n{}--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Moves a file's mtime `secs` back from its current value, so it looks
/// that much older in file-system time.
pub fn age_by(path: &Path, secs: i64) {
    let m = std::fs::symlink_metadata(path).unwrap();
    // Nanoseconds kept: a lock aged 29 s must not pass a 30 s lease by
    // the second's fraction a truncation would add.
    set_mtime_ns(path, m.mtime() - secs, m.mtime_nsec());
}

pub fn set_mtime(path: &Path, secs: i64) {
    set_mtime_ns(path, secs, 0);
}

fn set_mtime_ns(path: &Path, secs: i64, nanos: i64) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(secs, nanos);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

pub fn mtime(path: &Path) -> i64 {
    std::fs::symlink_metadata(path).unwrap().mtime()
}

/// Waits until `cond` holds, failing after a generous bound. For waiting on
/// an event another process causes, never for timing.
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for a child with a generous bound (heavy contention over the NFS
/// lab is slow); kills it on timeout.
#[track_caller]
pub fn wait_out(mut child: Child, what: &str) -> Out {
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().unwrap().is_some() {
            return Out::from(child.wait_with_output().unwrap());
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{what}: did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A test that cannot do its work here says so and returns; but CI on
/// local disk can do all of them, and there a skip is a failure.
#[track_caller]
pub fn skip(why: &str) {
    let must_run = std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        && std::env::var_os("NFSLOCK_TEST_DIR").is_none();
    assert!(!must_run, "CI must not skip: {why}");
    eprintln!("skipping: {why}");
}

/// Runs `c` to its end and reports, besides its output, the CPU time it
/// used (user + system, from wait4(2)): a process that retries without
/// sleeping shows up here, however fast the machine.
// The child is reaped by wait4(2) below: std's wait gives no rusage.
#[allow(clippy::zombie_processes)]
pub fn run_measured(mut c: Command) -> (Out, Duration) {
    use std::io::Read;
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        o
    });
    let mut e = Vec::new();
    let _ = err.read_to_end(&mut e);
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid out-pointers.
    let pid = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let tv = |t: nix::libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    let code = if nix::libc::WIFEXITED(status) {
        nix::libc::WEXITSTATUS(status)
    } else {
        128 + nix::libc::WTERMSIG(status)
    };
    let out = Out {
        code,
        stdout: String::from_utf8_lossy(&reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&e).into_owned(),
    };
    (out, cpu)
}

/// The most CPU a process that waits (or gives up) for `wall` may use:
/// polling at its pace costs milliseconds; a retry loop without a pause
/// would use about all of `wall`.
pub fn idle_cpu_bound(wall: Duration) -> Duration {
    Duration::from_millis(100) + wall / 10
}

pub fn piped(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Rewrites one `key=value` line of a held lock in place (the claim is the
/// same inode, so it changes too).
pub fn edit_record(path: &std::path::Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, _)) if k == key => format!("{k}={value}"),
            _ => l.to_string(),
        })
        .collect();
    std::fs::write(path, edited.join("\n") + "\n").unwrap();
}
