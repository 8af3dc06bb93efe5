//! One simulated client: its view of the server (a [`LockFs`] that meets
//! the scheduler's faults and keeps an attribute cache), its surroundings
//! (an [`Env`] on virtual time, its host's identity and process table),
//! and the script it runs through the real protocol code.

use super::memfs::{errno, MemFs};
use super::world::{
    block, finish, first_turn, Fault, Grant, Outcome, Phase, Shared, Wait, World, DIR, LOCK,
};
use super::Mutant;
use crate::error::Error;
use crate::fs::{LockFs, Meta};
use crate::names::LockPath;
use crate::protocol::{
    self, xorshift, AcquireOptions, BreakOptions, Ctx, Env, Event, Owner, Who, Woken,
};
use crate::sys::{Identity, ProcState};
use nix::errno::Errno;
use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a path points in the one simulated directory.
enum Target<'a> {
    Dir,
    Name(&'a OsStr),
    Missing,
}

/// A path under DIR is the key of the name table: `name`, or `sub/name`
/// inside a subdirectory.
fn target(path: &Path) -> Target<'_> {
    match path.strip_prefix(DIR) {
        Ok(rel) if rel.as_os_str().is_empty() => Target::Dir,
        Ok(rel) if rel.components().count() <= 2 => Target::Name(rel.as_os_str()),
        _ => Target::Missing,
    }
}

fn name_of(path: &Path) -> io::Result<&OsStr> {
    match target(path) {
        Target::Name(n) => Ok(n),
        Target::Dir => Err(errno(Errno::EISDIR)),
        Target::Missing => Err(errno(Errno::ENOENT)),
    }
}

/// A short readable form of a name for traces.
fn short(name: &OsStr) -> String {
    if let Some(p) = MemFs::parent(name) {
        let base = Path::new(name).file_name().unwrap_or_default();
        return format!("{}/{}", short(p), short(base));
    }
    let s = name.to_string_lossy();
    if s == LOCK {
        return "LOCK".into();
    }
    // A breaker's name for a reader's link: `.<link>.nfslock-<kind>...`.
    if let Some(i) = s
        .rfind(".nfslock-")
        .filter(|&i| s[..i].contains(".nfslock-"))
    {
        let inner = OsStr::new(&s[1..i]);
        return format!("{}({})", short(OsStr::new(&s[i..])), short(inner));
    }
    match s.split_once(".nfslock-") {
        Some((_, rest)) => {
            let mut parts = rest.split('.');
            let kind = parts.next().unwrap_or("?");
            let token = parts.next().unwrap_or("?");
            // The last digits: a claim's first ones are its time, alike
            // for every claim made within a minute or so.
            format!("{kind}:{}", &token[token.len().saturating_sub(4)..])
        }
        None => s.into_owned(),
    }
}

fn eio() -> io::Error {
    errno(Errno::EIO)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Create,
    Link,
    Rename,
    Unlink,
    Touch,
    Other,
}

/// What a retransmission reports for an operation the server already did.
fn lost_reply(kind: OpKind) -> io::Error {
    match kind {
        OpKind::Create | OpKind::Link => errno(Errno::EEXIST),
        OpKind::Rename | OpKind::Unlink => errno(Errno::ENOENT),
        OpKind::Touch | OpKind::Other => eio(),
    }
}

pub(super) struct SimFs {
    shared: Arc<Shared>,
    me: usize,
}

