//! The simulated server's directory: inodes with link counts, a name table,
//! and mtimes stamped by the server's clock. POSIX semantics for create,
//! link, rename and unlink, and nothing else: faults, caches and clients
//! live in the layers above.

use crate::fs::{FsTime, Kind, Meta};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;

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
}

/// One directory, flat: the protocol never needs more.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    pub inodes: BTreeMap<u64, Inode>,
    pub names: BTreeMap<OsString, u64>,
    next_ino: u64,
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
            mode: 0o644,
            kind: Kind::File,
            mtime: i.mtime,
            ctime: i.ctime,
            // NFSv3 keeps no birth time: the queue orders by ctime.
            born: None,
        }
    }

    pub fn dir_meta(now: FsTime) -> Meta {
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

    pub fn lookup(&self, name: &OsStr) -> io::Result<u64> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| errno(nix::errno::Errno::ENOENT))
    }

    pub fn create(
        &mut self,
        name: &OsStr,
        data: &[u8],
        now: FsTime,
        creator: usize,
    ) -> io::Result<Meta> {
        if self.names.contains_key(name) {
            return Err(errno(nix::errno::Errno::EEXIST));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                nlink: 1,
                data: data.to_vec(),
                mtime: now,
                ctime: now,
                creator,
            },
        );
        self.names.insert(name.to_owned(), ino);
        Ok(self.meta_of(ino))
    }

    pub fn link(&mut self, from: &OsStr, to: &OsStr, now: FsTime) -> io::Result<()> {
        let ino = self.lookup(from)?;
        if self.names.contains_key(to) {
            return Err(errno(nix::errno::Errno::EEXIST));
        }
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
        let ino = self.lookup(name)?;
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
        let ino = self.lookup(from)?;
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
        let ino = self.lookup(name)?;
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

    fn libc_eexist() -> i32 {
        nix::errno::Errno::EEXIST as i32
    }
}
