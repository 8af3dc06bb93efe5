//! What this host and its processes are, read from the kernel: hostname, boot
//! id, pid namespace, process start times; plus errno classes and the
//! filesystem-type probe. Protocol code asks questions here and never matches
//! on errno itself.
//!
//! Liveness is only ever judged on Linux, where /proc gives a boot id, a pid
//! namespace id and per-process start times. Elsewhere the identity is
//! incomplete and every holder counts as alive until its lease expires.

use crate::names::escape_bytes;

use std::io;
use std::path::Path;

/// Who "we" are, as far as lock ownership is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// gethostname(2) as returned, escaped to printable ASCII; no DNS.
    pub host: String,
    /// /proc/sys/kernel/random/boot_id: changes on every boot.
    pub boot_id: Option<String>,
    /// This machine, as [`machine_hash`] of /etc/machine-id: the same
    /// across reboots, never the id itself. `None` where there is none.
    pub machine: Option<String>,
    /// Inode of /proc/self/ns/pid: pids only mean something inside one
    /// namespace.
    pub pidns: Option<u64>,
    /// Our uid and user name, written into claims. The name is looked up
    /// only when a claim needs it (release, status and break never do),
    /// and once: a name service lookup can be slow.
    pub uid: u32,
    pub user: std::sync::OnceLock<String>,
}

impl Identity {
    pub fn user(&self) -> &str {
        self.user.get_or_init(|| user_name(self.uid))
    }

    /// Liveness verdicts need all three parts.
    pub fn complete(&self) -> bool {
        self.boot_id.is_some() && self.pidns.is_some()
    }
}

/// What /proc says about a pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Running, with its start time in clock ticks since boot.
    Running {
        start: u64,
    },
    Gone,
    /// Cannot tell (no /proc, /proc of another pid namespace, or a live
    /// process whose /proc entry we may not read).
    Unknown,
}

