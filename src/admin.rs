//! The admin's commands at directory scale: `list` (who holds what, in
//! whole lock directories, read-only) and `sweep` (break what is stale and
//! remove leftovers, by the rules of `break`). What they read and remove
//! is the protocol's (`protocol::directory`); here is what they print.

use crate::cli::{ListArgs, SweepArgs};
use crate::duration::human;
use crate::error::Error;
use crate::exit;
use crate::fs::{Kind, LockFs};
use crate::hang::real_fs;
use crate::info::LockInfo;
use crate::lock::lock_path;
use crate::protocol::{self, Action, AuxState, Ctx, LastStart, Place, SweepOptions};
use crate::record::Content;
use crate::report::last_start_json;
use crate::report::{holder_json, lock_json, state_of, Stdout};
use crate::stale::Liveness;
use crate::sys;
use crate::sysenv::SysEnv;
use crate::ui::{self, printable, Level};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One line of `list`: a lock (held or, with `--all`, free) and, with
/// `--all`, its auxiliary files.
struct Row {
    path: PathBuf,
    info: Option<LockInfo>,
    aux: Option<Vec<AuxState>>,
    last_start: Option<LastStart>,
    /// A shared lock's readers and waiting writers.
    readers: Option<protocol::Readers>,
}

/// The readers of `info`'s lock, if it is a shared one (one listing of its
/// readers' directory and one read per reader).
fn readers_of(
    place: Place,
    lock: &crate::names::LockPath,
    info: Option<&LockInfo>,
) -> Option<protocol::Readers> {
    let i = info?;
    let ctx = Ctx::new(place.fs, place.env, lock, place.io_timeout);
    ctx.readers(&i.snapshot, i.now)
}

