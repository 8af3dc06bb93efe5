//! A deterministic simulation of many clients running the real protocol code
//! against one in-memory NFS server, to find the rare interleavings that
//! real-process tests never hit.
//!
//! Each simulated client is a thread running [`crate::protocol`] unchanged
//! through its own [`crate::fs::LockFs`] and [`crate::protocol::Env`]. Only
//! one client runs at a time: every filesystem operation and every sleep is
//! a scheduling point where a seeded random generator picks who goes next,
//! which fault the operation meets (lost reply, EIO done or not done, a
//! retransmit executed twice, stale attributes, a crash), and how much
//! virtual time passes. A seed therefore fixes the whole run, and
//! `SIM_SEED=<n>` replays a failure exactly.
//!
//! An oracle watches every step and checks the invariants of the
//! protocol module (I1-I7) from the server's point of view: who created
//! each inode, who believes it holds which one, and which removals were
//! allowed by a lease, a dead owner or `--force`.
//!
//! With `Config::watchers`, waiters wait as on a local filesystem: in the
//! protocol's queue, each woken when the inode it watches changes, so the
//! queue meets crashed and stalled waiters ahead of it too.
//!
//! [`Mutant`] switches on deliberately broken protocol variants, so the
//! tests can show the simulator catches them.

mod client;
mod memfs;
mod world;

#[cfg(test)]
mod tests;

pub use world::{run, Config, Report};

pub use crate::protocol::mutants::Mutant;
