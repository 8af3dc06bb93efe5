//! The subcommands: turn parsed arguments into protocol calls, and results
//! into output and an exit code. All printing for scripts happens here.

use crate::cli::{
    AcquireArgs, BreakArgs, Cli, Command, KeeperArgs, OwnerArgs, RunArgs, StatusArgs,
};
use crate::duration::human;
use crate::error::Error;
use crate::exit;
use crate::hang::{self, real_fs};
use crate::lock::lock_path;
use crate::names::LockPath;
use crate::protocol::{self, AcquireOptions, BreakOptions, BreakOutcome, Ctx, Env, Owner, Who};
use crate::report::{self, lock_json, state_of, Stdout};
use crate::sysenv::SysEnv;
use crate::ui::{self, Level};
use crate::{keeper, record, run};
use clap::{CommandFactory, FromArgMatches};
use nix::sys::signal::Signal;
use serde_json::json;
use std::ffi::OsString;
use std::time::Duration;

/// Parses `args` (the program's name first) and runs the command line;
/// returns the exit status.
pub fn main(args: Vec<OsString>) -> u8 {
    let mut parser = Cli::command();
    let parsed = match parser.try_get_matches_from_mut(args) {
        Ok(mut matches) => {
            let cli = Cli::from_arg_matches_mut(&mut matches)
                .and_then(Cli::check)
                .map_err(|e| e.format(&mut parser));
            std::mem::forget(matches);
            cli
        }
        Err(e) => Err(e),
    };
    // The parser's data is freed with the process: dropping it piece by
    // piece cost a twentieth of a whole `run -- true`.
    std::mem::forget(parser);
    match parsed {
        Ok(cli) => run(cli),
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; clap's usage exit 2 is 64.
            if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            }
        }
    }
}

/// Runs the parsed command line and returns the exit status.
fn run(cli: Cli) -> u8 {
    let options = cli.options();
    ui::set_level(if options.quiet {
        Level::Quiet
    } else if options.verbose {
        Level::Verbose
    } else {
        Level::Normal
    });
    // `run` takes over the signals it forwards, and SIGCHLD to notice its
    // child's end while it sleeps.
    let env = match cli.command {
        Command::Run(_) => SysEnv::taking_signals(&[
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGCHLD,
        ]),
        _ => SysEnv::taking_signals(&[]),
    };
    let io_timeout = options.io_timeout;
    let subject = cli.command.subject().map(std::path::Path::to_path_buf);
    let (result, conflict_code) = match cli.command {
        Command::Acquire(a) => {
            let code = a.conflict_exit_code;
            (acquire(&env, io_timeout, a), code)
        }
        Command::Run(a) => {
            let code = a.conflict_exit_code;
            (run_cmd(&env, io_timeout, a), code)
        }
        Command::Keeper(a) => (keeper(&env, io_timeout, a), None),
        Command::Release(a) => (release(&env, io_timeout, a), None),
        Command::Touch(a) => (touch(&env, io_timeout, a), None),
        Command::Status(a) => (status(&env, io_timeout, a), None),
        Command::Break(a) => (break_cmd(&env, io_timeout, a), None),
        Command::List(a) => (crate::admin::list(&env, io_timeout, a), None),
        Command::Sweep(a) => (crate::admin::sweep(&env, io_timeout, a), None),
        Command::Completions(a) => (completions(a.shell), None),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            ui::say(&e.line(subject.as_deref()));
            match (&e, conflict_code) {
                (
                    Error::Busy { .. } | Error::TooSoon { .. } | Error::SlotsBusy { .. },
                    Some(code),
                ) => code,
                _ => e.exit_code(),
            }
        }
    };
    env.leave();
    code
}

/// Prints a completion script. The scripts are generated from the CLI's
/// definition by a test that fails when they drift (`tests/cli/manual.rs`),
/// so the binary carries text, not a generator.
fn completions(shell: crate::cli::Shell) -> Result<u8, Error> {
    use crate::cli::Shell;
    let script = match shell {
        Shell::Bash => include_str!("../contrib/completions/nfslock.bash"),
        Shell::Zsh => include_str!("../contrib/completions/_nfslock"),
        Shell::Fish => include_str!("../contrib/completions/nfslock.fish"),
    };
    let mut out = Stdout::default();
    out.raw(script.trim_end());
    out.finish().map_err(|source| Error::Output {
        what: "the completion script",
        source,
    })?;
    Ok(exit::OK)
}

