use crate::util::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn signal(child: &std::process::Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[test]
fn exit_status_passes_through() {
    let s = Scratch::new();
    s.run(["run", "l", "true"]).code(0).silent();
    s.run(["run", "l", "--", "sh", "-c", "exit 7"]).code(7);
    s.run(["run", "l", "sh", "-c", "kill -TERM $$"]).code(143);
    s.run(["run", "l", "-c", "exit 3"]).code(3);
    s.run(["run", "-c", "exit 4", "l"]).code(4);
    s.assert_no_litter();
    assert!(!s.path("l").exists());
}

#[test]
fn exec_errors_are_127_and_126() {
    let s = Scratch::new();
    s.run(["run", "l", "/no/such/command"])
        .code(127)
        .stderr_has("not found");
    std::fs::write(s.path("plain"), "not a program").unwrap();
    s.run(["run", "l", "./plain"]).code(126);
    s.run(["run", "l"]).code(64);
    s.assert_no_litter();
    assert!(!s.path("l").exists());
}

/// The child is started as execvp(3) would start it: found on PATH, a
/// script without `#!` run by /bin/sh, and the environment passed on with
/// `run`'s own variables added.
#[test]
fn the_command_is_found_and_started_like_execvp() {
    let s = Scratch::new();
    std::fs::write(s.path("script"), "echo \"script $1 $LOCKVAR\"\n").unwrap();
    std::fs::set_permissions(
        s.path("script"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = s
        .cmd(["run", "l", "./script", "arg"])
        .env("LOCKVAR", "inherited")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "script arg inherited\n"
    );
    let out = s.run(["run", "l", "sh", "-c", "echo $NFSLOCK_PATH"]);
    out.code(0);
    assert!(out.stdout.trim().ends_with('l'), "{}", out.stdout);
    s.assert_no_litter();
}

/// `run` blocks its stop signals (to read them from a signalfd) and nfslock
/// ignores SIGPIPE: the child must start with neither, or a pipeline in
/// it would not end on a closed pipe and a TERM would never reach it.
#[test]
fn the_child_starts_with_no_signal_blocked_or_ignored() {
    let mask = |status: &str, field: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
    };
    let s = Scratch::new();
    // Builtins only: while a shell forks it blocks signals for a moment.
    let out = s.run([
        "run",
        "l",
        "sh",
        "-c",
        "while read -r l; do echo \"$l\"; done < /proc/$$/status",
    ]);
    out.code(0);
    // The standard signals, 1-31; above are the C library's own.
    let standard = (1u64 << 31) - 1;
    assert_eq!(mask(&out.stdout, "SigBlk:") & standard, 0, "{}", out.stdout);
    assert_eq!(mask(&out.stdout, "SigIgn:") & standard, 0, "{}", out.stdout);
}

#[test]
fn busy_run_does_not_start_the_command() {
    let s = Scratch::new();
    let _h = s.hold("l", &[]);
    s.run(["run", "-n", "l", "touch", "ran"])
        .code(75)
        .stderr_has("held by");
    s.run(["run", "-n", "-E", "0", "-q", "l", "touch", "ran"])
        .code(0)
        .silent();
    assert!(!s.path("ran").exists());
}

#[test]
fn the_child_sees_its_lock_and_no_lock_descriptors() {
    let s = Scratch::new();
    let out = s.run([
        "run",
        "l",
        "sh",
        "-c",
        "echo $NFSLOCK_PATH; echo $NFSLOCK_TOKEN; ls /proc/$$/fd",
    ]);
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], s.path("l").to_str().unwrap());
    assert_eq!(lines[1].len(), 16);
    // Whatever the test runner passes down, nfslock must add nothing.
    let plain = std::process::Command::new("sh")
        .args(["-c", "ls /proc/$$/fd"])
        .current_dir(s.dir())
        .output()
        .unwrap();
    let plain = String::from_utf8(plain.stdout).unwrap();
    let expected: Vec<&str> = plain.lines().collect();
    assert_eq!(
        lines[2..],
        expected[..],
        "descriptors leaked into the child"
    );
}

