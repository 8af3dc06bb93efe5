//! nfslab-bridge: mounts an NFSv3 export through FUSE, so that ordinary
//! syscalls become real NFSv3 RPCs to a real server (nfs-ganesha in the lab).
//!
//! It stands in for the kernel NFS client, which this machine's kernel lacks,
//! and adds what a test lab needs: an attribute/entry cache with a TTL (like
//! `actimeo`), lost replies after the server executed an operation (the
//! caller sees what a real client returns after a retransmit: EEXIST for
//! CREATE and LINK, ENOENT for REMOVE and RENAME), EIO with the operation done
//! or not done (soft mounts), and a delay per call. Every RPC and every fault
//! is counted; the counts go to stderr and `--stats` at unmount (and to
//! `--stats` every 100 ms while RPCs flow, for benchmarks).
//!
//! Two more faults mimic clients and servers that bend the rules:
//! `--client-time-touch` sends the client's clock, in whole seconds, for
//! utimensat(UTIME_NOW), as clients built on libfuse 2 do; and SIGUSR1
//! makes the bridge stop answering (SIGUSR2: answer again), as a dead
//! server does. It stops between requests, never inside one: a request
//! the kernel has not handed over yet can be abandoned by a dying caller,
//! one the daemon took cannot (unlike a real NFS mount's, whose waits are
//! killable), and the caller would hang in D state for good.
//!
//! O_EXCL maps to CREATE GUARDED, utimensat(UTIME_NOW) to SET_TO_SERVER_TIME.
//! All RPCs are serialised on one connection: this is a test tool, not a
//! fast client. Like a hard mount, it retransmits a call whose reply does not
//! come (ganesha drops some requests on purpose, expecting a retransmit), on
//! a fresh connection so that a late reply cannot be taken for another's.

use clap::Parser;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nfs3_client::net::Connector;
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::TokioConnector;
use nfs3_client::{Nfs3Client, Nfs3ConnectionBuilder};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

type Io = Guarded;

/// The TCP connection, with EOF made an error: nfs3_client's read_exact
/// loops forever on a zero-byte read, so a server that went away would pin
/// a core instead of failing the call.
struct Guarded(<TokioConnector as Connector>::Connection);

impl nfs3_client::io::AsyncRead for Guarded {
    async fn async_read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.async_read(buf).await?;
        if n == 0 && !buf.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(n)
    }
}

impl nfs3_client::io::AsyncWrite for Guarded {
    async fn async_write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.async_write(buf).await
    }
}

struct GuardedConnector;

impl Connector for GuardedConnector {
    type Connection = Guarded;

    async fn connect(&self, addr: std::net::SocketAddr) -> std::io::Result<Guarded> {
        TokioConnector.connect(addr).await.map(Guarded)
    }

    async fn connect_with_port(
        &self,
        addr: std::net::SocketAddr,
        local_port: u16,
    ) -> std::io::Result<Guarded> {
        TokioConnector
            .connect_with_port(addr, local_port)
            .await
            .map(Guarded)
    }
}

#[derive(Parser, Debug, Clone)]
struct Args {
    /// NFS server address.
    #[arg(long, default_value = "127.0.0.1")]
    server: String,
    /// Exported path on the server.
    #[arg(long)]
    export: String,
    /// Where to mount.
    #[arg(long)]
    mount: PathBuf,
    /// Attribute and entry cache lifetime, in milliseconds (0: no cache).
    #[arg(long, default_value_t = 0)]
    attr_ttl_ms: u64,
    /// Probability that a mutating call's reply is lost after the server
    /// executed it.
    #[arg(long, default_value_t = 0.0)]
    lose_reply: f64,
    /// Probability of EIO on a call (half of them after the server executed
    /// it, half before sending).
    #[arg(long, default_value_t = 0.0)]
    eio: f64,
    /// Added delay per call, in microseconds.
    #[arg(long, default_value_t = 0)]
    delay_us: u64,
    /// Seed for the fault dice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the counters here at unmount.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Send the client's clock (whole seconds) for utimensat(UTIME_NOW),
    /// as libfuse 2 clients do, instead of SET_TO_SERVER_TIME.
    #[arg(long)]
    client_time_touch: bool,
}

