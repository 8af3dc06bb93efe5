//! The process-level tricks, in one place, each with what it relies on.
//! Everything here is `unsafe` underneath; nothing else in the crate
//! creates processes, borrows another process's memory or replaces what
//! std does at start-up.
//!
//! - **Our own C `main`** ([`start`]): the binary is `no_main`, because
//!   std's start-up (sizing the main thread's stack from /proc/self/maps,
//!   a stack-overflow handler) costs a tenth of a whole lock cycle.
//!   Assumes: called once, by the C runtime, on the main thread, with
//!   `argc` valid strings in `argv`; it does what of std's start-up we rely
//!   on (`prepare_process`).
//! - **No unwinder** ([`no_unwinder!`](crate::no_unwinder)): release
//!   builds abort on a panic, after the hook in [`start`] has exited 70,
//!   so they never unwind; defining the unwinder's entry points keeps
//!   libgcc_s out of a dynamically linked process. Assumes: `panic =
//!   "abort"`, x86_64 glibc (the configuration CI builds with clippy),
//!   where these are the only unwinder symbols std refers to, reached only
//!   while unwinding. The static build (`cargo build-static`) leaves them
//!   out: libc.a brings its own, and nothing is loaded at start anyway.
//! - **vfork-style spawn** (`vfork_exec`, for `run`): the child shares
//!   our memory until it execs. Assumes: nothing else changes `environ`
//!   or the prepared memory meanwhile (we are suspended, CLONE_VFORK); the
//!   child makes only system calls on memory prepared before the clone.
//! - **The hand-off child** (`close_later`): a CLONE_VM child keeps the
//!   last reference to an inotify instance so that we do not wait for the
//!   kernel's clean-up of it. Assumes: called only at exit (the child
//!   lives as long as the calling thread); the child runs on its own
//!   leaked stack, reads only its leaked argument and makes only raw
//!   system calls that cannot fail.

use nix::libc;
use nix::sched::{clone, CloneFlags};
use nix::sys::inotify::Inotify;
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::stat::Mode;
use std::ffi::{c_char, c_int, CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::ptr;

/// The body of the binary's C `main`: prepares the process, has `run`
/// run the command line in `argv` and exits with the status it returns
/// (flushing stdout, which returning from a C `main` would not).
/// `static_libc` says the binary carries its own glibc, which must not
/// load the system's name service modules.
///
/// # Safety
///
/// Only from the C `main`: `argv` holds `argc` valid NUL-terminated
/// strings.
pub unsafe fn start(
    argc: c_int,
    argv: *const *const c_char,
    static_libc: bool,
    run: fn(Vec<OsString>) -> u8,
) -> c_int {
    if static_libc {
        crate::sys::forgo_name_service();
    }
    prepare_process();
    // From our own arguments, not std::env::args: std fills that in before
    // `main` only on some C libraries (glibc), and in lang_start elsewhere.
    let args: Vec<OsString> = (0..usize::try_from(argc).unwrap_or(0))
        // SAFETY: the caller passes argc valid, NUL-terminated strings.
        .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) })
        .map(|a| OsStr::from_bytes(a.to_bytes()).to_os_string())
        .collect();
    // A bug must not look like "busy" or like a child's status: exit 70,
    // from the hook, since release builds abort instead of unwinding.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("nfslock: internal error: {info}");
        std::process::exit(crate::exit::INTERNAL.into());
    }));
    let code = run(args);
    std::process::exit(code.into())
}