#[test]
fn fence_tokens_strictly_increase() {
    let s = Scratch::new();
    let mut last = 0u64;
    for _ in 0..5 {
        let out = s.run(["run", "--fence", "l", "sh", "-c", "echo $NFSLOCK_FENCE"]);
        let n: u64 = out.code(0).stdout.trim().parse().unwrap();
        assert!(n > last, "{n} after {last}");
        last = n;
    }
    let out = s.run(["run", "l", "sh", "-c", "echo \"[$NFSLOCK_FENCE]\""]);
    assert_eq!(
        out.stdout.trim(),
        "[]",
        "only --fence runs get a fencing token"
    );
    // The counter is meant to stay; nothing else may.
    assert_eq!(s.litter(), [".l.nfslock-fence"]);
}

/// Starts `nfslock run` with a child that signals readiness by a file
/// once `setup` (traps, say) is done.
fn start_after(s: &Scratch, opts: &[&str], setup: &str, body: &str) -> std::process::Child {
    let mut args: Vec<&str> = vec!["run"];
    args.extend_from_slice(opts);
    let script = format!("{setup} echo $$ > child.pid; {body}");
    args.extend_from_slice(&["l", "sh", "-c", &script]);
    let child = piped(s.cmd(&args));
    // Complete, not just created: `echo $$ > f` makes the file first.
    eventually("the child to start", || {
        std::fs::read_to_string(s.path("child.pid")).is_ok_and(|t| t.ends_with('\n'))
    });
    child
}

fn start(s: &Scratch, opts: &[&str], body: &str) -> std::process::Child {
    start_after(s, opts, "", body)
}

#[test]
fn stop_signals_reach_the_child_and_the_lock_is_released() {
    for (sig, code) in [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
    ] {
        let s = Scratch::new();
        let run = start(&s, &[], "exec sleep 60");
        signal(&run, sig);
        wait_out(run, "run").code(code);
        assert!(!s.path("l").exists(), "{sig}: lock left behind");
        s.assert_no_litter();
    }
}

#[test]
fn a_child_that_handles_the_signal_decides_the_status() {
    let s = Scratch::new();
    let run = start_after(
        &s,
        &[],
        "trap 'exit 0' TERM;",
        "while :; do sleep 0.05; done",
    );
    signal(&run, Signal::SIGTERM);
    wait_out(run, "run").code(0);
    s.assert_no_litter();
}

#[test]
fn usr1_is_forwarded() {
    let s = Scratch::new();
    let run = start_after(
        &s,
        &[],
        "trap 'touch got-usr1; exit 5' USR1;",
        "while :; do sleep 0.05; done",
    );
    signal(&run, Signal::SIGUSR1);
    wait_out(run, "run").code(5);
    assert!(s.path("got-usr1").exists());
}

#[test]
fn a_killed_supervisor_takes_its_child_along_and_frees_the_lock() {
    let s = Scratch::new();
    let run = start(&s, &[], "exec sleep 60");
    let child: i32 = std::fs::read_to_string(s.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(&run, Signal::SIGKILL);
    let _ = wait_out(run, "run");
    eventually("the child to die with its supervisor", || {
        kill(Pid::from_raw(child), None).is_err()
    });
    // The owner (the supervisor) is provably dead on this host.
    s.run(["acquire", "-n", "l"]).code(0);
    s.run(["release", "l"]).code(0);
    s.assert_no_litter();
}

#[test]
fn a_broken_lock_terminates_the_command_and_exits_76() {
    let s = Scratch::new();
    let began = Instant::now();
    let run = start(&s, &["--lease", "1s"], "exec sleep 60");
    s.run(["break", "--force", "-q", "l"]).code(0);
    let taker = s.hold("l", &[]);
    let out = wait_out(run, "run");
    out.code(76)
        .stderr_has("lock lost")
        .stderr_has("now held by host")
        .stderr_has(&format!("pid {}", taker.pid));
    drop(taker);
    s.run(["break", "-q", "l"]).code(0);
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "the child ran on"
    );
    s.assert_no_litter();
}

#[test]
fn a_child_ignoring_term_is_killed_after_the_grace() {
    let s = Scratch::new();
    let began = Instant::now();
    let run = start(
        &s,
        &["--lease", "1s", "--kill-after", "1s"],
        "trap '' TERM; while :; do sleep 0.05; done",
    );
    s.run(["break", "--force", "-q", "l"]).code(0);
    wait_out(run, "run").code(76);
    assert!(began.elapsed() < Duration::from_secs(30));
}

