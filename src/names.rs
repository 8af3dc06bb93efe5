//! Names of the files the protocol puts beside a lock, and the escaping that
//! keeps hostnames and non-UTF-8 names printable.
//!
//! Every auxiliary file is `.<lock>.nfslock-<kind>.<nonce>.<pid>.<host>`, so
//! leftovers are recognisable by name, attributable to a host and a pid, and
//! never collide: the nonce is random, and pids that collide across hosts or
//! pid namespaces are told apart by the host and the nonce. The hostname is
//! escaped, never truncated; only when the whole name would pass NAME_MAX is
//! it replaced by a hash (the record inside the file still has it in full).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Longest file name most filesystems accept.
pub const NAME_MAX: usize = 255;

/// Room the longest auxiliary name needs besides the lock name itself.
const AUX_OVERHEAD: usize = 1 + ".nfslock-".len() + 5 + 1 + 16 + 1 + 10 + 1 + 17;

/// The longest lock name (in bytes) that leaves room for its claim names.
pub const MAX_LOCK_NAME: usize = NAME_MAX - AUX_OVERHEAD;

/// Keeps `[A-Za-z0-9._-]`, writes every other byte as `%XX`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`escape_bytes`]; `None` on malformed input.
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// FNV-1a: a stable 64-bit hash, enough to shorten an over-long hostname.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The kinds of file the protocol creates beside a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxKind {
    /// A contender's unique file, linked to the lock name; while the lock is
    /// held it is the owner's proof of ownership.
    Claim,
    /// A breaker's extra link that pins the inode it judged stale.
    Guard,
    /// The private name a lock is renamed to while being removed.
    Removing,
    /// A short-lived file whose mtime tells file-system time.
    Probe,
    /// A slot waiter's place in line (`--slots`): its nonce starts with
    /// the file-system time it was made at, so names sort in arrival order.
    Waiter,
    /// A reader's claim (`--shared`): a claim in every other respect, told
    /// from a writer's by name so a listing shows who waits for what.
    Share,
    /// The readers' directory of a shared lock, named after its opener's
    /// claim: each reader's claim is linked into it while it reads.
    Epoch,
}

impl AuxKind {
    pub fn tag(self) -> &'static str {
        match self {
            AuxKind::Claim => "claim",
            AuxKind::Guard => "guard",
            AuxKind::Removing => "rm",
            AuxKind::Probe => "probe",
            AuxKind::Waiter => "wait",
            AuxKind::Share => "share",
            AuxKind::Epoch => "epoch",
        }
    }

    /// A contender's claim, writer's or reader's.
    pub fn is_claim(self) -> bool {
        matches!(self, AuxKind::Claim | AuxKind::Share)
    }

    /// What it is, for people.
    pub fn describe(self) -> &'static str {
        match self {
            AuxKind::Claim => "claim",
            AuxKind::Guard => "pin",
            AuxKind::Removing => "private name",
            AuxKind::Probe => "probe",
            AuxKind::Waiter => "waiter",
            AuxKind::Share => "reader's claim",
            AuxKind::Epoch => "readers' directory",
        }
    }

    fn from_tag(tag: &str) -> Option<AuxKind> {
        Some(match tag {
            "claim" => AuxKind::Claim,
            "guard" => AuxKind::Guard,
            "rm" => AuxKind::Removing,
            "probe" => AuxKind::Probe,
            "wait" => AuxKind::Waiter,
            "share" => AuxKind::Share,
            "epoch" => AuxKind::Epoch,
            _ => return None,
        })
    }
}

/// An auxiliary file name, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuxName {
    pub kind: AuxKind,
    pub nonce: String,
    pub pid: u32,
    /// Escaped hostname, or `~` and a hash when it had to be shortened.
    pub host: String,
}

/// A lock as users name it: its path, its directory and its file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockPath {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub name: OsString,
}

/// Why a path cannot be a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadLockPath {
    NoFileName,
    /// `job.lock/`: a lock is a file, and link(2) to such a name fails
    /// with ENOENT for as long as one cares to retry.
    TrailingSlash,
    TooLong {
        len: usize,
    },
}

