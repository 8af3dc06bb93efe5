//! The keeper behind `acquire --keepalive`: a detached process that keeps a
//! script's lock refreshed while the script's shell (the owner) lives,
//! releases it the moment the owner dies, and acts on the owner by
//! `--on-lost` when the lock is lost.
//!
//! Its life is its owner's: a SIGTERM, SIGINT or SIGHUP (an admin's kill, a
//! logout) does not end it, or the lease would run out under a script that
//! is still working and a second holder would get in. It ends when the
//! owner dies, the lock is released, or the lock is lost.

use crate::cli::OnLost;
use crate::error::Error;
use crate::heartbeat::{Heartbeat, Target};
use crate::protocol::{self, Ctx, Env, Held, Owner, Who};
use crate::realfs::RealFs;
use crate::sys::ProcState;
use crate::sysenv::SysEnv;
use crate::{exit, ui};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the keeper is told to behave.
pub struct KeepSpec {
    pub owner: Owner,
    pub lease: Duration,
    pub on_lost: OnLost,
    pub kill_after: Duration,
}

/// Starts the detached keeper for `acquire --keepalive`. Its stderr is
/// ours only when that is a terminal (a pipe would keep a cron job's
/// output open for as long as the keeper lives).
pub fn start_keeper(ctx: &Ctx, held: &Held, spec: &KeepSpec) -> Result<(), Error> {
    use std::io::IsTerminal;
    let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--io-timeout")
        .arg(format!("{}ms", ctx.io_timeout.as_millis()))
        .arg("keeper")
        .arg("--token")
        .arg(held.token())
        .arg("--owner")
        .arg(spec.owner.pid.to_string())
        .arg("--owner-start")
        .arg(
            spec.owner
                .start
                .map_or_else(|| "unknown".into(), |s| s.to_string()),
        )
        .arg("--lease")
        .arg(format!("{}ms", spec.lease.as_millis()))
        .arg("--on-lost")
        .arg(spec.on_lost.spelling())
        .arg("--kill-after")
        .arg(format!("{}ms", spec.kill_after.as_millis()))
        .arg(&ctx.lock.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if !io::stderr().is_terminal() {
        cmd.stderr(Stdio::null());
    }
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

/// Whether the owner process still lives (the same process: its start time
/// matches when it was known).
fn owner_alive(env: &SysEnv, owner: Owner) -> bool {
    match env.process(owner.pid) {
        ProcState::Running { start } => owner.start.is_none_or(|s| s == start),
        ProcState::Gone => false,
        ProcState::Unknown => true,
    }
}

/// The keeper's loop; returns its exit status (nobody reads it).
pub fn keep(env: &SysEnv, ctx: &Ctx, token: &str, spec: &KeepSpec) -> u8 {
    // Stop signals are queued like any other, and dropped below.
    env.forward_stops();
    let who = Who::Token(token.to_string());
    let target = Target::Token(token.to_string());
    let mut heart = Heartbeat::new(ctx, Arc::new(RealFs), spec.lease, target);
    let owner = spec.owner;
    let signal_owner = |s: Signal| {
        if owner_alive(env, owner) {
            let _ = kill(Pid::from_raw(owner.pid as i32), s);
        }
    };
    let mut kill_at: Option<Instant> = None;
    let mut lost = false;
    loop {
        let mut wake = Instant::now() + Duration::from_millis(200);
        if !lost {
            wake = wake.min(heart.due());
        }
        if let Some(k) = kill_at {
            wake = wake.min(k);
        }
        env.wait_signal(
            wake.saturating_duration_since(Instant::now()),
            heart.wake_fd(),
        );
        let _ = env.take_others();
        if !owner_alive(env, owner) {
            if !lost {
                heart.stop(ctx.io_timeout);
                let _ = protocol::release(ctx, &who);
            }
            return exit::OK;
        }
        let now = Instant::now();
        if kill_at.is_some_and(|k| now >= k) {
            signal_owner(Signal::SIGKILL);
            return exit::NOT_OWNER;
        }
        if lost {
            continue;
        }
        match heart.check(now) {
            Ok(None) => {}
            Ok(Some(why)) => {
                ui::say(&format!(
                    "{}: lock lost while its owner (pid {}) ran: {}",
                    ctx.lock.path.display(),
                    owner.pid,
                    why.describe()
                ));
                lost = true;
                kill_at = spec.on_lost.apply(signal_owner, spec.kill_after);
                if kill_at.is_none() {
                    return exit::NOT_OWNER;
                }
            }
            Err(_) => return exit::INTERNAL,
        }
    }
}
