//! nfslock: mutual exclusion that stays correct on NFS and other shared
//! filesystems, where flock(2) and fcntl(2) locks silently fail.
//!
//! A lock is a file. A contender writes a uniquely named claim beside it,
//! hard-links the claim to the lock name and judges success by stat (same
//! inode, two links), never by link(2)'s return code. Ages are measured in
//! file-system time, so clients whose clocks disagree judge alike; a lock
//! is broken only when its owner is provably dead or its lease has run
//! out, and then only the very instance that was judged.
//!
//! From Rust, a [`Lock`] names the lock and a [`Guard`] holds it for a
//! scope:
//!
//! ```
//! use nfslock::{Lock, LockOptions};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?; // in real use: a directory on NFS
//! let lock = Lock::new(dir.path().join("report.lock"))?;
//! let opts = LockOptions {
//!     wait: Some(Duration::from_secs(10)),
//!     lease: Some(Duration::from_secs(60)),
//!     ..LockOptions::default()
//! };
//! let guard = lock.acquire(&opts)?;
//!
//! // Anyone may ask who holds it, from any host.
//! let info = lock.status()?.expect("held");
//! assert!(info.describe().starts_with("held by host"));
//!
//! // ... the critical section; refresh the lease while it lasts ...
//! guard.touch()?;
//! guard.release()?; // or let it drop
//! assert!(lock.status()?.is_none());
//! # Ok(())
//! # }
//! ```
//!
//! The exit codes of the `nfslock` command are in [`exit`]; what is known
//! about a lock, as plain data, in [`info`].

// The library's surface.
pub mod error;
pub mod exit;
pub mod info;
mod lock;
pub use error::Error;
pub use info::LockInfo;
pub use lock::{Guard, Lock, LockOptions};
pub use protocol::{BreakOptions, BreakOutcome};

// The `nfslock` command: for its binary, not an API.
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod commands;
#[doc(hidden)]
pub mod process;

mod admin;
mod anchored;
mod duration;
#[cfg(test)]
mod faultfs;
mod fs;
mod hang;
mod heartbeat;
mod keeper;
mod names;
mod protocol;
mod realfs;
mod record;
mod report;
mod run;
#[cfg(test)]
mod sim;
mod spawn;
mod stale;
mod sys;
mod sysenv;
mod ui;
