//! The `nfslock` binary: its C `main` and, in dynamically linked release
//! builds, the stubs that keep the unwinder out of the process. Both are
//! explained, with what they rely on, in the library's `process` module;
//! everything else is in the library.

#![no_main]

use std::ffi::{c_char, c_int};

#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // `static_libc`: whether this is `cargo build-static`'s binary.
    let static_libc = cfg!(target_feature = "crt-static");
    // SAFETY: called once by the C runtime, with argc valid strings.
    unsafe { nfslock::process::start(argc, argv, static_libc, nfslock::commands::main) }
}

nfslock::no_unwinder!();
