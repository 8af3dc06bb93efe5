//! The record: what a claim (and so the lock) says about its owner.
//!
//! Small `key=value` text. The first line is a marker that does not start
//! with a digit, so liblockfile-based tools read pid 0 and fall back to their
//! age rule instead of probing one of our pids on their own host. The parser
//! is total: it reads at most [`READ_LIMIT`] bytes and never panics. What
//! it does not recognise is either another tool's lock ([`Content::Foreign`],
//! judged by age only) or not a lock at all ([`Content::NotALock`]: someone's
//! data, which nfslock never removes, whatever the options). A record is
//! believed only from the user it names ([`trusted`]).

use crate::names::unescape;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::{Duration, SystemTime};

/// First line of every record.
pub const MAGIC: &str = "nfslock-record 1";
/// Bytes read from a lock; a longer file is foreign.
pub const READ_LIMIT: usize = 4096;
/// Longest command name kept in a record.
pub const CMD_MAX: usize = 256;
/// Longest single line another tool's lock may hold.
pub const FOREIGN_LINE_MAX: usize = 256;

/// An owner's record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Escaped hostname of the owner.
    pub host: String,
    pub boot_id: Option<String>,
    /// The owner's machine ([`crate::sys::machine_hash`]); `None` in
    /// records of machines without an id, and of nfslock before 0.2.
    pub machine: Option<String>,
    pub pidns: Option<u64>,
    /// The owner pid (the calling shell for `acquire`).
    pub pid: u32,
    /// Start time of the owner pid, in clock ticks since boot.
    pub pid_start: Option<u64>,
    pub uid: u32,
    pub user: String,
    /// Random, unique per acquisition; also in the claim's name.
    pub token: String,
    /// The acquirer's wall clock at acquisition, ISO 8601 UTC. Informational
    /// only: ages are always judged from mtimes in file-system time.
    pub acquired_at: String,
    pub lease: Option<Duration>,
    /// File name of the claim linked to the lock.
    pub claim: OsString,
    /// The protected command's name (not its arguments), for `run`.
    pub cmd: Option<String>,
    /// A reader's claim (`mode=shared`); absent from a writer's record,
    /// so exclusive records read as they did before 0.2.
    pub shared: bool,
}

/// What a lock file contains, as far as we can tell.
// Ours is most of what is ever read, one value per read of a lock: boxing
// it would add an allocation to every read to shrink the rare others.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Ours(Record),
    /// What other lock tools write (empty, a pid, one short line of
    /// text), a damaged record of ours, or a record we do not believe.
    /// `what` describes it for people.
    Foreign {
        what: String,
    },
    /// Anything else (binary, several lines, large): someone's data at the
    /// lock path. Never judged stale, never removed, not even by `--force`.
    NotALock {
        what: String,
    },
}

impl Content {
    /// Whether nfslock may ever remove a file with this content.
    pub fn is_lock(&self) -> bool {
        !matches!(self, Content::NotALock { .. })
    }
}

