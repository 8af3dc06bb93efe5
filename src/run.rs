//! `run`: hold a lock for the life of a command. The supervisor starts the
//! command in a process group of its own, passes on the signals sent to
//! nfslock, lets the [`heartbeat`](crate::heartbeat) refresh the lock, and
//! when the lock is lost acts on the whole command by `--on-lost`.
//!
//! A network lock can be taken away (an admin's break, a lease that ran out
//! during an outage). Nothing here lets that go unnoticed: every heartbeat
//! checks the lock is still ours, a lost lock is acted on by policy, and it
//! stays lost in the exit status (76) whatever the release meets after.

use crate::cli::OnLost;
use crate::error::Error;
use crate::exit;
use crate::fs::Durability;
use crate::heartbeat::{Heartbeat, Lost, Target};
use crate::protocol::{self, Ctx, Held};
use crate::realfs::RealFs;
use crate::spawn::{spawn, Child, State, Terminal};
use crate::sysenv::SysEnv;
use crate::ui;
use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl OnLost {
    /// Acts on a lost lock through `send`; returns when to follow up with
    /// SIGKILL, if ever.
    pub fn apply(self, send: impl Fn(Signal), kill_after: Duration) -> Option<Instant> {
        match self {
            OnLost::Term => {
                send(Signal::SIGTERM);
                Some(Instant::now() + kill_after)
            }
            OnLost::Kill => {
                send(Signal::SIGKILL);
                None
            }
            OnLost::Warn => None,
            OnLost::Signal(s) => {
                send(s);
                None
            }
        }
    }
}

/// The signals `run` passes on to its command.
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
    pub durable: Durability,
    /// `--slots N`: the slot held and N.
    pub slot: Option<(u32, u32)>,
}

/// Passes on to the command's group every signal sent to us that it must
/// get. One from the terminal reached it already: the terminal is the
/// command's while it runs, so such a signal never comes to us as well.
fn forward_signals(env: &SysEnv, child: &Child) {
    for signo in env.take_others() {
        if let Some(sig) = FORWARDED.iter().find(|s| **s as i32 == signo) {
            child.signal(*sig);
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

fn exec_error(lock: &std::path::Path, argv0: &OsString, e: &io::Error) -> (u8, String) {
    let (lock, name) = (lock.display(), argv0.to_string_lossy());
    match e.kind() {
        io::ErrorKind::NotFound => (
            exit::NOT_FOUND,
            format!("{lock}: {name}: command not found; the lock was released"),
        ),
        _ => (
            exit::CANNOT_EXECUTE,
            format!("{lock}: {name}: cannot execute: {e}; the lock was released"),
        ),
    }
}

/// The command's group was stopped by job control (Ctrl-Z, or a read of
/// the terminal from the background): stop our own group the same way, as
/// the terminal would have had the command been in it, so that the shell
/// sees its job stopped; when continued, hand the terminal back to the
/// command if it is ours again, and continue the command.
fn follow_stop(child: &Child, terminal: Option<&Terminal>, sig: i32) {
    let Ok(sig) = Signal::try_from(sig) else {
        return;
    };
    if !matches!(sig, Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU) {
        // Stopped by someone's SIGSTOP: theirs to continue.
        return;
    }
    if let Some(t) = terminal {
        t.take_back();
    }
    let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), sig);
    // Continued.
    if let Some(t) = terminal.filter(|t| t.ours()) {
        t.give(nix::unistd::Pid::from_raw(child.id() as i32));
    }
    child.signal(Signal::SIGCONT);
}

/// Runs `spec` while holding `held`; returns the exit status to report.
pub fn supervise(env: &SysEnv, ctx: &Ctx, held: Held, spec: &RunSpec) -> Result<u8, Error> {
    env.forward_stops();
    let child_env = match child_env(ctx, &held, spec) {
        Ok(vars) => vars,
        Err(e) => {
            let _ = held.release(ctx);
            return Err(e);
        }
    };
    let terminal = Terminal::if_foreground();
    let mut child = match spawn(&spec.argv, &child_env, terminal.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            let (code, msg) = exec_error(&ctx.lock.path, &spec.argv[0], &e);
            held.release(ctx)?;
            ui::say(&msg);
            return Ok(code);
        }
    };
    let target = Target::Held(held.toucher());
    let mut heart = Heartbeat::new(ctx, Arc::new(RealFs), spec.lease, target);
    let watched = watch_child(env, ctx, &mut child, terminal.as_ref(), &mut heart, spec);
    if let Some(t) = &terminal {
        t.take_back();
    }
    // A beat stuck on a server that stopped answering is not waited for
    // longer than a beat may take.
    heart.stop(ctx.io_timeout.min(spec.lease / 3));
    let (status, lost) = watched?;
    finish(ctx, held, shell_status(status), lost)
}

