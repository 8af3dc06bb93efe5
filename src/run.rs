//! Holding a lock for the life of a process: `run` supervises a child while
//! a heartbeat refreshes the lock, and the keepalive keeper does the same
//! for a script's shell after `acquire --keepalive`.
//!
//! A network lock can be taken away (an admin's break, a lease that ran out
//! during an outage). Nothing here lets that go unnoticed: every heartbeat
//! checks the lock is still ours, and a lost lock is acted on by policy and
//! always reported (exit 76).

use crate::duration::human;
use crate::error::Error;
use crate::exit;
use crate::protocol::{self, Ctx, Env, Event, Held, Owner, Who};
use crate::spawn::spawn;
use crate::sys::{Identity, ProcState};
use crate::sysenv::{Caught, SysEnv};
use crate::ui;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// What to do when the lock is lost while the command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLost {
    /// SIGTERM, then SIGKILL after the grace period.
    Term,
    Kill,
    /// Keep running; warn on stderr.
    Warn,
    Signal(Signal),
}

impl OnLost {
    pub fn parse(s: &str) -> Result<OnLost, String> {
        match s {
            "term" => Ok(OnLost::Term),
            "kill" => Ok(OnLost::Kill),
            "warn" => Ok(OnLost::Warn),
            _ => match s.strip_prefix("signal:") {
                Some(name) => parse_signal(name).map(OnLost::Signal),
                None => Err(format!(
                    "invalid policy {s:?} (term, kill, warn or signal:NAME)"
                )),
            },
        }
    }
}

fn parse_signal(name: &str) -> Result<Signal, String> {
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("no signal number {n}"));
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>()
        .map_err(|_| format!("unknown signal {name:?}"))
}

/// The signals `run` passes on to its child.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What `run` runs and how it reacts.
pub struct RunSpec {
    pub argv: Vec<OsString>,
    pub lease: Duration,
    pub on_lost: OnLost,
    pub kill_after: Duration,
    pub fence: bool,
    pub durable: Option<bool>,
}

/// The protocol's environment for heartbeats: the real one, except that
/// signals never stop it, and that while a heartbeat waits to retry (an NFS
/// server that is not answering) it goes on forwarding them to the child.
struct BeatEnv<'a>(&'a SysEnv, Pid);

impl Env for BeatEnv<'_> {
    fn identity(&self) -> &Identity {
        self.0.identity()
    }
    fn pid(&self) -> u32 {
        self.0.pid()
    }
    fn process(&self, pid: u32) -> ProcState {
        self.0.process(pid)
    }
    fn monotonic(&self) -> Duration {
        self.0.monotonic()
    }
    fn wall_clock(&self) -> SystemTime {
        self.0.wall_clock()
    }
    fn sleep(&self, d: Duration) -> Option<i32> {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.0.wait_signal(left);
            forward_signals(self.0, self.1);
        }
    }
    fn interrupted(&self) -> Option<i32> {
        None
    }
    fn random(&self) -> u64 {
        self.0.random()
    }
    fn token(&self) -> u64 {
        self.0.token()
    }
    fn event(&self, e: Event<'_>) {
        self.0.event(e)
    }
}

/// Passes on to `child` the signals read so far that it must get: those a
/// process sent to us alone. One from the terminal reached the child
/// already (same process group), and sending it again would double it.
fn forward_signals(env: &SysEnv, child: Pid) {
    for Caught {
        signo,
        sent_by_process,
    } in env.take_others()
    {
        if sent_by_process && FORWARDED.iter().any(|s| *s as i32 == signo) {
            if let Ok(sig) = Signal::try_from(signo) {
                let _ = kill(child, sig);
            }
        }
    }
}

/// The exit status a shell would report for `status`.
pub fn shell_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => exit::for_signal(s),
        _ => exit::INTERNAL,
    }
}

fn exec_error(argv0: &OsString, e: &io::Error) -> (u8, String) {
    let name = argv0.to_string_lossy();
    match e.kind() {
        io::ErrorKind::NotFound => (127, format!("{name}: command not found")),
        _ => (126, format!("{name}: cannot execute: {e}")),
    }
}