/// Escapes a value so it stays on one printable line: `%`, control bytes,
/// and bytes outside ASCII become `%XX`.
fn escape_value(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name a record keeps for a command: the last path component of its
/// program, never its arguments (a record is world-readable, and a cron
/// line may carry a password), cleaned by [`sanitise_cmd`].
pub fn command_name(program: &std::ffi::OsStr) -> String {
    let name = std::path::Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy();
    sanitise_cmd(&name)
}

/// Makes a command name safe to store and show: control characters become
/// spaces and it is cut at [`CMD_MAX`] bytes on a character boundary.
pub fn sanitise_cmd(cmd: &str) -> String {
    let clean: String = cmd
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() <= CMD_MAX {
        return clean;
    }
    let mut end = CMD_MAX;
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &clean[..end])
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512);
        s.push_str(MAGIC);
        s.push('\n');
        let mut kv = |k: &str, v: &str| {
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push('\n');
        };
        kv("host", &escape_value(self.host.as_bytes()));
        kv("boot_id", self.boot_id.as_deref().unwrap_or("unknown"));
        if let Some(m) = &self.machine {
            kv("machine", m);
        }
        kv("pidns", &opt_num(self.pidns));
        kv("pid", &self.pid.to_string());
        kv("pid_start", &opt_num(self.pid_start));
        kv("uid", &self.uid.to_string());
        kv("user", &escape_value(self.user.as_bytes()));
        kv("token", &self.token);
        kv("acquired_at", &self.acquired_at);
        let lease = match self.lease {
            Some(d) => format!("{:.3}", d.as_secs_f64()),
            None => "none".into(),
        };
        kv("lease", &lease);
        kv("claim", &escape_value(self.claim.as_bytes()));
        if let Some(cmd) = &self.cmd {
            kv("cmd", &escape_value(cmd.as_bytes()));
        }
        if self.shared {
            kv("mode", "shared");
        }
        s.into_bytes()
    }
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".into(), |v| v.to_string())
}

/// Reads whatever a lock file holds. Never fails.
pub fn parse(bytes: &[u8]) -> Content {
    match parse_ours(bytes) {
        Some(r) => Content::Ours(r),
        None => classify_other(bytes),
    }
}

/// [`parse`], believing a record only from the user it names: a record in
/// a file of another owner is another tool's lock as far as we can tell
/// (anyone may write a record that names root, or a victim's live shell).
/// A file owned by the anonymous id (root squash, unmapped NFSv4 owners)
/// tells nothing about its writer, so its record is believed as it is.
pub fn trusted(bytes: &[u8], file_uid: u32) -> Content {
    match parse(bytes) {
        Content::Ours(r) if r.uid != file_uid && file_uid != crate::fs::ANONYMOUS_UID => {
            Content::Foreign {
                what: format!(
                    "an nfslock record naming uid {} in a file owned by uid {file_uid}, not believed",
                    r.uid
                ),
            }
        }
        other => other,
    }
}

fn parse_ours(bytes: &[u8]) -> Option<Record> {
    if bytes.len() >= READ_LIMIT {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split('\n');
    if lines.next()? != MAGIC {
        return None;
    }
    let mut get = std::collections::HashMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=')?;
        // A repeated key is a sign of tampering or corruption.
        if get.insert(k, v).is_some() {
            return None;
        }
    }
    let text_field = |k: &str| -> Option<String> { String::from_utf8(unescape(get.get(k)?)?).ok() };
    let opt_u64 = |k: &str| -> Option<Option<u64>> {
        match *get.get(k)? {
            "unknown" => Some(None),
            v => v.parse().ok().map(Some),
        }
    };
    let lease = match *get.get("lease")? {
        "none" => None,
        v => {
            let secs: f64 = v.parse().ok()?;
            if !(secs.is_finite() && (0.0..1e12).contains(&secs)) {
                return None;
            }
            Some(Duration::from_secs_f64(secs))
        }
    };
    let token = get.get("token")?.to_string();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let claim = OsString::from_vec(unescape(get.get("claim")?)?);
    if claim.is_empty() || claim.as_bytes().contains(&b'/') {
        return None;
    }
    Some(Record {
        host: text_field("host")?,
        boot_id: match *get.get("boot_id")? {
            "unknown" => None,
            v => Some(v.to_string()),
        },
        machine: match get.get("machine") {
            None => None,
            Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(m.to_string())
            }
            Some(_) => return None,
        },
        pidns: opt_u64("pidns")?,
        pid: get.get("pid")?.parse().ok()?,
        pid_start: opt_u64("pid_start")?,
        uid: get.get("uid")?.parse().ok()?,
        user: text_field("user")?,
        token,
        acquired_at: get.get("acquired_at")?.to_string(),
        lease,
        claim,
        cmd: match get.get("cmd") {
            Some(_) => Some(text_field("cmd")?),
            None => None,
        },
        shared: match get.get("mode").copied() {
            None | Some("exclusive") => false,
            Some("shared") => true,
            Some(_) => return None,
        },
    })
}