/// What std's start-up code would have done and nfslock relies on (the
/// binary brings its own `main`): file descriptors 0-2 are open, so no file
/// we open can become stderr and receive a message meant for a person; and
/// SIGPIPE is ignored, so a closed pipe is an error we report rather than a
/// silent death in the middle of a release (children get the default back,
/// see [`crate::spawn`]).
fn prepare_process() {
    use nix::libc;
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the call's length.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled > 0 {
        // open(2) takes the lowest free numbers: exactly the closed ones.
        let closed = fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0);
        for _ in closed {
            let null = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, Mode::empty());
            let _ = null.map(std::os::fd::IntoRawFd::into_raw_fd);
        }
    }
    // SAFETY: setting a signal to SIG_IGN installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! no_unwinder {
    () => {
        $crate::no_unwinder! { @stubs
            _Unwind_Resume(*mut ::std::ffi::c_void);
            _Unwind_GetLanguageSpecificData(*mut ::std::ffi::c_void) -> *mut ::std::ffi::c_void;
            _Unwind_GetIPInfo(*mut ::std::ffi::c_void, *mut ::std::ffi::c_int) -> usize;
            _Unwind_GetIP(*mut ::std::ffi::c_void) -> usize;
            _Unwind_GetRegionStart(*mut ::std::ffi::c_void) -> usize;
            _Unwind_GetTextRelBase(*mut ::std::ffi::c_void) -> usize;
            _Unwind_GetDataRelBase(*mut ::std::ffi::c_void) -> usize;
            _Unwind_SetGR(*mut ::std::ffi::c_void, ::std::ffi::c_int, usize);
            _Unwind_SetIP(*mut ::std::ffi::c_void, usize);
        }
    };
    (@stubs $($name:ident($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        #[cfg(all(
            panic = "abort",
            target_os = "linux",
            target_env = "gnu",
            target_arch = "x86_64",
            not(target_feature = "crt-static")
        ))]
        mod no_unwinder {
            /// `_URC_END_OF_STACK`: there is nothing to walk.
            #[no_mangle]
            extern "C" fn _Unwind_Backtrace(
                _trace: *mut ::std::ffi::c_void,
                _arg: *mut ::std::ffi::c_void,
            ) -> ::std::ffi::c_int {
                5
            }
            $(
                #[no_mangle]
                extern "C" fn $name($(_: $arg),*) $(-> $ret)? {
                    ::std::process::abort()
                }
            )*
        }
    };
}

extern "C" {
    static environ: *const *const c_char;
}

/// Our environment as it is, pointer by pointer ("K=V" C strings), leaving
/// out the variables `skip` names: copying each into a new string cost
/// more than the rest of a spawn.
pub(crate) fn inherited_environ(skip: impl Fn(&[u8]) -> bool) -> Vec<*const c_char> {
    let mut env_ptrs: Vec<*const c_char> = Vec::new();
    // SAFETY: `environ` is the process's NULL-terminated array of "K=V"
    // C strings; nothing in this single-threaded process changes it while
    // we read it and while a child uses the copied pointers.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let var = CStr::from_ptr(*p).to_bytes();
            let key = var.split(|b| *b == b'=').next().unwrap_or(var);
            if !skip(key) {
                env_ptrs.push(*p);
            }
            p = p.add(1);
        }
    }
    env_ptrs
}

/// What the child of [`vfork_exec`] needs, all prepared before it runs.
pub(crate) struct Exec<'a> {
    /// Where the program may be, in the order execvp(3) tries them.
    pub paths: &'a [CString],
    /// NULL-terminated argument and environment arrays.
    pub argv: &'a [*const c_char],
    pub envp: &'a [*const c_char],
    /// The terminal to hand to the child's new process group.
    pub tty: Option<c_int>,
}

/// Starts `e` in a child that leads a new process group (and the
/// terminal's foreground, when given), with no signal blocked, SIGPIPE at
/// its default and SIGKILL as its parent-death signal. Returns its pid and
/// the errno of a failed exec (0 when it exec'd): a child that failed has
/// exited already.
pub(crate) fn vfork_exec(e: &Exec) -> io::Result<(libc::pid_t, c_int)> {
    // execvp runs a file without a #! line through the shell: so do we,
    // with argv [sh, file, args...] (slot 1 is filled in the child).
    let sh = c"/bin/sh";
    let mut sh_argv: Vec<*const c_char> = vec![sh.as_ptr(), ptr::null()];
    sh_argv.extend(e.argv.iter().skip(1));
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let mut failure: c_int = 0;
    let failure_ptr: *mut c_int = &mut failure;
    let (paths, argv, envp, tty) = (e.paths, e.argv, e.envp, e.tty);
    let mut stack = vec![0u8; 32 * 1024];
    let child_main = Box::new(move || -> isize {
        // In the child, sharing our memory while we are suspended: only
        // system calls and writes to memory prepared above, no allocation.
        // SAFETY: each call gets valid pointers to data that outlives the
        // child's use of it (we do not run again until it execs or exits).
        unsafe {
            // A group of its own, and the terminal if we had it: with
            // SIGTTOU blocked, as the mask still is ours until just below.
            libc::setpgid(0, 0);
            if let Some(tty) = tty {
                let mut ttou: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut ttou);
                libc::sigaddset(&mut ttou, libc::SIGTTOU);
                libc::sigprocmask(libc::SIG_BLOCK, &ttou, ptr::null_mut());
                libc::tcsetpgrp(tty, libc::getpid());
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                // The supervisor died before the signal was armed.
                libc::_exit(crate::exit::NOT_FOUND.into());
            }
            let error = exec_first(paths, argv, envp, &mut sh_argv);
            ptr::write_volatile(failure_ptr, error);
            libc::_exit(crate::exit::NOT_FOUND.into())
        }
    });
    // SAFETY: CLONE_VM | CLONE_VFORK suspends us until the child has
    // exec'd or exited, so everything it borrows stays alive and unchanged.
    let pid = unsafe {
        clone(
            child_main,
            &mut stack,
            CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
            Some(libc::SIGCHLD),
        )
    }
    .map_err(io::Error::from)?;
    // SAFETY: the child wrote it (or not) before it exec'd or exited.
    let failed = unsafe { ptr::read_volatile(failure_ptr) };
    Ok((pid.as_raw(), failed))
}