impl SimFs {
    /// One operation: wait for our turn, meet the scheduler's fault, do it
    /// (zero, one or two times), let the oracle judge the result.
    fn call<T>(
        &self,
        kind: OpKind,
        names: &[&OsStr],
        what: String,
        f: &mut dyn FnMut(&mut World, usize, bool) -> io::Result<T>,
        show: impl Fn(&io::Result<T>) -> String,
    ) -> io::Result<T> {
        let Some((mut w, grant)) = block(&self.shared, self.me, Wait::Op) else {
            return Err(eio());
        };
        let fault = match grant {
            Grant::Go(f) => f,
            Grant::Wake => Fault::None,
        };
        let before = w.before();
        let me = self.me;
        // The names and their directories: a reply to a change carries the
        // directory's new attributes too (NFS weak cache consistency).
        let parents: Vec<&OsStr> = names.iter().filter_map(|n| MemFs::parent(n)).collect();
        let inos_before: Vec<u64> = names
            .iter()
            .chain(parents.iter())
            .filter_map(|n| w.fs.lookup(n).ok())
            .collect();
        let r = match fault {
            Fault::EioNotDone => Err(eio()),
            Fault::EioDone => f(&mut w, me, false).and(Err(eio())),
            Fault::LostReply => f(&mut w, me, false).and(Err(lost_reply(kind))),
            Fault::Twice => {
                let _ = f(&mut w, me, false);
                f(&mut w, me, false)
            }
            Fault::Stale => f(&mut w, me, true),
            Fault::None => f(&mut w, me, false),
        };
        // EioDone after a failing operation shows the failure instead.
        let r = match (fault, r) {
            (Fault::EioDone, Err(e)) if e.raw_os_error() != Some(Errno::EIO as i32) => Err(e),
            (_, r) => r,
        };
        if r.is_ok() && kind != OpKind::Other {
            // A client that saw its own change succeed updates its caches
            // (NFS replies carry the new attributes); one that saw an
            // error keeps what it had, stale or not.
            let c = &mut w.clients[me];
            for n in names {
                c.dentries.remove(*n);
            }
            for i in &inos_before {
                c.attrs.remove(i);
            }
        }
        let done_unseen = matches!(fault, Fault::LostReply | Fault::EioDone | Fault::Twice);
        if done_unseen && kind == OpKind::Unlink {
            w.clients[me].lost_unlink = true;
        }
        w.fault_counted(fault);
        let shown = show(&r);
        w.trace_op(me, format!("{what} -> {shown}"), fault);
        w.after_mutation(me, before);
        r
    }
}

