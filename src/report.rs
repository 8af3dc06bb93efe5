//! How locks are shown to people and scripts: the `status` text, the JSON
//! objects of `status --json` and `break --json`, and the stdout they go
//! to. Text for people never carries a raw control character (a record is
//! anyone's to write, see [`crate::ui::printable`]); JSON is JSON.

use crate::duration::human;
use crate::fs::Kind;
use crate::info::LockInfo;
use crate::record::Content;
use crate::stale::Liveness;
use crate::ui::printable;
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::Path;

/// Stdout for results. The first write error (a closed pipe, a full disk)
/// ends the output and is kept for the caller to judge; it never ends the
/// command: `status` keeps its exit code.
#[derive(Default)]
pub struct Stdout {
    failed: Option<io::Error>,
}

impl Stdout {
    /// One line of text for people, escaped.
    pub fn line(&mut self, text: &str) {
        self.raw(&printable(text));
    }

    /// One JSON document on one line.
    pub fn json(&mut self, v: &Value) {
        self.raw(&v.to_string());
    }

    /// One line exactly as given (a token: hex digits only).
    pub fn raw(&mut self, text: &str) {
        if self.failed.is_some() {
            return;
        }
        let mut out = io::stdout().lock();
        if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
            self.failed = Some(e);
        }
    }

    /// The write error, if one happened.
    pub fn finish(self) -> Result<(), io::Error> {
        self.failed.map_or(Ok(()), Err)
    }
}

/// The `holder` object of the JSON output.
pub fn holder_json(info: &LockInfo) -> Value {
    match &info.content {
        Some(Content::Ours(r)) => json!({
            "host": r.host,
            "pid": r.pid,
            "user": r.user,
            "uid": r.uid,
            "token": r.token,
            "acquired_at": r.acquired_at,
            "boot_id": r.boot_id,
            "machine": r.machine,
            "pidns": r.pidns,
            "pid_start": r.pid_start,
            "claim": r.claim.to_string_lossy(),
            "cmd": r.cmd,
        }),
        Some(Content::Foreign { what }) => json!({
            "host": null, "pid": null, "user": null, "token": null,
            "acquired_at": null, "foreign": what,
        }),
        Some(Content::NotALock { .. }) | None => Value::Null,
    }
}

/// State and reason tag of a lock, as `status` reports them.
pub fn state_of(info: Option<&LockInfo>) -> (&'static str, Option<&'static str>) {
    let Some(i) = info else {
        return ("free", None);
    };
    match (&i.verdict.stale, &i.content) {
        (Some(r), _) => ("stale", Some(r.tag())),
        (None, None) if i.snapshot.meta.kind == Kind::File => ("held", Some("unreadable")),
        (None, None) => ("held", Some("not-a-file")),
        (None, Some(Content::NotALock { .. })) => ("held", Some("not-a-lock")),
        (None, Some(Content::Foreign { .. })) => ("held", Some("foreign")),
        (None, Some(Content::Ours(_))) => ("held", Some("held")),
    }
}

/// `last_start` of `status --json` and `list --json`, where `run
/// --min-interval` keeps a stamp.
pub fn last_start_json(l: &crate::protocol::LastStart) -> Value {
    json!({ "at": l.at.as_secs_f64(), "host": l.host })
}

/// The JSON object `status --json` prints for one lock.
pub fn lock_json(path: &Path, info: Option<&LockInfo>) -> Value {
    let (state, reason) = state_of(info);
    let Some(i) = info else {
        return json!({
            "path": path.to_string_lossy(), "state": state, "reason": null, "detail": null,
            "holder": null, "age_s": null, "lease_s": null, "alive": null, "suspicious": null,
            "mode": null,
        });
    };
    let lease = i.record().and_then(|r| r.lease).map(|d| d.as_secs_f64());
    let suspicious = i
        .verdict
        .future
        .map(|d| format!("mtime {} in the future", human(d)));
    json!({
        "path": path.to_string_lossy(),
        "state": state,
        "reason": reason,
        "detail": i.describe(),
        "holder": holder_json(i),
        "age_s": i.verdict.age.map(|d| d.as_secs_f64()),
        "lease_s": lease,
        "alive": i.liveness.as_option(),
        "suspicious": suspicious,
        "mtime": i.snapshot.meta.mtime.as_secs_f64(),
        "fs_now": i.now.map(|t| t.as_secs_f64()),
        "inode": i.snapshot.meta.ino,
        "nlink": i.snapshot.meta.nlink,
        "mode": match i.record() {
            Some(r) if r.shared => "shared",
            _ => "exclusive",
        },
    })
}

