//! Our own files beside the lock (claims, pins, private names, probes):
//! fresh names nobody can predict, exclusive creation that never adopts a
//! name someone planted (I10), and removal that treats "already gone" as
//! done.

use super::ctx::Phase;
use super::ctx::{Ctx, IoBudget};
use super::{Env, Snapshot};
use crate::error::Error;
use crate::fs::Durability;
use crate::fs::{Kind, Meta};
use crate::names::AuxKind;
use crate::sys;
use std::io;
use std::path::{Path, PathBuf};

pub(super) fn hex_token(env: &dyn Env) -> String {
    format!("{:016x}", env.token())
}

/// How many taken names [`Ctx::create_aux`] tries before it gives up.
pub(super) const NAME_TRIES: usize = 8;

/// A file [`Ctx::create_aux`] made.
pub(super) struct Created {
    pub(super) path: PathBuf,
    pub(super) nonce: String,
    pub(super) data: Vec<u8>,
    pub(super) meta: Meta,
}

impl Ctx<'_> {
    /// A fresh name of `kind` for this process (one nobody can predict).
    pub(super) fn my_aux(&self, kind: AuxKind) -> PathBuf {
        let host = &self.env.identity().host;
        let name = self
            .lock
            .aux_name(kind, &hex_token(self.env), self.env.pid(), host);
        self.lock.in_dir(&name)
    }

    /// Creates a file of ours of `kind` beside the lock, under a fresh name
    /// whose nonce `content` may embed. A name that is taken is never used:
    /// it is our own create whose reply was lost (then it is removed) or a
    /// file someone else put there (then it is left alone), and another
    /// name is drawn.
    pub(super) fn create_aux(
        &self,
        kind: AuxKind,
        content: &dyn Fn(&str, &std::ffi::OsStr) -> Vec<u8>,
        durable: Durability,
        phase: Phase,
    ) -> Result<Created, Error> {
        self.create_aux_with(kind, &|| hex_token(self.env), content, durable, phase)
    }

    /// [`Ctx::create_aux`] with nonces drawn by `nonce` (16 hex digits).
    pub(super) fn create_aux_with(
        &self,
        kind: AuxKind,
        nonce: &dyn Fn() -> String,
        content: &dyn Fn(&str, &std::ffi::OsStr) -> Vec<u8>,
        durable: Durability,
        phase: Phase,
    ) -> Result<Created, Error> {
        let host = self.env.identity().host.clone();
        for _ in 0..NAME_TRIES {
            let nonce = nonce();
            let name = self.lock.aux_name(kind, &nonce, self.env.pid(), &host);
            let path = self.lock.in_dir(&name);
            let data = content(&nonce, &name);
            let mut budget = IoBudget::new(self);
            loop {
                match self.fs.create_exclusive(&path, &data, durable) {
                    Ok(meta) => {
                        return Ok(Created {
                            path,
                            nonce,
                            data,
                            meta,
                        })
                    }
                    // I10: a name that is taken is never used as ours.
                    // If an earlier try of this very create was done unseen,
                    // the file is ours: removing it is clean-up, which the
                    // deadline must not cut short (it would be left).
                    Err(e) if sys::is_exists(&e) => {
                        self.remove_if_ours(&path, data.len(), Phase::Cleanup)?;
                        break;
                    }
                    Err(e) if sys::is_transient(&e) => {
                        if let Err(given_up) = budget.pause(self, "create", &path, e, phase) {
                            // The create may have been done unseen (EIO
                            // after the server did it): not ours to leave.
                            let _ = self.remove_if_ours(&path, data.len(), Phase::Cleanup);
                            return Err(given_up);
                        }
                    }
                    // ENOENT for a new name in a directory that is there:
                    // the client's view lags (seen on the NFS lab); retry.
                    Err(e) if sys::is_not_found(&e) && self.dir_exists() => {
                        budget.pause(self, "create", &path, e, phase)?
                    }
                    Err(e) => return Err(self.dir_error("create", &path, e)),
                }
            }
        }
        Err(Error::Io {
            op: "create",
            path: self.lock.path.clone(),
            source: io::Error::other("every fresh name tried beside the lock was taken"),
        })
    }

    /// After EEXIST on a create of a fresh random name: removes what is
    /// there if it can only be our own create (a plain file of our uid, one
    /// link, empty or the size we wrote: a create whose reply was lost
    /// never got to write); anything else stays where it is.
    pub(super) fn remove_if_ours(
        &self,
        path: &Path,
        len: usize,
        phase: Phase,
    ) -> Result<(), Error> {
        let uid = self.env.identity().uid;
        if let Ok(m) = self.retrying("lstat", path, phase, || self.fs.lstat(path))? {
            let size_ok = m.size == 0 || m.size == len as u64;
            if m.kind == Kind::File && m.uid == uid && m.nlink == 1 && size_ok {
                self.unlink_ours(path)?;
            }
        }
        Ok(())
    }
}