fn show_unit(r: &io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

fn show_meta(r: &io::Result<Meta>) -> String {
    match r {
        Ok(m) => format!(
            "ino {} nlink {} mtime {:.3}",
            m.ino,
            m.nlink,
            m.mtime.as_secs_f64() % 1e4
        ),
        Err(e) => e.to_string(),
    }
}

impl SimFs {
    /// lstat, and `identify` (`any_age`): where the call is drawn stale, a
    /// name looked up within the cache's time is not looked up again, and
    /// its attributes come from the cache, within that time too, or of
    /// any age for `identify` (AT_STATX_DONT_SYNC takes what is there).
    fn stat_name(&self, path: &Path, verb: &str, any_age: bool) -> io::Result<Meta> {
        let what = match target(path) {
            Target::Name(n) => format!("{verb} {}", short(n)),
            _ => format!("{verb} {}", path.display()),
        };
        self.call(
            OpKind::Other,
            &[],
            what,
            &mut |w, me, stale| {
                let name = match target(path) {
                    Target::Dir => return Ok(w.fs.top_meta()),
                    Target::Missing => return Err(errno(Errno::ENOENT)),
                    Target::Name(n) => n,
                };
                let now = w.now;
                let ttl = w.sc.stale_ttl;
                if stale {
                    let c = &w.clients[me];
                    let fresh = |at: u64| now.saturating_sub(at) <= ttl;
                    if let Some(&(at, ino)) = c.dentries.get(name) {
                        if fresh(at) {
                            if let Some(&(at, m)) = c.attrs.get(&ino) {
                                if any_age || fresh(at) {
                                    return Ok(m);
                                }
                            }
                        }
                    }
                }
                let ino = w.fs.lookup(name)?;
                let m = w.fs.meta_of(ino);
                let c = &mut w.clients[me];
                c.dentries.insert(name.to_owned(), (now, ino));
                c.attrs.insert(ino, (now, m));
                Ok(m)
            },
            show_meta,
        )
    }
}

impl LockFs for SimFs {
    fn is_remote(&self, _dev: u64, _dir: &Path) -> bool {
        // The simulated clients share a server and see no events.
        true
    }

    fn create_exclusive(
        &self,
        path: &Path,
        data: &[u8],
        _durable: crate::fs::Durability,
    ) -> io::Result<Meta> {
        let name = name_of(path)?;
        self.call(
            OpKind::Create,
            &[name],
            format!("create {}", short(name)),
            &mut |w, me, _| {
                let now = w.server_now();
                let m = w.fs.create(name, data, now, me)?;
                w.name_owner_set(name, me);
                w.clients[me].made = Some((name.to_owned(), m.ino));
                Ok(m)
            },
            show_meta,
        )
    }

    fn hard_link(&self, existing: &Path, new: &Path) -> io::Result<()> {
        let (from, to) = (name_of(existing)?, name_of(new)?);
        self.call(
            OpKind::Link,
            &[from, to],
            format!("link {} -> {}", short(from), short(to)),
            &mut |w, me, _| {
                let now = w.server_now();
                match w.clients[me].made.clone() {
                    Some((made, ino)) if made == from => w.fs.link_inode(ino, to, now)?,
                    _ => w.fs.link(from, to, now)?,
                }
                w.name_owner_set(to, me);
                Ok(())
            },
            show_unit,
        )
    }

    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        self.stat_name(path, "lstat", false)
    }

    fn identify(&self, path: &Path) -> io::Result<Meta> {
        self.stat_name(path, "identify", true)
    }

    fn stat_dir_fresh(&self, dir: &Path) -> io::Result<Meta> {
        self.call(
            OpKind::Other,
            &[],
            format!("stat {} (fresh)", dir.display()),
            &mut |w, _, _| match target(dir) {
                Target::Dir => Ok(w.fs.top_meta()),
                _ => Err(errno(Errno::ENOTDIR)),
            },
            show_meta,
        )
    }

    fn read(&self, path: &Path, limit: usize) -> io::Result<(Meta, Option<Vec<u8>>)> {
        let name = name_of(path)?;
        self.call(
            OpKind::Other,
            &[],
            format!("read {}", short(name)),
            &mut |w, _, _| {
                let (m, data) = w.fs.read(name, limit)?;
                Ok((m, Some(data)))
            },
            |r| match r {
                Ok((m, _)) => format!(
                    "ino {} nlink {} mtime {:.3}",
                    m.ino,
                    m.nlink,
                    m.mtime.as_secs_f64() % 1e4
                ),
                Err(e) => e.to_string(),
            },
        )
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (name_of(from)?, name_of(to)?);
        self.call(
            OpKind::Rename,
            &[f, t],
            format!("rename {} -> {}", short(f), short(t)),
            &mut |w, me, _| {
                let now = w.server_now();
                w.forget_made(me, f);
                w.fs.rename(f, t, now)?;
                if w.fs.names.contains_key(f) {
                    // Both names were one inode: nothing moved.
                    return Ok(());
                }
                w.name_owner_clear(f);
                w.name_owner_set(t, me);
                Ok(())
            },
            show_unit,
        )
    }

    /// NFSv3 has no RENAME_NOREPLACE: what a kernel client answers.
    fn rename_noreplace(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(errno(Errno::EINVAL))
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        let name = name_of(path)?;
        self.call(
            OpKind::Unlink,
            &[name],
            format!("unlink {}", short(name)),
            &mut |w, me, _| {
                let now = w.server_now();
                w.forget_made(me, name);
                w.fs.unlink(name, now)?;
                w.name_owner_clear(name);
                Ok(())
            },
            show_unit,
        )
    }

    fn touch_now(&self, path: &Path) -> io::Result<()> {
        let name = name_of(path)?;
        self.call(
            OpKind::Touch,
            &[name],
            format!("touch {}", short(name)),
            &mut |w, _, _| {
                let now = w.server_now();
                w.fs.touch(name, now)
            },
            show_unit,
        )
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let sub = match target(dir) {
            Target::Dir => None,
            Target::Name(n) => Some(n),
            Target::Missing => return Err(errno(Errno::ENOENT)),
        };
        self.call(
            OpKind::Other,
            &[],
            match sub {
                Some(n) => format!("list {}", short(n)),
                None => "list".into(),
            },
            &mut |w, _, _| match sub {
                None => Ok(w.fs.top()),
                Some(n) => {
                    let ino = w.fs.lookup(n)?;
                    if !w.fs.inodes[&ino].dir {
                        return Err(errno(Errno::ENOTDIR));
                    }
                    Ok(w.fs.entries(n))
                }
            },
            |r| match r {
                Ok(v) => format!("{} names", v.len()),
                Err(e) => e.to_string(),
            },
        )
    }

    fn make_dir(&self, path: &Path) -> io::Result<()> {
        let name = name_of(path)?;
        self.call(
            OpKind::Create,
            &[name],
            format!("mkdir {}", short(name)),
            &mut |w, me, _| {
                let now = w.server_now();
                w.fs.mkdir(name, now, me)?;
                w.name_owner_set(name, me);
                Ok(())
            },
            show_unit,
        )
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let name = name_of(path)?;
        self.call(
            OpKind::Unlink,
            &[name],
            format!("rmdir {}", short(name)),
            &mut |w, _, _| {
                let now = w.server_now();
                w.fs.rmdir(name, now)?;
                w.name_owner_clear(name);
                Ok(())
            },
            show_unit,
        )
    }
}