/// Set by SIGUSR1, cleared by SIGUSR2: stop answering.
static HUNG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_hang_signal(sig: libc::c_int) {
    HUNG.store(sig == libc::SIGUSR1, std::sync::atomic::Ordering::Relaxed);
}

/// The state for one request. Dropped when the handler returns, after its
/// reply went out: while the bridge is told to hang, it waits here, before
/// the session loop takes the next request from the kernel.
struct Answer<'a>(std::sync::MutexGuard<'a, Inner>);

impl std::ops::Deref for Answer<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::ops::DerefMut for Answer<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if HUNG.load(std::sync::atomic::Ordering::Relaxed) {
            self.0.count("fault:hang");
            while HUNG.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// What to do to one call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Normal,
    LoseReply,
    EioDone,
    EioNotDone,
}

struct Inner {
    rt: tokio::runtime::Runtime,
    nfs: Nfs3Client<Io>,
    /// For reconnecting.
    args: Args,
    root: nfs_fh3,
    root_fileid: u64,
    handles: HashMap<u64, nfs_fh3>,
    /// FUSE generation per node id: a file id the server gave a new
    /// handle (ext4 reuses inode numbers) is a new file. With generation 0
    /// throughout, the kernel served a new directory through the inode of
    /// a removed one that some process still had as its cwd: ENOENT.
    generations: HashMap<u64, u64>,
    dirs: HashMap<u64, Vec<(u64, FileType, Vec<u8>)>>,
    next_dir: u64,
    rng: u64,
    counts: BTreeMap<String, u64>,
    /// Where the counters go while mounted too (the `--stats` file), and
    /// when they last went there: a benchmark reads them over a window.
    live: Option<PathBuf>,
    written: std::time::Instant,
    /// `NFSLAB_RPC_TRACE`: a file that gets one line per RPC, wall-clock
    /// time first, to line RPCs up with an `strace -tt` of the caller.
    trace: Option<std::fs::File>,
}

/// How often the counters are rewritten while RPCs flow.
const LIVE_STATS_EVERY: Duration = Duration::from_millis(100);

struct Bridge {
    inner: Mutex<Inner>,
    ttl: Duration,
    lose_reply: f64,
    eio: f64,
    delay: Duration,
    stats: Option<PathBuf>,
    client_time_touch: bool,
}

fn errno_of(stat: nfsstat3) -> Errno {
    let e = match stat {
        nfsstat3::NFS3ERR_PERM => libc::EPERM,
        nfsstat3::NFS3ERR_NOENT => libc::ENOENT,
        nfsstat3::NFS3ERR_IO => libc::EIO,
        nfsstat3::NFS3ERR_NXIO => libc::ENXIO,
        nfsstat3::NFS3ERR_ACCES => libc::EACCES,
        nfsstat3::NFS3ERR_EXIST => libc::EEXIST,
        nfsstat3::NFS3ERR_XDEV => libc::EXDEV,
        nfsstat3::NFS3ERR_NODEV => libc::ENODEV,
        nfsstat3::NFS3ERR_NOTDIR => libc::ENOTDIR,
        nfsstat3::NFS3ERR_ISDIR => libc::EISDIR,
        nfsstat3::NFS3ERR_INVAL => libc::EINVAL,
        nfsstat3::NFS3ERR_FBIG => libc::EFBIG,
        nfsstat3::NFS3ERR_NOSPC => libc::ENOSPC,
        nfsstat3::NFS3ERR_ROFS => libc::EROFS,
        nfsstat3::NFS3ERR_MLINK => libc::EMLINK,
        nfsstat3::NFS3ERR_NAMETOOLONG => libc::ENAMETOOLONG,
        nfsstat3::NFS3ERR_NOTEMPTY => libc::ENOTEMPTY,
        nfsstat3::NFS3ERR_DQUOT => libc::EDQUOT,
        nfsstat3::NFS3ERR_STALE | nfsstat3::NFS3ERR_BADHANDLE => libc::ESTALE,
        nfsstat3::NFS3ERR_NOTSUPP => libc::EOPNOTSUPP,
        nfsstat3::NFS3ERR_JUKEBOX => libc::EAGAIN,
        _ => libc::EIO,
    };
    Errno::from_i32(e)
}

