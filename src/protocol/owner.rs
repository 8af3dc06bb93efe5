//! Who a lock is for: the owner process ([`Owner`]), how later commands
//! recognise their own lock ([`Who`]: by owner or by token), and the one
//! test of ownership, [`owns`] (I2).

use super::Env;
use crate::record::Record;
use crate::sys::{Identity, ProcState};

/// The owner a lock is taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: Option<u64>,
}

impl Owner {
    /// The process `pid` as it is now; `None` if it does not exist.
    pub fn of_pid(env: &dyn Env, pid: u32) -> Option<Owner> {
        match env.process(pid) {
            ProcState::Running { start } => Some(Owner {
                pid,
                start: Some(start),
            }),
            ProcState::Gone => None,
            ProcState::Unknown => Some(Owner { pid, start: None }),
        }
    }
}

/// How `release` and `touch` recognise their own lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// The owner process on this host (boot and pid namespace included).
    Owner(Owner),
    /// The token printed by `acquire --print-token`.
    Token(String),
}

/// Does `rec` belong to `who`?
pub fn owns(rec: &Record, who: &Who, me: &Identity) -> bool {
    match who {
        Who::Token(t) => &rec.token == t,
        Who::Owner(o) => {
            rec.host == me.host
                && rec.boot_id == me.boot_id
                && rec.pidns == me.pidns
                && rec.pid == o.pid
                && rec.pid_start == o.start
        }
    }
}
