//! The simulated server's directory: inodes with link counts, a name table,
//! and mtimes stamped by the server's clock. POSIX semantics for create,
//! link, rename, unlink, mkdir and rmdir, and nothing else: faults, caches
//! and clients live in the layers above.
//!
//! Subdirectories (a shared lock's readers' directory and the seals in it)
//! live in the same name table under `dir/name` keys: a name's parent must
//! be a directory, and a directory goes only when no key lies under it.

use crate::fs::{FsTime, Kind, Meta};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// Errno-carrying errors, as a kernel client would report them.
pub fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

#[derive(Clone, Debug)]
pub struct Inode {
    pub nlink: u64,
    pub data: Vec<u8>,
    pub mtime: FsTime,
    pub ctime: FsTime,
    /// The simulated client that created it (the oracle's notion of owner).
    pub creator: usize,
    pub dir: bool,
}

/// One directory, flat: the protocol never needs more.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    pub inodes: BTreeMap<u64, Inode>,
    pub names: BTreeMap<OsString, u64>,
    next_ino: u64,
    /// The top directory's mtime and ctime: the last change of a name in
    /// it (a quiet waiter polls them, `quiet`).
    top_changed: FsTime,
}

pub const DEV: u64 = 42;
pub const DIR_INO: u64 = 1;

impl MemFs {
    pub fn new() -> MemFs {
        MemFs {
            next_ino: 100,
            ..MemFs::default()
        }
    }

    pub fn meta_of(&self, ino: u64) -> Meta {
        let i = &self.inodes[&ino];
        Meta {
            dev: DEV,
            ino,
            nlink: i.nlink,
            size: i.data.len() as u64,
            uid: nix::unistd::getuid().as_raw(),
            mode: if i.dir { 0o755 } else { 0o644 },
            kind: if i.dir { Kind::Dir } else { Kind::File },
            mtime: i.mtime,
            ctime: i.ctime,
            // NFSv3 keeps no birth time: the queue orders by ctime.
            born: None,
        }
    }

    fn dir_meta(now: FsTime) -> Meta {
        Meta {
            dev: DEV,
            ino: DIR_INO,
            nlink: 2,
            size: 4096,
            uid: 0,
            mode: 0o755,
            kind: Kind::Dir,
            mtime: now,
            ctime: now,
            born: None,
        }
    }

    /// The top directory's attributes, times as its names last changed.
    pub fn top_meta(&self) -> Meta {
        MemFs::dir_meta(self.top_changed)
    }