/// Tells another tool's lock from data: what lock tools write is empty, a
/// decimal pid (padded or not, with or without a newline), or one short
/// line of text; a damaged record of ours counts too. Everything else is
/// not a lock.
fn classify_other(bytes: &[u8]) -> Content {
    let foreign = |what: String| Content::Foreign { what };
    let data = |what: String| Content::NotALock { what };
    if bytes.is_empty() {
        return foreign("empty file".into());
    }
    if bytes.len() >= READ_LIMIT {
        return data(format!("{READ_LIMIT}+ bytes"));
    }
    if bytes.starts_with(b"nfslock-record") {
        return foreign("damaged nfslock record".into());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return data(format!("{} bytes of binary data", bytes.len()));
    };
    let t = text.trim();
    if !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()) {
        return foreign(format!(
            "pid {t} written by another tool (dotlockfile, shlock ...)"
        ));
    }
    let line = text
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(text);
    let printable = line
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t');
    if printable && line.len() <= FOREIGN_LINE_MAX {
        return foreign(format!("{} bytes of text from another tool", bytes.len()));
    }
    let lines = text.lines().count();
    if printable || lines > 1 {
        return data(format!("{} bytes of text in {lines} lines", bytes.len()));
    }
    data(format!("{} bytes of binary data", bytes.len()))
}

/// Formats a wall-clock time as ISO 8601 UTC with seconds.
pub fn iso8601(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    iso8601_secs(secs)
}

