//! The `nfslock` binary: parse, run, exit. Everything else is in the library.
//!
//! `no_main`: std's start-up code sizes the main thread's stack by parsing
//! /proc/self/maps and installs a stack-overflow handler, about a tenth of
//! the instructions of a whole lock cycle; a process that lives for a
//! millisecond does better without. What of it we need is in
//! [`sys::prepare_process`].

#![no_main]

use clap::{CommandFactory, FromArgMatches};
use nfslock::{cli::Cli, commands, exit, sys};
use std::ffi::{c_char, c_int, CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    sys::prepare_process();
    // From our own arguments, not std::env::args: std fills that in before
    // `main` only on some C libraries (glibc), and in lang_start elsewhere.
    let args: Vec<OsString> = (0..usize::try_from(argc).unwrap_or(0))
        // SAFETY: the C runtime passes argc valid, NUL-terminated strings.
        .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) })
        .map(|a| OsStr::from_bytes(a.to_bytes()).to_os_string())
        .collect();
    // A bug must not look like "busy" or like a child's status: exit 70,
    // from the hook, since release builds abort instead of unwinding.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("nfslock: internal error: {info}");
        std::process::exit(exit::INTERNAL.into());
    }));
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
    let code = match parsed {
        Ok(cli) => commands::run(cli),
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; clap's usage exit 2 is 64.
            if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            }
        }
    };
    // Flushes stdout, which returning from a C main would not.
    std::process::exit(code.into())
}

/// The unwinder's entry points, for release builds only, which abort on a
/// panic (after the hook above has exited 70) and so never unwind: std
/// still refers to them, and resolving them here keeps libgcc_s.so out of
/// the process. Loading it, and its constructor's CPUID probes (each one
/// a trap into the hypervisor on a VM), was a sixth of an uncontended
/// `run -- true` (1.14x flock's time, 0.98x without). A backtrace comes out
/// empty; everything else here is reached only while unwinding. Only where
/// these are the symbols std uses and the build is tested (x86_64 glibc);
/// elsewhere libgcc_s stays.
#[cfg(all(
    panic = "abort",
    target_os = "linux",
    target_env = "gnu",
    target_arch = "x86_64"
))]
mod no_unwinder {
    use std::ffi::{c_int, c_void};

    /// `_URC_END_OF_STACK`: there is nothing to walk.
    #[no_mangle]
    extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> c_int {
        5
    }

    macro_rules! never_called {
        ($($name:ident($($arg:ty),*) $(-> $ret:ty)?;)*) => {$(
            #[no_mangle]
            extern "C" fn $name($(_: $arg),*) $(-> $ret)? {
                std::process::abort()
            }
        )*};
    }

    never_called! {
        _Unwind_Resume(*mut c_void);
        _Unwind_GetLanguageSpecificData(*mut c_void) -> *mut c_void;
        _Unwind_GetIPInfo(*mut c_void, *mut c_int) -> usize;
        _Unwind_GetIP(*mut c_void) -> usize;
        _Unwind_GetRegionStart(*mut c_void) -> usize;
        _Unwind_GetTextRelBase(*mut c_void) -> usize;
        _Unwind_GetDataRelBase(*mut c_void) -> usize;
        _Unwind_SetGR(*mut c_void, c_int, usize);
        _Unwind_SetIP(*mut c_void, usize);
    }
}