/// What the command sees besides our environment: the lock's path, its
/// token, and with `--fence` the next fencing number.
fn child_env(
    ctx: &Ctx,
    held: &Held,
    spec: &RunSpec,
) -> Result<Vec<(&'static str, OsString)>, Error> {
    let mut vars = vec![
        (
            "NFSLOCK_PATH",
            std::path::absolute(&ctx.lock.path)
                .unwrap_or_else(|_| ctx.lock.path.clone())
                .into_os_string(),
        ),
        ("NFSLOCK_TOKEN", OsString::from(held.token())),
    ];
    if let Some((k, n)) = spec.slot {
        vars.push(("NFSLOCK_SLOT", OsString::from(k.to_string())));
        vars.push(("NFSLOCK_SLOTS", OsString::from(n.to_string())));
    }
    if spec.fence {
        let n = protocol::next_fence(ctx, spec.durable)?;
        vars.push(("NFSLOCK_FENCE", OsString::from(n.to_string())));
    }
    Ok(vars)
}

/// Until the command ends: beats, forwards signals, mirrors job control,
/// and acts on a lost lock as `--on-lost` says. Returns how the command
/// ended and whether the lock was lost meanwhile.
fn watch_child(
    env: &SysEnv,
    ctx: &Ctx,
    child: &mut Child,
    terminal: Option<&Terminal>,
    heart: &mut Heartbeat,
    spec: &RunSpec,
) -> Result<(ExitStatus, Option<Lost>), Error> {
    let mut lost: Option<Lost> = None;
    let mut kill_at: Option<Instant> = None;
    loop {
        match child
            .try_wait()
            .map_err(|e| Error::Internal(e.to_string()))?
        {
            State::Exited(status) => return Ok((status, lost)),
            State::Stopped(sig) => follow_stop(child, terminal, sig),
            State::Running => {}
        }
        let mut wake = match lost {
            None => heart.due(),
            Some(_) => Instant::now() + Duration::from_secs(60),
        };
        if let Some(k) = kill_at {
            wake = wake.min(k);
        }
        env.wait_signal(
            wake.saturating_duration_since(Instant::now()),
            heart.wake_fd(),
        );
        forward_signals(env, child);
        let now = Instant::now();
        if kill_at.is_some_and(|k| now >= k) {
            child.signal(Signal::SIGKILL);
            kill_at = None;
        }
        if lost.is_none() {
            if let Some(why) = heart.check(now)? {
                ui::say(&format!(
                    "{}: lock lost while the command ran: {}",
                    ctx.lock.path.display(),
                    why.describe()
                ));
                kill_at = spec.on_lost.apply(|s| child.signal(s), spec.kill_after);
                // If the release hangs on a dead server, still 76.
                crate::hang::exit_code_on_hang(match why {
                    Lost::Unsupported(_) => exit::UNSUPPORTED,
                    _ => exit::NOT_OWNER,
                });
                lost = Some(why);
            }
        }
    }
}

/// Releases after the command ended with `code`; the status `run` exits
/// with.
fn finish(ctx: &Ctx, held: Held, code: u8, lost: Option<Lost>) -> Result<u8, Error> {
    match lost {
        // Lost stays lost, whatever the clean-up meets (a server that went
        // away, a lock someone else holds now).
        Some(Lost::Unsupported(_)) => {
            let _ = held.release(ctx);
            Ok(exit::UNSUPPORTED)
        }
        Some(_) => {
            let _ = held.release(ctx);
            Ok(exit::NOT_OWNER)
        }
        None => match held.release(ctx) {
            Ok(()) => Ok(code),
            Err(Error::NotOwner { .. }) => {
                ui::say(&format!(
                    "{}: lock lost while the command ran (found at release)",
                    ctx.lock.path.display()
                ));
                Ok(exit::NOT_OWNER)
            }
            Err(e) => Err(e),
        },
    }
}