impl LockPath {
    pub fn new(path: &Path) -> Result<LockPath, BadLockPath> {
        if path.as_os_str().as_bytes().ends_with(b"/") {
            return Err(BadLockPath::TrailingSlash);
        }
        let name = path.file_name().ok_or(BadLockPath::NoFileName)?;
        if name.len() > MAX_LOCK_NAME {
            return Err(BadLockPath::TooLong { len: name.len() });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(LockPath {
            path: path.to_path_buf(),
            dir,
            name: name.to_os_string(),
        })
    }

    /// `.<lock>.nfslock-`: the prefix of every file we put beside this lock.
    pub fn aux_prefix(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.name.len() + 10);
        p.push(b'.');
        p.extend_from_slice(self.name.as_bytes());
        p.extend_from_slice(b".nfslock-");
        p
    }

    /// The file name for an auxiliary file of `kind`.
    pub fn aux_name(&self, kind: AuxKind, nonce: &str, pid: u32, host: &str) -> OsString {
        let mut n = self.aux_prefix();
        n.extend_from_slice(format!("{}.{nonce}.{pid}.", kind.tag()).as_bytes());
        if n.len() + host.len() > NAME_MAX {
            n.extend_from_slice(format!("~{:016x}", fnv1a(host.as_bytes())).as_bytes());
        } else {
            n.extend_from_slice(host.as_bytes());
        }
        OsString::from_vec(n)
    }

    /// Whether `spelled`, the host part of one of our names, is `host`
    /// (escaped), in full or shortened to its hash.
    pub fn spells_host(&self, spelled: &str, host: &str) -> bool {
        spelled == host || spelled == format!("~{:016x}", fnv1a(host.as_bytes()))
    }

    pub fn in_dir(&self, name: &OsStr) -> PathBuf {
        self.dir.join(name)
    }

    /// Takes apart a name from this lock's directory; `None` if it is not
    /// one of ours for this lock.
    pub fn parse_aux(&self, name: &OsStr) -> Option<AuxName> {
        let rest = name.as_bytes().strip_prefix(self.aux_prefix().as_slice())?;
        let rest = std::str::from_utf8(rest).ok()?;
        let mut parts = rest.splitn(4, '.');
        let kind = AuxKind::from_tag(parts.next()?)?;
        let nonce = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?;
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) || host.is_empty() {
            return None;
        }
        Some(AuxName {
            kind,
            nonce: nonce.to_string(),
            pid,
            host: host.to_string(),
        })
    }
}

/// The files that stay beside a lock for good once used, by the suffix
/// after `.<lock>.nfslock-`: the fencing counter, the start stamp and the
/// slot count.
pub const BESIDE: [&str; 3] = ["fence", "stamp", "slots"];

/// Takes apart `.<lock>.nfslock-fence` and the like: the lock, and which
/// of [`BESIDE`] it is.
pub fn parse_beside(dir: &Path, name: &OsStr) -> Option<(LockPath, &'static str)> {
    let body = name.as_bytes().strip_prefix(b".")?;
    BESIDE.iter().find_map(|kind| {
        let lock = body.strip_suffix(format!(".nfslock-{kind}").as_bytes())?;
        let lock = LockPath::new(&dir.join(OsStr::from_bytes(lock))).ok()?;
        (!lock.name.is_empty()).then_some((lock, *kind))
    })
}