/// Reads this host's identity.
pub fn identity() -> Identity {
    let host = escape_bytes(gethostname::gethostname().as_encoded_bytes());
    let uid = nix::unistd::getuid().as_raw();
    let user = std::sync::OnceLock::new();
    #[cfg(target_os = "linux")]
    {
        let boot_id = read_small("/proc/sys/kernel/random/boot_id", 64)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let pidns = if proc_is_ours() {
            std::fs::metadata("/proc/self/ns/pid")
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        } else {
            None
        };
        let machine = read_small("/etc/machine-id", 64).and_then(|id| machine_hash(&id));
        Identity {
            host,
            boot_id,
            machine,
            pidns,
            uid,
            user,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Identity {
            host,
            boot_id: None,
            machine: None,
            pidns: None,
            uid,
            user,
        }
    }
}

/// What a record says of its machine, from the text of /etc/machine-id:
/// the id hashed with a keyed cryptographic hash and nfslock's own key, as
/// machine-id(5) asks (systemd's application-specific ids are made this
/// way): it tells one machine from another and gives nothing of the id
/// away. `None` for an id that is not 32 hex digits.
pub fn machine_hash(id_text: &str) -> Option<String> {
    use hmac::{Hmac, Mac};
    /// nfslock's application id: a fixed random number.
    const APP_ID: [u8; 16] = [
        0x6e, 0x3a, 0x91, 0x0c, 0x54, 0xd7, 0x4b, 0x2f, 0x8e, 0x15, 0xa3, 0x6b, 0xc0, 0x7d, 0x29,
        0xf4,
    ];
    let hex = id_text.trim();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&id).ok()?;
    mac.update(&APP_ID);
    let out = mac.finalize().into_bytes();
    Some(out[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// True when /proc shows pids of our own pid namespace. After
/// `unshare --pid` without a fresh /proc mount, /proc/PID names processes
/// of another namespace, and probing it would give false verdicts.
#[cfg(target_os = "linux")]
fn proc_is_ours() -> bool {
    // /proc/self is ourselves as the /proc mount's namespace numbers us;
    // it only matches getpid() when that namespace is ours.
    own_stat().is_some_and(|(pid, _)| pid == std::process::id())
}

/// Our own pid as /proc numbers it and our start time, read once: both the
/// namespace check and our own liveness record need them.
#[cfg(target_os = "linux")]
fn own_stat() -> Option<(u32, u64)> {
    static OWN: std::sync::OnceLock<Option<(u32, u64)>> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| stat_fields_of("/proc/self/stat"))
}

fn stat_fields(pid: u32) -> Option<(u32, u64)> {
    if pid == std::process::id() {
        return own_stat();
    }
    stat_fields_of(&format!("/proc/{pid}/stat"))
}

fn stat_fields_of(path: &str) -> Option<(u32, u64)> {
    let text = read_small(path, 1024)?;
    let head: u32 = text.split(' ').next()?.parse().ok()?;
    let after = &text[text.rfind(')')? + 1..];
    // After ')': state is field 3; starttime is field 22, so index 19 here.
    let start: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    Some((head, start))
}

/// What /proc says about `pid`. `Unknown` unless our identity is complete.
/// A pid is `Gone` only when the kernel says so (kill(2) gives ESRCH): a
/// /proc entry may be missing for a live process we may not see (hidepid,
/// systemd's ProtectProc), and such a process is `Unknown`, never gone.
pub fn process_state(pid: u32) -> ProcState {
    #[cfg(target_os = "linux")]
    {
        if pid == 0 || !proc_is_ours() {
            return ProcState::Unknown;
        }
        match stat_fields(pid) {
            Some((_, start)) => ProcState::Running { start },
            None if pid_gone(pid) => ProcState::Gone,
            None => ProcState::Unknown,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        ProcState::Unknown
    }
}

/// Reads a file that is usually smaller than `expect` bytes. /proc files
/// report size 0, so std's reader would stat and seek first and then read
/// in small growing steps: ten system calls for mountinfo where four do.
fn read_small(path: &str, expect: usize) -> Option<String> {
    String::from_utf8(read_bytes(path, expect)?).ok()
}

fn read_bytes(path: &str, expect: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(expect);
    // Through `Take`: File's own read_to_end would ask for the size first.
    let file = std::fs::File::open(path).ok()?;
    file.take(u64::MAX).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// True when there is certainly no process `pid` in our pid namespace (and
/// /proc is that namespace's, as for [`process_state`]): one kill(2) probe
/// where reading /proc/PID/stat takes three calls and formats the whole
/// line. A sweep asks this of every claim of this host.
pub fn pid_gone(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        // Zero and negative pids would name process groups.
        let Ok(raw) = i32::try_from(pid) else {
            return false;
        };
        raw > 0
            && proc_is_ours()
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None)
                == Err(nix::errno::Errno::ESRCH)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        false
    }
}

/// Whether [`user_name`] may ask the name service (getpwuid) for a uid
/// that /etc/passwd does not name. Off only in a statically linked
/// binary: there glibc dlopens the system's NSS modules (systemd, sss,
/// ldap), which bring the shared libc into a process that already has
/// its own, and on Debian's default nsswitch.conf the lookup dies with
/// SIGSEGV.
static NAME_SERVICE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Names from /etc/passwd only, for the life of the process: for the
/// statically linked binary's `main`, before anything looks a name up.
pub fn forgo_name_service() {
    NAME_SERVICE.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// A name of `uid` for the record.
pub fn user_name(uid: u32) -> String {
    // /etc/passwd first: where it names the uid, the name service would
    // only add parsing nsswitch.conf and probing nscd (a sixth of a lock
    // cycle's instructions). Users from LDAP and the like still go through
    // getpwuid, where it may be asked. The name is for people; the uid is
    // what identifies.
    read_bytes("/etc/passwd", 4096)
        .and_then(|bytes| name_in_passwd_bytes(&bytes, uid))
        .or_else(|| {
            NAME_SERVICE
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)))
                .and_then(|found| found.ok().flatten())
                .map(|u| u.name)
        })
        .unwrap_or_else(|| uid.to_string())
}

/// [`name_in_passwd`] of the file's bytes: a GECOS field in Latin-1 must
/// not hide every name in it (the static build has nothing else to ask).
fn name_in_passwd_bytes(bytes: &[u8], uid: u32) -> Option<String> {
    name_in_passwd(&String::from_utf8_lossy(bytes), uid)
}

/// The first name /etc/passwd gives `uid` ("name:password:uid:...").
fn name_in_passwd(text: &str, uid: u32) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty() && !name.starts_with(['+', '-'])).then(|| name.to_string())
    })
}

/// Eight bytes from the kernel's random source (getrandom(2)): tokens and
/// nonces nobody can predict from names already seen.
pub fn os_random() -> u64 {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled part of buf.
        let n = unsafe {
            nix::libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0)
        };
        if n > 0 {
            filled += n as usize;
        } else if io::Error::last_os_error().raw_os_error() != Some(nix::libc::EINTR) {
            // No getrandom (a kernel before 3.17): the seeded generator's
            // source, which hashes the kernel's keys with time and pid.
            return random_seed() ^ u64::from_ne_bytes(buf);
        }
    }
    u64::from_ne_bytes(buf)
}