#[test]
fn with_on_lost_warn_the_command_finishes_and_the_exit_is_76() {
    let s = Scratch::new();
    let run = start(
        &s,
        &["--lease", "1s", "--on-lost", "warn"],
        "while [ ! -e go ]; do sleep 0.05; done; touch finished",
    );
    s.run(["break", "--force", "-q", "l"]).code(0);
    std::fs::write(s.path("go"), "").unwrap();
    wait_out(run, "run").code(76).stderr_has("lost");
    assert!(s.path("finished").exists(), "the command was cut short");
    s.assert_no_litter();
}

#[test]
fn the_heartbeat_keeps_the_lock_across_leases() {
    let s = Scratch::new();
    // 7 s under a 2 s lease: without refreshes it would expire three times.
    // The command leaves `done` before it exits, and the run releases only
    // after that: a lock taken while `done` is missing was taken from a
    // live run, one taken after is the normal end.
    let run = start(&s, &["--lease", "2s"], "sleep 7; touch done");
    let mut tries = 0;
    while tries < 500 {
        let out = s.run(["acquire", "-n", "-q", "l"]);
        if out.code == 0 {
            assert!(
                s.path("done").exists(),
                "a live run's lock was taken after {tries} tries"
            );
            s.run(["release", "l"]).code(0);
            break;
        }
        out.code(75);
        tries += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_out(run, "run").code(0);
    assert!(tries > 20, "only {tries} attempts");
    s.assert_no_litter();
}

#[test]
fn keepalive_frees_the_lock_when_the_owner_is_killed() {
    let s = Scratch::new();
    let script =
        format!("{BIN} acquire --keepalive --lease 3s --pid $$ l && touch held && exec sleep 60");
    let mut owner = s.sh(&script).spawn().unwrap();
    eventually("the owner to hold the lock", || s.path("held").exists());
    // Kept fresh past several leases while the owner lives.
    age_by(&s.path("l"), 100);
    eventually("the keeper to refresh the lock", || {
        s.run(["status", "l"]).code == 75
    });
    s.run(["acquire", "-n", "l"]).code(75);
    owner.kill().unwrap();
    owner.wait().unwrap();
    // The lock name goes first, the claim a moment later.
    eventually("the keeper to release the dead owner's lock", || {
        !s.path("l").exists() && s.litter().is_empty()
    });
}

#[test]
fn keepalive_exits_after_release() {
    let s = Scratch::new();
    // Command substitution also proves the keeper does not hold stdout
    // open: otherwise $(...) would wait for it.
    let script = format!(
        "T=$({BIN} acquire --keepalive --print-token --lease 300ms --pid $$ l) || exit 1; \
         echo $T > token; pgrep -f \"keeper --token $T\" >/dev/null || exit 3; \
         {BIN} release --pid $$ l"
    );
    let st = s.sh(&script).status().unwrap();
    assert_eq!(st.code(), Some(0), "3: no keeper was running");
    assert!(!s.path("l").exists());
    let token = std::fs::read_to_string(s.path("token"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 16);
    let keeper_running = || {
        Command::new("pgrep")
            .args(["-f", &format!("keeper --token {token}")])
            .status()
            .unwrap()
            .success()
    };
    eventually("the keeper to exit after the release", || !keeper_running());
    s.assert_no_litter();
}

/// Seed 004's record manager: 50 writers add one record each to a JSON
/// file (read, modify, write a temp file, rename over) and 50 readers read
/// it, all inside `nfslock run`, the readers with `-s`. The readers come
/// first and are all in at once (each marks itself in and waits for a
/// signal, so overlap is seen, not hoped for); the writers come while
/// they read and wait for them. Every record must survive and no reader
/// may see a torn or invalid file.
#[test]
fn record_manager_loses_no_record() {
    let s = Scratch::new();
    std::fs::write(s.path("db.json"), "{}").unwrap();
    let writer = r#"
import json, os, sys
with open("db.json") as f: db = json.load(f)
db[sys.argv[1]] = {"writer": int(sys.argv[1])}
with open("db.tmp", "w") as f: json.dump(db, f); f.flush(); os.fsync(f.fileno())
os.replace("db.tmp", "db.json")
"#;
    let reader = r#"
import json, os, sys, time
open("in.%d" % os.getpid(), "w").close()
deadline = time.time() + 60
while not os.path.exists("go") and time.time() < deadline: time.sleep(0.01)
with open("db.json") as f: json.load(f)
os.unlink("in.%d" % os.getpid())
"#;
    let mut procs = Vec::new();
    let markers = || {
        std::fs::read_dir(s.dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("in.")
            })
            .count()
    };
    for i in 0..100 {
        if i == 50 {
            // Every reader holds the lock shared at this moment.
            eventually("all 50 readers in at once", || markers() == 50);
            std::fs::write(s.path("go"), "").unwrap();
        }
        let (code, arg, mode) = if i >= 50 {
            (writer, i.to_string(), "-x")
        } else {
            (reader, String::new(), "-s")
        };
        // -v: a failure then shows the protocol's retries in its report.
        let mut c = s.cmd([
            "run",
            "-v",
            "--poll-max",
            "200ms",
            mode,
            "db.lock",
            "python3",
            "-c",
            code,
            &arg,
        ]);
        c.env("PYTHONDONTWRITEBYTECODE", "1");
        procs.push(piped(c));
    }
    let outs: Vec<Out> = procs.into_iter().map(|p| wait_out(p, "worker")).collect();
    // On failure, show every worker's break decisions, not just the loser's.
    let breaks: Vec<&str> = outs
        .iter()
        .flat_map(|o| o.stderr.lines())
        .filter(|l| l.contains("broke") || l.contains("lost") || l.contains("changed"))
        .collect();
    for o in &outs {
        assert_eq!(
            o.code,
            0,
            "worker failed:\n{}\nall breaks:\n{}",
            o.stderr,
            breaks.join("\n")
        );
    }
    let db: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("db.json")).unwrap()).unwrap();
    assert_eq!(db.as_object().unwrap().len(), 50, "records lost: {db}");
    s.assert_no_litter();
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