fn kind_of(t: ftype3) -> FileType {
    match t {
        ftype3::NF3REG => FileType::RegularFile,
        ftype3::NF3DIR => FileType::Directory,
        ftype3::NF3BLK => FileType::BlockDevice,
        ftype3::NF3CHR => FileType::CharDevice,
        ftype3::NF3LNK => FileType::Symlink,
        ftype3::NF3SOCK => FileType::Socket,
        ftype3::NF3FIFO => FileType::NamedPipe,
    }
}

fn name3(name: &OsStr) -> filename3<'static> {
    filename3::from(name.as_bytes().to_vec())
}

fn time_of(t: Option<TimeOrNow>) -> set_mtime {
    match t {
        None => set_mtime::DONT_CHANGE,
        Some(TimeOrNow::Now) => set_mtime::SET_TO_SERVER_TIME,
        Some(TimeOrNow::SpecificTime(t)) => match nfstime3::try_from(t) {
            Ok(t) => set_mtime::SET_TO_CLIENT_TIME(t),
            Err(_) => set_mtime::DONT_CHANGE,
        },
    }
}

fn atime_of(t: Option<TimeOrNow>) -> set_atime {
    match time_of(t) {
        set_mtime::DONT_CHANGE => set_atime::DONT_CHANGE,
        set_mtime::SET_TO_SERVER_TIME => set_atime::SET_TO_SERVER_TIME,
        set_mtime::SET_TO_CLIENT_TIME(t) => set_atime::SET_TO_CLIENT_TIME(t),
    }
}

/// How long a reply may take before the call is sent again.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// One RPC on `$i.nfs`: a reply that does not come within [`RPC_TIMEOUT`]
/// is given up on and the call is sent again on a fresh connection (a
/// retransmit: the server may execute it twice, which callers see as a lost
/// reply, EEXIST or ENOENT, as with a real client).
macro_rules! call {
    ($i:expr, $method:ident, $args:expr) => {
        loop {
            let fut = $i.nfs.$method($args);
            let r = $i
                .rt
                .block_on(async move { tokio::time::timeout(RPC_TIMEOUT, fut).await });
            match r {
                Ok(r) => break r,
                Err(_) => $i.reconnect(),
            }
        }
    };
}

fn mount_client(
    rt: &tokio::runtime::Runtime,
    args: &Args,
) -> Result<(nfs_fh3, Nfs3Client<Io>), String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let cred = opaque_auth::auth_unix(&auth_unix {
        stamp: std::process::id(),
        machinename: Opaque::owned(host.into_bytes()),
        uid: 0,
        gid: 0,
        gids: vec![0],
    });
    let conn = rt
        .block_on(
            Nfs3ConnectionBuilder::new(GuardedConnector, &args.server, &args.export)
                .mount_port(20048)
                .nfs3_port(2049)
                .credential(cred)
                .mount(),
        )
        .map_err(|e| format!("cannot mount {}:{}: {e:?}", args.server, args.export))?;
    Ok((conn.root_nfs_fh3(), conn.into_nfs3_client()))
}

/// An RPC's outcome as the errno a caller sees: the server's status, or
/// EIO when the call itself failed.
fn rpc<T, E>(r: Result<Nfs3Result<T, E>, nfs3_client::RpcError>) -> Result<T, Errno> {
    match r {
        Ok(Nfs3Result::Ok(v)) => Ok(v),
        Ok(Nfs3Result::Err((stat, _))) => Err(errno_of(stat)),
        Err(_) => Err(Errno::EIO),
    }
}