/// Whether `path` names a directory (following a symbolic link given as
/// the argument itself, as `ls` does), a file, or nothing (66).
fn is_dir(fs: &dyn LockFs, path: &Path) -> Result<bool, Error> {
    match fs.lstat(path) {
        Ok(m) if m.kind == Kind::Dir => Ok(true),
        Ok(m) if m.kind == Kind::Symlink => {
            Ok(matches!(fs.lstat(&path.join(".")), Ok(d) if d.kind == Kind::Dir))
        }
        Ok(_) => Ok(false),
        Err(e) if sys::is_not_found(&e) || sys::is_not_dir(&e) => Err(Error::Missing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(Error::Io {
            op: "lstat",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

pub fn list(env: &SysEnv, io_timeout: Duration, a: ListArgs) -> Result<u8, Error> {
    let mut rows = Vec::new();
    for path in &a.paths {
        let fs = real_fs(path, io_timeout);
        let place = Place {
            fs: &fs,
            env,
            io_timeout,
        };
        if is_dir(&fs, path)? {
            let dir = protocol::read_dir(place, path, None)?;
            for entry in &dir.entries {
                let aux = a.all.then(|| protocol::aux_states(place, entry, dir.now));
                if entry.info.is_some() || entry.slot || a.all {
                    rows.push(Row {
                        path: entry.lock.path.clone(),
                        info: entry.info.clone(),
                        aux,
                        last_start: entry.last_start.clone(),
                        readers: readers_of(place, &entry.lock, entry.info.as_ref()),
                    });
                }
            }
        } else {
            let lock = lock_path(path)?;
            let ctx = Ctx::new(&fs, env, &lock, io_timeout);
            // Free by now (released since it was looked up): not listed.
            if let Some(info) = ctx.inspect(None)? {
                rows.push(Row {
                    path: lock.path.clone(),
                    readers: ctx.readers(&info.snapshot, info.now),
                    info: Some(info),
                    aux: None,
                    last_start: protocol::last_start(&ctx).ok().flatten(),
                });
            }
        }
    }
    rows.retain(|r| !a.stale_only || r.info.as_ref().is_some_and(|i| i.verdict.stale.is_some()));
    rows.sort_by(|x, y| x.path.cmp(&y.path));
    let mut out = Stdout::default();
    if a.json {
        let locks: Vec<Value> = rows.iter().map(row_json).collect();
        out.json(&json!({ "locks": locks }));
    } else if ui::level() > Level::Quiet {
        list_text(&mut out, &rows);
    }
    let _ = out.finish();
    Ok(exit::OK)
}

fn row_json(r: &Row) -> Value {
    let mut v = lock_json(&r.path, r.info.as_ref());
    if let Some(readers) = &r.readers {
        crate::report::shared_json(&mut v, readers);
    }
    if let Some(l) = &r.last_start {
        v["last_start"] = last_start_json(l);
    }
    if let Some(aux) = &r.aux {
        v["aux"] = aux.iter().map(aux_json).collect();
    }
    v
}

fn aux_json(s: &AuxState) -> Value {
    json!({
        "path": s.path.to_string_lossy(),
        "kind": s.aux.kind.describe(),
        "host": s.aux.host,
        "pid": s.aux.pid,
        "alive": s.liveness.as_option(),
        "detail": liveness_text(&s.liveness),
        "age_s": s.age.map(|d| d.as_secs_f64()),
    })
}

fn liveness_text(l: &Liveness) -> String {
    match l {
        Liveness::Alive => "alive".into(),
        Liveness::Dead(why) => format!("dead: {why}"),
        Liveness::Unknown(why) => format!("unknown: {why}"),
    }
}

/// The STATE column: held, stale, or what else is at the lock path.
fn state_word(info: Option<&LockInfo>) -> &'static str {
    match state_of(info) {
        ("held", Some(tag)) if tag != "held" => tag,
        (state, _) => state,
    }
}

fn alive_word(l: &Liveness) -> &'static str {
    match l.as_option() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// The human table: a header, one line per lock, aligned; auxiliary files
/// indented under their lock.
fn list_text(out: &mut Stdout, rows: &[Row]) {
    let mut table: Vec<[String; 8]> = vec![[
        "LOCK", "STATE", "HOST", "PID", "USER", "AGE", "LEASE", "ALIVE",
    ]
    .map(String::from)];
    for r in rows {
        table.push(lock_cells(r));
        let all = r.aux.is_some();
        for i in r.readers.iter().flat_map(|rd| &rd.holders).filter(|_| all) {
            let rec = i.record();
            table.push([
                "  reader".into(),
                state_word(Some(i)).into(),
                rec.map_or("-".into(), |r| r.host.clone()),
                rec.map_or("-".into(), |r| r.pid.to_string()),
                rec.map_or("-".into(), |r| r.user.clone()),
                i.verdict.age.map_or("-".into(), human),
                rec.and_then(|r| r.lease).map_or("none".into(), human),
                alive_word(&i.liveness).into(),
            ]);
        }
        for s in r.aux.iter().flatten() {
            let name = s.path.file_name().unwrap_or_default().to_string_lossy();
            table.push([
                format!("  {name}"),
                s.aux.kind.describe().replace(' ', "-"),
                s.aux.host.clone(),
                s.aux.pid.to_string(),
                "-".into(),
                s.age.map_or("-".into(), human),
                "-".into(),
                alive_word(&s.liveness).into(),
            ]);
        }
    }
    let cells: Vec<Vec<String>> = table
        .iter()
        .map(|row| row.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let mut width = [0usize; 8];
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        out.raw(line.trim_end());
    }
}

fn lock_cells(r: &Row) -> [String; 8] {
    let dash = || "-".to_string();
    let path = r.path.to_string_lossy().into_owned();
    let Some(i) = &r.info else {
        return [
            path,
            "free".into(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
        ];
    };
    let (host, pid, user, lease) = match &i.content {
        Some(Content::Ours(rec)) => (
            rec.host.clone(),
            rec.pid.to_string(),
            rec.user.clone(),
            rec.lease.map_or("none".into(), human),
        ),
        _ => (dash(), dash(), dash(), dash()),
    };
    let alive = match &i.content {
        Some(c) if c.is_lock() => alive_word(&i.liveness).to_string(),
        _ => dash(),
    };
    if let Some(rd) = &r.readers {
        let n = rd.holders.len();
        let state = if n == 0 {
            "stale".into()
        } else {
            format!("shared:{n}")
        };
        return [path, state, dash(), dash(), dash(), dash(), dash(), dash()];
    }
    [
        path,
        state_word(Some(i)).into(),
        host,
        pid,
        user,
        i.verdict.age.map_or(dash(), human),
        lease,
        alive,
    ]
}

pub fn sweep(env: &SysEnv, io_timeout: Duration, a: SweepArgs) -> Result<u8, Error> {
    let opts = SweepOptions {
        older_than: a.older_than,
        rebooted: a.rebooted,
        dry_run: a.dry_run,
    };
    let mut all = Vec::new();
    for dir in &a.dirs {
        let fs = real_fs(dir, io_timeout);
        if !is_dir(&fs, dir)? {
            return Err(Error::Usage(format!(
                "{}: not a directory; sweep takes lock directories (break takes a lock)",
                dir.display()
            )));
        }
        let place = Place {
            fs: &fs,
            env,
            io_timeout,
        };
        let actions = protocol::sweep_dir(place, dir, opts)?;
        if !a.json {
            for action in &actions {
                ui::say(&action_line(action));
            }
        }
        all.extend(actions);
    }
    if a.json {
        let mut out = Stdout::default();
        let actions: Vec<Value> = all.iter().map(action_json).collect();
        out.json(&json!({ "actions": actions }));
        let _ = out.finish();
    }
    Ok(exit::OK)
}

/// Who held a lock, in a few words.
fn held_by(info: &LockInfo) -> String {
    match &info.content {
        Some(Content::Ours(r)) => format!("host {} pid {}", r.host, r.pid),
        _ => "another tool".into(),
    }
}

fn action_line(a: &Action) -> String {
    match a {
        Action::Broken { lock, info, reason } => format!(
            "broke {} held by {}: {}",
            lock.display(),
            held_by(info),
            reason.describe()
        ),
        Action::WouldBreak { lock, info, reason } => format!(
            "would break {} held by {}: {}",
            lock.display(),
            held_by(info),
            reason.describe()
        ),
        Action::LostRace { lock, info } => format!(
            "left {} alone: it changed while being broken (was held by {})",
            lock.display(),
            held_by(info)
        ),
        Action::NotPermitted { lock, info, why } => format!(
            "cannot break {} held by {}: {why}",
            lock.display(),
            held_by(info)
        ),
        Action::Removed(l) => format!("removed leftover {}: {}", l.path.display(), l.why),
        Action::WouldRemove(l) => {
            format!("would remove leftover {}: {}", l.path.display(), l.why)
        }
    }
}

fn action_json(a: &Action) -> Value {
    let lock = |tag: &str, lock: &Path, info: &LockInfo, reason: String| {
        json!({
            "path": lock.to_string_lossy(),
            "action": tag,
            "reason": reason,
            "holder": holder_json(info),
        })
    };
    let left = |tag: &str, l: &protocol::Leftover| {
        json!({
            "path": l.path.to_string_lossy(),
            "action": tag,
            "reason": l.why,
            "holder": Value::Null,
        })
    };
    match a {
        Action::Broken {
            lock: p,
            info,
            reason,
        } => lock("broken", p, info, reason.describe()),
        Action::WouldBreak {
            lock: p,
            info,
            reason,
        } => lock("would-break", p, info, reason.describe()),
        Action::LostRace { lock: p, info } => {
            lock("lost-race", p, info, "it changed while being broken".into())
        }
        Action::NotPermitted { lock: p, info, why } => lock("not-permitted", p, info, why.clone()),
        Action::Removed(l) => left("removed", l),
        Action::WouldRemove(l) => left("would-remove", l),
    }
}