fn read_pid(s: &Scratch, name: &str) -> i32 {
    let mut pid = String::new();
    eventually(name, || {
        pid = std::fs::read_to_string(s.path(name)).unwrap_or_default();
        pid.ends_with('\n')
    });
    pid.trim().parse().unwrap()
}

/// `run OPTS l` of a script with a step in the background it waits for;
/// returns the run and the step's pid.
fn start_tree(s: &Scratch, opts: &[&str]) -> (std::process::Child, i32) {
    let mut args = vec!["run"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[
        "l",
        "--",
        "sh",
        "-c",
        "sleep 300 & echo $! > step.pid; wait",
    ]);
    let run = piped(s.cmd(&args));
    (run, read_pid(s, "step.pid"))
}

/// A lost lock stops the whole command, not only its first process: the
/// steps of a script (here a background `sleep` the shell waits for) get
/// the signal too, as the group of a command under timeout(1) does.
#[test]
fn a_lost_lock_stops_the_whole_command_tree() {
    let s = Scratch::new();
    let (run, step) = start_tree(&s, &["--lease", "1s"]);
    s.run(["break", "--force", "-q", "l"]).code(0);
    wait_out(run, "run").code(76).stderr_has("lock lost");
    eventually("the script's step to be stopped", || !alive(step));
}

/// A stop signal sent to `run` reaches every process of the command.
#[test]
fn a_forwarded_signal_reaches_the_whole_command_tree() {
    let s = Scratch::new();
    let (run, step) = start_tree(&s, &[]);
    signal(&run, Signal::SIGTERM);
    wait_out(run, "run").code(143);
    eventually("the script's step to get the signal", || !alive(step));
    s.assert_no_litter();
}

/// What surrounds `nfslock run` is not the command: the other side of a
/// pipeline gets no signal when the lock is lost, only the end of its input.
#[test]
fn a_pipeline_around_run_is_not_signalled() {
    let s = Scratch::new();
    let script = format!(
        "{BIN} run --lease 1s -q l -- sh -c 'echo $$ > child.pid; exec sleep 60' \
         | sh -c 'trap \"touch termed\" TERM; cat > /dev/null; touch eof'"
    );
    let pipeline = piped(s.sh(&script));
    let _ = read_pid(&s, "child.pid");
    s.run(["break", "--force", "-q", "l"]).code(0);
    wait_out(pipeline, "pipeline");
    assert!(s.path("eof").exists(), "the reader did not see the end");
    assert!(!s.path("termed").exists(), "the reader was signalled");
}

