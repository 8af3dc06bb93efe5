//! The fencing counter kept beside the lock: a number that strictly
//! increases from one holder to the next, for resources that can reject a
//! stale holder's writes.

use super::ctx::Ctx;
use super::ctx::Phase;
use crate::error::Error;
use crate::fs::Durability;
use crate::names::AuxKind;

/// Bumps the fencing counter kept beside the lock (`.<lock>.nfslock-fence`)
/// and returns the new value. Call only while holding the lock: mutual
/// exclusion is what makes the values strictly increase. Costs a read, a
/// create and a rename.
pub fn next_fence(ctx: &Ctx, durable: Durability) -> Result<u64, Error> {
    let path = ctx.beside("fence");
    let bad = |why: &str| Error::BadData {
        path: path.clone(),
        why: why.to_string(),
    };
    let current: u64 = ctx
        .read_beside("fence", "the fencing counter", |_, b| {
            std::str::from_utf8(b).ok()?.trim().parse().ok()
        })?
        .unwrap_or(0);
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
