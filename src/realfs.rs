//! The production [`LockFs`]: plain POSIX calls through std and nix, with
//! O_NOFOLLOW everywhere a lock path is opened.

use crate::fs::Durability;
use crate::fs::{FsTime, Kind, LockFs, Meta};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// The kind of file an `st_mode` (or `stx_mode`) names.
fn kind_of(mode: u32) -> Kind {
    use nix::libc;
    match mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFIFO => Kind::Fifo,
        libc::S_IFSOCK => Kind::Socket,
        _ => Kind::Device,
    }
}

pub(crate) fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        dev: m.dev(),
        ino: m.ino(),
        nlink: m.nlink(),
        size: m.size(),
        uid: m.uid(),
        mode: m.mode() & 0o7777,
        kind: kind_of(m.mode()),
        mtime: FsTime::from_parts(m.mtime(), m.mtime_nsec()),
        ctime: FsTime::from_parts(m.ctime(), m.ctime_nsec()),
        born: m
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| FsTime(d.as_nanos() as i128)),
    }
}

/// statx(2) of `path` relative to `dirfd` (the descriptor itself with an
/// empty path), with AT_STATX_FORCE_SYNC: a network filesystem asks its
/// server instead of answering from its attribute cache, which std's
/// metadata calls cannot ask for. A symlink at `path` is followed only
/// if `follow`.
pub(crate) fn statx_fresh(
    dirfd: std::os::fd::RawFd,
    path: &Path,
    follow: bool,
) -> io::Result<Meta> {
    use nix::libc;
    let mut flags = libc::AT_STATX_FORCE_SYNC;
    if !follow {
        flags |= libc::AT_SYMLINK_NOFOLLOW;
    }
    statx_with(dirfd, path, flags)
}

/// The attributes of a file just opened (or made), as the open left them:
/// an open revalidates them on a network filesystem (NFS close-to-open, a
/// FUSE client's permission check) and a create returns them, so asking
/// again, as fstat does on a client whose attribute cache times out at
/// once (the NFS lab's, many FUSE filesystems'), is a second GETATTR for
/// the same answer. AT_STATX_DONT_SYNC takes them from the inode; local
/// filesystems always answer from it anyway.
fn statx_as_opened(f: &File) -> io::Result<Meta> {
    use std::os::fd::AsRawFd;
    statx_with(f.as_raw_fd(), Path::new(""), nix::libc::AT_STATX_DONT_SYNC)
}

/// The attributes of `path` (relative to `dirfd`, not followed) as the
/// lookup of its name left them: see [`LockFs::identify`].
pub(crate) fn statx_as_looked_up(dirfd: std::os::fd::RawFd, path: &Path) -> io::Result<Meta> {
    use nix::libc;
    statx_with(
        dirfd,
        path,
        libc::AT_STATX_DONT_SYNC | libc::AT_SYMLINK_NOFOLLOW,
    )
}

fn statx_with(dirfd: std::os::fd::RawFd, path: &Path, mut flags: i32) -> io::Result<Meta> {
    use nix::libc;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    let mut x = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: a valid C string and a buffer of the size statx fills.
    let r = unsafe {
        libc::statx(
            dirfd,
            c.as_ptr(),
            flags,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            x.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statx succeeded, so it filled the buffer.
    let x = unsafe { x.assume_init() };
    let time = |t: libc::statx_timestamp| FsTime::from_parts(t.tv_sec, i64::from(t.tv_nsec));
    Ok(Meta {
        dev: libc::makedev(x.stx_dev_major, x.stx_dev_minor),
        ino: x.stx_ino,
        nlink: u64::from(x.stx_nlink),
        size: x.stx_size,
        uid: x.stx_uid,
        mode: u32::from(x.stx_mode) & 0o7777,
        kind: kind_of(u32::from(x.stx_mode)),
        mtime: time(x.stx_mtime),
        ctime: time(x.stx_ctime),
        born: (x.stx_mask & libc::STATX_BTIME != 0).then(|| time(x.stx_btime)),
    })
}

/// The names in the directory open at `dir` (from its start; `.` and `..`
/// left out), read with getdents64(2) itself. Every libc way to list (a
/// `DIR` stream) begins with fdopendir, which fstats the descriptor to
/// check it is a directory and size its buffer: one more GETATTR on a
/// client whose attribute cache expires at once, at every listing, for
/// what the open's O_DIRECTORY has checked already. The records' layout is
/// the kernel's ABI (`struct linux_dirent64`): inode (8 bytes), offset (8),
/// record length (2), type (1), then the name up to a NUL.
pub(crate) fn names_in(dir: &std::os::fd::OwnedFd) -> io::Result<Vec<OsString>> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStringExt;
    const NAME_AT: usize = 19;
    let mut buf = vec![0u8; 32 * 1024];
    let mut names = Vec::new();
    loop {
        // SAFETY: the buffer is valid for writes of its length, which the
        // kernel never exceeds.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        // An error, EINTR included, goes to the caller, whose retries
        // pause and keep to the deadline (`Ctx::retrying`).
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(names);
        }
        let filled = &buf[..n as usize];
        let mut at = 0;
        while at + NAME_AT <= filled.len() {
            let len = usize::from(u16::from_ne_bytes([filled[at + 16], filled[at + 17]]));
            let Some(record) = filled.get(at..at + len).filter(|_| len > NAME_AT) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "getdents64 returned a malformed record",
                ));
            };
            let name = &record[NAME_AT..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
            at += len;
        }
    }
}

