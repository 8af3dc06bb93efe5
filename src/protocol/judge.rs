//! Reading a lock and judging it: whose it is (a record believed only from
//! the uid that owns its file, I7), whether its owner lives, how old it is
//! in file-system time (I6), and whether it is stale (I8). What `status`
//! prints and what acquire and break act on.

use super::ctx::Ctx;
use super::ctx::Phase;
use super::{LockInfo, Snapshot};
use crate::error::Error;
use crate::fs::FsTime;
use crate::record::{self, Content};
use crate::stale::{self, Clocks, Liveness, Verdict};
use crate::sys;
use std::time::Duration;

impl Ctx<'_> {
    /// Builds what we know about a lock from a snapshot.
    pub fn judge(
        &self,
        snap: Snapshot,
        now: Option<FsTime>,
        watched: Duration,
        stale_after: Option<Duration>,
    ) -> LockInfo {
        #[cfg(test)]
        let now = super::mutants::client_clock(self.env, now);
        // I7 and the record's trust: believed only from the uid it names.
        let content = snap
            .bytes
            .as_deref()
            .map(|b| record::trusted(b, snap.meta.uid));
        let liveness = match &content {
            Some(Content::Ours(r)) => {
                stale::liveness(r, self.env.identity(), |pid| self.env.process(pid))
            }
            Some(Content::Foreign { .. }) => {
                Liveness::Unknown("not an nfslock record: judged by age only".into())
            }
            Some(Content::NotALock { .. }) | None => Liveness::Unknown("not a lock file".into()),
        };
        let clocks = Clocks {
            now,
            watched,
            stale_after,
        };
        let verdict = match &content {
            // A shared lock is held by its readers, not by the one who
            // opened it: its readers are judged one by one (`shared`).
            // (A reader's own claim, judged under its own path, names no
            // claim of that path and is judged as any claim.)
            Some(c @ Content::Ours(r)) if r.shared && self.lock.parse_aux(&r.claim).is_some() => {
                Verdict {
                    stale: None,
                    ..stale::judge(c, snap.meta.mtime, &liveness, clocks)
                }
            }
            Some(c) => stale::judge(c, snap.meta.mtime, &liveness, clocks),
            // Not a regular file: never stale, never broken by us.
            None => Verdict {
                age: None,
                future: None,
                stale: None,
            },
        };
        LockInfo {
            snapshot: snap,
            content,
            liveness,
            verdict,
            now,
        }
    }

    /// Reads and judges the lock; `None` when it is free.
    pub fn inspect(&self, stale_after: Option<Duration>) -> Result<Option<LockInfo>, Error> {
        let now = self.fs_now()?;
        match self.snapshot(&self.lock.path, Phase::Work)? {
            Ok(snap) => Ok(Some(self.judge(snap, now, Duration::ZERO, stale_after))),
            Err(e) if sys::is_not_found(&e) => self.need_dir().map(|()| None),
            Err(e) => Err(self.dir_error("read", &self.lock.path, e)),
        }
    }
}