/// The owner process: `--pid`, or the parent (the shell that ran us).
fn owner(env: &dyn Env, pid: Option<u32>) -> Result<Owner, Error> {
    let pid = pid.unwrap_or_else(|| nix::unistd::getppid().as_raw() as u32);
    Owner::of_pid(env, pid).ok_or_else(|| Error::Usage(format!("--pid {pid}: no such process")))
}

fn acquire(env: &SysEnv, io_timeout: Duration, a: AcquireArgs) -> Result<u8, Error> {
    let base = lock_path(&a.lock)?;
    let fs = real_fs(&base.dir, io_timeout);
    let owner = owner(env, a.pid)?;
    let mut opts = AcquireOptions::new(owner);
    opts.wait = if a.nonblock {
        Some(Duration::ZERO)
    } else {
        a.wait
    };
    opts.lease = match (a.lease, a.keepalive) {
        (None, true) => Some(DEFAULT_LEASE),
        (lease, _) => lease,
    };
    opts.stale_after = a.stale_after;
    opts.poll_max = a.poll_max;
    opts.shared = a.shared;
    let started = env.monotonic();
    let (lock, _, held) = take(&Ctx::new(&fs, env, &base, io_timeout), a.slots, &opts)?;
    let ctx = Ctx::new(&fs, env, &lock, io_timeout);
    // A stop signal that arrived while we were taking the lock still means
    // "stop": give the lock back rather than leave it to a caller that is
    // going away.
    if let Some(signal) = env.interrupted() {
        held.release(&ctx)?;
        return Err(Error::Interrupted { signal });
    }
    if a.keepalive {
        let spec = keeper::KeepSpec {
            owner,
            lease: opts.lease.unwrap_or(DEFAULT_LEASE),
            on_lost: a.on_lost,
            kill_after: a.kill_after,
        };
        if let Err(e) = keeper::start_keeper(&ctx, &held, &spec) {
            held.release(&ctx)?;
            return Err(e);
        }
    }
    ui::explain(&format!(
        "acquired {} after {} (token {})",
        lock.path.display(),
        human(env.monotonic().saturating_sub(started)),
        held.token()
    ));
    if a.print_token {
        // The caller cannot learn the token: a lock it could not release.
        let mut out = Stdout::default();
        out.raw(held.token());
        if let Err(source) = out.finish() {
            let _ = held.release(&ctx);
            return Err(Error::Output {
                what: "the token (the lock is given back)",
                source,
            });
        }
    }
    Ok(exit::OK)
}

/// [`protocol::acquire`], with `-w`'s deadline given to the watchdog too:
/// no call to a server that stopped answering outlives it.
/// Takes the lock, or with `--slots N` one of its slots: the lock taken
/// (the slot's), which slot, and the proof.
fn take(
    ctx: &Ctx,
    slots: Option<u32>,
    opts: &AcquireOptions,
) -> Result<(LockPath, Option<u32>, protocol::Held), Error> {
    let Some(n) = slots else {
        return Ok((ctx.lock.clone(), None, acquire_by_deadline(ctx, opts)?));
    };
    protocol::settle_slots(ctx, n, opts.durable)?;
    let waits = opts.wait.filter(|w| !w.is_zero());
    hang::set_deadline(waits.map(|w| std::time::Instant::now() + w));
    let taken = protocol::acquire_slot(ctx, n, opts);
    hang::set_deadline(None);
    let t = taken?;
    Ok((t.lock, Some(t.slot), t.held))
}

/// `run --slots N --min-interval`: the window is the lock's, shared by its
/// slots, so the stamp is read and written under the plain lock itself,
/// held for just that (waiting as long as an I/O may take).
fn in_shared_window(
    base: &Ctx,
    min: Duration,
    owner: Owner,
    durable: crate::fs::Durability,
) -> Result<(), Error> {
    let mut o = AcquireOptions::new(owner);
    o.wait = Some(base.io_timeout);
    o.lease = Some(DEFAULT_LEASE);
    let held = acquire_by_deadline(base, &o)?;
    let r = in_window(base, min, durable);
    held.release(base)?;
    r
}