pub(super) struct SimEnv {
    shared: Arc<Shared>,
    me: usize,
    identity: Identity,
    host: usize,
    pid: u32,
    mutant: Mutant,
    /// After death: a private clock and generator, so the dead thread's
    /// unwinding never touches the world.
    dead_clock: Cell<u64>,
    dead_rng: Cell<u64>,
}

impl SimEnv {
    fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world.lock().expect("world lock")
    }

    /// Runs `f` on the world if this client is still alive.
    fn report(&self, f: impl FnOnce(&mut World)) {
        let mut w = self.world();
        if w.live(self.me) {
            f(&mut w);
        }
    }

    fn dead(&self) -> bool {
        !self.world().live(self.me)
    }
}

impl Env for SimEnv {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    fn process(&self, pid: u32) -> ProcState {
        match self.world().hosts[self.host].procs.get(&pid) {
            Some(&start) => ProcState::Running { start },
            None => ProcState::Gone,
        }
    }

    fn monotonic(&self) -> Duration {
        let w = self.world();
        if w.live(self.me) {
            Duration::from_nanos(w.now)
        } else {
            // Every look at the clock of a dead client moves it a second,
            // so its retry loops give up quickly.
            self.dead_clock.set(self.dead_clock.get() + 1_000_000_000);
            Duration::from_nanos(w.now + self.dead_clock.get())
        }
    }

    fn wall_clock(&self) -> SystemTime {
        let ns = self.world().wall_ns(self.host);
        UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
    }

    fn sleep(&self, d: Duration) -> Option<i32> {
        match block(&self.shared, self.me, Wait::Sleep(d.as_nanos() as u64)) {
            Some(_) => None,
            None => Some(9),
        }
    }

