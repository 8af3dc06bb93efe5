//! The production [`LockFs`] for one lock directory: every call on a name
//! in that directory goes through one descriptor of it (openat, linkat,
//! renameat, unlinkat, ...), and only paths elsewhere go by path (the
//! plain [`RealFs`]).
//!
//! Why: each call by path walks every component again, and a client that
//! revalidates names (the NFS lab's has no name cache at all; a kernel
//! client whose attribute cache has timed out is the same) pays a LOOKUP
//! per component per call; relative to the directory it pays one, for the
//! name itself. And all of a command's calls stay in one directory even
//! if someone renames or replaces a component of its path meanwhile.
//!
//! The directory is opened (O_PATH) at the first call, inside whatever
//! guards that call (the hang watchdog), not when the value is made. If it
//! cannot be opened, every call goes by path, as before, and reports the
//! errors it meets there. Made with [`AnchoredFs::where_remote`], it is
//! anchored only under a remote mount: on local disk a path walk costs no
//! round trip, and the open would be one more call per command.
//!
//! Of the file it made last (a claim) it keeps an O_PATH descriptor, and
//! links the claim by it (linkat of /proc/self/fd/N, AT_SYMLINK_FOLLOW:
//! linkat(2)'s own way to link an open file, no privilege needed): no
//! lookup of the claim's name, so a waiter's link that finds the lock
//! taken costs the NFS lab two RPCs instead of four, and it links the
//! inode it made even if someone put another file under the claim's name.
//! Its assumptions, kept in [`AnchoredFs::keep`] and
//! [`AnchoredFs::link_made`]: /proc is mounted (where it is not, the link
//! goes by name); the descriptor is O_PATH, whose close flushes nothing (a
//! FUSE flush waits for its daemon even in an exit); it is closed before
//! its name is unlinked (an NFS client renames a file still in use that it
//! is asked to remove, `.nfsXXXX`, and keeps it until the close).

