//! Integration tests of the real `nfslock` binary, one test target.

mod util;

// Acquire, release, touch, status and break: the happy paths and exit codes.
mod commands;
// Contention between real processes, including the shared-counter stress.
mod contention;
// Dead owners, leases and clock skew: what may be broken, and when.
mod staleness;
// Everything a hostile or confused world puts at a lock path.
mod admin;
mod bad_input;
// Other users in the same directory: sticky and team directories.
mod multiuser;
// SIGINT, SIGTERM and SIGHUP while waiting.
mod signals;
// --slots N.
mod shared;
mod slots;
// `run`: the child, its signals, its status, heartbeats and lost locks;
// and `acquire --keepalive`.
mod run;
// The README and the code agree on the exit-code table.
mod docs;
mod manual;
mod messages;