    /// inotify on the server's inode: not a round trip, so no scheduling
    /// point of its own and no fault; the wait ends early when the inode
    /// changes.
    fn sleep_watching(&self, path: &Path, d: Duration) -> Woken {
        let watched = {
            let mut w = self.world();
            if !w.live(self.me) {
                return Woken::Signal(9);
            }
            let found = match target(path) {
                Target::Name(n) => w.fs.lookup(n).ok().map(|ino| (n, ino)),
                _ => None,
            };
            let Some((name, ino)) = found else {
                return Woken::Missing;
            };
            if name != LOCK {
                let creator = w.fs.inodes[&ino].creator;
                let (dead, stalled) = {
                    let c = &w.clients[creator];
                    (c.crashed, matches!(c.wait, Wait::OpAt(_)))
                };
                w.report.queued += 1;
                w.report.queued_behind_dead += u64::from(dead);
                w.report.queued_behind_stalled += u64::from(stalled);
            }
            (ino, w.fs.inodes[&ino].ctime, w.now + d.as_nanos() as u64)
        };
        let (ino, ctime, until) = watched;
        let wait = Wait::Watch {
            until: d.as_nanos() as u64,
            ino,
            ctime,
        };
        match block(&self.shared, self.me, wait) {
            None => Woken::Signal(9),
            Some((w, _)) if w.now >= until => Woken::TimedOut,
            Some(_) => Woken::Changed,
        }
    }

    fn interrupted(&self) -> Option<i32> {
        self.dead().then_some(9)
    }

    fn random(&self) -> u64 {
        let w = self.world();
        if w.live(self.me) {
            w.rand()
        } else {
            xorshift(&self.dead_rng)
        }
    }

    /// Deterministic like everything in a run: a seed fixes every name.
    fn token(&self) -> u64 {
        self.random()
    }

    fn event(&self, e: Event<'_>) {
        let line = match e {
            Event::Broke { info, .. } => format!(
                "event: broke ({})",
                info.verdict
                    .stale
                    .as_ref()
                    .map_or(String::new(), |r| r.describe())
            ),
            Event::Displaced { .. } => "event: displaced another's lock".into(),
            Event::BreakRaceLost => "event: break race lost".into(),
            Event::Swept { path } => format!(
                "event: swept {}",
                short(path.file_name().unwrap_or_default())
            ),
            Event::Retrying { op, error, .. } => format!("event: retrying {op} after {error}"),
            Event::GaveWay { .. } => {
                self.report(|w| w.report.gave_way += 1);
                "event: gave the lock back to a reader".into()
            }
            Event::Glanced => {
                self.report(|w| w.report.glances += 1);
                "event: glanced: busy as last looked at".into()
            }
            Event::QuietPoll => {
                self.report(|w| w.report.quiet_polls += 1);
                return;
            }
            Event::InLine { ahead, .. } => {
                self.report(|w| w.report.in_line[ahead.min(2)] += 1);
                return;
            }
            Event::Waiting { .. } | Event::ReleaseFailed { .. } => return,
        };
        self.report(|w| {
            let l = format!("{} {line}", w.who(self.me));
            w.log(l);
        });
    }

    fn mutant(&self) -> Mutant {
        self.mutant
    }
}

/// Which release path a holder takes.
enum ReleaseBy {
    /// The library's `Held::release` (what `run` does).
    Held,
    /// `nfslock release` in a later process of the same owner.
    Owner,
    /// `nfslock release --token`.
    Token,
}

/// One unit of a client's script.
enum Action {
    Acquire {
        wait: Duration,
        lease: Option<Duration>,
        stale_after: Option<Duration>,
        /// Sleep, then touch (or not).
        holds: Vec<(Duration, bool)>,
        release_by: ReleaseBy,
        /// A reader's lock (`--shared`).
        shared: bool,
    },
    Break {
        force: bool,
        older_than: Option<Duration>,
        /// Of a slotted lock: break one of its slots, drawn at random (the
        /// clean-up breaks each lock name itself).
        any_slot: bool,
    },
    Status,
    Pause(Duration),
}