/// Runs `spec` while holding `held`; returns the exit status to report.
pub fn supervise(env: &SysEnv, ctx: &Ctx, held: Held, spec: &RunSpec) -> Result<u8, Error> {
    env.forward_stops();
    let mut child_env = vec![
        (
            "NFSLOCK_PATH",
            std::path::absolute(&ctx.lock.path)
                .unwrap_or_else(|_| ctx.lock.path.clone())
                .into_os_string(),
        ),
        ("NFSLOCK_TOKEN", OsString::from(held.token())),
    ];
    if spec.fence {
        match protocol::next_fence(ctx, spec.durable) {
            Ok(n) => child_env.push(("NFSLOCK_FENCE", OsString::from(n.to_string()))),
            Err(e) => {
                let _ = held.release(ctx);
                return Err(e);
            }
        }
    }
    let mut child = match spawn(&spec.argv, &child_env) {
        Ok(c) => c,
        Err(e) => {
            let (code, msg) = exec_error(&spec.argv[0], &e);
            held.release(ctx)?;
            ui::say(&msg);
            return Ok(code);
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let beat_env = BeatEnv(env, pid);
    let beat_ctx = Ctx {
        env: &beat_env,
        io_timeout: ctx.io_timeout.min(spec.lease / 3),
        ..*ctx
    };
    let beat = spec.lease / 3;
    let mut next_beat = Instant::now() + beat;
    let mut last_ok = Instant::now();
    let mut lost = false;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Internal(e.to_string()))?
        {
            break status;
        }
        let now = Instant::now();
        let mut wake = next_beat;
        if let Some(k) = kill_at {
            wake = wake.min(k);
        }
        env.wait_signal(wake.saturating_duration_since(now));
        forward_signals(env, pid);
        let now = Instant::now();
        if kill_at.is_some_and(|k| now >= k) {
            let _ = kill(pid, Signal::SIGKILL);
            kill_at = None;
        }
        if !lost && now >= next_beat {
            next_beat = now + beat;
            let why = match held.touch(&beat_ctx) {
                Ok(_) => {
                    last_ok = now;
                    None
                }
                Err(e @ Error::NotOwner { .. }) => Some(e.to_string()),
                Err(e) => {
                    ui::say(&format!("heartbeat failed: {e}"));
                    (now.duration_since(last_ok) > spec.lease).then(|| {
                        format!(
                            "{}: not refreshed for {}, longer than its lease: others may have taken it",
                            ctx.lock.path.display(),
                            human(now.duration_since(last_ok))
                        )
                    })
                }
            };
            if let Some(why) = why {
                lost = true;
                let now_held = match beat_ctx.inspect(None) {
                    Ok(Some(info)) => format!("now {}", info.describe()),
                    Ok(None) => "nobody holds it now".into(),
                    Err(e) => format!("cannot tell who holds it now: {e}"),
                };
                ui::say(&format!(
                    "lock lost while the command ran ({why}); {now_held}"
                ));
                match spec.on_lost {
                    OnLost::Term => {
                        let _ = kill(pid, Signal::SIGTERM);
                        kill_at = Some(now + spec.kill_after);
                    }
                    OnLost::Kill => {
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                    OnLost::Warn => {}
                    OnLost::Signal(s) => {
                        let _ = kill(pid, s);
                    }
                }
            }
        }
    };
    let code = shell_status(status);
    match held.release(ctx) {
        Ok(()) if !lost => Ok(code),
        Ok(()) => Ok(exit::NOT_OWNER),
        Err(Error::NotOwner { .. }) => {
            if !lost {
                ui::say(&format!(
                    "{}: lock lost while the command ran (found at release)",
                    ctx.lock.path.display()
                ));
            }
            Ok(exit::NOT_OWNER)
        }
        Err(e) => Err(e),
    }
}

/// Starts the detached keeper for `acquire --keepalive`.
pub fn start_keeper(ctx: &Ctx, held: &Held, owner: Owner, lease: Duration) -> Result<(), Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--io-timeout")
        .arg(format!("{}ms", ctx.io_timeout.as_millis()))
        .arg("keeper")
        .arg("--token")
        .arg(held.token())
        .arg("--owner")
        .arg(owner.pid.to_string())
        .arg("--owner-start")
        .arg(
            owner
                .start
                .map_or_else(|| "unknown".into(), |s| s.to_string()),
        )
        .arg("--lease")
        .arg(format!("{}ms", lease.as_millis()))
        .arg(&ctx.lock.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid and sigprocmask are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::SigSet::empty()
                .thread_set_mask()
                .map_err(io::Error::from)?;
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn()
        .map(drop)
        .map_err(|e| Error::Internal(format!("cannot start the keeper: {e}")))
}

/// The keeper: refreshes the lock while its owner lives, releases it as
/// soon as the owner dies, and exits once the lock is released or lost.
pub fn keep(env: &SysEnv, ctx: &Ctx, token: &str, owner: Owner, lease: Duration) -> u8 {
    let who = Who::Token(token.to_string());
    let beat = lease / 3;
    let mut next_beat = Instant::now() + beat;
    loop {
        if env.sleep(Duration::from_millis(200)).is_some() || env.interrupted().is_some() {
            return exit::OK;
        }
        let alive = match env.process(owner.pid) {
            ProcState::Running { start } => owner.start.is_none_or(|s| s == start),
            ProcState::Gone => false,
            ProcState::Unknown => true,
        };
        if !alive {
            let _ = protocol::release(ctx, &who);
            return exit::OK;
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + beat;
            if let Err(Error::NotOwner { .. }) = protocol::touch(ctx, &who) {
                return exit::OK;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heartbeat waiting to retry (the server not answering) still passes
    /// signals on: a `kill -USR1` of the supervisor reaches the child.
    #[test]
    fn a_heartbeat_waiting_to_retry_forwards_signals() {
        // Its own thread: the signal mask and the pending signal are this
        // thread's, not the test harness's.
        std::thread::spawn(|| {
            let env = SysEnv::with_signals(&[Signal::SIGUSR1]);
            env.forward_stops();
            // Started as `run` starts it: with no signal blocked.
            let argv = ["sleep", "30"].map(OsString::from);
            let mut child = spawn(&argv, &[]).unwrap();
            let pid = Pid::from_raw(child.id() as i32);
            // Sent by a process (raise(3): SI_TKILL, to this thread), as a
            // `kill -USR1` would be.
            nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
            let slept = BeatEnv(&env, pid).sleep(Duration::from_millis(50));
            assert_eq!(slept, None, "a heartbeat's wait is never cut short");
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!(status.signal(), Some(Signal::SIGUSR1 as i32), "{status:?}");
        })
        .join()
        .unwrap();
    }
}
