//! The NFS-safe lock protocol: acquire, release, touch, break and inspect.
//!
//! # Guarantees
//!
//! - **I1 Mutual exclusion.** A contender writes a claim with a unique name
//!   and links it to the lock name; it holds the lock only when the claim and
//!   the lock are the same inode and the claim has two links. The return code
//!   of link(2) is never trusted: NFS can lose the reply of a link that was
//!   made, and report EEXIST for it on retransmission. A second holder can
//!   only appear after an explicit break, and the first finds out at its next
//!   touch or release.
//! - **I2 Own-only release.** Release checks the record (token, owner) and
//!   then renames the lock to a private name and checks that what it moved is
//!   still the file it read; if not, it links it back. Touch sets the mtime
//!   through our own claim name, which is our inode even if the lock was
//!   replaced, and checks afterwards that the lock is still that inode.
//! - **I3 Precise break.** A breaker pins the judged inode with an extra link
//!   and checks through the pin that inode, mtime and content are the ones it
//!   judged; only then does it remove the lock name, the same way release
//!   does. A lock re-taken in between survives. Where the pin is refused
//!   (protected hardlinks), the removal's own check carries the guarantee.
//!   Only a lock is ever removed: data at the lock path, never.
//! - **I4 No phantom locks.** After every error the real state is looked at
//!   (lstat of claim and lock) before anything else is decided, so a link or
//!   rename that took effect is known to have taken effect.
//! - **I5 No litter.** Claims, guards and private names are removed on every
//!   exit path; leftovers of killed processes carry recognisable names and are
//!   swept by contended acquires and by `break`.
//! - **I6 Skew immunity.** Ages are file-system time minus file-system time;
//!   see [`crate::stale`].
//! - **I7 Honest liveness.** See [`crate::stale::liveness`]: a pid is probed
//!   only on the same host, boot and pid namespace; a record of an earlier
//!   boot of this very machine (same host name and machine hash) is dead,
//!   of any other machine never judged. A record is believed only from the
//!   uid that owns its file ([`crate::record::trusted`]).
//! - **I8 Age rules yield.** `--stale-after` and `--older-than` never break
//!   a valid lease or a provably alive owner ([`crate::stale::age_limit`]).
//! - **I9 Paced retries.** Persistent errors end an operation with their
//!   exit code; nothing is retried without a pause, nor past `--io-timeout`
//!   or the caller's deadline (`ctx::IoBudget`, `acquire::Attempts::pace`).
//! - **I10 Our names only.** Tokens and nonces are fresh OS randomness; a
//!   name that is taken is never used as ours (`files`: `Ctx::create_aux`).
//!
//! # Residual windows
//!
//! Removing a name only if it still names a given inode is not one POSIX
//! call. If a lock is replaced in the one round trip between a remover's
//! check and its rename, the remover moves the new lock aside and links it
//! back at once; if a third party links a lock in that instant, the restore
//! fails, the displaced holder is told at its next check, and the remover
//! reports it. Without a lease, a lock held from another host (or another
//! boot or pid namespace) is never broken automatically.
//!
//! # Parts
//!
//! | part | owns |
//! |---|---|
//! | `env`, `owner` | the vocabulary: [`Env`], [`Event`], [`Owner`], [`Who`], [`owns`] |
//! | `ctx` | the retry discipline: [`Ctx`], the I/O budget, errors to exit codes |
//! | `files` | our own files beside the lock: fresh names, create, unlink |
//! | `fstime`, `judge` | file-system time; reading and judging a lock ([`LockInfo`]) |
//! | `removal` | conditional removal and restore |
//! | `claim`, `look`, `acquire`, `contend`, `wait` | acquire, step by step |
//! | `queue` | the waiters' queue on local filesystems |
//! | `pace`, `quiet` | the waiters' line on NFS: how fast each polls, and the polls of one round trip |
//! | `hold` | [`Held`]: release and touch |
//! | `breaking`, `sweep` | break a stale lock; remove leftovers |
//! | `directory` | every lock of a directory from one listing: `list`, `sweep` |
//! | `shared` | `--shared`: readers linked into a readers' directory, writers' seals, breaking readers |
//! | `slots`, `line` | `--slots N`: N ordinary locks, the count recorded beside them; the line of slot waiters |
//! | `fence`, `window` | the fencing counter; the start stamp of `--min-interval` |
//!
//! The RAII guard, and the library's front door, are [`crate::lock`].

mod acquire;
mod breaking;
mod claim;
mod contend;
mod ctx;
mod directory;
mod env;
mod epoch;
mod fence;
mod files;
mod fstime;
mod hold;
mod judge;
mod line;
mod look;
#[cfg(test)]
pub(crate) mod mutants;
mod owner;
mod pace;
mod queue;
mod quiet;
mod removal;
pub(crate) mod shared;
pub(crate) mod slots;
mod sweep;
#[cfg(test)]
mod tests;
mod wait;
pub(crate) mod window;

pub use crate::info::{LockInfo, Snapshot};
pub use acquire::{acquire, AcquireOptions};
pub use breaking::{break_lock, BreakBy, BreakOptions, BreakOutcome};
pub use ctx::Ctx;
pub use directory::{aux_states, read_dir, sweep_dir, Action, AuxState, Place, SweepOptions};
pub use env::{xorshift, Env, Event, Woken};
pub use fence::next_fence;
pub use hold::{release, touch, Held, Toucher};
pub use owner::{owns, Owner, Who};
pub use shared::Readers;
pub use slots::{acquire_slot, find_slot, inspect_slots, recorded_slots, settle_slots, slot_lock};
pub use sweep::Leftover;
#[cfg(test)]
pub use sweep::ORPHAN_AGE;
pub use window::{last_start, start_in_window, LastStart, Window};