/// Reads at most `limit` bytes of a file whose size was `size` when opened,
/// in one read(2) where it still has that size: asking for one byte more
/// than it holds, a short read is the end of the file (no signal can cut
/// it short: ours are blocked or not handled). `read_to_end` would ask
/// again and read nothing, one more READ round trip on NFS for each lock
/// read.
fn read_small(mut f: &File, size: u64, limit: usize) -> io::Result<Vec<u8>> {
    let want = usize::try_from(size.saturating_add(1)).map_or(limit, |s| s.min(limit));
    let mut buf = vec![0u8; want];
    let mut got = 0;
    loop {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if got < buf.len() {
            // Short of what was asked, with all it held when opened: the
            // end of the file. Short before that: read on.
            if got as u64 >= size {
                break;
            }
        } else if buf.len() < limit {
            // Full: it grew since it was opened; read on up to the limit.
            buf.resize(limit, 0);
        } else {
            break;
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Writes a new file's data and makes it what a claim must be: readable
/// by others whatever the umask, on stable storage where `durable` says.
/// A file that could not be filled is useless and would be litter:
/// `remove` takes it away.
pub(crate) fn fill_new(
    mut f: File,
    path: &Path,
    data: &[u8],
    durable: Durability,
    remove: &dyn Fn(),
) -> io::Result<Meta> {
    // The new file's own attributes tell which filesystem it is on: no
    // statfs of the directory, a round trip on NFS. As the create left
    // them (see `statx_as_opened`): the write may have moved the mtime on
    // since (a server's stamp either way) and the size, which nothing
    // reads from a claim's attributes.
    let written = f
        .write_all(data)
        .and_then(|()| statx_as_opened(&f))
        .and_then(|mut meta| {
            // Others must read a record to judge it, whatever our umask
            // (077 would make our locks unbreakable to a team); one more
            // SETATTR, only when the umask took a read bit away.
            if meta.mode & 0o644 != 0o644 {
                f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
                meta.mode = 0o644;
            }
            let dir = path.parent().unwrap_or(Path::new("."));
            let remote = || crate::sys::is_remote_dev(meta.dev, dir, Some(f.as_fd()));
            let sync = match durable {
                Durability::NoSync => false,
                Durability::IfRemote => remote(),
            };
            if sync {
                f.sync_all()?;
            }
            Ok(meta)
        });
    if written.is_err() {
        drop(f);
        remove();
    }
    written
}

/// What a read of a lock name finds, from its open (O_NOFOLLOW,
/// O_NONBLOCK): the attributes, and the content of a regular file up to
/// `limit`; for a symlink, socket or device, what `lstat` says is there,
/// without touching it.
pub(crate) fn read_opened(
    opened: io::Result<File>,
    limit: usize,
    lstat: &dyn Fn() -> io::Result<Meta>,
) -> io::Result<(Meta, Option<Vec<u8>>)> {
    let f: File = match opened {
        Ok(f) => f,
        // ELOOP: a symlink at the final component. Report what is there
        // without touching the target.
        Err(e) if e.raw_os_error() == Some(libc_flags::ELOOP) => return Ok((lstat()?, None)),
        // A socket cannot be opened; a device may refuse. Describe it.
        Err(e) if e.raw_os_error() == Some(libc_flags::ENXIO) => return Ok((lstat()?, None)),
        Err(e) => return Err(e),
    };
    let meta = statx_as_opened(&f)?;
    if meta.kind != Kind::File {
        return Ok((meta, None));
    }
    Ok((meta, Some(read_small(&f, meta.size, limit)?)))
}

impl LockFs for RealFs {
    /// Files are created 0644 whatever the umask: see [`fill_new`].
    fn create_exclusive(&self, path: &Path, data: &[u8], durable: Durability) -> io::Result<Meta> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc_flags::O_NOFOLLOW)
            .open(path)?;
        fill_new(f, path, data, durable, &|| {
            let _ = std::fs::remove_file(path);
        })
    }

    fn is_remote(&self, dev: u64, dir: &Path) -> bool {
        crate::sys::is_remote_dev(dev, dir, None)
    }

    fn hard_link(&self, existing: &Path, new: &Path) -> io::Result<()> {
        // std::fs::hard_link uses linkat(..., 0): it does not follow a
        // symlink at `existing`, and link(2) never follows one at `new`.
        std::fs::hard_link(existing, new)
    }

    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        Ok(meta_of(&std::fs::symlink_metadata(path)?))
    }

    fn identify(&self, path: &Path) -> io::Result<Meta> {
        statx_as_looked_up(nix::libc::AT_FDCWD, path)
    }

    fn stat_dir_fresh(&self, dir: &Path) -> io::Result<Meta> {
        // Followed, as every call through the directory follows it.
        statx_fresh(nix::libc::AT_FDCWD, dir, true)
    }

    fn read(&self, path: &Path, limit: usize) -> io::Result<(Meta, Option<Vec<u8>>)> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_NONBLOCK)
            .open(path);
        read_opened(opened, limit, &|| self.lstat(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE)
            .map_err(io::Error::from)
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn touch_now(&self, path: &Path) -> io::Result<()> {
        // UTIME_NOW lets the file system stamp its own time; on NFS the
        // client sends SET_TO_SERVER_TIME instead of its local clock.
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &TimeSpec::UTIME_NOW,
            &TimeSpec::UTIME_NOW,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io::Error::from)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn make_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
}