/// A reader or waiting writer in `status --json` of a shared lock.
fn party_json(i: &LockInfo) -> Value {
    let mut v = holder_json(i);
    if let Value::Object(m) = &mut v {
        m.insert(
            "age_s".into(),
            json!(i.verdict.age.map(|d| d.as_secs_f64())),
        );
        m.insert("alive".into(), json!(i.liveness.as_option()));
        m.insert(
            "stale".into(),
            json!(i.verdict.stale.as_ref().map(|r| r.tag())),
        );
    }
    v
}

/// `status --json` of a shared lock: its readers in `holders`, `holder`
/// null, the first waiting writer in `waiting_writer`.
pub fn shared_json(v: &mut Value, r: &crate::protocol::Readers) {
    v["mode"] = json!("shared");
    v["holder"] = Value::Null;
    v["holders"] = r.holders.iter().map(party_json).collect();
    v["waiting_writer"] = r.waiting_writers.first().map_or(Value::Null, party_json);
    if r.holders.is_empty() {
        v["state"] = json!("stale");
        v["reason"] = json!("no-readers");
    } else {
        v["state"] = json!("held");
        v["reason"] = json!("held");
    }
    v["detail"] = json!(shared_summary(r));
}

fn shared_summary(r: &crate::protocol::Readers) -> String {
    match (r.holders.len(), r.ended) {
        (0, true) => "shared, its readers' directory is gone: free once removed".into(),
        (0, false) => "shared, with no reader left".into(),
        (1, _) => "held shared by 1 reader".into(),
        (n, _) => format!("held shared by {n} readers"),
    }
}

/// The `status` text of a shared lock.
pub fn shared_text(out: &mut Stdout, path: &Path, r: &crate::protocol::Readers) {
    let state = if r.holders.is_empty() {
        "stale"
    } else {
        "held"
    };
    out.line(&format!(
        "{}: {state} ({})",
        path.display(),
        shared_summary(r)
    ));
    let who = |i: &LockInfo| match i.record() {
        Some(rec) => format!(
            "host {}, pid {}, user {} (uid {})",
            rec.host, rec.pid, rec.user, rec.uid
        ),
        None => i.describe(),
    };
    for i in &r.holders {
        let age = i.verdict.age.map_or("unknown".into(), human);
        let stale = i
            .verdict
            .stale
            .as_ref()
            .map_or(String::new(), |s| format!("; stale: {}", s.describe()));
        out.line(&format!("  reader: {}, for {age}{stale}", who(i)));
    }
    for i in &r.waiting_writers {
        out.line(&format!("  waiting writer: {}", who(i)));
    }
}

/// The `status` text: a first line with the state, then what is known.
pub fn status_text(out: &mut Stdout, path: &Path, info: Option<&LockInfo>) {
    let (state, _) = state_of(info);
    out.line(&format!("{}: {state}", path.display()));
    let Some(i) = info else { return };
    match &i.content {
        None | Some(Content::NotALock { .. }) => out.line(&format!("  what: {}", i.describe())),
        Some(Content::Foreign { what }) => {
            out.line(&format!("  holder: unknown (another tool: {what})"))
        }
        Some(Content::Ours(r)) => {
            out.line(&format!(
                "  holder: host {}, pid {}, user {} (uid {})",
                r.host, r.pid, r.user, r.uid
            ));
            if let Some(cmd) = &r.cmd {
                out.line(&format!("  command: {cmd}"));
            }
            out.line(&format!("  token: {}", r.token));
            out.line(&format!(
                "  acquired at: {} (holder's clock)",
                r.acquired_at
            ));
            let lease = r.lease.map_or_else(|| "none".to_string(), human);
            out.line(&format!("  lease: {lease}"));
        }
    }
    if i.content.as_ref().is_some_and(Content::is_lock) {
        let age = match (i.verdict.age, i.now) {
            (Some(a), _) => format!("{} (file-system time)", human(a)),
            (None, None) => "unknown (cannot create a probe file here)".into(),
            (None, Some(_)) => "unknown".into(),
        };
        out.line(&format!("  age: {age}"));
        let alive = match &i.liveness {
            Liveness::Alive => "yes".to_string(),
            Liveness::Dead(why) => format!("no ({why})"),
            Liveness::Unknown(why) => format!("unknown ({why})"),
        };
        out.line(&format!("  alive: {alive}"));
    }
    if let Some(ahead) = i.verdict.future {
        out.line(&format!(
            "  suspicious: mtime is {} in the future",
            human(ahead)
        ));
    }
    if let Some(r) = &i.verdict.stale {
        out.line(&format!("  stale: {}", r.describe()));
    }
}