/// Formats seconds since the epoch as ISO 8601 UTC.
pub fn iso8601_secs(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Record {
        Record {
            host: "web3.example.com".into(),
            boot_id: Some("0f1e2d3c-aaaa-bbbb-cccc-000000000001".into()),
            machine: Some("00112233445566778899aabbccddeeff".into()),
            pidns: Some(4026531836),
            pid: 4242,
            pid_start: Some(123456),
            uid: 1000,
            user: "alice smith%".into(),
            token: "00ff00ff00ff00ff".into(),
            acquired_at: "2026-11-22T03:00:00Z".into(),
            lease: Some(Duration::from_millis(60_500)),
            claim: OsString::from_vec(
                b".job.lock.nfslock-claim.00ff00ff00ff00ff.4242.w\xff".to_vec(),
            ),
            cmd: Some("rsync -a /src /dst".into()),
            shared: false,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        let bytes = r.encode();
        assert!(
            !bytes[0].is_ascii_digit(),
            "liblockfile must not read a pid"
        );
        assert_eq!(parse(&bytes), Content::Ours(r.clone()));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\nmachine=00112233445566778899aabbccddeeff\n"));
        // A record of nfslock 0.1 has no machine line: still ours.
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("machine="))
            .map(|l| format!("{l}\n"))
            .collect();
        let without = Record {
            machine: None,
            ..r.clone()
        };
        assert_eq!(parse(old.as_bytes()), Content::Ours(without));
        // A machine that is not hex is a damaged record.
        let bad = text.replace("machine=0011", "machine=xx11");
        assert!(matches!(parse(bad.as_bytes()), Content::Foreign { .. }));
        let minimal = Record {
            boot_id: None,
            machine: None,
            pidns: None,
            pid_start: None,
            lease: None,
            cmd: None,
            shared: false,
            ..r
        };
        assert_eq!(parse(&minimal.encode()), Content::Ours(minimal));
    }

    #[test]
    fn a_readers_record_says_shared_and_a_writers_says_nothing_new() {
        let writer = sample();
        let text = String::from_utf8(writer.encode()).unwrap();
        assert!(!text.contains("mode="), "exclusive records read as in 0.1");
        let reader = Record {
            shared: true,
            ..sample()
        };
        let text = String::from_utf8(reader.encode()).unwrap();
        assert!(text.ends_with("\nmode=shared\n"));
        assert_eq!(parse(text.as_bytes()), Content::Ours(reader));
        let spelled = text.replace("mode=shared", "mode=exclusive");
        assert_eq!(parse(spelled.as_bytes()), Content::Ours(sample()));
        let bad = text.replace("mode=shared", "mode=both");
        assert!(matches!(parse(bad.as_bytes()), Content::Foreign { .. }));
    }

    #[test]
    fn other_tools_locks_are_foreign_never_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"0\n".to_vec(),
            b"4242".to_vec(),
            b"      4242\n".to_vec(),
            b"web3.example.com 4242 1700000000 abcd\n".to_vec(),
            b"web3:4242\r\n".to_vec(),
            b"nfslock-record 1\nhost=x\n".to_vec(),
            b"nfslock-record 1\nnot a pair\n".to_vec(),
            b"nfslock-record 2\n".to_vec(),
        ];
        for c in cases {
            let got = parse(&c);
            assert!(matches!(got, Content::Foreign { .. }), "{c:?}: {got:?}");
            assert!(got.is_lock());
        }
        let Content::Foreign { what } = parse(b"0\n") else {
            panic!()
        };
        assert!(what.contains("pid 0"), "{what}");
        let Content::Foreign { what } = parse(b"") else {
            panic!()
        };
        assert_eq!(what, "empty file");
    }

    /// A file at the lock path that no lock tool would write is data:
    /// several lines, binary, a long line, or too large to be a lock.
    #[test]
    fn data_is_not_a_lock() {
        let cases: Vec<Vec<u8>> = vec![
            b"date,amount\n2026-01-01,10\n".to_vec(),
            vec![0xff; 100],
            (0u8..=255).cycle().take(3000).collect(),
            vec![b'a'; 1 << 20],
            vec![b'a'; FOREIGN_LINE_MAX + 1],
            b"\x7fELF\x02\x01\x01".to_vec(),
            b"one\x1b[2Jtwo".to_vec(),
        ];
        for c in cases {
            let got = parse(&c);
            assert!(
                matches!(got, Content::NotALock { .. }),
                "{:?}: {got:?}",
                &c[..c.len().min(30)]
            );
            assert!(!got.is_lock());
        }
    }

    #[test]
    fn a_record_is_believed_only_from_the_user_it_names() {
        let r = sample(); // uid 1000
        let bytes = r.encode();
        assert_eq!(trusted(&bytes, 1000), Content::Ours(r));
        let forged = trusted(&bytes, 1001);
        assert!(
            matches!(&forged, Content::Foreign { what } if what.contains("uid 1000") && what.contains("uid 1001")),
            "{forged:?}"
        );
        // Root squash: the file's owner says nothing.
        assert!(matches!(
            trusted(&bytes, crate::fs::ANONYMOUS_UID),
            Content::Ours(_)
        ));
        assert!(matches!(trusted(b"0\n", 5), Content::Foreign { .. }));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            let _ = parse(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = parse(&b);
        }
    }

    #[test]
    fn rejects_duplicate_keys_and_bad_claims() {
        let mut b = sample().encode();
        b.extend_from_slice(b"pid=1\n");
        assert!(matches!(parse(&b), Content::Foreign { .. }));
        let mut r = sample();
        r.claim = OsString::from("../../etc/passwd");
        assert!(matches!(parse(&r.encode()), Content::Foreign { .. }));
    }

    #[test]
    fn commands_are_sanitised() {
        assert_eq!(command_name("/usr/bin/rsync".as_ref()), "rsync");
        assert_eq!(command_name("backup.sh".as_ref()), "backup.sh");
        assert_eq!(command_name("a\nb".as_ref()), "a b");
        assert_eq!(sanitise_cmd("a\nb\tc"), "a b c");
        let long = "é".repeat(300);
        let s = sanitise_cmd(&long);
        assert!(s.len() <= CMD_MAX + 3 && s.ends_with("..."));
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_secs(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_secs(-1), "1969-12-31T23:59:59Z");
    }
}
