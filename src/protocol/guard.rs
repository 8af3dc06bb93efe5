//! The RAII guard: a held lock that releases itself when dropped.

use super::ctx::Ctx;
use super::{acquire, AcquireOptions, Event, Held};
use crate::error::Error;
use crate::fs::FsTime;

/// A held lock that releases itself when dropped: the library's way to hold
/// a lock for the length of a scope.
pub struct Guard<'a> {
    pub(super) ctx: Ctx<'a>,
    pub(super) held: Option<Held>,
}

impl<'a> Guard<'a> {
    /// Acquires the lock as [`acquire`] does.
    pub fn acquire(ctx: Ctx<'a>, opts: &AcquireOptions) -> Result<Guard<'a>, Error> {
        let held = acquire(&ctx, opts)?;
        Ok(Guard {
            ctx,
            held: Some(held),
        })
    }

    pub fn held(&self) -> &Held {
        self.held.as_ref().expect("held until released")
    }

    /// Refreshes the mtime; an error means the lock was lost.
    pub fn touch(&self) -> Result<FsTime, Error> {
        self.held().touch(&self.ctx)
    }

    /// Releases now and says whether the lock was still ours.
    pub fn release(mut self) -> Result<(), Error> {
        let held = self.held.take().expect("held until released");
        held.release(&self.ctx)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            if let Err(error) = held.release(&self.ctx) {
                self.ctx.env.event(Event::ReleaseFailed { error: &error });
            }
        }
    }
}
