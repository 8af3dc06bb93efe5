//! Starting `run`'s child. A vfork-style clone ([`vfork_exec`], with the
//! rest of the process-level tricks) shares the supervisor's memory until
//! the child execs: no page tables are copied and the supervisor takes no
//! copy-on-write faults afterwards (a quarter of a millisecond per `run`
//! on a small VM). posix_spawn would do that too, but cannot set the
//! parent-death signal, which must be set in the child.
//!
//! The child leads a process group of its own, so that a signal for the
//! command reaches all of it (`sh -c 'a; b'` and the steps of any script),
//! as timeout(1) does, and nothing around `nfslock run` (a pipeline) gets
//! it. When nfslock is the terminal's foreground, the terminal goes to the
//! child's group, as a shell would give it: a command that reads the
//! terminal still works, and Ctrl-C reaches the command. [`Terminal`] gives
//! it back when the command ends.

use crate::process::{vfork_exec, Exec};
use nix::libc;
use std::ffi::{c_char, CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::ptr;

/// A started child, leader of its own process group, reaped by
/// [`Child::try_wait`].
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

/// What [`Child::try_wait`] found.
#[derive(Debug)]
pub enum State {
    Running,
    /// Stopped by this job-control signal (Ctrl-Z, or a read of the
    /// terminal from the background).
    Stopped(i32),
    Exited(ExitStatus),
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Sends `signal` to the command's whole process group (the child and
    /// whatever it started that did not leave the group). Nothing once the
    /// child has been reaped: its number may name another group by then.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if !self.reaped {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid), signal);
        }
    }

    /// The child's state, without blocking.
    pub fn try_wait(&mut self) -> io::Result<State> {
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid out-pointer.
            let r =
                unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG | libc::WUNTRACED) };
            match r {
                0 => return Ok(State::Running),
                r if r == self.pid && libc::WIFSTOPPED(status) => {
                    return Ok(State::Stopped(libc::WSTOPSIG(status)))
                }
                r if r == self.pid => {
                    self.reaped = true;
                    return Ok(State::Exited(ExitStatus::from_raw(status)));
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EINTR) {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// The controlling terminal, when nfslock is its foreground: then the
/// command's group gets it while the command runs.
pub struct Terminal {
    fd: std::os::fd::OwnedFd,
}

impl Terminal {
    /// The controlling terminal if our process group is its foreground.
    pub fn if_foreground() -> Option<Terminal> {
        use std::os::fd::AsFd;
        let fd = nix::fcntl::open(
            "/dev/tty",
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        let ours = nix::unistd::tcgetpgrp(fd.as_fd()).ok()? == nix::unistd::getpgrp();
        ours.then_some(Terminal { fd })
    }

    /// Whether our group is (again) the terminal's foreground.
    pub fn ours(&self) -> bool {
        use std::os::fd::AsFd;
        nix::unistd::tcgetpgrp(self.fd.as_fd()).is_ok_and(|g| g == nix::unistd::getpgrp())
    }

    /// Hands the terminal to `group`, or takes it back for ours. From the
    /// background this would stop us with SIGTTOU: blocked around the call.
    pub fn give(&self, group: nix::unistd::Pid) {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal};
        use std::os::fd::AsFd;
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let mut old = SigSet::empty();
        let blocked =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old));
        let _ = nix::unistd::tcsetpgrp(self.fd.as_fd(), group);
        if blocked.is_ok() {
            let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }

    /// Takes the terminal back for our group.
    pub fn take_back(&self) {
        self.give(nix::unistd::getpgrp());
    }

    fn raw(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument or variable contains a NUL byte",
        )
    })
}

/// Where `program` may be, in the order execvp(3) tries them.
fn candidates(program: &[u8]) -> io::Result<Vec<CString>> {
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if program.contains(&b'/') {
        return Ok(vec![c_string(program)?]);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/bin:/usr/bin"));
    path.as_bytes()
        .split(|b| *b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            let mut full = dir.to_vec();
            full.push(b'/');
            full.extend_from_slice(program);
            c_string(&full)
        })
        .collect()
}

/// Starts `argv` with our environment plus `extra`, stdio inherited, no
/// signal blocked, SIGPIPE at its default, and SIGKILL as its parent-death
/// signal: if the supervisor dies, even by SIGKILL, the child must not run
/// on with nobody refreshing the lock. It leads a new process group, which
/// becomes the foreground of `terminal` when given. Fails as exec failed
/// (ENOENT when no candidate exists, EACCES when one could not be run).
pub fn spawn(
    argv: &[OsString],
    extra: &[(&str, OsString)],
    terminal: Option<&Terminal>,
) -> io::Result<Child> {
    let args = argv
        .iter()
        .map(|a| c_string(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut extra_vars = Vec::with_capacity(extra.len());
    for (k, v) in extra {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        extra_vars.push(c_string(&kv)?);
    }
    let mut env_ptrs =
        crate::process::inherited_environ(|key| extra.iter().any(|(e, _)| e.as_bytes() == key));
    env_ptrs.extend(extra_vars.iter().map(|v| v.as_ptr()));
    env_ptrs.push(ptr::null());
    let paths = candidates(argv.first().map_or(b"".as_slice(), |a| a.as_bytes()))?;
    let arg_ptrs: Vec<*const c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect();
    let exec = Exec {
        paths: &paths,
        argv: &arg_ptrs,
        envp: &env_ptrs,
        tty: terminal.map(Terminal::raw),
    };
    let (pid, failed) = vfork_exec(&exec)?;
    if failed != 0 {
        if let Some(t) = terminal {
            t.take_back();
        }
        // It has exited already: reap it.
        // SAFETY: waitpid on our own child; a null status is allowed.
        unsafe { libc::waitpid(pid, ptr::null_mut(), 0) };
        return Err(io::Error::from_raw_os_error(failed));
    }
    Ok(Child { pid, reaped: false })
}
