//! A [`LockFs`] wrapper that injects NFS faults by script: the n-th call of
//! an operation fails, or takes effect and then reports an error (a lost
//! reply), or takes effect twice (a retransmit past the server's
//! duplicate-request cache), or link makes a copy (a filesystem that fakes
//! hard links), or lstat answers from a stale cache, or an action runs just
//! before the call (to stage a race); and the process can crash before any
//! step. Used by the protocol tests; the simulator (`crate::sim`) draws the
//! same faults at random.

use crate::fs::{Durability, LockFs, Meta};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The operations of [`LockFs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Link,
    Lstat,
    /// `stat_dir_fresh`.
    StatDir,
    Read,
    Rename,
    Unlink,
    Touch,
    List,
    MakeDir,
    RemoveDir,
}

/// What happens to a call a rule matches.
pub enum Fault {
    /// Return this errno without doing anything.
    Fail(i32),
    /// Do the operation, then return this errno (the reply was lost).
    LostReply(i32),
    /// Do the operation twice and report the second result, as a client
    /// whose retransmit missed the server's duplicate-request cache sees it
    /// (EEXIST for create and link, ENOENT for rename and unlink).
    Twice,
    /// `Link` only: write a copy instead of a hard link, report success.
    Copy,
    /// `Lstat` only: answer from a stale attribute cache that still says
    /// one link.
    StaleNlink,
    /// Run this first, then do the operation normally.
    Before(Box<dyn FnMut() + Send>),
    /// `Create` only: someone else puts a file with these bytes at the
    /// very name first (the create then meets EEXIST).
    Plant(Vec<u8>),
}

/// A rule's fault as stored: actions are shared so they can run outside
/// the rules lock and still fire again.
enum Stored {
    Plain(Fault),
    Action(Arc<Mutex<Box<dyn FnMut() + Send>>>),
}

struct Rule {
    op: Op,
    /// Only calls whose path contains this; for link and rename the path
    /// is `"<from> -> <to>"`.
    path_has: Option<String>,
    /// Fire on the n-th matching call (1-based); 0 fires on every call.
    nth: usize,
    fault: Stored,
    seen: usize,
}

/// The wrapper. Rules fire in the order added; each call meets at most one.
pub struct FaultFs<F: LockFs> {
    inner: F,
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<HashMap<Op, usize>>,
    fired: Mutex<usize>,
    /// Calls of any operation so far, and the one the process dies before.
    steps: Mutex<(usize, Option<usize>)>,
}

impl<F: LockFs> FaultFs<F> {
    pub fn new(inner: F) -> FaultFs<F> {
        FaultFs {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: Mutex::new(HashMap::new()),
            fired: Mutex::new(0),
            steps: Mutex::new((0, None)),
        }
    }

    /// Simulates the process dying just before its `step`-th call (1-based,
    /// counting every operation from now on): that call and every later one
    /// do nothing and fail with EIO, so the directory keeps exactly what a
    /// crash at that point leaves behind. [`FaultFs::clear`] revives it.
    pub fn crash_before(&self, step: usize) {
        *self.steps.lock().unwrap() = (0, Some(step));
    }

    /// Calls of any operation since the last [`FaultFs::crash_before`] or
    /// [`FaultFs::clear`].
    pub fn steps(&self) -> usize {
        self.steps.lock().unwrap().0
    }

    /// Adds a rule: on the `nth` call of `op` whose path contains
    /// `path_has` (any path if `None`; every call if `nth` is 0), apply
    /// `fault`.
    pub fn on(&self, op: Op, path_has: Option<&str>, nth: usize, fault: Fault) -> &Self {
        self.rules.lock().unwrap().push(Rule {
            op,
            path_has: path_has.map(str::to_string),
            nth,
            fault: match fault {
                Fault::Before(action) => Stored::Action(Arc::new(Mutex::new(action))),
                plain => Stored::Plain(plain),
            },
            seen: 0,
        });
        self
    }

    /// Drops every rule and the crash point: the filesystem behaves again.
    pub fn clear(&self) {
        self.rules.lock().expect("rules").clear();
        *self.steps.lock().unwrap() = (0, None);
    }

    /// How many calls of `op` were made.
    pub fn calls(&self, op: Op) -> usize {
        self.calls.lock().unwrap().get(&op).copied().unwrap_or(0)
    }

    /// How many faults were injected.
    pub fn fired(&self) -> usize {
        *self.fired.lock().unwrap()
    }

    /// The fault for this call, if a rule fires. `Before` actions run here.
    fn fault_for(&self, op: Op, path: &Path) -> Option<Fault> {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
        {
            let mut steps = self.steps.lock().unwrap();
            steps.0 += 1;
            if steps.1.is_some_and(|at| steps.0 >= at) {
                return Some(Fault::Fail(nix::libc::EIO));
            }
        }
        let mut rules = self.rules.lock().unwrap();
        let text = path.to_string_lossy();
        for rule in rules.iter_mut() {
            if rule.op != op || rule.path_has.as_deref().is_some_and(|p| !text.contains(p)) {
                continue;
            }
            rule.seen += 1;
            if rule.nth != 0 && rule.seen != rule.nth {
                continue;
            }
            *self.fired.lock().unwrap() += 1;
            return match &rule.fault {
                Stored::Plain(Fault::Fail(e)) => Some(Fault::Fail(*e)),
                Stored::Plain(Fault::LostReply(e)) => Some(Fault::LostReply(*e)),
                Stored::Plain(Fault::Twice) => Some(Fault::Twice),
                Stored::Plain(Fault::Copy) => Some(Fault::Copy),
                Stored::Plain(Fault::StaleNlink) => Some(Fault::StaleNlink),
                Stored::Plain(Fault::Plant(b)) => Some(Fault::Plant(b.clone())),
                Stored::Plain(Fault::Before(_)) => None,
                Stored::Action(action) => {
                    // Run outside the rules lock: the action may use the fs.
                    let action = Arc::clone(action);
                    drop(rules);
                    (action.lock().unwrap())();
                    None
                }
            };
        }
        None
    }

    /// An lstat (or identify) of `path` by `stat`, meeting the rules for
    /// `Lstat`: a failure, or a stale cache that still says one link.
    fn stat_faulted(&self, path: &Path, stat: impl Fn() -> io::Result<Meta>) -> io::Result<Meta> {
        match self.fault_for(Op::Lstat, path) {
            Some(Fault::Fail(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(Fault::StaleNlink) => stat().map(|m| Meta { nlink: 1, ..m }),
            _ => stat(),
        }
    }

    fn apply<T>(&self, op: Op, path: &Path, run: impl Fn() -> io::Result<T>) -> io::Result<T> {
        Self::meet(self.fault_for(op, path), run)
    }

    fn meet<T>(fault: Option<Fault>, run: impl Fn() -> io::Result<T>) -> io::Result<T> {
        match fault {
            Some(Fault::Fail(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(Fault::LostReply(e)) => {
                let _ = run();
                Err(io::Error::from_raw_os_error(e))
            }
            Some(Fault::Twice) => {
                let _ = run();
                run()
            }
            _ => run(),
        }
    }
}

impl<F: LockFs> LockFs for FaultFs<F> {
    fn create_exclusive(&self, path: &Path, data: &[u8], durable: Durability) -> io::Result<Meta> {
        let create = || self.inner.create_exclusive(path, data, durable);
        match self.fault_for(Op::Create, path) {
            Some(Fault::Plant(bytes)) => {
                let _ = self
                    .inner
                    .create_exclusive(path, &bytes, Durability::NoSync);
                create()
            }
            other => Self::meet(other, create),
        }
    }

    fn is_remote(&self, dev: u64, dir: &Path) -> bool {
        self.inner.is_remote(dev, dir)
    }

    fn hard_link(&self, existing: &Path, new: &Path) -> io::Result<()> {
        let both = format!("{} -> {}", existing.display(), new.display());
        match self.fault_for(Op::Link, Path::new(&both)) {
            Some(Fault::Fail(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(Fault::LostReply(e)) => {
                let _ = self.inner.hard_link(existing, new);
                Err(io::Error::from_raw_os_error(e))
            }
            Some(Fault::Twice) => {
                let _ = self.inner.hard_link(existing, new);
                self.inner.hard_link(existing, new)
            }
            Some(Fault::Copy) => {
                let (_, bytes) = self.inner.read(existing, 1 << 20)?;
                self.inner
                    .create_exclusive(new, &bytes.unwrap_or_default(), Durability::NoSync)
                    .map(drop)
            }
            _ => self.inner.hard_link(existing, new),
        }
    }

    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        self.stat_faulted(path, || self.inner.lstat(path))
    }

    /// Counted and faulted as an lstat: the same question, one GETATTR
    /// fewer on some clients.
    fn identify(&self, path: &Path) -> io::Result<Meta> {
        self.stat_faulted(path, || self.inner.identify(path))
    }

    fn stat_dir_fresh(&self, dir: &Path) -> io::Result<Meta> {
        self.apply(Op::StatDir, dir, || self.inner.stat_dir_fresh(dir))
    }

    fn read(&self, path: &Path, limit: usize) -> io::Result<(Meta, Option<Vec<u8>>)> {
        self.apply(Op::Read, path, || self.inner.read(path, limit))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let both = format!("{} -> {}", from.display(), to.display());
        self.apply(Op::Rename, Path::new(&both), || self.inner.rename(from, to))
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let both = format!("{} -> {}", from.display(), to.display());
        self.apply(Op::Rename, Path::new(&both), || {
            self.inner.rename_noreplace(from, to)
        })
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.apply(Op::Unlink, path, || self.inner.unlink(path))
    }

    fn touch_now(&self, path: &Path) -> io::Result<()> {
        self.apply(Op::Touch, path, || self.inner.touch_now(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.apply(Op::List, dir, || self.inner.list(dir))
    }

    fn make_dir(&self, path: &Path) -> io::Result<()> {
        self.apply(Op::MakeDir, path, || self.inner.make_dir(path))
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.apply(Op::RemoveDir, path, || self.inner.remove_dir(path))
    }
    fn watch_path(&self, path: &Path) -> PathBuf {
        self.inner.watch_path(path)
    }
}