    pub fn lookup(&self, name: &OsStr) -> io::Result<u64> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| errno(nix::errno::Errno::ENOENT))
    }

    /// The key of `name`'s parent directory, if it is in a subdirectory.
    pub fn parent(name: &OsStr) -> Option<&OsStr> {
        let b = name.as_bytes();
        let cut = b.iter().rposition(|&c| c == b'/')?;
        Some(OsStr::from_bytes(&b[..cut]))
    }

    /// A new entry `name` needs its parent directory; the parent's times
    /// move on, as a server's do.
    fn enter(&mut self, name: &OsStr, now: FsTime) -> io::Result<()> {
        if self.names.contains_key(name) {
            return Err(errno(nix::errno::Errno::EEXIST));
        }
        self.touch_parent(name, now)
    }

    fn touch_parent(&mut self, name: &OsStr, now: FsTime) -> io::Result<()> {
        let Some(p) = Self::parent(name) else {
            self.top_changed = now;
            return Ok(());
        };
        let ino = self.lookup(p)?;
        let d = self.inodes.get_mut(&ino).expect("named inode exists");
        if !d.dir {
            return Err(errno(nix::errno::Errno::ENOTDIR));
        }
        d.mtime = now;
        d.ctime = now;
        Ok(())
    }

    fn new_inode(&mut self, data: &[u8], now: FsTime, creator: usize, dir: bool) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                nlink: if dir { 2 } else { 1 },
                data: data.to_vec(),
                mtime: now,
                ctime: now,
                creator,
                dir,
            },
        );
        ino
    }

    pub fn create(
        &mut self,
        name: &OsStr,
        data: &[u8],
        now: FsTime,
        creator: usize,
    ) -> io::Result<Meta> {
        self.enter(name, now)?;
        let ino = self.new_inode(data, now, creator, false);
        self.names.insert(name.to_owned(), ino);
        Ok(self.meta_of(ino))
    }

    pub fn mkdir(&mut self, name: &OsStr, now: FsTime, creator: usize) -> io::Result<()> {
        self.enter(name, now)?;
        let ino = self.new_inode(b"", now, creator, true);
        self.names.insert(name.to_owned(), ino);
        if let Some(p) = Self::parent(name) {
            let parent = self.lookup(p)?;
            self.inodes.get_mut(&parent).expect("parent exists").nlink += 1;
        }
        Ok(())
    }

    /// Whether any name lies under the directory key `name`.
    pub fn has_entries(&self, name: &OsStr) -> bool {
        !self.entries(name).is_empty()
    }

    /// The entries of the directory key `name`, as names relative to it.
    pub fn entries(&self, name: &OsStr) -> Vec<OsString> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(b'/');
        self.names
            .keys()
            .filter_map(|k| k.as_bytes().strip_prefix(prefix.as_slice()))
            .filter(|rest| !rest.contains(&b'/'))
            .map(|rest| OsStr::from_bytes(rest).to_owned())
            .collect()
    }

    /// The names of the top directory.
    pub fn top(&self) -> Vec<OsString> {
        self.names
            .keys()
            .filter(|k| Self::parent(k).is_none())
            .cloned()
            .collect()
    }

    pub fn rmdir(&mut self, name: &OsStr, now: FsTime) -> io::Result<()> {
        let ino = self.lookup(name)?;
        if !self.inodes[&ino].dir {
            return Err(errno(nix::errno::Errno::ENOTDIR));
        }
        if self.has_entries(name) {
            return Err(errno(nix::errno::Errno::ENOTEMPTY));
        }
        self.touch_parent(name, now)?;
        if let Some(p) = Self::parent(name) {
            let parent = self.lookup(p)?;
            self.inodes.get_mut(&parent).expect("parent exists").nlink -= 1;
        }
        self.names.remove(name);
        self.inodes.remove(&ino);
        Ok(())
    }

    fn file(&self, name: &OsStr) -> io::Result<u64> {
        let ino = self.lookup(name)?;
        if self.inodes[&ino].dir {
            return Err(errno(nix::errno::Errno::EISDIR));
        }
        Ok(ino)
    }

    pub fn link(&mut self, from: &OsStr, to: &OsStr, now: FsTime) -> io::Result<()> {
        let ino = self.lookup(from)?;
        self.link_inode(ino, to, now)
    }

    /// link(2) of an open file (/proc/self/fd/N): the inode, whatever its
    /// names are now. A taken name is seen before a file with no links
    /// left (EEXIST before ENOENT), as Linux checks them.
    pub fn link_inode(&mut self, ino: u64, to: &OsStr, now: FsTime) -> io::Result<()> {
        if !self.inodes.contains_key(&ino) {
            return Err(errno(if self.names.contains_key(to) {
                nix::errno::Errno::EEXIST
            } else {
                nix::errno::Errno::ENOENT
            }));
        }
        if self.inodes[&ino].dir {
            return Err(errno(nix::errno::Errno::EPERM));
        }
        self.enter(to, now)?;
        self.names.insert(to.to_owned(), ino);
        let i = self.inodes.get_mut(&ino).expect("named inode exists");
        i.nlink += 1;
        i.ctime = now;
        Ok(())
    }

    fn drop_link(&mut self, ino: u64) {
        let i = self.inodes.get_mut(&ino).expect("named inode exists");
        i.nlink -= 1;
        if i.nlink == 0 {
            self.inodes.remove(&ino);
        }
    }

    pub fn unlink(&mut self, name: &OsStr, now: FsTime) -> io::Result<()> {
        let ino = self.file(name)?;
        self.touch_parent(name, now)?;
        self.names.remove(name);
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.ctime = now;
        }
        self.drop_link(ino);
        Ok(())
    }

    /// rename(2): replaces the target; two names of one inode stay as they
    /// are (POSIX says so, and it is a trap for removal protocols).
    pub fn rename(&mut self, from: &OsStr, to: &OsStr, now: FsTime) -> io::Result<()> {
        // The protocol renames only files within one directory.
        let ino = self.file(from)?;
        if Self::parent(from) != Self::parent(to) {
            return Err(errno(nix::errno::Errno::EXDEV));
        }
        if self.names.get(to).is_some_and(|i| self.inodes[i].dir) {
            return Err(errno(nix::errno::Errno::EISDIR));
        }
        self.touch_parent(to, now)?;
        match self.names.get(to).copied() {
            Some(old) if old == ino => return Ok(()),
            Some(old) => self.drop_link(old),
            None => {}
        }
        self.names.remove(from);
        self.names.insert(to.to_owned(), ino);
        self.inodes.get_mut(&ino).expect("named inode exists").ctime = now;
        Ok(())
    }

    pub fn touch(&mut self, name: &OsStr, now: FsTime) -> io::Result<()> {
        let ino = self.lookup(name)?;
        let i = self.inodes.get_mut(&ino).expect("named inode exists");
        i.mtime = now;
        i.ctime = now;
        Ok(())
    }

    pub fn read(&self, name: &OsStr, limit: usize) -> io::Result<(Meta, Vec<u8>)> {
        let ino = self.file(name)?;
        let data = &self.inodes[&ino].data;
        Ok((self.meta_of(ino), data[..data.len().min(limit)].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn links_count_and_rename_replaces() {
        let t = FsTime(1);
        let mut fs = MemFs::new();
        let a = fs.create(&n("a"), b"x", t, 0).unwrap();
        assert_eq!(
            fs.create(&n("a"), b"y", t, 0).unwrap_err().raw_os_error(),
            Some(libc_eexist())
        );
        fs.link(&n("a"), &n("l"), t).unwrap();
        assert_eq!(fs.meta_of(a.ino).nlink, 2);
        assert!(fs.link(&n("a"), &n("l"), t).is_err());
        // Renaming onto another name of the same inode changes nothing.
        fs.rename(&n("a"), &n("l"), t).unwrap();
        assert_eq!(fs.names.len(), 2);
        let b = fs.create(&n("b"), b"z", t, 1).unwrap();
        fs.rename(&n("b"), &n("l"), t).unwrap();
        assert_eq!(fs.lookup(&n("l")).unwrap(), b.ino);
        assert_eq!(fs.meta_of(a.ino).nlink, 1);
        fs.unlink(&n("a"), t).unwrap();
        assert!(!fs.inodes.contains_key(&a.ino));
        assert!(fs.unlink(&n("a"), t).is_err());
    }

    #[test]
    fn subdirectories_hold_names_and_go_only_when_empty() {
        let t = FsTime(1);
        let mut fs = MemFs::new();
        fs.create(&n("c"), b"x", t, 0).unwrap();
        assert!(fs.link(&n("c"), &n("e/c"), t).is_err(), "no parent yet");
        fs.mkdir(&n("e"), t, 0).unwrap();
        fs.link(&n("c"), &n("e/c"), t).unwrap();
        fs.mkdir(&n("e/seal"), t, 1).unwrap();
        let e = fs.lookup(&n("e")).unwrap();
        assert_eq!(
            fs.meta_of(e).nlink,
            3,
            "a subdirectory shows in the link count"
        );
        assert_eq!(fs.entries(&n("e")), vec![n("c"), n("seal")]);
        assert_eq!(fs.top(), vec![n("c"), n("e")]);
        assert!(fs.rmdir(&n("e"), t).is_err());
        assert!(
            fs.unlink(&n("e/seal"), t).is_err(),
            "unlink refuses a directory"
        );
        fs.rmdir(&n("e/seal"), t).unwrap();
        fs.unlink(&n("e/c"), t).unwrap();
        fs.rmdir(&n("e"), t).unwrap();
        assert!(fs.link(&n("c"), &n("e/c"), t).is_err(), "gone for good");
    }

    fn libc_eexist() -> i32 {
        nix::errno::Errno::EEXIST as i32
    }
}
