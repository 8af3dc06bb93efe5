//! The narrow filesystem seam: every effect the protocol has on the lock's
//! directory goes through [`LockFs`], so tests and the simulator can inject
//! NFS faults (lost replies, retransmits, stale attributes) without touching
//! protocol code. The production implementation is [`crate::realfs::RealFs`].

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// A point in file-system time: nanoseconds since the Unix epoch, as stamped
/// by whatever machine stores the directory (the NFS server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FsTime(pub i128);

impl FsTime {
    pub fn from_parts(secs: i64, nanos: i64) -> FsTime {
        FsTime(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
    }

    /// Signed seconds from `earlier` to `self`.
    pub fn secs_since(self, earlier: FsTime) -> f64 {
        (self.0 - earlier.0) as f64 / 1e9
    }

    pub fn plus(self, d: std::time::Duration) -> FsTime {
        FsTime(self.0 + d.as_nanos() as i128)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

/// What sits at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Device,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a fifo",
            Kind::Socket => "a socket",
            Kind::Device => "a device node",
        }
    }
}

/// The attributes the protocol judges by (never the path's target: nothing
/// here follows symbolic links).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub size: u64,
    pub uid: u32,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub kind: Kind,
    pub mtime: FsTime,
    pub ctime: FsTime,
    /// Birth time, where the filesystem keeps one (statx): the waiters'
    /// queue orders claims by it.
    pub born: Option<FsTime>,
}

/// The anonymous owner NFS servers give files whose owner they cannot or
/// will not map (root squash, NFSv4 owners without an id mapping). Such a
/// file's owner tells nothing about who wrote it.
pub const ANONYMOUS_UID: u32 = 65534;

impl Meta {
    /// Same file: the identity test of the link protocol.
    pub fn same_file(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    /// A directory where only a file's owner (or the directory's owner, or
    /// root) may rename or remove it.
    pub fn is_sticky(&self) -> bool {
        self.mode & 0o1000 != 0
    }
}

/// Whether a new file reaches stable storage before it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Not synced: a probe that lives for one round trip.
    NoSync,
    /// Synced where the file lives on another machine
    /// ([`LockFs::is_remote`]): a claim another host may see linked must
    /// survive a crash of the file server.
    IfRemote,
}

/// Every filesystem effect of the lock protocol. Implementations must never
/// follow a symbolic link at the final component of any path.
pub trait LockFs: Send + Sync {
    /// Creates `path` with O_CREAT|O_EXCL|O_NOFOLLOW, writes `data`, syncs it
    /// to stable storage as `durable` says, and returns its attributes as
    /// the create returned them: its mtime is file-system "now" (the
    /// create's stamp, or the write's), its size may predate the write.
    fn create_exclusive(&self, path: &Path, data: &[u8], durable: Durability) -> io::Result<Meta>;
    /// Whether files on device `dev` (found in `dir`) live on another
    /// machine: a claim must reach the server's disk before it is linked,
    /// and no local event tells of other hosts' changes. Answered without
    /// a round trip to that machine.
    fn is_remote(&self, dev: u64, dir: &Path) -> bool;
    /// link(2). Its result is advice only: NFS may report failure for a link
    /// that was made, so callers judge by [`LockFs::lstat`].
    fn hard_link(&self, existing: &Path, new: &Path) -> io::Result<()>;
    fn lstat(&self, path: &Path) -> io::Result<Meta>;
    /// Which file is at `path` (lstat with AT_STATX_DONT_SYNC): its device
    /// and inode are as fresh as the lookup of the name, as lstat's are,
    /// but its other attributes may come from the client's cache however
    /// old. For identity tests only (and a link count that, if low, is
    /// asked again by lstat); never for times. On a client whose cache
    /// expires at once (the NFS lab's, many FUSE filesystems'), lstat
    /// sends a GETATTR after the LOOKUP that just fetched the same
    /// attributes; this does not.
    fn identify(&self, path: &Path) -> io::Result<Meta>;
    /// The attributes of the directory `dir` as its server has them now,
    /// never a client's cached copy (statx with AT_STATX_FORCE_SYNC: one
    /// GETATTR on NFS). Its mtime and ctime move whenever a name in it is
    /// made, removed or renamed. A symlink at `dir` is followed, as every
    /// call on a name in it follows it.
    fn stat_dir_fresh(&self, dir: &Path) -> io::Result<Meta>;
    /// Opens without following links and without blocking on a fifo, and
    /// reads at most `limit` bytes. Content is `None` when the path is not a
    /// regular file.
    fn read(&self, path: &Path, limit: usize) -> io::Result<(Meta, Option<Vec<u8>>)>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// rename(2) that fails with EEXIST instead of replacing `to`
    /// (renameat2 RENAME_NOREPLACE). Local filesystems have it; NFS and
    /// most FUSE clients say EINVAL.
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn unlink(&self, path: &Path) -> io::Result<()>;
    /// Sets the mtime of `path` to the file system's own "now" (on NFS,
    /// SETATTR with SET_TO_SERVER_TIME), never to a client timestamp.
    fn touch_now(&self, path: &Path) -> io::Result<()>;
    /// Names in a directory; used only to find leftovers.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// mkdir(2), mode 0777 less the umask. For the readers' directory of
    /// a shared lock: its name is fresh, so EEXIST means it is not ours.
    fn make_dir(&self, path: &Path) -> io::Result<()>;
    /// rmdir(2). It fails unless the directory is empty: the one test of
    /// emptiness a file server makes atomically, with no listing and no
    /// cached negative lookup in it.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// The path to give inotify for `path`: one that resolves with as few
    /// lookups on the server as the other calls make (no I/O here).
    fn watch_path(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}