/// Takes apart a name from a lock directory: the lock it is an auxiliary
/// file of, and its parts; `None` if it is none of ours. A lock name may
/// itself contain `.nfslock-`: every place the marker appears is tried,
/// from the left, until one gives a well-formed name.
pub fn parse_any_aux(dir: &Path, name: &OsStr) -> Option<(LockPath, AuxName)> {
    const MARK: &[u8] = b".nfslock-";
    let bytes = name.as_bytes();
    let body = bytes.strip_prefix(b".")?;
    (0..body.len())
        .filter(|&i| i > 0 && body[i..].starts_with(MARK))
        .find_map(|i| {
            let lock = LockPath::new(&dir.join(OsStr::from_bytes(&body[..i]))).ok()?;
            let aux = lock.parse_aux(name)?;
            Some((lock, aux))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_aux_name_says_whose_it_is() {
        let dir = Path::new("/srv/locks");
        for lock in ["job.lock", "a.nfslock-b", "caf\u{e9}"] {
            let l = LockPath::new(&dir.join(lock)).unwrap();
            let n = l.aux_name(AuxKind::Guard, "00ff", 7, "web3");
            let (found, aux) = parse_any_aux(dir, &n).unwrap();
            assert_eq!(found, l);
            assert_eq!(aux.kind, AuxKind::Guard);
        }
        for other in [
            "job.lock",
            ".job.lock",
            "..nfslock-claim.00.1.h",
            ".x.nfslock-what.00.1.h",
        ] {
            assert_eq!(parse_any_aux(dir, OsStr::new(other)), None, "{other}");
        }
    }

    #[test]
    fn escaping_round_trips_any_bytes() {
        let raw: Vec<u8> = (0u8..=255).collect();
        let esc = escape_bytes(&raw);
        assert!(esc.bytes().all(|b| b.is_ascii_graphic()));
        assert!(!esc.contains('/'));
        assert_eq!(unescape(&esc).unwrap(), raw);
        assert_eq!(escape_bytes(b"web-3.example.com"), "web-3.example.com");
        assert_eq!(unescape("%G1"), None);
        assert_eq!(unescape("%4"), None);
    }

    #[test]
    fn aux_names_parse_back() {
        let l = LockPath::new(Path::new("/srv/locks/job.lock")).unwrap();
        assert_eq!(l.dir, Path::new("/srv/locks"));
        let n = l.aux_name(AuxKind::Claim, "00ff00ff00ff00ff", 4242, "web3.example.com");
        assert_eq!(
            n,
            OsStr::new(".job.lock.nfslock-claim.00ff00ff00ff00ff.4242.web3.example.com")
        );
        let a = l.parse_aux(&n).unwrap();
        assert_eq!(a.kind, AuxKind::Claim);
        assert_eq!(a.pid, 4242);
        assert_eq!(a.host, "web3.example.com");
        assert_eq!(
            l.parse_aux(OsStr::new(".job.lock.nfslock-claim.xyz.1.h")),
            None
        );
        assert_eq!(l.parse_aux(OsStr::new(".other.nfslock-claim.00.1.h")), None);
        assert_eq!(l.parse_aux(OsStr::new("job.lock")), None);
    }

    #[test]
    fn long_hosts_are_hashed_not_truncated_and_names_fit() {
        let name = "x".repeat(MAX_LOCK_NAME);
        let l = LockPath::new(Path::new(&name)).unwrap();
        assert_eq!(l.dir, Path::new("."));
        let host = "h".repeat(253);
        let n = l.aux_name(AuxKind::Claim, "0123456789abcdef", u32::MAX, &host);
        assert!(n.len() <= NAME_MAX, "{} bytes", n.len());
        let a = l.parse_aux(&n).unwrap();
        assert!(a.host.starts_with('~'));
        assert!(l.spells_host(&a.host, &host));
        assert!(!l.spells_host(&a.host, "h"));
        // Two long hosts differing only at the end still get different names.
        let other = format!("{}g", "h".repeat(252));
        assert_ne!(
            n,
            l.aux_name(AuxKind::Claim, "0123456789abcdef", u32::MAX, &other)
        );
        // A short host on a short lock keeps its full name.
        let s = LockPath::new(Path::new("a")).unwrap();
        let mid = "m".repeat(200);
        assert!(s
            .aux_name(AuxKind::Claim, "00", 1, &mid)
            .as_bytes()
            .ends_with(mid.as_bytes()));
    }

    #[test]
    fn rejects_unusable_lock_paths() {
        assert_eq!(
            LockPath::new(Path::new("/")),
            Err(BadLockPath::TrailingSlash)
        );
        assert_eq!(
            LockPath::new(Path::new("job.lock/")),
            Err(BadLockPath::TrailingSlash)
        );
        assert_eq!(LockPath::new(Path::new("")), Err(BadLockPath::NoFileName));
        assert_eq!(
            LockPath::new(Path::new("a/..")),
            Err(BadLockPath::NoFileName)
        );
        let long = "y".repeat(MAX_LOCK_NAME + 1);
        assert!(matches!(
            LockPath::new(Path::new(&long)),
            Err(BadLockPath::TooLong { .. })
        ));
    }

    #[test]
    fn non_utf8_lock_names_work() {
        let raw = OsStr::from_bytes(b"caf\xe9.lock");
        let l = LockPath::new(Path::new(raw)).unwrap();
        let n = l.aux_name(AuxKind::Probe, "aa", 7, "h");
        assert_eq!(l.parse_aux(&n).unwrap().kind, AuxKind::Probe);
    }
}