impl Inner {
    /// Replaces the connection after a call went unanswered.
    fn reconnect(&mut self) {
        self.count("RETRANSMIT");
        loop {
            match mount_client(&self.rt, &self.args) {
                Ok((_, nfs)) => {
                    self.nfs = nfs;
                    return;
                }
                Err(e) => {
                    eprintln!("nfslab-bridge: {e}; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn count(&mut self, what: &str) {
        *self.counts.entry(what.to_string()).or_default() += 1;
        if let Some(f) = &mut self.trace {
            use std::io::Write;
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = writeln!(f, "{}.{:06} RPC {what}", now.as_secs(), now.subsec_micros());
        }
        if let Some(p) = &self.live {
            if self.written.elapsed() >= LIVE_STATS_EVERY {
                let _ = std::fs::write(p, counts_text(&self.counts));
                self.written = std::time::Instant::now();
            }
        }
    }

    fn roll(&mut self) -> f64 {
        // xorshift64*: reproducible from --seed.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn ino(&self, fileid: u64) -> u64 {
        if fileid == self.root_fileid {
            1
        } else {
            fileid
        }
    }

    fn generation(&self, ino: INodeNo) -> Generation {
        Generation(self.generations.get(&ino.0).copied().unwrap_or(0))
    }

    fn fh(&self, ino: INodeNo) -> Result<nfs_fh3, Errno> {
        if ino.0 == 1 {
            return Ok(self.root.clone());
        }
        self.handles.get(&ino.0).cloned().ok_or(Errno::ESTALE)
    }

    fn attr(&self, a: &fattr3) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.ino(a.fileid)),
            size: a.size,
            blocks: a.used.div_ceil(512),
            atime: SystemTime::from(&a.atime),
            mtime: SystemTime::from(&a.mtime),
            ctime: SystemTime::from(&a.ctime),
            crtime: SystemTime::from(&a.ctime),
            kind: kind_of(a.type_),
            perm: (a.mode & 0o7777) as u16,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn remember(&mut self, fh: &nfs_fh3, a: &fattr3) -> FileAttr {
        let ino = self.ino(a.fileid);
        if ino != 1 {
            if let Some(old) = self.handles.insert(ino, fh.clone()) {
                if old != *fh {
                    *self.generations.entry(ino).or_default() += 1;
                }
            }
        }
        self.attr(a)
    }

    fn getattr_fh(&mut self, fh: &nfs_fh3) -> Result<fattr3, Errno> {
        self.count("GETATTR");
        let args = GETATTR3args { object: fh.clone() };
        rpc(call!(self, getattr, &args)).map(|ok| ok.obj_attributes)
    }

    fn lookup_fh(&mut self, dir: &nfs_fh3, name: &OsStr) -> Result<(nfs_fh3, fattr3), Errno> {
        self.count("LOOKUP");
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: name3(name),
            },
        };
        let ok = rpc(call!(self, lookup, &args))?;
        let attrs = match ok.obj_attributes {
            Nfs3Option::Some(a) => a,
            Nfs3Option::None => self.getattr_fh(&ok.object)?,
        };
        Ok((ok.object, attrs))
    }

    /// The handle and attributes of a new object from a create-like reply.
    fn new_object(
        &mut self,
        dir: &nfs_fh3,
        name: &OsStr,
        fh: post_op_fh3,
        attrs: post_op_attr,
    ) -> Result<FileAttr, Errno> {
        let (fh, a) = match (fh, attrs) {
            (Nfs3Option::Some(fh), Nfs3Option::Some(a)) => (fh, a),
            (Nfs3Option::Some(fh), Nfs3Option::None) => {
                let a = self.getattr_fh(&fh)?;
                (fh, a)
            }
            _ => self.lookup_fh(dir, name)?,
        };
        Ok(self.remember(&fh, &a))
    }
}

/// What the caller sees of a call the server executed: a lost reply shows
/// as `lost` (what the retransmission returns), a soft-mount EIO as EIO.
fn outcome(fate: Fate, lost: Errno) -> Result<(), Errno> {
    match fate {
        Fate::LoseReply => Err(lost),
        Fate::EioDone => Err(Errno::EIO),
        _ => Ok(()),
    }
}

impl Bridge {
    /// Decides a call's fate and applies the delay. `mutating` calls may
    /// lose their reply; any call may fail with EIO.
    fn fate(&self, inner: &mut Inner, mutating: bool) -> Fate {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if mutating && self.lose_reply > 0.0 && inner.roll() < self.lose_reply {
            inner.count("fault:lost-reply");
            return Fate::LoseReply;
        }
        if self.eio > 0.0 && inner.roll() < self.eio {
            if inner.roll() < 0.5 {
                inner.count("fault:eio-done");
                return Fate::EioDone;
            }
            inner.count("fault:eio-not-done");
            return Fate::EioNotDone;
        }
        Fate::Normal
    }

