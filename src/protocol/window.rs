//! The start stamp beside a lock, for `run --min-interval`: when the job
//! last started and on which host, as a file whose mtime is file-system
//! time (I6: every host judges the window alike, whatever its clock). Only
//! a holder of the lock reads and replaces it, so one holder at a time
//! decides whether the job runs; the stamp is in place before the command
//! starts, so the next holder, on any host, sees it.

use super::ctx::{Ctx, Phase};
use crate::error::Error;
use crate::fs::{Durability, FsTime};
use crate::names::AuxKind;
use std::time::Duration;

/// First line of a stamp.
const MAGIC: &str = "nfslock-stamp 1";

/// When and where the job last started.
#[derive(Clone, Debug, PartialEq)]
pub struct LastStart {
    pub at: FsTime,
    /// Escaped host name of the host that started it.
    pub host: String,
}

/// Whether the job may start now.
#[derive(Clone, Debug, PartialEq)]
pub enum Window {
    /// It may, and the stamp now says it did (`last`: the one before).
    Open { last: Option<LastStart> },
    /// It started less than the interval ago: not again before `opens_in`.
    Closed {
        last: LastStart,
        age: Duration,
        opens_in: Duration,
    },
}

fn parse(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    // Host names are kept escaped (see `names::escape_bytes`): anything
    // else is not a stamp of ours.
    let host = lines.find_map(|l| l.strip_prefix("host="))?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || b".-_%".contains(&b);
    (!host.is_empty() && host.bytes().all(plain)).then(|| host.to_string())
}

/// The stamp, if there is one. 65 for a file there that is not a stamp
/// (it is left alone).
pub fn last_start(ctx: &Ctx) -> Result<Option<LastStart>, Error> {
    ctx.read_beside("stamp", "the start stamp", |meta, b| {
        Some(LastStart {
            at: meta.mtime,
            host: parse(b)?,
        })
    })
}

/// For a holder of the lock: the job may start unless it last started
/// less than `min` ago (in file-system time); if it may, stamps the start
/// first. Costs a read, a create and a rename (a create and an unlink when
/// the window is closed): the new stamp's own mtime is "now".
pub fn start_in_window(ctx: &Ctx, min: Duration, durable: Durability) -> Result<Window, Error> {
    let last = last_start(ctx)?;
    let host = &ctx.env.identity().host;
    let text_for = |nonce: &str| format!("{MAGIC}\nhost={host}\nnonce={nonce}\n").into_bytes();
    let made = ctx.create_aux(
        AuxKind::Probe,
        &|nonce, _| text_for(nonce),
        durable,
        Phase::Work,
    )?;
    let now = made.meta.mtime;
    if let Some(last) = last.clone() {
        // A stamp in the future (the server's clock stepped back) counts
        // as just now: the window opens once it has passed.
        let age =
            Duration::try_from_secs_f64(now.secs_since(last.at).max(0.0)).unwrap_or(Duration::MAX);
        if age < min {
            ctx.unlink_ours(&made.path)?;
            return Ok(Window::Closed {
                last,
                age,
                opens_in: min - age,
            });
        }
    }
    ctx.put_in_place(&made.path, &ctx.beside("stamp"), &made.data)?;
    Ok(Window::Open { last })
}
