//! nfslock: mutual exclusion that stays correct on NFS.
//!
//! A lock is a file. A contender writes a uniquely named claim beside it,
//! hard-links the claim to the lock name and judges success by stat (same
//! inode, two links), never by link(2)'s return code. The protocol and its
//! guarantees are in [`protocol`]; every filesystem effect goes through
//! [`fs::LockFs`]. From Rust, [`protocol::Guard`] holds a lock for a scope:
//!
//! ```no_run
//! use nfslock::{names::LockPath, protocol::{AcquireOptions, Ctx, Guard, Owner}};
//! use nfslock::{realfs::RealFs, sysenv::SysEnv};
//! use std::time::Duration;
//!
//! let env = SysEnv::new();
//! let lock = LockPath::new("/shared/locks/report.lock".as_ref()).unwrap();
//! let ctx = Ctx::new(&RealFs, &env, &lock, Duration::from_secs(30));
//! let me = Owner::of_pid(&env, std::process::id()).unwrap();
//! let guard = Guard::acquire(ctx, &AcquireOptions::new(me)).unwrap();
//! // ... critical section ...
//! guard.release().unwrap(); // or let it drop
//! ```

pub mod cli;
pub mod commands;
pub mod duration;
pub mod error;
pub mod exit;
pub mod faultfs;
pub mod fs;
pub mod hang;
pub mod heartbeat;
pub mod info;
pub mod keeper;
pub mod names;
pub mod protocol;
pub mod realfs;
pub mod record;
pub mod report;
pub mod run;
#[cfg(test)]
mod sim;
pub mod spawn;
pub mod stale;
pub mod sys;
pub mod sysenv;
pub mod ui;