    fn lock(&self) -> Answer<'_> {
        Answer(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn dump_stats(&self) {
        let inner = self.lock();
        let text = counts_text(&inner.counts);
        eprint!("nfslab-bridge counters:\n{text}");
        if let Some(p) = &self.stats {
            let _ = std::fs::write(p, &text);
        }
    }
}

fn counts_text(counts: &BTreeMap<String, u64>) -> String {
    counts.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

impl Filesystem for Bridge {
    fn destroy(&mut self) {
        self.dump_stats();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|dir| {
            let fate = self.fate(i, false);
            if fate == Fate::EioNotDone {
                return Err(Errno::EIO);
            }
            let (fh, a) = i.lookup_fh(&dir, name)?;
            if fate == Fate::EioDone {
                return Err(Errno::EIO);
            }
            Ok(i.remember(&fh, &a))
        });
        match r {
            Ok(attr) => reply.entry(&self.ttl, &attr, i.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(ino).and_then(|fh| {
            let fate = self.fate(i, false);
            if fate != Fate::Normal {
                return Err(Errno::EIO);
            }
            let a = i.getattr_fh(&fh)?;
            Ok(i.attr(&a))
        });
        match r {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let opt = |v: Option<u32>| v.map_or(Nfs3Option::None, Nfs3Option::Some);
        let r = i.fh(ino).and_then(|fh| {
            let fate = self.fate(i, true);
            if fate == Fate::EioNotDone {
                return Err(Errno::EIO);
            }
            i.count("SETATTR");
            // libfuse 2 turns UTIME_NOW into the client's time, in whole
            // seconds: the behaviour nfslock must detect.
            let mtime = match mtime {
                Some(TimeOrNow::Now) if self.client_time_touch => {
                    i.count("fault:client-time");
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default();
                    Some(TimeOrNow::SpecificTime(
                        SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()),
                    ))
                }
                other => other,
            };
            let args = SETATTR3args {
                object: fh.clone(),
                new_attributes: sattr3 {
                    mode: opt(mode.map(|m| m & 0o7777)),
                    uid: opt(uid),
                    gid: opt(gid),
                    size: size.map_or(Nfs3Option::None, Nfs3Option::Some),
                    atime: atime_of(atime),
                    mtime: time_of(mtime),
                },
                guard: Nfs3Option::None,
            };
            rpc(call!(i, setattr, &args))?;
            // SETATTR is idempotent: a lost reply is retransmitted and
            // succeeds, so only EIO (soft mount) reaches the caller.
            if fate != Fate::Normal {
                return Err(Errno::EIO);
            }
            let a = i.getattr_fh(&fh)?;
            Ok(i.attr(&a))
        });
        match r {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(ino).and_then(|fh| {
            i.count("READLINK");
            let args = READLINK3args { symlink: fh };
            rpc(call!(i, readlink, &args)).map(|ok| ok.data.0.to_vec())
        });
        match r {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|dir| {
            let attrs = sattr3 {
                mode: Nfs3Option::Some(mode & !umask & 0o7777),
                ..Default::default()
            };
            let what = match mode & libc::S_IFMT {
                libc::S_IFIFO => mknoddata3::NF3FIFO(attrs),
                libc::S_IFSOCK => mknoddata3::NF3SOCK(attrs),
                _ => return Err(Errno::EPERM),
            };
            i.count("MKNOD");
            let args = MKNOD3args {
                where_: diropargs3 {
                    dir: dir.clone(),
                    name: name3(name),
                },
                what,
            };
            rpc(call!(i, mknod, &args))
                .and_then(|ok| i.new_object(&dir, name, ok.obj, ok.obj_attributes))
        });
        match r {
            Ok(attr) => reply.entry(&self.ttl, &attr, i.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|dir| {
            i.count("MKDIR");
            let args = MKDIR3args {
                where_: diropargs3 {
                    dir: dir.clone(),
                    name: name3(name),
                },
                attributes: sattr3 {
                    mode: Nfs3Option::Some(mode & !umask & 0o7777),
                    ..Default::default()
                },
            };
            rpc(call!(i, mkdir, &args))
                .and_then(|ok| i.new_object(&dir, name, ok.obj, ok.obj_attributes))
        });
        match r {
            Ok(attr) => reply.entry(&self.ttl, &attr, i.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|dir| {
            let fate = self.fate(i, true);
            if fate == Fate::EioNotDone {
                return Err(Errno::EIO);
            }
            i.count("REMOVE");
            let args = REMOVE3args {
                object: diropargs3 {
                    dir,
                    name: name3(name),
                },
            };
            rpc(call!(i, remove, &args))?;
            outcome(fate, Errno::ENOENT)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|dir| {
            i.count("RMDIR");
            let args = RMDIR3args {
                object: diropargs3 {
                    dir,
                    name: name3(name),
                },
            };
            rpc(call!(i, rmdir, &args)).map(drop)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|dir| {
            i.count("SYMLINK");
            let args = SYMLINK3args {
                where_: diropargs3 {
                    dir: dir.clone(),
                    name: name3(link_name),
                },
                symlink: symlinkdata3 {
                    symlink_attributes: sattr3::default(),
                    symlink_data: nfspath3::from(target.as_os_str().as_bytes().to_vec()),
                },
            };
            rpc(call!(i, symlink, &args))
                .and_then(|ok| i.new_object(&dir, link_name, ok.obj, ok.obj_attributes))
        });
        match r {
            Ok(attr) => reply.entry(&self.ttl, &attr, i.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            // NFSv3 has no RENAME_NOREPLACE or RENAME_EXCHANGE.
            reply.error(Errno::EINVAL);
            return;
        }
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|from| {
            let to = i.fh(newparent)?;
            let fate = self.fate(i, true);
            if fate == Fate::EioNotDone {
                return Err(Errno::EIO);
            }
            i.count("RENAME");
            let args = RENAME3args {
                from: diropargs3 {
                    dir: from,
                    name: name3(name),
                },
                to: diropargs3 {
                    dir: to,
                    name: name3(newname),
                },
            };
            rpc(call!(i, rename, &args))?;
            outcome(fate, Errno::ENOENT)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(ino).and_then(|file| {
            let dir = i.fh(newparent)?;
            let fate = self.fate(i, true);
            if fate == Fate::EioNotDone {
                return Err(Errno::EIO);
            }
            i.count("LINK");
            let args = LINK3args {
                file: file.clone(),
                link: diropargs3 {
                    dir,
                    name: name3(newname),
                },
            };
            rpc(call!(i, link, &args))?;
            outcome(fate, Errno::EEXIST)?;
            let a = i.getattr_fh(&file)?;
            Ok(i.remember(&file, &a))
        });
        match r {
            Ok(attr) => reply.entry(&self.ttl, &attr, i.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(ino).and_then(|file| {
            let fate = self.fate(i, false);
            if fate != Fate::Normal {
                return Err(Errno::EIO);
            }
            i.count("READ");
            let args = READ3args {
                file,
                offset,
                count: size,
            };
            rpc(call!(i, read, &args)).map(|ok| ok.data.to_vec())
        });
        match r {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(ino).and_then(|file| {
            i.count("WRITE");
            let args = WRITE3args {
                file,
                offset,
                count: data.len() as u32,
                stable: stable_how::FILE_SYNC,
                data: Opaque::borrowed(data),
            };
            rpc(call!(i, write, &args)).map(|ok| ok.count)
        });
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Writes are FILE_SYNC already; COMMIT makes the round trip a real
        // client would make.
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(ino).and_then(|file| {
            i.count("COMMIT");
            let args = COMMIT3args {
                file,
                offset: 0,
                count: 0,
            };
            rpc(call!(i, commit, &args)).map(drop)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(ino).and_then(|dir| {
            let mut entries = Vec::new();
            let mut cookie = 0;
            let mut verf = cookieverf3::default();
            loop {
                i.count("READDIRPLUS");
                let args = READDIRPLUS3args {
                    dir: dir.clone(),
                    cookie,
                    cookieverf: verf,
                    dircount: 16 * 1024,
                    maxcount: 64 * 1024,
                };
                let ok = rpc(call!(i, readdirplus, &args))?;
                verf = ok.cookieverf;
                for e in &ok.reply.entries.0 {
                    cookie = e.cookie;
                    let name = e.name.as_ref().to_vec();
                    let kind = match (&e.name_attributes, &e.name_handle) {
                        (Nfs3Option::Some(a), Nfs3Option::Some(fh)) => {
                            i.remember(fh, a);
                            kind_of(a.type_)
                        }
                        (Nfs3Option::Some(a), _) => kind_of(a.type_),
                        _ => FileType::RegularFile,
                    };
                    entries.push((i.ino(e.fileid), kind, name));
                }
                if ok.reply.eof || ok.reply.entries.0.is_empty() {
                    break;
                }
            }
            i.next_dir += 1;
            let id = i.next_dir;
            i.dirs.insert(id, entries);
            Ok(id)
        });
        match r {
            Ok(id) => reply.opened(FileHandle(id), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let i = self.lock();
        let Some(entries) = i.dirs.get(&fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        for (n, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            // A non-zero inode, or glibc drops the entry.
            if reply.add(
                INodeNo((*ino).max(1)),
                (n + 1) as u64,
                *kind,
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.lock().dirs.remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let mut guard = self.lock();
        let i = &mut *guard;
        i.count("FSSTAT");
        let args = FSSTAT3args {
            fsroot: i.root.clone(),
        };
        match call!(i, fsstat, &args) {
            Ok(Nfs3Result::Ok(ok)) => reply.statfs(
                ok.tbytes / 4096,
                ok.fbytes / 4096,
                ok.abytes / 4096,
                ok.tfiles,
                ok.ffiles,
                4096,
                255,
                4096,
            ),
            Ok(Nfs3Result::Err((stat, _))) => reply.error(errno_of(stat)),
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut guard = self.lock();
        let i = &mut *guard;
        let r = i.fh(parent).and_then(|dir| {
            let fate = self.fate(i, true);
            if fate == Fate::EioNotDone {
                return Err(Errno::EIO);
            }
            let attrs = sattr3 {
                mode: Nfs3Option::Some(mode & !umask & 0o7777),
                ..Default::default()
            };
            let how = if flags & libc::O_EXCL != 0 {
                createhow3::GUARDED(attrs)
            } else {
                createhow3::UNCHECKED(attrs)
            };
            i.count("CREATE");
            let args = CREATE3args {
                where_: diropargs3 {
                    dir: dir.clone(),
                    name: name3(name),
                },
                how,
            };
            let ok = rpc(call!(i, create, &args))?;
            let attr = i.new_object(&dir, name, ok.obj, ok.obj_attributes)?;
            match fate {
                // The retransmitted GUARDED create finds the file it made.
                Fate::LoseReply if flags & libc::O_EXCL != 0 => Err(Errno::EEXIST),
                Fate::EioDone => Err(Errno::EIO),
                _ => Ok(attr),
            }
        });
        match r {
            Ok(attr) => reply.created(
                &self.ttl,
                &attr,
                i.generation(attr.ino),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (root, mut nfs) = mount_client(&rt, &args).unwrap_or_else(|e| {
        eprintln!("nfslab-bridge: {e}");
        std::process::exit(1);
    });
    let root_fileid = match rt.block_on(nfs.getattr(&GETATTR3args {
        object: root.clone(),
    })) {
        Ok(Nfs3Result::Ok(ok)) => ok.obj_attributes.fileid,
        other => {
            eprintln!("nfslab-bridge: cannot stat the export root: {other:?}");
            std::process::exit(1);
        }
    };
    let bridge = Bridge {
        inner: Mutex::new(Inner {
            rt,
            nfs,
            args: args.clone(),
            root,
            root_fileid,
            handles: HashMap::new(),
            generations: HashMap::new(),
            dirs: HashMap::new(),
            next_dir: 0,
            rng: args.seed.max(1),
            counts: BTreeMap::new(),
            live: args.stats.clone(),
            written: std::time::Instant::now(),
            trace: std::env::var_os("NFSLAB_RPC_TRACE").and_then(|t| {
                let mut f = std::fs::OpenOptions::new();
                f.append(true).create(true).open(t).ok()
            }),
        }),
        ttl: Duration::from_millis(args.attr_ttl_ms),
        lose_reply: args.lose_reply,
        eio: args.eio,
        delay: Duration::from_micros(args.delay_us),
        stats: args.stats.clone(),
        client_time_touch: args.client_time_touch,
    };
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            on_hang_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGUSR2,
            on_hang_signal as *const () as libc::sighandler_t,
        );
    }
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("nfslab:{}", args.export)),
        MountOption::Subtype("nfslab".into()),
        MountOption::DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::All;
    if let Err(e) = fuser::mount(bridge, &args.mount, &config) {
        eprintln!("nfslab-bridge: mount {}: {e}", args.mount.display());
        std::process::exit(1);
    }
}