/// In the child of [`vfork_exec`]: tries each candidate as execvp(3)
/// does; returns the errno to report if none could be run.
///
/// # Safety
///
/// All pointers valid and NULL-terminated where arrays; `sh_argv` has room
/// for the file in slot 1.
unsafe fn exec_first(
    paths: &[CString],
    argv: &[*const c_char],
    envp: &[*const c_char],
    sh_argv: &mut [*const c_char],
) -> c_int {
    let mut error = libc::ENOENT;
    for path in paths {
        // SAFETY: valid C strings and NULL-terminated arrays (caller).
        unsafe {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let e = *libc::__errno_location();
            if e == libc::ENOEXEC {
                sh_argv[1] = path.as_ptr();
                libc::execve(sh_argv[0], sh_argv.as_ptr(), envp.as_ptr());
                return *libc::__errno_location();
            }
            match e {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => error = e,
                _ => return e,
            }
        }
    }
    error
}

/// Closing the last reference to an inotify instance makes the kernel
/// wait for its watch reaper, an SRCU grace period: 10-20 ms whenever
/// other waiters add and drop watches too. A waiter that got the lock paid
/// it after its release, before exiting, and the workers of a busy lock
/// spent a third of their time there (8 workers: 491 of 667 processes,
/// 10 ms at the median), so the lock often sat free while every contender
/// was still leaving. A child keeps a reference until we are gone, and the
/// wait is the child's.
pub(crate) fn close_later(inotify: Inotify) {
    use nix::libc::{self, c_long};
    use std::os::fd::AsRawFd;
    // The child must make no call that can fail (see `linger`), and
    // close_range(2) is new in Linux 5.9: ask first, here.
    // SAFETY: an empty range closes nothing.
    if unsafe { libc::close_range(libc::c_uint::MAX, libc::c_uint::MAX, 0) } != 0 {
        return;
    }
    /// What the child needs: the descriptor to keep and whose death to wait
    /// for. Leaked, like its stack: the child may outlive everything else.
    struct Linger {
        fd: c_long,
        parent: c_long,
    }
    // The child shares our memory (no page tables copied, none to tear
    // down) but not our descriptor table. It runs only on its own stack and
    // reads only its leaked `Linger`; its raw system calls cannot fail, so
    // it writes nothing of ours, not even errno (it has our thread's).
    extern "C" fn linger(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the leaked `Linger`, never freed.
        let Linger { fd, parent } = unsafe { &*arg.cast::<Linger>() };
        // SAFETY: raw system calls with plain integer arguments.
        unsafe {
            // Nothing but the inotify descriptor: no pipe of our caller's
            // may stay open because of this child.
            if *fd > 0 {
                libc::syscall(libc::SYS_close_range, 0, fd - 1, 0);
            }
            libc::syscall(libc::SYS_close_range, fd + 1, libc::c_uint::MAX, 0);
            libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::syscall(libc::SYS_getppid) == *parent {
                loop {
                    libc::syscall(libc::SYS_pause);
                }
            }
            libc::syscall(libc::SYS_exit, 0);
        }
        0
    }
    let arg: &'static mut Linger = Box::leak(Box::new(Linger {
        fd: c_long::from(inotify.as_fd().as_raw_fd()),
        parent: c_long::from(nix::unistd::getpid().as_raw()),
    }));
    let stack: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    // SAFETY: the stack's top is 16-byte aligned and both it and `arg` are
    // leaked; the child touches nothing else of ours. If clone fails, the
    // close below is the last one and simply waits.
    unsafe {
        let top = stack.as_mut_ptr().add(stack.len() & !15);
        libc::clone(
            linger,
            top.cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            std::ptr::from_mut(arg).cast(),
        );
    }
    drop(inotify);
}