/// Eight random bytes from the kernel, as the seed for jitter.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // std keys each RandomState from the kernel's generator (getrandom(2),
    // one system call, where opening /dev/urandom took three); hashing the
    // time and pid on top keeps seeds apart should that source be absent.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(t);
    h.write_u32(std::process::id());
    h.finish()
}

/// Filesystem types whose files live on another machine, or are shared
/// with one (cluster filesystems, a VM host's virtiofs): changes made there
/// raise no local events, and a new file must be synced before it is linked.
/// By the name /proc/self/mountinfo gives and the magic number statfs(2)
/// gives; every `fuse.*` type counts too.
const REMOTE_TYPES: &[(&str, i64)] = &[
    ("nfs", 0x6969),
    ("nfs4", 0x6969),
    ("cifs", 0xFF53_4D42),
    ("smb3", 0xFE53_4D42),
    ("smbfs", 0x517B),
    ("ceph", 0x00C3_6400),
    ("9p", 0x0102_1997),
    ("afs", 0x5346_414F),
    ("lustre", 0x0BD0_0BD0),
    ("gpfs", 0x4750_4653),
    ("ocfs2", 0x7461_636F),
    ("gfs2", 0x0116_1970),
    ("beegfs", 0x1983_0326),
    ("orangefs", 0x2003_0528),
    ("virtiofs", FUSE_MAGIC),
    ("glusterfs", FUSE_MAGIC),
];

const FUSE_MAGIC: i64 = 0x6573_5546;

/// Whether device `dev` (a file's st_dev, found in `dir`) is a remote
/// filesystem, answered without a round trip to any server: from the device
/// number and, where that leaves a doubt, /proc/self/mountinfo or statfs of
/// `file` (an open descriptor on that device: no lookup) or of `dir`.
/// Answers are kept per device for the life of the process.
pub fn is_remote_dev(dev: u64, dir: &Path, file: Option<std::os::fd::BorrowedFd<'_>>) -> bool {
    static DECIDED: std::sync::Mutex<Vec<(u64, bool)>> = std::sync::Mutex::new(Vec::new());
    let known = DECIDED
        .lock()
        .ok()
        .and_then(|d| d.iter().find(|(d, _)| *d == dev).copied());
    if let Some((_, remote)) = known {
        return remote;
    }
    let remote = decide_remote(dev, dir, file);
    if let Ok(mut d) = DECIDED.lock() {
        d.push((dev, remote));
    }
    remote
}

fn decide_remote(dev: u64, dir: &Path, file: Option<std::os::fd::BorrowedFd<'_>>) -> bool {
    #[cfg(target_os = "linux")]
    {
        // A filesystem on a block device of this machine (ext4, xfs) has a
        // real major number; network, FUSE and memory filesystems get
        // anonymous devices (major 0). The former can only be remote as a
        // shared-disk cluster filesystem, which statfs names locally, and
        // on an open descriptor without even a lookup.
        if nix::sys::stat::major(dev) != 0 {
            return match file {
                Some(fd) => nix::sys::statfs::fstatfs(fd).map_or(true, |s| remote_type(&s)),
                None => is_remote_fs(dir),
            };
        }
        // The mount table keeps remote mounts only; any other device (a
        // tmpfs, a btrfs subvolume mountinfo does not list) is asked with
        // statfs, which for a local filesystem stays on this machine.
        if remote_mounts().iter().any(|m| m.dev == dev) {
            return true;
        }
        if let Some(fd) = file {
            return nix::sys::statfs::fstatfs(fd).map_or(true, |s| remote_type(&s));
        }
    }
    let _ = (dev, file);
    is_remote_fs(dir)
}

/// A remote mount of /proc/self/mountinfo, as far as nfslock cares.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mount {
    dev: u64,
    point: std::path::PathBuf,
}

/// This process's remote mounts, read once: a local line costs one search
/// for its type, a few hundred instructions.
#[cfg(target_os = "linux")]
fn remote_mounts() -> &'static [Mount] {
    static MOUNTS: std::sync::OnceLock<Vec<Mount>> = std::sync::OnceLock::new();
    MOUNTS.get_or_init(|| {
        read_small("/proc/self/mountinfo", 16 << 10)
            .map(|text| text.lines().filter_map(mount_line).collect())
            .unwrap_or_default()
    })
}