/// `run --min-interval`: stamps the start, or says when the job last
/// started and when it may again (75, or `-E N`).
fn in_window(ctx: &Ctx, min: Duration, durable: crate::fs::Durability) -> Result<(), Error> {
    match protocol::start_in_window(ctx, min, durable)? {
        protocol::Window::Open { .. } => Ok(()),
        protocol::Window::Closed {
            last,
            age,
            opens_in,
        } => Err(Error::TooSoon {
            path: ctx.lock.path.clone(),
            why: format!(
                "the job last started {} ago on host {}; with --min-interval {} it may start again in {}",
                human(age),
                last.host,
                human(min),
                human(opens_in)
            ),
        }),
    }
}

fn acquire_by_deadline(ctx: &Ctx, opts: &AcquireOptions) -> Result<protocol::Held, Error> {
    let waits = opts.wait.filter(|w| !w.is_zero());
    hang::set_deadline(waits.map(|w| std::time::Instant::now() + w));
    let held = protocol::acquire(ctx, opts);
    hang::set_deadline(None);
    held
}

/// Lease of `run` and `acquire --keepalive` unless told otherwise.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

fn run_cmd(env: &SysEnv, io_timeout: Duration, a: RunArgs) -> Result<u8, Error> {
    let lock = lock_path(&a.lock)?;
    let sh = |s: OsString| vec![OsString::from("/bin/sh"), OsString::from("-c"), s];
    let argv = match (a.shell, a.cmd) {
        (Some(s), c) if c.is_empty() => sh(s),
        // flock's spelling: `run LOCK -c STRING`.
        (None, mut c) if c.len() == 2 && c[0] == "-c" => sh(c.remove(1)),
        (None, c) if !c.is_empty() => c,
        _ => {
            return Err(Error::Usage(
                "run needs a command: run [OPTIONS] LOCK [--] CMD [ARGS...], or -c STRING".into(),
            ))
        }
    };
    let fs = real_fs(&lock.dir, io_timeout);
    let base = Ctx::new(&fs, env, &lock, io_timeout);
    let me = std::process::id();
    let mut opts = AcquireOptions::new(owner(env, Some(me))?);
    opts.wait = if a.nonblock {
        Some(Duration::ZERO)
    } else {
        a.wait
    };
    opts.lease = Some(a.lease);
    opts.stale_after = a.stale_after;
    opts.poll_max = a.poll_max;
    opts.shared = a.shared;
    let shown: Vec<String> = argv
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    // The record is world-readable: the command's name, no arguments.
    opts.cmd = Some(record::command_name(&argv[0]));
    let (slot_lock, slot, held) = take(&base, a.slots, &opts)?;
    let ctx = Ctx::new(&fs, env, &slot_lock, io_timeout);
    if let Some(signal) = env.interrupted() {
        held.release(&ctx)?;
        return Err(Error::Interrupted { signal });
    }
    if let Some(min) = a.min_interval {
        let r = match slot {
            None => in_window(&ctx, min, opts.durable),
            Some(_) => in_shared_window(&base, min, opts.owner, opts.durable),
        };
        if let Err(e) = r {
            held.release(&ctx)?;
            return Err(e);
        }
    }
    ui::explain(&format!(
        "acquired {}; running {}",
        lock.path.display(),
        shown.join(" ")
    ));
    let spec = run::RunSpec {
        argv,
        lease: a.lease,
        on_lost: a.on_lost,
        kill_after: a.kill_after,
        fence: a.fence,
        durable: opts.durable,
        slot: slot.zip(a.slots),
    };
    run::supervise(env, &ctx, held, &spec)
}

fn keeper(env: &SysEnv, io_timeout: Duration, a: KeeperArgs) -> Result<u8, Error> {
    let lock = lock_path(&a.lock)?;
    let fs = real_fs(&lock.dir, io_timeout);
    let ctx = Ctx::new(&fs, env, &lock, io_timeout);
    let spec = keeper::KeepSpec {
        owner: Owner {
            pid: a.owner,
            start: a.owner_start.parse().ok(),
        },
        lease: a.lease,
        on_lost: a.on_lost,
        kill_after: a.kill_after,
    };
    Ok(keeper::keep(env, &ctx, &a.token, &spec))
}

fn who(env: &dyn Env, a: &OwnerArgs) -> Result<Who, Error> {
    match &a.token {
        Some(t) => Ok(Who::Token(t.clone())),
        // A vanished owner cannot own anything any more; match nothing.
        None => Ok(Who::Owner(owner(env, a.pid).unwrap_or(Owner {
            pid: a.pid.unwrap_or(0),
            start: None,
        }))),
    }
}