impl Ctx<'_> {
    /// Unlinks a file of ours, treating "already gone" as done (a lost reply
    /// to an unlink that worked looks exactly like that).
    pub(super) fn unlink_ours(&self, path: &Path) -> Result<(), Error> {
        let mut budget = IoBudget::new(self);
        loop {
            match self.fs.unlink(path) {
                Ok(()) => return Ok(()),
                Err(e) if sys::is_not_found(&e) => return Ok(()),
                Err(e) if sys::is_transient(&e) => {
                    budget.pause(self, "unlink", path, e, Phase::Cleanup)?
                }
                Err(e) => {
                    return Err(Error::Io {
                        op: "unlink",
                        path: path.to_path_buf(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Renames our file `tmp`, holding `text`, over `path`, judging by what
    /// is there (a lost reply to a rename that worked looks like ENOENT).
    /// `text` must be unique to this call (carry `tmp`'s nonce): an old
    /// file with the same text would pass for ours.
    pub(super) fn put_in_place(&self, tmp: &Path, path: &Path, text: &[u8]) -> Result<(), Error> {
        let mut budget = IoBudget::new(self);
        loop {
            let renamed = self.fs.rename(tmp, path);
            // Our unique text there: it is our file, moved (no name is left
            // to remove).
            if let Ok(Ok(Snapshot { bytes: Some(b), .. })) = self.snapshot(path, Phase::Cleanup) {
                if b == text {
                    return Ok(());
                }
            }
            match renamed {
                Err(e) if sys::is_transient(&e) || sys::is_not_found(&e) => {
                    budget.pause(self, "rename", tmp, e, Phase::Cleanup)?
                }
                Err(e) => {
                    let _ = self.unlink_ours(tmp);
                    return Err(self.dir_error("rename", tmp, e));
                }
                Ok(()) => budget.pause(
                    self,
                    "rename",
                    tmp,
                    io::Error::other("the file was not replaced"),
                    Phase::Cleanup,
                )?,
            }
        }
    }
}

impl Ctx<'_> {
    /// `.<lock>.nfslock-<suffix>`: the files that stay beside a lock once
    /// used (the fencing counter, the start stamp, the slot count).
    pub(super) fn beside(&self, suffix: &str) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let mut name = self.lock.aux_prefix();
        name.extend_from_slice(suffix.as_bytes());
        self.lock.in_dir(std::ffi::OsStr::from_bytes(&name))
    }

    /// Reads the file `suffix` beside the lock and takes it apart with
    /// `parse`; `None` when there is none. 65 for a file there that
    /// `parse` refuses, named `what` (it is left alone).
    pub(super) fn read_beside<T>(
        &self,
        suffix: &str,
        what: &str,
        parse: impl Fn(&Meta, &[u8]) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let path = self.beside(suffix);
        let bad = |why: String| Error::BadData {
            path: path.clone(),
            why,
        };
        match self.snapshot(&path, Phase::Work)? {
            Ok(Snapshot {
                meta,
                bytes: Some(b),
            }) => match parse(&meta, &b) {
                Some(t) => Ok(Some(t)),
                None => Err(bad(format!(
                    "{what} beside the lock is damaged (not what nfslock writes); it was left alone"
                ))),
            },
            Ok(_) => Err(bad(format!(
                "{what} beside the lock is not a readable file"
            ))),
            Err(e) if sys::is_not_found(&e) => Ok(None),
            Err(e) => Err(self.dir_error("read", &path, e)),
        }
    }
}