/// One mountinfo line, `ID PARENT MAJOR:MINOR ROOT POINT OPTIONS [TAGS...]
/// - TYPE SOURCE SUPER-OPTIONS`. The mount point has its space, tab,
/// newline and backslash written in octal (`\040`).
#[cfg(target_os = "linux")]
fn mount_line(line: &str) -> Option<Mount> {
    // The separator field is a lone "-"; the fields before it have their
    // spaces escaped, so " - " cannot occur earlier.
    let (head, tail) = line.split_once(" - ")?;
    let fstype = tail.split(' ').next()?;
    let remote = fstype.starts_with("fuse") || REMOTE_TYPES.iter().any(|(n, _)| *n == fstype);
    if !remote {
        return None;
    }
    let mut fields = head.split(' ');
    let (major, minor) = fields.nth(2)?.split_once(':')?;
    let point = unescape_octal(fields.nth(1)?);
    let dev = nix::sys::stat::makedev(major.parse().ok()?, minor.parse().ok()?);
    Some(Mount {
        dev: dev as u64,
        point,
    })
}

/// A mountinfo field with its `\NNN` octal escapes undone.
#[cfg(target_os = "linux")]
fn unescape_octal(field: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let raw = field.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let octal = (raw[i] == b'\\')
            .then(|| raw.get(i + 1..i + 4))
            .flatten()
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u8, |n, b| n.wrapping_mul(8) + (b - b'0')));
        match octal {
            Some(b) => {
                bytes.push(b);
                i += 4;
            }
            None => {
                bytes.push(raw[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(bytes).into()
}

/// Whether `dir` may lie on a remote filesystem (NFS, FUSE, SMB ...) as far
/// as the mount table tells without touching it: a remote mount's point is
/// a prefix of its absolute path. No symlink is followed, so a link into a
/// remote mount is not seen (the claim's device tells later); a local mount
/// inside a remote one counts as remote (that costs a thread, no more).
/// Used to decide, before the first call to the lock's directory, whether
/// a call may hang on a server that stops answering.
pub fn under_remote_mount(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(abs) = std::path::absolute(dir) else {
            return true;
        };
        remote_mounts().iter().any(|m| abs.starts_with(&m.point))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        true
    }
}

/// True when files in `dir` live on another machine (NFS, FUSE, SMB, Ceph,
/// 9p) or on a disk shared with others (GFS2, OCFS2), where the claim must
/// reach stable storage before we link it and no local event tells of
/// other hosts' changes. Unknown: assume the worst.
pub fn is_remote_fs(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::sys::statfs::statfs(dir).map_or(true, |s| remote_type(&s))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        true
    }
}

#[cfg(target_os = "linux")]
fn remote_type(s: &nix::sys::statfs::Statfs) -> bool {
    // f_type's width differs between platforms.
    #[allow(clippy::unnecessary_cast)]
    let magic = s.filesystem_type().0 as i64;
    magic == FUSE_MAGIC || REMOTE_TYPES.iter().any(|(_, m)| *m == magic)
}

/// Errors that say the same thing however often the call is repeated:
/// permission, a read-only or full filesystem, a name too long, a path
/// component that is not a directory, a filesystem without the operation.
/// They are reported with their exit code, never retried as if they were
/// races. ENOENT and EEXIST are neither: the protocol reads them itself.
pub fn is_persistent(e: &io::Error) -> bool {
    use nix::libc::*;
    matches!(
        e.raw_os_error(),
        Some(
            EACCES
                | EPERM
                | EROFS
                | ENOSPC
                | EDQUOT
                | EFBIG
                | ENAMETOOLONG
                | ENOTDIR
                | EISDIR
                | ELOOP
                | EOPNOTSUPP
                | ENOSYS
                | EXDEV
                | EMLINK
        )
    )
}

/// rmdir(2) of a directory with names in it (POSIX allows EEXIST too).
pub fn is_not_empty(e: &io::Error) -> bool {
    use nix::libc::*;
    matches!(e.raw_os_error(), Some(ENOTEMPTY | EEXIST))
}

/// Everything else is treated as a moment's trouble: EIO, ESTALE and
/// ETIMEDOUT from NFS, but also whatever odd errno a client maps a failed
/// call to (one FUSE client gives EFAULT for a read of a file another host
/// just removed). The caller looks at what really happened and retries
/// with a backoff until `--io-timeout`.
pub fn is_transient(e: &io::Error) -> bool {
    !is_persistent(e) && !is_not_found(e) && !is_exists(e)
}

/// Permission: EACCES, or EPERM (which a sticky directory gives for a file
/// of another user).
pub fn is_denied(e: &io::Error) -> bool {
    use nix::libc::*;
    matches!(e.raw_os_error(), Some(EACCES | EPERM))
}

/// Errors that mean "you may not, or cannot, create a file here".
pub fn is_cant_create(e: &io::Error) -> bool {
    use nix::libc::*;
    matches!(
        e.raw_os_error(),
        Some(EACCES | EPERM | EROFS | ENOSPC | EDQUOT | ENAMETOOLONG | EFBIG)
    )
}

/// Errors from link(2) that mean the filesystem has no hard links.
pub fn is_link_unsupported(e: &io::Error) -> bool {
    use nix::libc::*;
    matches!(
        e.raw_os_error(),
        Some(EPERM | EOPNOTSUPP | ENOSYS | EXDEV | EMLINK)
    )
}

pub fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

pub fn is_exists(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
}

/// ENOTDIR: a path component that should be a directory is not one.
pub fn is_not_dir(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ENOTDIR)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_running_and_has_a_start_time() {
        let me = std::process::id();
        match process_state(me) {
            ProcState::Running { start } => assert!(start > 0),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_pid_beyond_pid_max_is_gone() {
        assert_eq!(process_state(4_194_305), ProcState::Gone);
        assert!(pid_gone(4_194_305));
    }

    #[test]
    fn the_cheap_liveness_probe_agrees_with_proc() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        assert!(!pid_gone(pid), "a zombie is not gone yet");
        child.wait().unwrap();
        assert_eq!(process_state(pid), ProcState::Gone);
        assert!(pid_gone(pid));
        assert!(!pid_gone(std::process::id()));
        assert!(!pid_gone(0), "0 is our process group, not a pid");
        assert!(!pid_gone(u32::MAX), "-1 would be every process");
    }

    #[test]
    fn mountinfo_lines_give_device_and_remoteness() {
        use nix::sys::stat::makedev;
        for (line, want) in [
            (
                "41 29 0:45 / /mnt/nfs rw,relatime shared:90 - nfs4 srv:/x rw,vers=4.2",
                Some((makedev(0, 45), "/mnt/nfs")),
            ),
            (
                "50 29 0:52 / /mnt/my\\040lab rw,nosuid - fuse.nfslab-bridge lab rw,user_id=0",
                Some((makedev(0, 52), "/mnt/my lab")),
            ),
            (
                "29 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
                None,
            ),
            ("30 29 0:26 / /tmp rw - tmpfs tmpfs rw", None),
            ("garbage", None),
        ] {
            let want = want.map(|(dev, point)| Mount {
                dev,
                point: point.into(),
            });
            assert_eq!(mount_line(line), want, "{line}");
        }
        assert_eq!(unescape_octal("a\\134b\\011\\9x"), Path::new("a\\b\t\\9x"));
    }

    #[test]
    fn local_directories_are_not_under_a_remote_mount() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(under_remote_mount(dir.path()), is_remote_fs(dir.path()));
        assert!(!under_remote_mount(Path::new("/")));
    }

    /// A device mountinfo does not list (a btrfs subvolume's) is judged by
    /// statfs of the directory instead.
    #[test]
    fn an_unlisted_device_falls_back_to_statfs() {
        let dir = tempfile::tempdir().unwrap();
        // Anonymous (major 0), so the mount table is asked and has no entry.
        let unlisted = nix::sys::stat::makedev(0, 1_048_575);
        assert_eq!(
            is_remote_dev(unlisted, dir.path(), None),
            is_remote_fs(dir.path())
        );
    }

    /// The device of a file in a local directory is found and is local,
    /// and agrees with statfs, the fallback.
    #[test]
    fn a_local_directory_is_not_remote() {
        let dir = tempfile::tempdir().unwrap();
        let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(dir.path()).unwrap());
        assert_eq!(
            is_remote_dev(dev, dir.path(), None),
            is_remote_fs(dir.path())
        );
        assert!(!is_remote_dev(dev, dir.path(), None));
    }

    /// The magic numbers typed in by hand agree with those the libc crate
    /// knows.
    #[test]
    fn remote_magic_numbers_are_the_kernels() {
        use nix::sys::statfs::{
            AFS_SUPER_MAGIC, FUSE_SUPER_MAGIC, NFS_SUPER_MAGIC, OCFS2_SUPER_MAGIC, SMB_SUPER_MAGIC,
        };
        let magic = |name| REMOTE_TYPES.iter().find(|(n, _)| *n == name).unwrap().1;
        #[allow(clippy::unnecessary_cast)]
        for (name, known) in [
            ("nfs", NFS_SUPER_MAGIC.0 as i64),
            ("smbfs", SMB_SUPER_MAGIC.0 as i64),
            ("afs", AFS_SUPER_MAGIC.0 as i64),
            ("ocfs2", OCFS2_SUPER_MAGIC.0 as i64),
            ("virtiofs", FUSE_SUPER_MAGIC.0 as i64),
        ] {
            assert_eq!(magic(name), known, "{name}");
        }
    }

    #[test]
    fn passwd_lines_give_the_first_name_of_a_uid() {
        let text = "root:x:0:0:root:/root:/bin/sh\n+nis::7:7:::\n\nbroken\n\
                    alice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000:::\n";
        assert_eq!(name_in_passwd(text, 1000).as_deref(), Some("alice"));
        assert_eq!(name_in_passwd(text, 0).as_deref(), Some("root"));
        assert_eq!(
            name_in_passwd(text, 7),
            None,
            "NIS compat lines are no names"
        );
        assert_eq!(name_in_passwd(text, 42), None);
    }

    /// A byte that is not UTF-8 (a Latin-1 GECOS field) hides no name.
    #[test]
    fn a_passwd_file_in_latin_1_still_names_its_users() {
        let bytes = b"root:x:0:0:root:/root:/bin/sh
jos\xe9:x:1001:1001:Jos\xe9 M.:/home/j:/bin/sh
\
                      bob:x:1002:1002:Bob:/home/bob:/bin/sh
";
        assert_eq!(name_in_passwd_bytes(bytes, 1002).as_deref(), Some("bob"));
        assert_eq!(name_in_passwd_bytes(bytes, 0).as_deref(), Some("root"));
        assert_eq!(
            name_in_passwd_bytes(bytes, 1001).as_deref(),
            Some("jos\u{fffd}")
        );
    }

    /// Only a claim needs the user name: release, status and break do not
    /// look it up.
    #[test]
    fn the_user_name_is_looked_up_when_first_asked() {
        let id = identity();
        assert!(id.user.get().is_none());
        assert!(!id.user().is_empty());
        assert!(id.user.get().is_some());
    }

    #[test]
    fn the_user_name_agrees_with_the_name_service() {
        let uid = nix::unistd::getuid().as_raw();
        let name = identity().user().to_string();
        let nss = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).unwrap();
        assert_eq!(name, nss.map_or(uid.to_string(), |u| u.name));
    }

    /// The open claim's descriptor, the directory and the cache give one
    /// answer.
    #[test]
    fn a_file_descriptor_and_its_directory_agree() {
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let dev = std::os::unix::fs::MetadataExt::dev(&file.metadata().unwrap());
        let by_dir = is_remote_fs(dir.path());
        assert_eq!(decide_remote(dev, dir.path(), Some(file.as_fd())), by_dir);
        assert_eq!(decide_remote(dev, dir.path(), None), by_dir);
        assert_eq!(is_remote_dev(dev, dir.path(), Some(file.as_fd())), by_dir);
        assert_eq!(is_remote_dev(dev, Path::new("/nonexistent"), None), by_dir);
    }

    #[test]
    fn the_machine_hash_tells_machines_apart_and_hides_the_id() {
        let id = "4f1a9c0e5b2d47e68a3c1b9d0e7f2a65";
        let h = machine_hash(id).unwrap();
        assert_eq!(h.len(), 32);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            machine_hash(&format!("{id}\n")).as_deref(),
            Some(h.as_str())
        );
        assert_ne!(machine_hash("4f1a9c0e5b2d47e68a3c1b9d0e7f2a66").unwrap(), h);
        for part in [&id[..8], &id[8..16], &id[16..24], &id[24..]] {
            assert!(!h.contains(part), "the hash shows part of the id");
        }
        assert_eq!(machine_hash(""), None);
        assert_eq!(machine_hash("not-an-id"), None);
    }

    #[test]
    fn identity_is_complete_on_linux() {
        let id = identity();
        assert!(id.complete(), "{id:?}");
        assert!(!id.host.is_empty());
    }
}