/// `release`/`touch` of a slotted lock: where the plain lock is not the
/// caller's, the caller's slot, if the lock has slots.
fn or_a_slot(
    ctx: &Ctx,
    plain: Result<(), Error>,
    on_slot: impl FnMut(&Ctx) -> Result<(), Error>,
) -> Result<Option<u32>, Error> {
    match plain {
        Err(e @ Error::NotOwner { .. }) => match protocol::find_slot(ctx, on_slot)? {
            Some((k, ())) => Ok(Some(k)),
            None => Err(e),
        },
        other => other.map(|()| None),
    }
}

fn slot_words(slot: Option<u32>) -> String {
    slot.map_or(String::new(), |k| format!(" (slot {k})"))
}

fn release(env: &SysEnv, io_timeout: Duration, a: OwnerArgs) -> Result<u8, Error> {
    let lock = lock_path(&a.lock)?;
    let fs = real_fs(&lock.dir, io_timeout);
    let ctx = Ctx::new(&fs, env, &lock, io_timeout);
    let who = who(env, &a)?;
    let slot = or_a_slot(&ctx, protocol::release(&ctx, &who), |s| {
        protocol::release(s, &who)
    })?;
    ui::explain(&format!(
        "released {}{}",
        lock.path.display(),
        slot_words(slot)
    ));
    Ok(exit::OK)
}

fn touch(env: &SysEnv, io_timeout: Duration, a: OwnerArgs) -> Result<u8, Error> {
    let lock = lock_path(&a.lock)?;
    let fs = real_fs(&lock.dir, io_timeout);
    let ctx = Ctx::new(&fs, env, &lock, io_timeout);
    let who = who(env, &a)?;
    let plain = protocol::touch(&ctx, &who).map(drop);
    let slot = or_a_slot(&ctx, plain, |s| protocol::touch(s, &who).map(drop))?;
    ui::explain(&format!(
        "touched {}{}",
        lock.path.display(),
        slot_words(slot)
    ));
    Ok(exit::OK)
}