/// The few libc constants std does not name.
pub(crate) mod libc_flags {
    pub use nix::libc::{ELOOP, ENXIO, O_NOFOLLOW, O_NONBLOCK};
}

#[cfg(test)]
mod read_tests {
    use super::*;

    /// Whole files up to the limit, a file that grew since it was opened
    /// read on, and never more than the limit.
    #[test]
    fn reads_what_the_file_holds_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let (_, got) = RealFs.read(&p, 4096).unwrap();
        assert_eq!(got.unwrap(), b"0123456789");
        assert_eq!(RealFs.read(&p, 4).unwrap().1.unwrap(), b"0123");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(RealFs.read(&p, 4096).unwrap().1.unwrap(), b"");
        // Opened at 10 bytes, 100 by the time it is read.
        std::fs::write(&p, b"0123456789").unwrap();
        let f = File::open(&p).unwrap();
        std::fs::write(&p, [b'x'; 100]).unwrap();
        assert_eq!(read_small(&f, 10, 4096).unwrap(), [b'x'; 100]);
        let f = File::open(&p).unwrap();
        assert_eq!(read_small(&f, 10, 50).unwrap(), [b'x'; 50]);
    }

    /// A fresh stat says what lstat says, of a directory by path or by
    /// its descriptor; of a symlink, only where asked to, its target's.
    #[test]
    fn a_fresh_stat_agrees_with_lstat_and_follows_where_asked() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let by_path = RealFs.stat_dir_fresh(dir.path()).unwrap();
        assert_eq!(by_path, RealFs.lstat(dir.path()).unwrap());
        assert_eq!(by_path.kind, Kind::Dir);
        let d = File::open(dir.path()).unwrap();
        let fd = d.as_raw_fd();
        assert_eq!(statx_fresh(fd, Path::new(""), false).unwrap(), by_path);
        let link = dir.path().join("s");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let m = statx_fresh(nix::libc::AT_FDCWD, &link, false).unwrap();
        assert_eq!(
            (m.kind, m.ino),
            (Kind::Symlink, RealFs.lstat(&link).unwrap().ino)
        );
        // The lock's directory reached by a symlink: the directory's.
        let m = RealFs.stat_dir_fresh(&link).unwrap();
        assert_eq!((m.kind, m.ino), (Kind::Dir, by_path.ino));
    }

    /// getdents64 read by hand lists what std lists: every name, across
    /// more than one buffer (3000 names of 40-odd bytes), odd ones too,
    /// never `.` or `..`.
    #[test]
    fn names_in_lists_what_read_dir_lists() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3000 {
            std::fs::write(dir.path().join(format!("{i:0>40}")), b"").unwrap();
        }
        let odd = std::ffi::OsStr::from_bytes(b"\xff\x01 .x\n");
        std::fs::write(dir.path().join(odd), b"").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let fd: std::os::fd::OwnedFd = File::open(dir.path()).unwrap().into();
        let mut got = names_in(&fd).unwrap();
        let mut want: Vec<OsString> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got.len(), 3002);
        assert_eq!(got, want);
        // A descriptor that is not a directory's: the kernel's error.
        let f: std::os::fd::OwnedFd = File::open(dir.path().join("sub/..").join(odd))
            .unwrap()
            .into();
        assert!(names_in(&f).is_err());
    }

    /// identify names the file at the name, as lstat does: a symlink
    /// itself, not its target; nothing where nothing is.
    #[test]
    fn identify_agrees_with_lstat_and_never_follows() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let link = dir.path().join("s");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        for p in [&f, &link] {
            assert_eq!(RealFs.identify(p).unwrap(), RealFs.lstat(p).unwrap());
        }
        assert_eq!(RealFs.identify(&link).unwrap().kind, Kind::Symlink);
        let e = RealFs.identify(&dir.path().join("none")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