fn secs(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn draw_action(w: &mut World) -> Option<Action> {
    if !w.next_action_allowed() {
        return None;
    }
    Some(match w.below(100) {
        0..=79 => {
            let lease = [
                None,
                Some(secs(2_000)),
                Some(secs(5_000)),
                Some(secs(20_000)),
            ][w.below(4) as usize];
            let wait = match w.below(5) {
                0 => Duration::ZERO,
                _ => secs(w.below(20_000)),
            };
            let stale_after = (w.below(10) == 0).then(|| secs(3_000 + w.below(7_000)));
            let base = lease.map_or(1_000, |l| l.as_millis() as u64);
            let holds = (0..w.below(4))
                .map(|_| {
                    if w.below(10) == 0 {
                        // Overstay: no touch for longer than the lease.
                        (secs(base * 3 / 2), false)
                    } else {
                        (secs(w.below(base / 2 + 1)), w.below(10) < 7)
                    }
                })
                .collect();
            let release_by = match w.below(3) {
                0 => ReleaseBy::Held,
                1 => ReleaseBy::Owner,
                _ => ReleaseBy::Token,
            };
            let shared = w.cfg.readers && w.below(2) == 0;
            Action::Acquire {
                wait,
                lease,
                stale_after,
                holds,
                release_by,
                shared,
            }
        }
        80..=87 => Action::Break {
            any_slot: true,
            force: w.below(4) == 0,
            older_than: (w.below(2) == 0).then(|| secs(1_000 + w.below(20_000))),
        },
        88..=93 => Action::Status,
        _ => Action::Pause(secs(w.below(3_000))),
    })
}

fn outcome<T>(r: &Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(Error::NotOwner { .. }) => Outcome::Lost,
        Err(e) => Outcome::Error(e.to_string()),
    }
}

fn perform(ctx: &Ctx, env: &SimEnv, owner: Owner, action: Action) {
    match action {
        Action::Acquire {
            wait,
            lease,
            stale_after,
            holds,
            release_by,
            shared,
        } => {
            env.report(|w| {
                w.begin(env.me, Phase::Acquiring, stale_after);
                w.clients[env.me].shared = shared;
            });
            let mut opts = AcquireOptions::new(owner);
            opts.shared = shared;
            opts.wait = Some(wait);
            opts.lease = lease;
            opts.stale_after = stale_after;
            opts.watch = Some(env.world().cfg.watchers);
            let slots = env.world().cfg.slots;
            let taken = match slots {
                None => protocol::acquire(ctx, &opts).map(|h| (ctx.lock.clone(), h)),
                Some(n) => protocol::settle_slots(ctx, n, crate::fs::Durability::IfRemote)
                    .and_then(|()| protocol::acquire_slot(ctx, n, &opts))
                    .map(|t| (t.lock, t.held)),
            };
            let (slot, held) = match taken {
                Ok(t) => t,
                Err(e) => {
                    env.report(|w| w.acquire_failed(env.me, &e.to_string()));
                    return;
                }
            };
            let ctx = &Ctx::new(ctx.fs, ctx.env, &slot, ctx.io_timeout);
            let member = held
                .member()
                .and_then(|m| m.strip_prefix(DIR).ok())
                .map(|m| m.as_os_str().to_owned());
            env.report(|w| w.acquired(env.me, held.inode(), member));
            for (pause, touch) in holds {
                if env.sleep(pause).is_some() {
                    return;
                }
                if touch {
                    env.report(|w| w.begin(env.me, Phase::Touching, None));
                    let r = held.touch(ctx);
                    let o = outcome(&r);
                    let lost = matches!(o, Outcome::Lost);
                    env.report(|w| w.checked(env.me, false, o));
                    if lost {
                        return;
                    }
                }
            }
            env.report(|w| w.begin(env.me, Phase::Releasing, None));
            let r = match release_by {
                ReleaseBy::Held => held.release(ctx),
                ReleaseBy::Owner => protocol::release(ctx, &Who::Owner(owner)),
                ReleaseBy::Token => protocol::release(ctx, &Who::Token(held.token().to_string())),
            };
            env.report(|w| w.checked(env.me, true, outcome(&r)));
        }
        Action::Break {
            force,
            older_than,
            any_slot,
        } => {
            env.report(|w| w.begin(env.me, Phase::Breaking { force }, older_than));
            // A slotted lock: one of its slots, as `break --slot K`.
            let slots = env.world().cfg.slots;
            let slot = slots.filter(|_| any_slot).map(|n| {
                let k = 1 + env.world().below(u64::from(n)) as u32;
                protocol::slot_lock(ctx.lock, k)
            });
            let lock = slot.as_ref().unwrap_or(ctx.lock);
            let ctx = &Ctx::new(ctx.fs, ctx.env, lock, ctx.io_timeout);
            let r = protocol::break_lock(
                ctx,
                BreakOptions {
                    older_than,
                    force,
                    dry_run: false,
                },
            );
            let line = match r {
                Ok(o) => format!("break -> {}", break_tag(&o)),
                Err(e) => format!("break failed: {e}"),
            };
            env.report(|w| w.other_done(env.me, line));
        }
        Action::Status => {
            env.report(|w| w.begin(env.me, Phase::Inspecting, None));
            let r = ctx.inspect(None);
            let line = match r {
                Ok(Some(info)) => format!("status: {}", info.describe()),
                Ok(None) => "status: free".into(),
                Err(e) => format!("status failed: {e}"),
            };
            env.report(|w| w.other_done(env.me, line));
        }
        Action::Pause(d) => {
            env.sleep(d);
        }
    }
}