fn status(env: &SysEnv, io_timeout: Duration, a: StatusArgs) -> Result<u8, Error> {
    let lock = lock_path(&a.lock)?;
    let fs = real_fs(&lock.dir, io_timeout);
    let ctx = Ctx::new(&fs, env, &lock, io_timeout);
    let info = ctx.inspect(a.stale_after)?;
    if info.is_none() {
        if let Some(n) = protocol::recorded_slots(&ctx).ok().flatten() {
            return slotted_status(&ctx, n, &a);
        }
    }
    // Only what `run --min-interval` keeps; a damaged stamp is its
    // business, not the lock's state.
    let last = protocol::last_start(&ctx).ok().flatten();
    // A closed or full stdout ends the output, not the answer: the exit
    // code still says what the lock is.
    let mut out = Stdout::default();
    let readers = info.as_ref().and_then(|i| ctx.readers(&i.snapshot, i.now));
    if let Some(r) = &readers {
        if a.json {
            let mut v = lock_json(&lock.path, info.as_ref());
            report::shared_json(&mut v, r);
            out.json(&v);
        } else if ui::level() > Level::Quiet {
            report::shared_text(&mut out, &lock.path, r);
        }
        let _ = out.finish();
        return Ok(if r.holders.is_empty() {
            exit::STALE
        } else {
            exit::BUSY
        });
    }
    if a.json {
        let mut v = lock_json(&lock.path, info.as_ref());
        if let Some(l) = &last {
            v["last_start"] = report::last_start_json(l);
        }
        out.json(&v);
    } else if ui::level() > Level::Quiet {
        report::status_text(&mut out, &lock.path, info.as_ref());
        if let Some(l) = &last {
            let now = info.as_ref().and_then(|i| i.now);
            let ago = now.map_or(String::new(), |n| {
                let secs = n.secs_since(l.at).max(0.0);
                format!(
                    ", {} ago",
                    human(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
                )
            });
            out.line(&format!(
                "  last start (--min-interval): host {}{ago}",
                l.host
            ));
        }
    }
    let _ = out.finish();
    Ok(match state_of(info.as_ref()) {
        ("free", _) => exit::OK,
        ("stale", _) => exit::STALE,
        (_, Some("not-a-lock")) => exit::DATA_ERR,
        _ => exit::BUSY,
    })
}

/// `status` of a lock with slots: every slot, free or its holder. Exit 0
/// when a slot is free, 1 when none is but one is stale, 75 otherwise.
fn slotted_status(ctx: &Ctx, n: u32, a: &StatusArgs) -> Result<u8, Error> {
    let slots = protocol::inspect_slots(ctx, n, a.stale_after)?;
    let free = slots.iter().filter(|(_, i)| i.is_none()).count();
    let stale = slots
        .iter()
        .any(|(_, i)| i.as_ref().is_some_and(|i| i.verdict.stale.is_some()));
    let state = match (free, stale) {
        (f, _) if f > 0 => "free",
        (_, true) => "stale",
        _ => "held",
    };
    let mut out = Stdout::default();
    if a.json {
        let mut v = lock_json(&ctx.lock.path, None);
        v["state"] = json!(state);
        v["slots"] = json!(n);
        v["holders"] = slots
            .iter()
            .filter_map(|(k, i)| i.as_ref().map(|i| (k, i)))
            .map(|(k, i)| {
                let mut h = report::holder_json(i);
                h["slot"] = json!(k);
                h["state"] = json!(state_of(Some(i)).0);
                h["alive"] = json!(i.liveness.as_option());
                h["age_s"] = json!(i.verdict.age.map(|d| d.as_secs_f64()));
                h
            })
            .collect();
        out.json(&v);
    } else if ui::level() > Level::Quiet {
        let held = n as usize - free;
        out.line(&format!(
            "{}: {state} ({held} of {n} slots held)",
            ctx.lock.path.display()
        ));
        for (k, i) in &slots {
            match i {
                Some(i) => out.line(&format!("  slot {k}: {}", i.describe())),
                None => out.line(&format!("  slot {k}: free")),
            }
        }
    }
    let _ = out.finish();
    Ok(match state {
        "free" => exit::OK,
        "stale" => exit::STALE,
        _ => exit::BUSY,
    })
}

fn break_cmd(env: &SysEnv, io_timeout: Duration, a: BreakArgs) -> Result<u8, Error> {
    let base = lock_path(&a.lock)?;
    let lock = match a.slot {
        Some(k) => protocol::slot_lock(&base, k),
        None => base,
    };
    let fs = real_fs(&lock.dir, io_timeout);
    let ctx = Ctx::new(&fs, env, &lock, io_timeout);
    let opts = BreakOptions {
        older_than: a.older_than,
        force: a.force,
        dry_run: a.dry_run,
    };
    let outcome = protocol::break_lock(&ctx, opts)?;
    let p = lock.path.display();
    // The reason is in the description already ("; stale: ...").
    let forced = |r: &Option<crate::stale::StaleReason>| if r.is_none() { " (forced)" } else { "" };
    let (action, info, code) = match &outcome {
        BreakOutcome::Free => {
            ui::explain(&format!("{p}: already free"));
            ("none", None, exit::OK)
        }
        BreakOutcome::Broken { info, reason } => {
            ui::say(&format!(
                "{p}: broke the lock {}{}",
                info.describe(),
                forced(reason)
            ));
            ("broken", Some(info), exit::OK)
        }
        BreakOutcome::WouldBreak { info, reason } => {
            ui::say(&format!(
                "{p}: would break the lock {}{}",
                info.describe(),
                forced(reason)
            ));
            ("would-break", Some(info), exit::OK)
        }
        BreakOutcome::Refused { info } => {
            let hint = if info.content.is_some() {
                "; use --older-than DUR or --force"
            } else {
                ""
            };
            ui::say(&format!(
                "{p}: refusing to break: {}{hint}",
                info.describe()
            ));
            ("refused", Some(info), exit::BUSY)
        }
        BreakOutcome::NotPermitted { info, why } => {
            ui::say(&format!("{p}: {}; cannot break it: {why}", info.describe()));
            ("not-permitted", Some(info), exit::NO_PERM)
        }
        BreakOutcome::LostRace { now: Some(info) } => {
            ui::say(&format!(
                "{p}: lost the race: the lock changed during the break and was left alone; now {}",
                info.describe()
            ));
            ("lost-race", Some(info), exit::BUSY)
        }
        BreakOutcome::LostRace { now: None } => {
            ui::explain(&format!(
                "{p}: someone else removed the lock first; it is free"
            ));
            ("none", None, exit::OK)
        }
    };
    if a.json {
        let mut v = lock_json(&lock.path, info);
        v["action"] = json!(action);
        v["forced"] = json!(a.force);
        let mut out = Stdout::default();
        out.json(&v);
        let _ = out.finish();
    }
    Ok(code)
}
