//! Shared (reader) locks: many readers at once, never with a writer, and a
//! waiting writer is not overtaken by readers that come after it.
//!
//! A shared lock is an *epoch*: a readers' directory `E` beside the lock
//! (`.<lock>.nfslock-epoch.<nonce>.<pid>.<host>`, named after the claim of
//! the reader that opened it), and the opener's claim linked to the lock
//! name, its record saying `mode=shared`. A reader is in while its own
//! claim is linked into `E` (`E/<its claim name>`); it is refreshed and
//! judged stale exactly as a writer's claim is, by its own inode.
//!
//! Why it is safe without trusting a listing or a negative lookup:
//! - A reader joins only through link(2) *into* `E`, which the server
//!   refuses once `E` is gone; `E` goes only by rmdir(2), which the server
//!   refuses while any reader is linked in. So a reader is in only while
//!   `E` exists, and the lock name keeps the opener's claim until `E` is
//!   gone: no writer's link can succeed meanwhile (I1 as before).
//! - `E` names are fresh and never made again, so "`E` is gone" cannot be
//!   a cached negative lookup of a name that will come back: a lock whose
//!   `E` is gone is free, and is removed as a stale lock is (I3).
//! - A writer that finds readers seals `E` with a subdirectory named after
//!   its claim (a positive mark: `E` shows more than two links), so readers
//!   that join after it leave again and wait (writer preference); it
//!   breaks stale readers one by one, and when only seals are left it
//!   removes them and `E`, then the lock, and takes it as usual. A reader
//!   that slips in while the seals are down makes rmdir fail: the writer
//!   seals again and waits for it.
//! - Seals are fairness only: a seal whose writer's claim is gone, dead, or
//!   unrefreshed for [`SEAL_STALE`] is removed by any reader.
//! - When the lock falls free, the contender that came first goes first
//!   (`order`): a reader that waited lets an older writer have it, and a
//!   writer that waited gives a lock it just took back to an older reader,
//!   so neither kind starves behind a stream of the other. Also fairness
//!   only, from a listing.

mod inspect;
mod leave;
mod order;
mod reader;
mod writer;

pub use inspect::Readers;
pub(crate) use inspect::{break_shared, find_reader};
use leave::{close_own_epoch, remove_ended_lock, step_out};
pub(crate) use leave::{release_reader, touch_reader};

pub(crate) use super::epoch::{
    claimant_dead_here, epoch_dir, is_readers_pin, shared_record, SEAL_STALE,
};
use super::epoch::{close_epoch_dir, Closing};

use super::acquire::{Attempts, Step};
use super::claim::Claim;
use super::ctx::{Ctx, Phase};
use super::removal::{Removal, Same};
use super::{BreakBy, BreakOptions, BreakOutcome, Event, LockInfo, Snapshot};
use crate::error::Error;
use crate::fs::Kind;
use crate::names::{AuxKind, LockPath};
use crate::record::{self, Content, Record};
use crate::sys;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest sleep of a writer waiting for readers, so its seal stays fresh.
const DRAIN_NAP: Duration = Duration::from_secs(3);

/// How long a lock whose epoch has ended is left to the one who ended it
/// before anyone else removes it (its closer may have died).
const ENDED_PATIENCE: Duration = Duration::from_secs(2);

/// Who closed an epoch that has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closer {
    Us,
    Other,
}

/// Where a reader is in: the readers' directory, its claim's link in it,
/// and the lock as read when it joined (the opener's claim).
#[derive(Clone, Debug)]
pub(crate) struct Joined {
    pub(crate) epoch: PathBuf,
    pub(crate) member: PathBuf,
    pub(crate) lock: Snapshot,
}

fn name_of(path: &Path) -> &OsStr {
    path.file_name().unwrap_or_default()
}