fn break_tag(o: &protocol::BreakOutcome) -> &'static str {
    match o {
        protocol::BreakOutcome::Free => "free",
        protocol::BreakOutcome::Broken { .. } => "broken",
        protocol::BreakOutcome::WouldBreak { .. } => "would break",
        protocol::BreakOutcome::Refused { .. } => "refused",
        protocol::BreakOutcome::LostRace { .. } => "lost race",
        protocol::BreakOutcome::NotPermitted { .. } => "not permitted",
    }
}

/// The thread of client `me`. A panic in protocol code ends the run as a
/// violation instead of leaving the others waiting for a turn forever.
pub(super) fn main(shared: Arc<Shared>, me: usize) {
    let s = Arc::clone(&shared);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client(s, me)));
    if let Err(p) = r {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        super::world::abort(&shared, format!("panic in client {me}: {msg}"));
    }
}

fn client(shared: Arc<Shared>, me: usize) {
    if !first_turn(&shared, me) {
        return;
    }
    let (identity, host, pid, start, cleaner, mutant) = {
        let w = shared.world.lock().expect("world lock");
        let c = &w.clients[me];
        (
            w.hosts[c.host].ident.clone(),
            c.host,
            c.pid,
            c.start,
            c.cleaner,
            w.cfg.mutant,
        )
    };
    let env = SimEnv {
        shared: Arc::clone(&shared),
        me,
        identity,
        host,
        pid,
        mutant,
        dead_clock: Cell::new(0),
        dead_rng: Cell::new(u64::from(pid) | 1),
    };
    let fs = SimFs {
        shared: Arc::clone(&shared),
        me,
    };
    let lock = LockPath::new(&Path::new(DIR).join(LOCK)).expect("simulated lock path");
    let ctx = Ctx::new(&fs, &env, &lock, Duration::from_secs(10));
    let owner = Owner {
        pid,
        start: Some(start),
    };
    if cleaner {
        // One break per lock name: a slotted lock's slots, and the lock
        // itself, beside which waiters keep their places in line.
        let slots = env.world().cfg.slots.unwrap_or(0);
        let locks: Vec<LockPath> = std::iter::once(lock.clone())
            .chain((1..=slots).map(|k| protocol::slot_lock(&lock, k)))
            .collect();
        for l in &locks {
            let ctx = Ctx::new(&fs, &env, l, Duration::from_secs(10));
            perform(
                &ctx,
                &env,
                owner,
                Action::Break {
                    force: false,
                    older_than: None,
                    any_slot: false,
                },
            );
        }
    } else {
        loop {
            let action = {
                let mut w = env.world();
                if !w.live(me) {
                    return;
                }
                draw_action(&mut w)
            };
            let Some(action) = action else { break };
            perform(&ctx, &env, owner, action);
            if env.dead() {
                return;
            }
        }
    }
    finish(&shared, me);
}
