//! The fencing counter kept beside the lock: a number that strictly
//! increases from one holder to the next, for resources that can reject a
//! stale holder's writes.

use super::ctx::Ctx;
use super::ctx::Phase;
use super::Snapshot;
use crate::error::Error;
use crate::fs::Durability;
use crate::names::AuxKind;
use crate::sys;

/// Bumps the fencing counter kept beside the lock (`.<lock>.nfslock-fence`)
/// and returns the new value. Call only while holding the lock: mutual
/// exclusion is what makes the values strictly increase. Costs a read, a
/// create and a rename.
pub fn next_fence(ctx: &Ctx, durable: Durability) -> Result<u64, Error> {
    use std::os::unix::ffi::OsStrExt;
    let mut name = ctx.lock.aux_prefix();
    name.extend_from_slice(b"fence");
    let path = ctx.lock.in_dir(std::ffi::OsStr::from_bytes(&name));
    let bad = |why: &str| Error::BadData {
        path: path.clone(),
        why: why.to_string(),
    };
    let current: u64 = match ctx.snapshot(&path, Phase::Work)? {
        Ok(Snapshot { bytes: Some(b), .. }) => std::str::from_utf8(&b)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| bad("the fencing counter is not a number; it was left alone"))?,
        Ok(_) => return Err(bad("the fencing counter is not a readable file")),
        Err(e) if sys::is_not_found(&e) => 0,
        Err(e) => return Err(ctx.dir_error("read", &path, e)),
    };
    // Wrapping to 0 would hand out a number every resource has seen.
    let next = current
        .checked_add(1)
        .ok_or_else(|| bad("the fencing counter is at its maximum; no larger value exists"))?;
    let text = format!("{next}\n");
    let tmp = ctx
        .create_aux(
            AuxKind::Probe,
            &|_, _| text.clone().into_bytes(),
            durable,
            Phase::Cleanup,
        )?
        .path;
    ctx.put_in_place(&tmp, &path, text.as_bytes())?;
    Ok(next)
}