use crate::fs::{Durability, LockFs, Meta};
use crate::realfs::{fill_new, libc_flags, meta_of, read_opened, RealFs};
use nix::fcntl::{openat, renameat, renameat2, OFlag, RenameFlags};
use nix::sys::stat::{mkdirat, utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The real filesystem, anchored at one directory.
#[derive(Debug)]
pub struct AnchoredFs {
    dir: PathBuf,
    fd: OnceLock<Option<OwnedFd>>,
    /// The file made last in the directory: its name, and an O_PATH
    /// descriptor of it.
    made: Mutex<Option<(OsString, Arc<OwnedFd>)>>,
    /// Where this process's descriptors are named (/proc/self/fd).
    proc_fd: &'static str,
}

impl AnchoredFs {
    pub fn new(dir: &Path) -> AnchoredFs {
        AnchoredFs {
            dir: dir.to_path_buf(),
            fd: OnceLock::new(),
            made: Mutex::new(None),
            proc_fd: "/proc/self/fd",
        }
    }

    /// Anchored at `dir` where it is under a remote mount (mountinfo, no
    /// call on the directory), else by path.
    pub fn where_remote(dir: &Path) -> AnchoredFs {
        AnchoredFs::if_remote(dir, crate::sys::under_remote_mount(dir))
    }

    /// Anchored at `dir` if `remote` (as the caller already knows), else
    /// by path.
    pub fn if_remote(dir: &Path, remote: bool) -> AnchoredFs {
        let fs = AnchoredFs::new(dir);
        if !remote {
            let _ = fs.fd.set(None);
        }
        fs
    }

    /// The directory's descriptor and the path relative to it, for a path
    /// directly in it or one level further down (a readers' epoch and
    /// what is in it): `name` or `sub/name`, plain names only. A walk
    /// from the descriptor looks up `sub` once per call, where a walk from
    /// the root looks up every component of the directory's path too.
    fn at<'p>(&self, path: &'p Path) -> Option<(&OwnedFd, &'p OsStr)> {
        use std::path::Component::Normal;
        let rel = path.strip_prefix(&self.dir).ok()?;
        let mut parts = rel.components();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Normal(_)), None, None) | (Some(Normal(_)), Some(Normal(_)), None) => {}
            _ => return None,
        }
        Some((self.anchor()?, rel.as_os_str()))
    }

    /// The directory's descriptor, opened at the first call that needs it.
    fn anchor(&self) -> Option<&OwnedFd> {
        self.fd
            .get_or_init(|| {
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                nix::fcntl::open(&self.dir, flags, Mode::empty()).ok()
            })
            .as_ref()
    }

    /// An O_PATH descriptor of the open file `f`, for `link_made`: opened
    /// through its magic link, so the client looks nothing up (FUSE asks
    /// its daemon nothing; an NFS client at most revalidates attributes).
    /// Not `f` itself, nor a dup of it: closing a file open for writing
    /// flushes it, and a FUSE flush waits for its daemon however the
    /// process ends, so a command the hang watchdog ends would hang in
    /// its exit while the server does not answer. An O_PATH descriptor
    /// closes without a word to anyone.
    fn keep(&self, f: &File) -> Option<OwnedFd> {
        use std::os::fd::AsRawFd;
        let magic = format!("{}/{}", self.proc_fd, f.as_raw_fd());
        let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        nix::fcntl::open(magic.as_str(), flags, Mode::empty()).ok()
    }

    /// The made file's descriptor, if `name` is what it was made as.
    fn made_as(&self, name: &OsStr) -> Option<Arc<OwnedFd>> {
        let made = self.made.lock().ok()?;
        made.as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
    }

    /// Closes the made file's descriptor if it is `name`'s: before that
    /// name is unlinked or renamed, so that the name and the descriptor
    /// never part.
    fn forget_made(&self, name: &OsStr) {
        if let Ok(mut made) = self.made.lock() {
            if made.as_ref().is_some_and(|(n, _)| n == name) {
                *made = None;
            }
        }
    }

    /// Links the file we made as `from` to `to` by its descriptor. `None`
    /// where that cannot tell: /proc is not mounted (the caller links by
    /// name), or it failed for another reason than a taken name or a
    /// file with no links left (ESTALE, where another host removed it:
    /// the name then tells). Unlike a link by name, a file with no links
    /// left reports ENOENT while the lock is free, but EEXIST while it is
    /// taken: a claim deleted under a waiter is found at its next refresh.
    fn link_made(&self, dir: &OwnedFd, from: &OsStr, to: &OsStr) -> Option<io::Result<()>> {
        use std::os::fd::AsRawFd;
        let file = self.made_as(from)?;
        let magic = format!("{}/{}", self.proc_fd, file.as_raw_fd());
        let flags = nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW;
        // An absolute path: the directory descriptor is not used for it.
        match linkat(dir, magic.as_str(), dir, to, flags) {
            Ok(()) => Some(Ok(())),
            Err(e) if e == nix::errno::Errno::EEXIST => Some(Err(e.into())),
            Err(e) if e == nix::errno::Errno::ENOENT => {
                // /proc there: the file has no links left. Else: no /proc.
                let proc_there = std::fs::symlink_metadata(&magic).is_ok();
                proc_there.then(|| Err(e.into()))
            }
            Err(_) => None,
        }
    }

    fn open_at(&self, fd: &OwnedFd, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<File> {
        let fd = openat(
            fd,
            name,
            flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(File::from(fd))
    }
}

impl LockFs for AnchoredFs {
    fn create_exclusive(&self, path: &Path, data: &[u8], durable: Durability) -> io::Result<Meta> {
        let Some((fd, name)) = self.at(path) else {
            return RealFs.create_exclusive(path, data, durable);
        };
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let f = self.open_at(fd, name, flags, 0o644)?;
        let kept = self.keep(&f);
        let made = fill_new(f, path, data, durable, &|| {
            let _ = unlinkat(fd, name, UnlinkatFlags::NoRemoveDir);
        })?;
        if let (Some(kept), Ok(mut slot)) = (kept, self.made.lock()) {
            *slot = Some((name.to_os_string(), Arc::new(kept)));
        }
        Ok(made)
    }

    fn is_remote(&self, dev: u64, dir: &Path) -> bool {
        RealFs.is_remote(dev, dir)
    }

    fn hard_link(&self, existing: &Path, new: &Path) -> io::Result<()> {
        match (self.at(existing), self.at(new)) {
            // Like link(2): a symlink at `existing` is not followed.
            (Some((fd, from)), Some((_, to))) => self
                .link_made(fd, from, to)
                .unwrap_or_else(|| Ok(linkat(fd, from, fd, to, nix::fcntl::AtFlags::empty())?)),
            _ => RealFs.hard_link(existing, new),
        }
    }

    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        let Some((fd, name)) = self.at(path) else {
            return RealFs.lstat(path);
        };
        // An O_PATH descriptor of the name itself (a symlink's own, with
        // O_NOFOLLOW), for std's statx-based attributes (birth time).
        let f = self.open_at(fd, name, OFlag::O_PATH, 0)?;
        Ok(meta_of(&f.metadata()?))
    }

    fn identify(&self, path: &Path) -> io::Result<Meta> {
        use std::os::fd::AsRawFd;
        match self.at(path) {
            Some((fd, name)) => crate::realfs::statx_as_looked_up(fd.as_raw_fd(), Path::new(name)),
            None => RealFs.identify(path),
        }
    }

    fn stat_dir_fresh(&self, dir: &Path) -> io::Result<Meta> {
        use std::os::fd::AsRawFd;
        match self.anchor().filter(|_| dir == self.dir) {
            Some(fd) => crate::realfs::statx_fresh(fd.as_raw_fd(), Path::new(""), false),
            None => RealFs.stat_dir_fresh(dir),
        }
    }

    fn read(&self, path: &Path, limit: usize) -> io::Result<(Meta, Option<Vec<u8>>)> {
        let Some((fd, name)) = self.at(path) else {
            return RealFs.read(path, limit);
        };
        let flags = OFlag::O_RDONLY | OFlag::from_bits_truncate(libc_flags::O_NONBLOCK);
        let opened = self.open_at(fd, name, flags, 0);
        read_opened(opened, limit, &|| self.lstat(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match (self.at(from), self.at(to)) {
            (Some((fd, a)), Some((_, b))) => {
                self.forget_made(a);
                Ok(renameat(fd, a, fd, b)?)
            }
            _ => RealFs.rename(from, to),
        }
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        match (self.at(from), self.at(to)) {
            (Some((fd, a)), Some((_, b))) => {
                self.forget_made(a);
                Ok(renameat2(fd, a, fd, b, RenameFlags::RENAME_NOREPLACE)?)
            }
            _ => RealFs.rename_noreplace(from, to),
        }
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        match self.at(path) {
            Some((fd, name)) => {
                self.forget_made(name);
                Ok(unlinkat(fd, name, UnlinkatFlags::NoRemoveDir)?)
            }
            None => RealFs.unlink(path),
        }
    }

    fn touch_now(&self, path: &Path) -> io::Result<()> {
        let Some((fd, name)) = self.at(path) else {
            return RealFs.touch_now(path);
        };
        let now = TimeSpec::UTIME_NOW;
        Ok(utimensat(
            fd,
            name,
            &now,
            &now,
            UtimensatFlags::NoFollowSymlink,
        )?)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let anchored = self.at(dir).or_else(|| {
            let fd = self.anchor().filter(|_| dir == self.dir)?;
            Some((fd, OsStr::new(".")))
        });
        let Some((fd, rel)) = anchored else {
            return RealFs.list(dir);
        };
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        crate::realfs::names_in(&openat(fd, rel, flags, Mode::empty())?)
    }

    fn make_dir(&self, path: &Path) -> io::Result<()> {
        match self.at(path) {
            Some((fd, name)) => Ok(mkdirat(fd, name, Mode::from_bits_truncate(0o777))?),
            None => RealFs.make_dir(path),
        }
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        match self.at(path) {
            Some((fd, name)) => Ok(unlinkat(fd, name, UnlinkatFlags::RemoveDir)?),
            None => RealFs.remove_dir(path),
        }
    }

    /// Through the directory's descriptor (its /proc/self/fd link, which
    /// the kernel resolves without asking the server), so a watch costs
    /// the lookup of the name alone, not of every component of the path.
    /// Only once the directory is open: this call opens nothing.
    fn watch_path(&self, path: &Path) -> PathBuf {
        let opened = self.fd.get().and_then(Option::as_ref);
        match (opened, path.file_name()) {
            (Some(fd), Some(name)) if path.parent() == Some(self.dir.as_path()) => {
                Path::new(self.proc_fd)
                    .join(std::os::fd::AsRawFd::as_raw_fd(fd).to_string())
                    .join(name)
            }
            _ => path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory `locks` inside a temporary one (kept alive by
    /// the first half), so a test may rename it away or plant beside it.
    fn locks_dir() -> (tempfile::TempDir, PathBuf) {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("locks");
        std::fs::create_dir(&dir).unwrap();
        (top, dir)
    }

    /// An anchored filesystem that made `claim` (and, if `sub`, that
    /// subdirectory) in `locks`, whose path then names a new, empty
    /// directory: the first one is at `moved`.
    fn anchored_then_moved(sub: Option<&str>) -> (tempfile::TempDir, PathBuf, AnchoredFs) {
        let (top, dir) = locks_dir();
        let fs = AnchoredFs::new(&dir);
        fs.create_exclusive(&dir.join("claim"), b"record", Durability::NoSync)
            .unwrap();
        if let Some(sub) = sub {
            fs.make_dir(&dir.join(sub)).unwrap();
        }
        std::fs::rename(&dir, top.path().join("moved")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        (top, dir, fs)
    }

    /// A watch goes through the directory's descriptor too, once it is
    /// open: the path names the file in the directory first opened, and
    /// before any call, or for a path elsewhere, it is the path itself.
    #[test]
    fn a_watch_path_goes_through_the_descriptor_once_open() {
        let (top, dir) = locks_dir();
        let fs = AnchoredFs::new(&dir);
        let claim = dir.join("claim");
        assert_eq!(fs.watch_path(&claim), claim);
        fs.create_exclusive(&claim, b"record", Durability::NoSync)
            .unwrap();
        let watched = fs.watch_path(&claim);
        assert!(watched.starts_with("/proc/self/fd"), "{watched:?}");
        std::fs::rename(&dir, top.path().join("moved")).unwrap();
        let m = std::fs::symlink_metadata(&watched).unwrap();
        let made = std::fs::symlink_metadata(top.path().join("moved/claim")).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&m),
            std::os::unix::fs::MetadataExt::ino(&made)
        );
        let elsewhere = top.path().join("other");
        assert_eq!(fs.watch_path(&elsewhere), elsewhere);
    }

    /// Calls on names in the directory go through the descriptor: they
    /// stay in the directory first opened even after its path names
    /// another (renamed away, a new one made in its place); paths
    /// elsewhere go by path.
    #[test]
    fn names_in_the_directory_stay_in_the_directory_first_opened() {
        let (top, dir, fs) = anchored_then_moved(None);
        let claim = dir.join("claim");
        fs.hard_link(&claim, &dir.join("lock")).unwrap();
        let m = fs.lstat(&dir.join("lock")).unwrap();
        assert_eq!(m.nlink, 2);
        let id = fs.identify(&dir.join("lock")).unwrap();
        assert_eq!((id.dev, id.ino, id.nlink), (m.dev, m.ino, 2));
        let (_, bytes) = fs.read(&dir.join("lock"), 100).unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"record"[..]));
        let mut names = fs.list(&dir).unwrap();
        names.sort();
        assert_eq!(names, ["claim", "lock"]);
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
        fs.rename(&dir.join("lock"), &dir.join("aside")).unwrap();
        fs.touch_now(&dir.join("aside")).unwrap();
        fs.unlink(&dir.join("aside")).unwrap();
        fs.make_dir(&dir.join("sub")).unwrap();
        fs.remove_dir(&dir.join("sub")).unwrap();
        assert_eq!(fs.list(&dir).unwrap(), ["claim"]);
        // Elsewhere: by path.
        let other = top.path().join("other");
        fs.create_exclusive(&other, b"x", Durability::NoSync)
            .unwrap();
        assert!(other.exists());
    }

    /// Names one level down (a readers' epoch and its members) go through
    /// the descriptor too: after the directory's path names another, a
    /// link into the subdirectory, a listing of it, a read and an unlink
    /// of what is in it all act in the directory first opened. Two levels
    /// down, or `..`, go by path.
    #[test]
    fn names_one_level_down_stay_in_the_directory_first_opened() {
        let (top, dir, fs) = anchored_then_moved(Some("epoch"));
        let claim = dir.join("claim");
        std::fs::create_dir(dir.join("epoch")).unwrap();
        let member = dir.join("epoch").join("claim");
        fs.hard_link(&claim, &member).unwrap();
        assert_eq!(fs.list(&dir.join("epoch")).unwrap(), ["claim"]);
        assert_eq!(fs.lstat(&member).unwrap().nlink, 2);
        let (_, bytes) = fs.read(&member, 100).unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"record"[..]));
        assert!(std::fs::read_dir(dir.join("epoch"))
            .unwrap()
            .next()
            .is_none());
        fs.unlink(&member).unwrap();
        assert!(fs.list(&dir.join("epoch")).unwrap().is_empty());
        let moved = top.path().join("moved");
        assert!(std::fs::read_dir(moved.join("epoch"))
            .unwrap()
            .next()
            .is_none());
        // Deeper, or up and out: by path.
        std::fs::create_dir_all(dir.join("epoch/seal")).unwrap();
        let deep = dir.join("epoch/seal/x");
        fs.create_exclusive(&deep, b"x", Durability::NoSync)
            .unwrap();
        assert!(deep.exists());
        let up = dir.join("epoch/../up");
        fs.create_exclusive(&up, b"x", Durability::NoSync).unwrap();
        assert!(dir.join("up").exists());
        assert!(!moved.join("up").exists());
    }

    /// A directory that cannot be opened leaves every call going by path,
    /// with the errors found there.
    #[test]
    fn a_directory_that_cannot_be_opened_goes_by_path() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("not-yet");
        let fs = AnchoredFs::new(&dir);
        let e = fs.lstat(&dir.join("lock")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        std::fs::create_dir(&dir).unwrap();
        fs.create_exclusive(&dir.join("lock"), b"x", Durability::NoSync)
            .unwrap();
        assert_eq!(fs.list(&dir).unwrap(), ["lock"]);
    }

    /// A symlink at a name is reported, never followed: not by lstat or
    /// identify, not by read, not by a touch.
    #[test]
    fn a_symlink_at_a_name_is_not_followed() {
        let (top, dir) = locks_dir();
        let target = top.path().join("data");
        std::fs::write(&target, b"precious").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("lock")).unwrap();
        let fs = AnchoredFs::new(&dir);
        let m = fs.lstat(&dir.join("lock")).unwrap();
        assert_eq!(m.kind, crate::fs::Kind::Symlink);
        assert_eq!(fs.identify(&dir.join("lock")).unwrap(), m);
        let (m, bytes) = fs.read(&dir.join("lock"), 100).unwrap();
        assert_eq!((m.kind, bytes), (crate::fs::Kind::Symlink, None));
        let before = std::fs::metadata(&target).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _ = fs.touch_now(&dir.join("lock"));
        assert_eq!(
            std::fs::metadata(&target).unwrap().modified().unwrap(),
            before
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    /// The file made last is linked by its descriptor: what is linked is
    /// the inode made, even after another file was put under its name,
    /// and a made file deleted since is never stood in for by whatever
    /// now has its name. Unlinked by us, it goes by name again.
    #[test]
    fn the_file_made_is_linked_by_its_descriptor_not_by_its_name() {
        let (_top, dir) = locks_dir();
        let fs = AnchoredFs::new(&dir);
        let (claim, lock) = (dir.join("claim"), dir.join("lock"));
        let made = fs
            .create_exclusive(&claim, b"ours", Durability::NoSync)
            .unwrap();
        // O_PATH: its close (at exit, too) flushes nothing.
        let kept = fs.made_as(OsStr::new("claim")).expect("kept");
        let fl = nix::fcntl::fcntl(&*kept, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_ne!(fl & nix::libc::O_PATH, 0, "flags {fl:o}");
        drop(kept);
        std::fs::rename(&claim, dir.join("aside")).unwrap();
        std::fs::write(&claim, b"theirs").unwrap();
        fs.hard_link(&claim, &lock).unwrap();
        assert!(fs.lstat(&lock).unwrap().same_file(&made));
        assert_eq!(std::fs::read(&lock).unwrap(), b"ours");
        std::fs::remove_file(&lock).unwrap();

        fs.create_exclusive(&dir.join("c2"), b"ours", Durability::NoSync)
            .unwrap();
        std::fs::remove_file(dir.join("c2")).unwrap();
        std::fs::write(dir.join("c2"), b"theirs").unwrap();
        let e = fs.hard_link(&dir.join("c2"), &lock).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!lock.exists());
        std::fs::write(&lock, b"held").unwrap();
        let e = fs.hard_link(&dir.join("c2"), &lock).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        std::fs::remove_file(&lock).unwrap();

        // Ours to unlink: the descriptor goes with the name.
        fs.create_exclusive(&dir.join("c3"), b"x", Durability::NoSync)
            .unwrap();
        fs.unlink(&dir.join("c3")).unwrap();
        assert!(fs.made_as(OsStr::new("c3")).is_none());
        std::fs::write(dir.join("c3"), b"new").unwrap();
        fs.hard_link(&dir.join("c3"), &lock).unwrap();
        assert_eq!(std::fs::read(&lock).unwrap(), b"new");
    }

    /// Without /proc the link goes by name, as it always did.
    #[test]
    fn without_proc_the_link_goes_by_name() {
        let (_top, dir) = locks_dir();
        let mut fs = AnchoredFs::new(&dir);
        fs.proc_fd = "/nonexistent/fd";
        let claim = dir.join("claim");
        fs.create_exclusive(&claim, b"ours", Durability::NoSync)
            .unwrap();
        std::fs::rename(&claim, dir.join("aside")).unwrap();
        std::fs::write(&claim, b"theirs").unwrap();
        fs.hard_link(&claim, &dir.join("lock")).unwrap();
        assert_eq!(std::fs::read(dir.join("lock")).unwrap(), b"theirs");
    }
}
