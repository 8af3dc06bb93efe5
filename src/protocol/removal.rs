//! Conditional removal (I2, I3): a lock name is removed only if it still
//! holds the instance that was judged. It is renamed to a private name,
//! what moved is checked, and anything else is put back (`restore`),
//! never over another lock. The residual window is in the module above.

use super::ctx::Ctx;
use super::ctx::IoBudget;
use super::ctx::Phase;
use super::files::NAME_TRIES;
use super::{Event, Snapshot};
use crate::error::Error;
use crate::fs::Meta;
use crate::names::AuxKind;
use crate::sys;
use std::io;
use std::path::Path;
use std::time::Duration;

/// What must still be as judged for a conditional removal to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Same {
    /// The same inode with the same bytes: the holder's own instance.
    Instance,
    /// That, and not refreshed since: a judgement of age is void once the
    /// holder has touched its lock.
    Unrefreshed,
}

/// What a conditional removal found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The expected instance was removed.
    Removed,
    /// Nothing was at the lock path.
    Gone,
    /// Another instance was there; it was left in place (or put back).
    Changed,
    /// Another instance was moved and could not be put back.
    Displaced,
    /// We may not remove it (and did not change anything); says who may.
    Denied(String),
}

impl Ctx<'_> {
    /// Removes the lock name only if it still is `expected` (same inode and
    /// bytes, and same mtime when `check_mtime`): rename it to a private
    /// name, check what was moved, put it back if it was not the one (I2,
    /// I3). `Denied` when we may not move it (another user's lock in a
    /// sticky directory): nothing was changed.
    pub(super) fn remove_instance(
        &self,
        expected: &Snapshot,
        same: Same,
    ) -> Result<Removal, Error> {
        let mut private = self.my_aux(AuxKind::Removing);
        let same = |s: &Snapshot| {
            s.meta.same_file(&expected.meta)
                && s.bytes == expected.bytes
                && (same == Same::Instance || s.meta.mtime == expected.meta.mtime)
        };
        let mut budget = IoBudget::new(self);
        let mut retry = false;
        let mut names_tried = 0;
        loop {
            if retry {
                // A rename may have taken effect without our seeing it yet.
                // Never rename the lock name again unless it still holds
                // the expected instance: by now it may be the next holder's.
                if let Ok(moved) = self.snapshot(&private, Phase::Cleanup)? {
                    if same(&moved) {
                        self.unlink_ours(&private)?;
                        return Ok(Removal::Removed);
                    }
                    return self.restore(&private, moved);
                }
                let at_lock = self.snapshot(&self.lock.path, Phase::Cleanup)?;
                if !matches!(&at_lock, Ok(now) if same(now)) {
                    if let Some(r) = self.lost_sight(&private, &same)? {
                        return Ok(r);
                    }
                }
            }
            retry = true;
            let renamed = self.fs.rename(&self.lock.path, &private);
            if let Err(e) = &renamed {
                if sys::is_denied(e) {
                    // Not done: a retransmitted rename never reads EPERM.
                    // Either the fresh name is taken by another user's
                    // file (sticky directory: draw another), or the lock
                    // may not be moved by us.
                    names_tried += 1;
                    if self.fs.lstat(&private).is_ok() && names_tried < NAME_TRIES {
                        private = self.my_aux(AuxKind::Removing);
                        retry = false;
                        continue;
                    }
                    return Ok(Removal::Denied(self.why_denied(&expected.meta, None)));
                }
            }
            // I2, I3: judge by what is there, not by the reply.
            match self.snapshot(&private, Phase::Cleanup)? {
                Ok(moved) if same(&moved) => {
                    self.unlink_ours(&private)?;
                    return Ok(Removal::Removed);
                }
                Ok(moved) => return self.restore(&private, moved),
                Err(e) if sys::is_not_found(&e) => match renamed {
                    Err(e) if sys::is_transient(&e) || sys::is_not_found(&e) => {
                        budget.pause(self, "rename", &self.lock.path, e, Phase::Cleanup)?
                    }
                    Err(e) => return Err(self.dir_error("rename", &self.lock.path, e)),
                    Ok(()) => budget.pause(
                        self,
                        "rename",
                        &private,
                        io::Error::other("rename succeeded but its target is missing"),
                        Phase::Cleanup,
                    )?,
                },
                Err(e) => return Err(self.dir_error("read", &private, e)),
            }
        }
    }

    /// The lock name no longer holds our instance, after a rename we did
    /// not see take: perhaps it did and its target is just not visible
    /// yet, so our private name is looked at a little longer before the
    /// lock is called lost. `None`: the instance is back at the lock name,
    /// to be removed again: a remover that had it aside to check it (a
    /// breaker's, or a sweep's) put it back, and calling it gone would
    /// leave a lock nobody knows it holds (found by the simulator, seed
    /// 6000216 with readers' claims named by time).
    fn lost_sight(
        &self,
        private: &Path,
        same: &dyn Fn(&Snapshot) -> bool,
    ) -> Result<Option<Removal>, Error> {
        for _ in 0..20 {
            self.env.sleep(Duration::from_millis(50));
            if let Ok(moved) = self.snapshot(private, Phase::Cleanup)? {
                if same(&moved) {
                    self.unlink_ours(private)?;
                    return Ok(Some(Removal::Removed));
                }
                return self.restore(private, moved).map(Some);
            }
        }
        match self.snapshot(&self.lock.path, Phase::Cleanup)? {
            Ok(now) if same(&now) => Ok(None),
            Ok(_) => Ok(Some(Removal::Changed)),
            Err(e) if sys::is_not_found(&e) => Ok(Some(Removal::Gone)),
            Err(e) => Err(self.dir_error("read", &self.lock.path, e)),
        }
    }

    /// Says why we may not remove a lock owned by `lock.uid`, and who may;
    /// `dir` is the directory's attributes when already read.
    pub(super) fn why_denied(&self, lock: &Meta, dir_meta: Option<Meta>) -> String {
        let dir = self.lock.dir.display();
        let who = |uid: u32| match self.env.user_name(uid) {
            name if name == uid.to_string() => format!("uid {uid}"),
            name => format!("{name} (uid {uid})"),
        };
        match dir_meta.or_else(|| self.fs.lstat(&self.lock.dir).ok()) {
            Some(d) if d.is_sticky() => {
                let dir_owner = match d.uid {
                    0 => String::new(),
                    uid => format!(", the directory's owner {}", who(uid)),
                };
                format!(
                    "{dir} is a sticky directory: only the lock's owner {}{dir_owner} or root may remove it",
                    who(lock.uid)
                )
            }
            _ => format!(
                "this user may not rename or remove files in {dir} (the lock belongs to {})",
                who(lock.uid)
            ),
        }
    }

    /// Puts a lock we moved by mistake back under the lock name, never over
    /// another lock: by link(2), or where that is refused (protected
    /// hardlinks, another user's file) by a rename that does not replace.
    pub(super) fn restore(&self, private: &Path, moved: Snapshot) -> Result<Removal, Error> {
        let mut budget = IoBudget::new(self);
        loop {
            let mut linked = self.fs.hard_link(private, &self.lock.path);
            if matches!(&linked, Err(e) if sys::is_denied(e)) {
                linked = match self.fs.rename_noreplace(private, &self.lock.path) {
                    // Back, and the private name went with it.
                    Ok(()) => return Ok(Removal::Changed),
                    Err(e) if sys::is_exists(&e) => Err(e),
                    Err(_) => {
                        // No way to put it back without risking another
                        // lock: its holder will find it lost (the window).
                        self.env.event(Event::Displaced {
                            path: &self.lock.path,
                        });
                        self.unlink_ours(private)?;
                        return Ok(Removal::Displaced);
                    }
                };
            }
            if linked.is_ok() {
                // It is back. Whatever happens to it from now on (its owner
                // may release it at once) is its owner's business: never
                // link it again.
                self.unlink_ours(private)?;
                return Ok(Removal::Changed);
            }
            match self.lock_meta(&moved.meta, Phase::Cleanup)? {
                Ok(now) if now.same_file(&moved.meta) => {
                    // Our link took; its reply was lost.
                    self.unlink_ours(private)?;
                    return Ok(Removal::Changed);
                }
                Ok(_) => {
                    // Someone took the name while it was empty: the holder
                    // we moved has lost its lock and will be told at its
                    // next check. Keeping its file would only be litter.
                    self.env.event(Event::Displaced {
                        path: &self.lock.path,
                    });
                    self.unlink_ours(private)?;
                    return Ok(Removal::Displaced);
                }
                Err(e) if sys::is_not_found(&e) => {
                    // Our link failed, or it took and the owner has released
                    // the lock since. Only a holder that still has its claim
                    // (a second link to the inode) wants it back.
                    // A shared lock is wanted while its readers' directory
                    // is there: its readers hold it by their own links, and
                    // its opener's claim may be long gone.
                    let readers_in = super::epoch::shared_record(&moved)
                        .and_then(|r| super::epoch::epoch_dir(self.lock, &r.claim))
                        .is_some_and(|e| self.fs.lstat(&e).is_ok());
                    let wanted = match self.snapshot(private, Phase::Cleanup)? {
                        Ok(p) => p.meta.same_file(&moved.meta) && (p.meta.nlink >= 2 || readers_in),
                        Err(_) => false,
                    };
                    if !wanted {
                        self.unlink_ours(private)?;
                        return Ok(Removal::Changed);
                    }
                    let error = linked
                        .err()
                        .unwrap_or_else(|| io::Error::other("link failed"));
                    budget.pause(self, "link", &self.lock.path, error, Phase::Cleanup)?
                }
                Err(e) => return Err(self.dir_error("lstat", &self.lock.path, e)),
            }
        }
    }
}
