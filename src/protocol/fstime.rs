//! File-system time (I6): "now" read from a probe file's mtime, and the
//! check that a touch stamps the file server's clock, not the client's.

use super::ctx::Ctx;
use super::ctx::Phase;
use crate::error::Error;
use crate::fs::Durability;
use crate::fs::{FsTime, Meta};
use crate::names::AuxKind;
use std::time::Duration;

impl Ctx<'_> {
    /// File-system "now": the mtime of a probe file we create and remove.
    /// `None` if we may not create files here.
    pub fn fs_now(&self) -> Result<Option<FsTime>, Error> {
        match self.create_aux(
            AuxKind::Probe,
            &|_, _| Vec::new(),
            Durability::NoSync,
            Phase::Work,
        ) {
            Ok(probe) => {
                self.unlink_ours(&probe.path)?;
                Ok(Some(probe.meta.mtime))
            }
            Err(Error::CannotCreate { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How far apart the mtime a touch set and the ctime of the same SETATTR
/// may be when the file server stamped both: one reading of its clock.
pub(super) const TOUCH_SLOP: Duration = Duration::from_millis(1);

/// Whether a file just touched carries the file server's time: mtime and
/// ctime are the same reading. A client that sends its own clock instead
/// (libfuse 2 turns UTIME_NOW into a client timestamp in whole seconds)
/// gives an mtime apart from the ctime the server stamped.
pub(super) fn server_stamped(m: &Meta) -> bool {
    (m.mtime.0 - m.ctime.0).unsigned_abs() <= TOUCH_SLOP.as_nanos()
}

impl Ctx<'_> {
    /// I6 needs every touch to stamp file-system time. `seen` is a file we
    /// just touched; if its times disagree (another change, a breaker's pin,
    /// can move the ctime too), a probe file that nobody else touches
    /// decides. 69 when the filesystem writes the client's clock.
    pub(super) fn verify_server_touch(&self, seen: &Meta) -> Result<(), Error> {
        if server_stamped(seen) {
            return Ok(());
        }
        let probe = self.create_aux(
            AuxKind::Probe,
            &|_, _| Vec::new(),
            Durability::NoSync,
            Phase::Work,
        )?;
        let path = probe.path;
        let touched = self.retrying("touch", &path, Phase::Work, || self.fs.touch_now(&path))?;
        let after = self.retrying("lstat", &path, Phase::Work, || self.fs.lstat(&path))?;
        self.unlink_ours(&path)?;
        match (touched, after) {
            (Ok(()), Ok(m)) if !server_stamped(&m) => Err(Error::Unsupported {
                path: self.lock.path.clone(),
                why: format!(
                    "a touch (utimensat UTIME_NOW) stores the client's clock, not the file server's: \
                     mtime {:.3} but the same change's ctime {:.3}; ages cannot be told in \
                     file-system time (a FUSE client built on libfuse 2?)",
                    m.mtime.as_secs_f64(),
                    m.ctime.as_secs_f64()
                ),
            }),
            _ => Ok(()),
        }
    }
}