/// Under a terminal, the command is the terminal's foreground while it
/// runs: it can read it, and Ctrl-C reaches it.
#[test]
fn a_command_can_use_the_terminal() {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    let pty = nix::pty::openpty(None, None).unwrap();
    let (master, slave): (OwnedFd, OwnedFd) = (pty.master, pty.slave);
    let slave_fd = slave.as_raw_fd();
    let mut c = s.cmd([
        "run",
        "l",
        "--",
        "sh",
        "-c",
        "read x; echo \"got:$x\"; read y",
    ]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            // A runner started in the background (a non-interactive
            // shell's `&`) ignores INT, and ignored it stays across exec:
            // Ctrl-C must reach the command as at a real terminal.
            nix::libc::signal(nix::libc::SIGINT, nix::libc::SIG_DFL);
            nix::unistd::setsid()?;
            if nix::libc::ioctl(slave_fd, nix::libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for fd in 0..3 {
                nix::libc::dup2(slave_fd, fd);
            }
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    drop(slave);
    // Non-blocking, so that the deadlines below are checked while the
    // terminal is quiet.
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut term = std::fs::File::from(master);
    term.write_all(b"hello\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let began = Instant::now();
    while !String::from_utf8_lossy(&seen).contains("got:hello") {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the command never read the terminal: {:?}",
            String::from_utf8_lossy(&seen)
        );
        match term.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    // Ctrl-C, typed at the terminal.
    term.write_all(b"\x03").unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "Ctrl-C did nothing"
        );
        if !matches!(term.read(&mut buf), Ok(n) if n > 0) {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    assert_eq!(status.code(), Some(130), "{status:?}");
    s.assert_no_litter();
}

/// The keeper's life is its owner's: an admin's TERM, a logout's HUP or a
/// stray INT do not end it, or the lease would run out under a script that
/// is still working.
#[test]
fn the_keeper_outlives_stop_signals() {
    let s = Scratch::new();
    let owner = sleeper();
    let token = s
        .run([
            "acquire",
            "--keepalive",
            "--print-token",
            "--lease",
            "1s",
            "--pid",
            &owner.pid,
            "l",
        ])
        .code(0)
        .stdout
        .trim()
        .to_string();
    let out = Command::new("pgrep")
        .args(["-f", &format!("keeper --token {token}")])
        .output()
        .unwrap();
    let keeper: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        kill(Pid::from_raw(keeper), sig).unwrap();
    }
    // Still refreshing: a lock aged far past its lease is fresh again soon.
    age_by(&s.path("l"), 100);
    eventually("the keeper to refresh the lock", || {
        s.run(["status", "l"]).code == 75
    });
    assert!(alive(keeper));
    s.run(["release", "--pid", &owner.pid, "l"]).code(0);
    eventually("the keeper to leave after the release", || !alive(keeper));
}

/// `acquire --keepalive --on-lost POLICY` acts on the owner as `run` acts
/// on its command: here signal:USR1 to a script that traps it.
#[test]
fn the_keeper_acts_on_its_owner_when_the_lock_is_lost() {
    let s = Scratch::new();
    let script = format!(
        "trap 'touch got-usr1; exit 0' USR1; \
         {BIN} acquire --keepalive --lease 1s --on-lost signal:USR1 --pid $$ l || exit 9; \
         touch held; while :; do sleep 0.05; done"
    );
    let mut owner = s.sh(&script).spawn().unwrap();
    eventually("the owner to hold the lock", || s.path("held").exists());
    s.run(["break", "--force", "-q", "l"]).code(0);
    eventually("the owner to get its signal", || {
        s.path("got-usr1").exists()
    });
    assert_eq!(owner.wait().unwrap().code(), Some(0));
    // The default, term, stops the owner.
    let script = format!(
        "{BIN} acquire --keepalive --lease 1s --pid $$ l2 || exit 9; touch held2; exec sleep 60"
    );
    let mut owner = s.sh(&script).spawn().unwrap();
    eventually("the owner to hold l2", || s.path("held2").exists());
    s.run(["break", "--force", "-q", "l2"]).code(0);
    let status = owner.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
    s.run(["acquire", "--on-lost", "kill", "l3"]).code(64);
}

/// Lost stays lost: a holder whose refreshes fail (here its lock made
/// immutable, as a client losing its mount makes every call fail) loses the
/// lock after the lease, and the release, failing too, does not turn that
/// into another exit status: 76.
#[test]
fn a_lost_lock_exits_76_whatever_the_release_meets() {
    let s = Scratch::new();
    let flags = tempfile::tempdir().unwrap();
    let f = flags.path().display();
    // The command learns of the loss (USR1), then waits to be let go.
    let body = format!("trap 'touch {f}/lost' USR1; while [ ! -e {f}/go ]; do sleep 0.05; done");
    let run = start_after(
        &s,
        &["--lease", "1s", "--on-lost", "signal:USR1"],
        "",
        &body,
    );
    let immutable = Command::new("chattr").arg("+i").arg(s.path("l")).output();
    if !immutable.as_ref().is_ok_and(|o| o.status.success()) {
        skip("chattr +i does not work here");
        std::fs::write(flags.path().join("go"), "").unwrap();
        let _ = wait_out(run, "run");
        return;
    }
    eventually("the loss to be noticed", || {
        flags.path().join("lost").exists()
    });
    std::fs::write(flags.path().join("go"), "").unwrap();
    let out = wait_out(run, "run");
    Command::new("chattr")
        .arg("-i")
        .arg(s.path("l"))
        .status()
        .unwrap();
    out.code(76)
        .stderr_has("lock lost")
        .stderr_has("not refreshed");
    s.run(["break", "--force", "-q", "l"]).code(0);
}

/// The watchdog that keeps deadlines on a dead server is a thread only
/// where the lock's directory may be remote: a `run` on local disk is one
/// thread (the heartbeat's comes at lease/3), on an NFS mount two.
#[test]
fn the_watchdog_runs_only_on_remote_filesystems() {
    let s = Scratch::new();
    let run = start(&s, &[], "exec sleep 60");
    let threads = std::fs::read_dir(format!("/proc/{}/task", run.id()))
        .unwrap()
        .count();
    let remote = std::env::var_os("NFSLOCK_TEST_DIR").is_some();
    assert_eq!(threads, if remote { 2 } else { 1 }, "remote: {remote}");
    signal(&run, Signal::SIGTERM);
    wait_out(run, "run").code(143);
}

/// `--min-interval`: the second run within the window does not run its
/// command, releases and exits 75 (or -E N) saying when the job last
/// started and where; once the window has passed it runs again. The stamp
/// is file-system time: aging it on disk opens the window.
#[test]
fn min_interval_runs_a_job_once_per_window() {
    let s = Scratch::new();
    let out = s.run([
        "run",
        "--min-interval",
        "1h",
        "l",
        "--",
        "sh",
        "-c",
        "echo ran",
    ]);
    out.code(0).stdout_has("ran");
    let again = s.run([
        "run",
        "--min-interval",
        "1h",
        "l",
        "--",
        "sh",
        "-c",
        "echo ran",
    ]);
    again.code(75);
    assert!(!again.stdout.contains("ran"), "{}", again.stdout);
    assert!(
        again.stderr.contains("the job last started") && again.stderr.contains("on host "),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("may start again in 59m"),
        "{}",
        again.stderr
    );
    s.run(["run", "-E", "3", "--min-interval", "1h", "l", "--", "true"])
        .code(3);
    s.run(["status", "l"])
        .code(0)
        .stdout_has("last start (--min-interval): host");
    let v = s.run(["status", "--json", "l"]).code(0).json();
    assert!(v["last_start"]["at"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["last_start"]["host"].as_str().is_some());
    // A shorter window is already over; the stamp moves on.
    let stamp = s.path(".l.nfslock-stamp");
    age_by(&stamp, 120);
    s.run(["run", "--min-interval", "1m", "l", "--", "true"])
        .code(0);
    s.run(["run", "--min-interval", "1m", "l", "--", "true"])
        .code(75);
    // Without the option the stamp is not looked at.
    s.run(["run", "l", "--", "true"]).code(0);
    // list shows it as status does, for a lock it lists.
    let _h = s.hold("l", &[]);
    let listed = s.run(["list", "--json", "."]).code(0).json();
    let status = s.run(["status", "--json", "l"]).code(75).json();
    assert_eq!(listed["locks"][0]["last_start"], status["last_start"]);
    assert!(status["last_start"]["at"].is_f64(), "{status}");
    s.run(["release", "--pid", &_h.pid, "l"]).code(0);
    let names = s.litter();
    assert_eq!(names, [".l.nfslock-stamp"], "{names:?}");
}

/// A stamp that is not ours is someone's file: left alone, 65.
#[test]
fn min_interval_refuses_a_stamp_that_is_not_one() {
    let s = Scratch::new();
    std::fs::write(s.path(".l.nfslock-stamp"), "data\n").unwrap();
    s.run(["run", "--min-interval", "1m", "l", "--", "true"])
        .code(65)
        .stderr_has("start stamp");
    assert_eq!(
        std::fs::read(s.path(".l.nfslock-stamp")).unwrap(),
        b"data\n"
    );
    assert!(!s.path("l").exists(), "the lock was released");
}
