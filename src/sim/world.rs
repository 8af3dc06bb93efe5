//! The simulated world: the server's directory and clock, the hosts and
//! their process tables, the clients, the seeded scheduler that decides who
//! moves next and what goes wrong, and the oracle that checks the
//! invariants after every step.

use super::client;
use super::memfs::{Inode, MemFs};
use super::Mutant;
use crate::fs::{FsTime, Meta};
use crate::protocol::{xorshift, ORPHAN_AGE};
use crate::record::{self, Content};
use crate::sys::Identity;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

pub const DIR: &str = "/sim/locks";
pub const LOCK: &str = "job.lock";
/// The slot count of a slotted LOCK (`--slots`).
const SLOT_COUNT: &str = ".job.lock.nfslock-slots";
/// The server's clock at virtual time zero.
const EPOCH_NS: i128 = 1_767_225_600 * 1_000_000_000;
/// A run that has not reached its target by then stops anyway.
const MAX_VIRTUAL: u64 = 6 * 3600 * 1_000_000_000;
const TWO_HOURS_NS: i128 = 2 * 3600 * 1_000_000_000;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Stop starting new work once this many acquisitions succeeded.
    pub acquisitions: u64,
    pub mutant: Mutant,
    /// Steps kept for the trace printed on a violation.
    pub trace_len: usize,
    /// Let the scheduler stall a client before an operation (a process
    /// descheduled or paused between two steps). Off only to replay seeds
    /// recorded before stalls existed.
    pub stalls: bool,
    /// Waiters wait as on a local filesystem: in the queue, woken when the
    /// inode they watch changes. Off by default, so that seeds recorded
    /// before the queue was simulated replay as they did.
    pub watchers: bool,
    /// Hosts reboot (new boot id, same name and machine) while their old
    /// locks stand, and some hosts are twins (another machine with the
    /// same host name). Off by default, so that seeds recorded before
    /// reboots were simulated replay as they did.
    pub reboots: bool,
    /// Clients take slots of one slotted lock (`--slots N`): N lock names,
    /// each a lock with every invariant, and at most N holders.
    pub slots: Option<u32>,
    /// About half the acquisitions are shared (`--shared`): readers that
    /// hold together, never with a writer, and never overtake a writer
    /// that announced itself before they came.
    pub readers: bool,
}

impl Config {
    pub fn new(seed: u64, acquisitions: u64) -> Config {
        Config {
            seed,
            acquisitions,
            mutant: Mutant::None,
            trace_len: 300,
            stalls: true,
            watchers: false,
            reboots: false,
            slots: None,
            readers: false,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub acquisitions: u64,
    pub steps: u64,
    pub faults: u64,
    pub crashes: u64,
    pub checks: u64,
    /// Held locks removed by a justified break (the holder must be told).
    pub breaks: u64,
    /// Locks displaced through the documented one-round-trip window.
    pub windows: u64,
    pub virtual_secs: f64,
    /// Waits in the queue behind another waiter's claim, and how many of
    /// those waited behind a crashed or a stalled one.
    pub queued: u64,
    pub queued_behind_dead: u64,
    pub queued_behind_stalled: u64,
    /// Host reboots, and locks of an earlier boot broken by the same
    /// machine as dead.
    pub reboots: u64,
    pub rebooted_breaks: u64,
    /// Shared acquisitions, and the most readers that held at once.
    pub shared: u64,
    pub most_readers: u64,
    /// Locks a writer gave back to a reader that had waited longer.
    pub gave_way: u64,
    /// Places counted by polling waiters (`pace`): first, second, and
    /// behind two or more (quiet).
    pub in_line: [u64; 3],
    /// Polls at the cap that took a failed link for the lock last looked
    /// at (`wait::glance`).
    pub glances: u64,
    /// Polls of waiters deep in line that saw the directory unchanged and
    /// skipped their try (`quiet`).
    pub quiet_polls: u64,
    /// The first invariant violation, with the trace that led to it.
    pub violation: Option<String>,
}

/// The knobs one seed draws.
#[derive(Clone, Debug)]
pub(super) struct Scenario {
    pub fault_rate: f64,
    pub crash_rate: f64,
    pub stale_rate: f64,
    pub stale_ttl: u64,
    pub stall_rate: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wait {
    /// Holds the turn and runs protocol code.
    Running,
    /// Not started yet, or woken and ready.
    Ready,
    /// Wants to do a filesystem operation.
    Op,
    /// Wants to, but is stalled until this virtual time.
    OpAt(u64),
    /// Sleeps until this virtual time (relative when passed to `block`).
    Sleep(u64),
    /// Sleeps like `Sleep`, or until inode `ino` changes (its ctime moves
    /// on, or it goes): what inotify would tell a local waiter.
    Watch {
        until: u64,
        ino: u64,
        ctime: FsTime,
    },
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    None,
    /// EIO, nothing done (a soft mount timing out before the server saw it).
    EioNotDone,
    /// EIO after the server did it.
    EioDone,
    /// Done, reply lost; the retransmit gets EEXIST/ENOENT.
    LostReply,
    /// Done twice: a retransmit past the duplicate-request cache.
    Twice,
    /// lstat answered from a cache up to the TTL old.
    Stale,
}

impl Fault {
    fn tag(self) -> &'static str {
        match self {
            Fault::None => "",
            Fault::EioNotDone => " [EIO, not done]",
            Fault::EioDone => " [EIO, done]",
            Fault::LostReply => " [reply lost]",
            Fault::Twice => " [executed twice]",
            Fault::Stale => " [stale cache]",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Grant {
    Go(Fault),
    Wake,
}

/// What a client is doing, as the oracle needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Idle,
    Acquiring,
    Touching,
    Releasing,
    Breaking { force: bool },
    Inspecting,
}

pub(super) struct Host {
    pub ident: Identity,
    pub skew_ns: i128,
    /// Live processes: pid -> start time.
    pub procs: BTreeMap<u32, u64>,
}

pub(super) struct Client {
    pub host: usize,
    /// Its host's boot when it started.
    pub boot: Option<String>,
    pub pid: u32,
    pub start: u64,
    pub cleaner: bool,
    pub wait: Wait,
    pub grant: Option<Grant>,
    pub crashed: bool,
    pub phase: Phase,
    /// `--stale-after`/`--older-than` of the current operation.
    pub stale_after: Option<Duration>,
    /// When the current operation began.
    pub since: u64,
    /// Its lock was away from the lock name when the operation began.
    pub away_at_begin: bool,
    /// The inode this client believes is its lock.
    pub holding: Option<u64>,
    /// The lock name it holds or last held (LOCK, or one of its slots; a
    /// reader's link in its readers' directory).
    pub lock_name: OsString,
    /// Its current acquisition is a reader's.
    pub shared: bool,
    /// It took its own link out of its readers' directory in the current
    /// operation (a reader that found its lock moved, leaving).
    pub left: bool,
    /// One of its unlinks in the current operation lost its reply (the
    /// retransmission says ENOENT).
    pub lost_unlink: bool,
    /// The file it made last in the current operation, by name and inode:
    /// its links go by the inode, as `AnchoredFs` links by descriptor.
    pub made: Option<(OsString, u64)>,
    /// Instances this client was told it may still hold (an error, not a
    /// verdict): not phantoms.
    pub uncertain: BTreeSet<u64>,
    /// Name cache: name -> (fetched at, inode), as NFS dentries.
    pub dentries: BTreeMap<OsString, (u64, u64)>,
    /// Attribute cache: inode -> (fetched at, attributes).
    pub attrs: BTreeMap<u64, (u64, Meta)>,
    pub cv: Arc<Condvar>,
}

/// A live lock moved away by someone with no right to remove it: allowed
/// only if it is put back, or if a third party took the name meanwhile
/// (the documented window).
struct Displacement {
    ino: u64,
    by: usize,
    third_party: bool,
    /// The readers' directory, when the lock moved is a shared one.
    epoch: Option<OsString>,
    at: u64,
    /// The name it was moved from (it may come back there).
    name: OsString,
}

/// The lock name's instance before a mutating operation.
pub(super) struct Before(Vec<(OsString, Option<(u64, Inode)>)>);

pub(super) struct World {
    pub cfg: Config,
    pub sc: Scenario,
    pub fs: MemFs,
    /// Virtual nanoseconds since the start.
    pub now: u64,
    rng: Cell<u64>,
    pub hosts: Vec<Host>,
    pub clients: Vec<Client>,
    pub turn: Option<usize>,
    trace: VecDeque<String>,
    pub report: Report,
    /// The acquisition target is reached: finish what is under way.
    pub stop: bool,
    pub finished: bool,
    /// Who made each name (litter is judged by it), and when.
    name_by: BTreeMap<OsString, usize>,
    name_at: BTreeMap<OsString, u64>,
    /// Held instances removed by a justified break.
    broken: BTreeSet<u64>,
    displaced: Vec<Displacement>,
    /// Readers' links removed by a justified break: a breaker that finds
    /// the reader refreshed puts the link back.
    broken_members: BTreeSet<OsString>,
    /// When each readers' directory's lock was last moved aside by a pin.
    epoch_disturbed: BTreeMap<OsString, u64>,
    /// Readers' directories whose shared lock was displaced for good (the
    /// window): their readers are told at their next touch.
    broken_epochs: BTreeMap<OsString, u64>,
    /// Instances whose holder was told "lost" while they were moved away.
    told_lost: BTreeSet<u64>,
    /// When each instance last left the lock name, for whatever reason.
    disturbed: BTreeMap<u64, u64>,
    /// When each instance last left its name by another's hand (a pin
    /// that may be put back).
    pinned: BTreeMap<u64, u64>,
    /// When each instance was last seen at the lock name with its lease
    /// run out: a holder that refreshes too late may still be broken by
    /// a breaker that judged it before the refresh.
    expired_at: BTreeMap<u64, u64>,
    leases: BTreeMap<u64, Option<Duration>>,
    next_start: u64,
    pending_spawn: Vec<usize>,
    cleaning: bool,
    actions: u64,
    /// `SIM_TRACE=1`: print every step as it happens.
    live_trace: bool,
}

pub(super) struct Shared {
    pub world: Mutex<World>,
    main_cv: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl World {
    fn new(cfg: Config) -> World {
        let rng = Cell::new(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut w = World {
            sc: Scenario {
                fault_rate: 0.0,
                crash_rate: 0.0,
                stale_rate: 0.0,
                stale_ttl: 0,
                stall_rate: 0.0,
            },
            fs: MemFs::new(),
            now: 0,
            rng,
            hosts: Vec::new(),
            clients: Vec::new(),
            turn: None,
            trace: VecDeque::new(),
            report: Report::default(),
            stop: false,
            finished: false,
            name_by: BTreeMap::new(),
            name_at: BTreeMap::new(),
            broken: BTreeSet::new(),
            broken_epochs: BTreeMap::new(),
            broken_members: BTreeSet::new(),
            epoch_disturbed: BTreeMap::new(),
            displaced: Vec::new(),
            told_lost: BTreeSet::new(),
            disturbed: BTreeMap::new(),
            expired_at: BTreeMap::new(),
            pinned: BTreeMap::new(),
            leases: BTreeMap::new(),
            next_start: 1000,
            pending_spawn: Vec::new(),
            cleaning: false,
            actions: 0,
            live_trace: std::env::var_os("SIM_TRACE").is_some(),
            cfg,
        };
        // Warm the generator so nearby seeds diverge at once.
        for _ in 0..4 {
            w.rand();
        }
        w.sc = Scenario {
            fault_rate: [0.0, 0.005, 0.02, 0.05][w.below(4) as usize],
            crash_rate: [0.0, 0.0, 0.001, 0.004][w.below(4) as usize],
            stale_rate: [0.0, 0.3][w.below(2) as usize],
            stale_ttl: [0, 500_000_000, 2_000_000_000][w.below(3) as usize],
            // Drawn apart from the main stream, so that seeds without
            // stalls run exactly as they did before stalls existed.
            stall_rate: if w.cfg.stalls {
                let h = xorshift(&Cell::new(
                    w.cfg.seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1,
                ));
                [0.0, 0.01, 0.03][(h % 3) as usize]
            } else {
                0.0
            },
        };
        let (uid, user) = (nix::unistd::getuid().as_raw(), "sim".to_string());
        let nhosts = 1 + w.below(3) as usize;
        for h in 0..nhosts {
            let skew_ns = match w.below(5) {
                0 => TWO_HOURS_NS,
                1 => -TWO_HOURS_NS,
                2 => i128::from(w.below(600)) * 1_000_000_000 - 300 * 1_000_000_000,
                _ => 0,
            };
            w.hosts.push(Host {
                ident: Identity {
                    host: format!("h{h}"),
                    boot_id: Some(format!("boot-{h}")),
                    machine: Some(format!("{:032x}", h + 1)),
                    pidns: Some(4_026_531_836 + h as u64),
                    uid,
                    user: user.clone().into(),
                },
                skew_ns,
                procs: BTreeMap::new(),
            });
        }
        if w.below(3) == 0 {
            // A container on host 0: same host name and boot, own pid
            // namespace, so its pids collide with host 0's.
            let mut ident = w.hosts[0].ident.clone();
            ident.pidns = Some(4_026_532_900);
            let skew_ns = w.hosts[0].skew_ns;
            w.hosts.push(Host {
                ident,
                skew_ns,
                procs: BTreeMap::new(),
            });
        }
        if w.cfg.reboots && w.below(2) == 0 {
            // A twin of host 0: another machine, same host name.
            let mut ident = w.hosts[0].ident.clone();
            ident.boot_id = Some("boot-twin".into());
            ident.machine = Some(format!("{:032x}", 0xbeef));
            ident.pidns = Some(4_026_533_000);
            w.hosts.push(Host {
                ident,
                skew_ns: 0,
                procs: BTreeMap::new(),
            });
        }
        let nclients = 2 + w.below(4) as usize;
        for _ in 0..nclients {
            let h = w.below(w.hosts.len() as u64) as usize;
            w.add_client(h, false);
        }
        w.log(format!(
            "scenario: {} hosts, {} clients, {:?}, skews {:?}",
            w.hosts.len(),
            nclients,
            w.sc,
            w.hosts
                .iter()
                .map(|h| h.skew_ns / 1_000_000_000)
                .collect::<Vec<_>>()
        ));
        w
    }

    pub fn rand(&self) -> u64 {
        xorshift(&self.rng)
    }

    pub fn below(&self, n: u64) -> u64 {
        self.rand() % n.max(1)
    }

    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && (self.rand() % 1_000_000) as f64 / 1e6 < p
    }

    pub fn server_now(&self) -> FsTime {
        FsTime(EPOCH_NS + i128::from(self.now))
    }

    pub fn wall_ns(&self, host: usize) -> i128 {
        EPOCH_NS + i128::from(self.now) + self.hosts[host].skew_ns
    }

    fn add_client(&mut self, host: usize, cleaner: bool) -> usize {
        // Small pid numbers, so pids get reused within a host and collide
        // across hosts and namespaces.
        let mut pid = 100 + self.below(6) as u32;
        while self.hosts[host].procs.contains_key(&pid) {
            pid += 1;
        }
        let start = self.next_start;
        self.next_start += 1 + self.below(50);
        self.hosts[host].procs.insert(pid, start);
        let id = self.clients.len();
        let boot = self.hosts[host].ident.boot_id.clone();
        self.clients.push(Client {
            host,
            boot,
            pid,
            start,
            cleaner,
            wait: Wait::Ready,
            grant: None,
            crashed: false,
            phase: Phase::Idle,
            stale_after: None,
            since: 0,
            away_at_begin: false,
            holding: None,
            lock_name: OsString::from(LOCK),
            shared: false,
            lost_unlink: false,
            made: None,
            left: false,
            uncertain: BTreeSet::new(),
            dentries: BTreeMap::new(),
            attrs: BTreeMap::new(),
            cv: Arc::new(Condvar::new()),
        });
        self.pending_spawn.push(id);
        id
    }

    pub fn who(&self, id: usize) -> String {
        let c = &self.clients[id];
        format!(
            "c{id}({}/{}:{})",
            self.hosts[c.host].ident.host, c.host, c.pid
        )
    }

    pub fn log(&mut self, line: String) {
        if self.trace.len() >= self.cfg.trace_len {
            self.trace.pop_front();
        }
        let t = self.now as f64 / 1e9;
        let line = format!("{t:>10.6} {line}");
        if self.live_trace {
            eprintln!("{line}");
        }
        self.trace.push_back(line);
    }

    pub fn live(&self, id: usize) -> bool {
        !self.finished && !self.clients[id].crashed
    }

    /// Picks who moves next and what its operation meets; `None` when the
    /// run is over.
    fn schedule(&mut self) -> Option<usize> {
        loop {
            if self.finished {
                return None;
            }
            self.check_state();
            if self.report.violation.is_some() || self.now > MAX_VIRTUAL {
                self.finished = true;
                return None;
            }
            let now = self.now;
            let runnable: Vec<usize> = (0..self.clients.len())
                .filter(|&i| {
                    let c = &self.clients[i];
                    !c.crashed
                        && match c.wait {
                            Wait::Ready | Wait::Op => true,
                            Wait::Sleep(until) | Wait::OpAt(until) => until <= now,
                            Wait::Watch { until, ino, ctime } => {
                                until <= now
                                    || self.fs.inodes.get(&ino).map(|i| i.ctime) != Some(ctime)
                            }
                            Wait::Running | Wait::Done => false,
                        }
                })
                .collect();
            if runnable.is_empty() {
                let wake = self
                    .clients
                    .iter()
                    .filter(|c| !c.crashed)
                    .filter_map(|c| match c.wait {
                        Wait::Sleep(until) | Wait::OpAt(until) => Some(until),
                        Wait::Watch { until, .. } => Some(until),
                        _ => None,
                    })
                    .min();
                match wake {
                    Some(t) => {
                        self.now = self.now.max(t);
                        continue;
                    }
                    None => {
                        self.finished = true;
                        return None;
                    }
                }
            }
            if self.cfg.reboots && !self.cleaning && self.chance(self.sc.crash_rate / 4.0) {
                let h = self.below(self.hosts.len() as u64) as usize;
                self.reboot(h);
                continue;
            }
            let id = runnable[self.below(runnable.len() as u64) as usize];
            let grant = if matches!(self.clients[id].wait, Wait::Op | Wait::OpAt(_)) {
                if !self.cleaning && self.chance(self.sc.crash_rate) {
                    self.crash(id);
                    continue;
                }
                if self.clients[id].wait == Wait::Op
                    && !self.cleaning
                    && self.chance(self.sc.stall_rate)
                {
                    // Paused between two steps: the others move on.
                    let until = self.now + 10_000_000 + self.below(2_000_000_000);
                    self.clients[id].wait = Wait::OpAt(until);
                    let line = format!(
                        "{} stalls for {:.3}s",
                        self.who(id),
                        (until - self.now) as f64 / 1e9
                    );
                    self.log(line);
                    continue;
                }
                self.report.steps += 1;
                self.now += 50_000 + self.below(2_000_000);
                Grant::Go(self.draw_fault())
            } else {
                Grant::Wake
            };
            let c = &mut self.clients[id];
            c.grant = Some(grant);
            c.wait = Wait::Running;
            self.turn = Some(id);
            return Some(id);
        }
    }

    fn draw_fault(&mut self) -> Fault {
        if self.cleaning {
            return Fault::None;
        }
        if self.chance(self.sc.fault_rate) {
            return match self.below(4) {
                0 => Fault::EioNotDone,
                1 => Fault::EioDone,
                2 => Fault::LostReply,
                _ => Fault::Twice,
            };
        }
        if self.sc.stale_ttl > 0 && self.chance(self.sc.stale_rate) {
            return Fault::Stale;
        }
        Fault::None
    }

    /// Host `h` reboots, with every host that shares its kernel (its
    /// containers): a new boot id, every process gone, and new ones start.
    fn reboot(&mut self, h: usize) {
        let kernel = self.hosts[h].ident.boot_id.clone();
        let machine = self.hosts[h].ident.machine.clone();
        self.report.reboots += 1;
        let n = self.report.reboots;
        let hosts: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| {
                self.hosts[i].ident.boot_id == kernel && self.hosts[i].ident.machine == machine
            })
            .collect();
        let line = format!("host {h} REBOOTS (hosts {hosts:?})");
        self.log(line);
        let victims: Vec<usize> = (0..self.clients.len())
            .filter(|&c| {
                let cl = &self.clients[c];
                hosts.contains(&cl.host) && !cl.crashed && cl.wait != Wait::Done
            })
            .collect();
        // All of the old boot dies before anything of the new one starts:
        // a new process may get an old one's pid.
        for &id in &victims {
            self.crash_with(id, false);
        }
        for &i in &hosts {
            self.hosts[i].ident.boot_id = Some(format!("boot-{h}-{n}"));
            self.hosts[i].procs.clear();
        }
        for &id in &victims {
            if !self.stop {
                let host = self.clients[id].host;
                let n = self.add_client(host, false);
                let line = format!("{} starts", self.who(n));
                self.log(line);
            }
        }
    }

    /// The client dies at this step: no further effects, its process is
    /// gone, and (unless the run is ending) a new one starts somewhere.
    fn crash(&mut self, id: usize) {
        self.crash_with(id, true);
    }

    /// [`World::crash`], starting the new process or not.
    fn crash_with(&mut self, id: usize, respawn: bool) {
        let line = format!(
            "{} CRASHES (holding {:?})",
            self.who(id),
            self.clients[id].holding
        );
        self.log(line);
        self.report.crashes += 1;
        self.end_of_operation(id, true);
        let c = &mut self.clients[id];
        c.crashed = true;
        c.wait = Wait::Done;
        let (host, pid) = (c.host, c.pid);
        c.cv.notify_all();
        self.hosts[host].procs.remove(&pid);
        if respawn && !self.stop {
            let h = if self.below(2) == 0 {
                host
            } else {
                self.below(self.hosts.len() as u64) as usize
            };
            let n = self.add_client(h, false);
            let line = format!("{} starts", self.who(n));
            self.log(line);
        }
    }

    pub fn next_action_allowed(&mut self) -> bool {
        self.actions += 1;
        // Backstop: a run whose target cannot be reached still ends.
        if self.actions > self.cfg.acquisitions.saturating_mul(20) + 100 {
            self.stop = true;
        }
        !self.stop
    }

    pub fn fault_counted(&mut self, fault: Fault) {
        if fault != Fault::None {
            self.report.faults += 1;
        }
    }

    pub fn trace_op(&mut self, id: usize, what: String, fault: Fault) {
        let line = format!("{} {what}{}", self.who(id), fault.tag());
        self.log(line);
    }

    // ---- The filesystem, with name ownership tracked for the oracle ----

    pub fn name_owner_set(&mut self, name: &OsStr, id: usize) {
        self.name_by.insert(name.to_owned(), id);
        self.name_at.insert(name.to_owned(), self.now);
    }

    /// Client `me` closes the file it made if it is `name`'s, before that
    /// name is unlinked or renamed (as `AnchoredFs` does).
    pub fn forget_made(&mut self, me: usize, name: &OsStr) {
        if self.clients[me]
            .made
            .as_ref()
            .is_some_and(|(n, _)| n == name)
        {
            self.clients[me].made = None;
        }
    }

    pub fn name_owner_clear(&mut self, name: &OsStr) {
        self.name_by.remove(name);
        self.name_at.remove(name);
    }

    // ---- The oracle ----

    /// The lock names: LOCK, or its N slots.
    pub fn lock_names(&self) -> Vec<OsString> {
        match self.cfg.slots {
            None => vec![OsString::from(LOCK)],
            Some(n) => (1..=n)
                .map(|k| OsString::from(format!("{LOCK}.slot-{k}")))
                .collect(),
        }
    }

    pub fn ino_at(&self, name: &OsStr) -> Option<u64> {
        self.fs.names.get(name).copied()
    }

    /// The instance at the lock name client `id` holds or goes for.
    fn lock_of(&self, id: usize) -> Option<u64> {
        self.ino_at(&self.clients[id].lock_name)
    }

    /// The readers' links in readers' directories: each a lock name of
    /// its own, held by the reader whose claim it is.
    fn members(&self) -> Vec<OsString> {
        self.fs
            .names
            .keys()
            .filter(|k| is_member(k))
            .cloned()
            .collect()
    }

    /// The readers' directory of the shared lock `inode`, if it is one.
    fn epoch_of(inode: &Inode) -> Option<OsString> {
        match record::parse(&inode.data) {
            Content::Ours(r) if r.shared => {
                let claim = r.claim.to_str()?;
                Some(
                    claim
                        .replacen(".nfslock-share.", ".nfslock-epoch.", 1)
                        .into(),
                )
            }
            _ => None,
        }
    }

    pub fn before(&self) -> Before {
        Before(
            self.lock_names()
                .into_iter()
                .chain(self.members())
                .chain(self.displaced.iter().map(|d| d.name.clone()))
                .chain(self.broken_members.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|n| {
                    let at = self.ino_at(&n).map(|i| (i, self.fs.inodes[&i].clone()));
                    (n, at)
                })
                .collect(),
        )
    }

    fn violation(&mut self, what: String) {
        if self.report.violation.is_some() {
            return;
        }
        let mut s = format!(
            "seed {} ({:?}): {what}\nreplay: SIM_SEED={} SIM_ACQUISITIONS={}{} cargo test --lib sim::tests::replay -- --nocapture\ntrace (last {} steps):\n",
            self.cfg.seed,
            self.cfg.mutant,
            self.cfg.seed,
            self.cfg.acquisitions,
            if self.cfg.stalls { "" } else { " SIM_STALLS=0" },
            self.trace.len()
        );
        for l in &self.trace {
            let _ = writeln!(s, "  {l}");
        }
        self.report.violation = Some(s);
        self.finished = true;
    }

    /// Called after every mutating operation of `actor`: judges any change
    /// of the instance at the lock name.
    pub fn after_mutation(&mut self, actor: usize, before: Before) {
        for (name, was) in before.0 {
            self.after_mutation_at(actor, &name, was);
        }
    }

    fn after_mutation_at(&mut self, actor: usize, name: &OsStr, before: Option<(u64, Inode)>) {
        let after = self.ino_at(name);
        let before_ino = before.as_ref().map(|(i, _)| *i);
        if before_ino == after {
            return;
        }
        if let Some((ino, inode)) = before {
            self.disturbed.insert(ino, self.now);
            if actor != inode.creator {
                self.pinned.insert(ino, self.now);
            }
            self.instance_removed(actor, name, ino, &inode);
        }
        if let Some(j) = after {
            self.broken_members.remove(name);
            // A shared lock back at the lock name restores no reader: each
            // is in by its own link (the opener's claim is both).
            let shared_lock = !is_member(name) && Self::epoch_of(&self.fs.inodes[&j]).is_some();
            if !shared_lock && self.broken.remove(&j) {
                self.log(format!("oracle: instance {j} is back at the lock name"));
            }
            self.displaced.retain(|d| d.ino != j);
            // Someone else took the name before the displacer could put
            // the lock back. The displacer taking it itself is theft.
            for d in &mut self.displaced {
                if d.by != actor {
                    d.third_party = true;
                }
            }
        }
    }

    fn instance_removed(&mut self, actor: usize, name: &OsStr, ino: u64, inode: &Inode) {
        if actor == inode.creator && is_member(name) {
            self.clients[actor].left = true;
        }
        // The shared lock at the lock name is held by its readers (each at
        // its own link), not by the reader that opened it.
        let shared_lock = if is_member(name) {
            None
        } else {
            Self::epoch_of(inode)
        };
        let owner = inode.creator;
        let lease = self.lease_of(ino, inode);
        let o = &self.clients[owner];
        let a = &self.clients[actor];
        let believed = !o.crashed
            && (o.holding == Some(ino) || (o.phase == Phase::Acquiring && o.holding.is_none()))
            && shared_lock.is_none();
        let age = self.server_now().0 - inode.mtime.0;
        // Age rules never break a provably alive owner: one on the actor's
        // own host, boot and pid namespace whose process still runs.
        let provably_alive = self.hosts[a.host].ident == self.hosts[o.host].ident
            && !o.crashed
            && self.hosts[o.host].procs.get(&o.pid) == Some(&o.start);
        let limit = crate::stale::age_limit(lease, a.stale_after, provably_alive);
        let expired = limit.is_some_and(|l| age >= l.as_nanos() as i128)
            || self.expired_at.get(&ino).is_some_and(|&t| t >= a.since);
        let force = a.phase == (Phase::Breaking { force: true });
        let same_ident = self.hosts[a.host].ident == self.hosts[o.host].ident;
        let dead_known = o.crashed && same_ident;
        // An owner of an earlier boot of the actor's own machine: that boot
        // is over. Never a twin's (another machine, same host name).
        let (ai, oi) = (&self.hosts[a.host].ident, &self.hosts[o.host].ident);
        let rebooted_known = o.crashed
            && ai.host == oi.host
            && ai.machine.is_some()
            && ai.machine == oi.machine
            && ai.boot_id != o.boot;
        // A shared lock whose readers' directory is gone is free: its file
        // is what the last reader out (or anyone, later) removes.
        let why = if let Some(e) = &shared_lock {
            // Readers hold it, each by its own link: neither the opener's
            // age nor its death frees the lock, only the end of its epoch.
            // Readers other than the actor: its own link, if it is the
            // opener giving up, holds nobody else.
            let readers_in = self.fs.entries(e).iter().any(|n| {
                let key = Path::new(e).join(n).into_os_string();
                is_member(&key)
                    && self
                        .fs
                        .names
                        .get(&key)
                        .is_some_and(|i| self.fs.inodes[i].creator != actor)
            });
            // Even `--force` breaks the readers first, each at its link.
            if !self.fs.names.contains_key(e) {
                Some("its readers' directory is gone")
            } else if !readers_in {
                Some("no reader is in")
            } else {
                None
            }
        } else if actor == owner {
            Some("its owner")
        } else if force {
            Some("forced")
        } else if expired {
            Some("expired")
        } else if dead_known {
            Some("dead owner, same host")
        } else if rebooted_known {
            self.report.rebooted_breaks += 1;
            Some("owner's boot is over, same machine")
        } else if !believed && !o.crashed {
            Some("nobody believes it holds it")
        } else {
            None
        };
        match why {
            Some(why) => {
                if believed && actor != owner {
                    self.broken.insert(ino);
                    self.report.breaks += 1;
                    if is_member(name) {
                        self.broken_members.insert(name.to_owned());
                    }
                }
                let line = format!(
                    "oracle: instance {ino} of {} removed by {} ({why})",
                    self.who(owner),
                    self.who(actor)
                );
                self.log(line);
            }
            None => {
                let line = format!(
                    "oracle: instance {ino} of {} moved away by {} without a right to remove it (age {:.3}s, limit {limit:?})",
                    self.who(owner),
                    self.who(actor),
                    age as f64 / 1e9
                );
                self.log(line);
                if let Some(e) = &shared_lock {
                    self.epoch_disturbed.insert(e.clone(), self.now);
                }
                self.displaced.push(Displacement {
                    ino,
                    by: actor,
                    third_party: false,
                    epoch: shared_lock,
                    at: self.now,
                    name: name.to_owned(),
                });
            }
        }
    }

    /// An operation of `actor` is over (or it crashed): every lock it moved
    /// away without a right must have been put back, unless a third party
    /// took the name in between (the documented window).
    fn end_of_operation(&mut self, actor: usize, crashed: bool) {
        let mine: Vec<Displacement> = {
            let (mine, rest) = std::mem::take(&mut self.displaced)
                .into_iter()
                .partition(|d| d.by == actor);
            self.displaced = rest;
            mine
        };
        for d in mine {
            if d.third_party || crashed {
                self.broken.insert(d.ino);
                if let Some(e) = d.epoch.clone() {
                    self.broken_epochs.entry(e).or_insert(d.at);
                }
                self.report.windows += 1;
                let line = format!(
                    "oracle: window: instance {} displaced by {} ({})",
                    d.ino,
                    self.who(actor),
                    if crashed {
                        "crashed before restoring"
                    } else {
                        "name taken before restore"
                    }
                );
                self.log(line);
            } else {
                self.violation(format!(
                    "I2/I3: {} removed a live lock instance ({}) it had no right to remove and did not put it back",
                    self.who(actor),
                    d.ino
                ));
            }
        }
    }

    fn lease_of(&mut self, ino: u64, inode: &Inode) -> Option<Duration> {
        *self
            .leases
            .entry(ino)
            .or_insert_with(|| match record::parse(&inode.data) {
                Content::Ours(r) => r.lease,
                Content::Foreign { .. } | Content::NotALock { .. } => None,
            })
    }

    fn displaced_now(&self, ino: u64) -> bool {
        self.displaced.iter().any(|d| d.ino == ino)
    }

    /// The invariants that must hold between any two steps.
    fn check_state(&mut self) {
        self.report.checks += 1;
        let names = self.lock_names();
        let mut holders = 0;
        let mut readers = Vec::new();
        let mut per_name: BTreeMap<OsString, usize> = BTreeMap::new();
        for id in 0..self.clients.len() {
            let c = &self.clients[id];
            if c.crashed {
                continue;
            }
            if let Some(i) = c.holding {
                // A reader that took its own link out in this operation is
                // leaving (it found itself broken or its lock moved): that
                // never overlaps anyone, and what it is told is judged when
                // the operation ends.
                let epoch_gone = c.shared && c.left;
                if self.broken.contains(&i)
                    || self.displaced_now(i)
                    || c.phase == Phase::Releasing
                    || epoch_gone
                {
                    continue;
                }
                if c.shared {
                    readers.push(id);
                } else {
                    holders += 1;
                }
                *per_name.entry(c.lock_name.clone()).or_default() += 1;
                if self.ino_at(&c.lock_name) != Some(i) {
                    let who = self.who(id);
                    self.violation(format!(
                        "I1: {who} holds instance {i}, which is no longer the lock, and nobody broke it"
                    ));
                    return;
                }
            }
        }
        if per_name.values().any(|&n| n > 1) {
            self.violation("I1: two holders".into());
            return;
        }
        if holders > names.len() {
            self.violation(format!("slots: {holders} holders of {} slots", names.len()));
            return;
        }
        self.report.most_readers = self.report.most_readers.max(readers.len() as u64);
        for id in readers {
            if !self.check_reader(id) {
                return;
            }
        }
        for name in names.into_iter().chain(self.members()) {
            self.check_phantom(&name);
        }
    }

    /// I1 for a reader that is in: the lock name is still the shared lock
    /// whose readers' directory holds its link, so no writer holds it.
    fn check_reader(&mut self, id: usize) -> bool {
        let member = &self.clients[id].lock_name;
        let epoch = MemFs::parent(member).map(OsStr::to_owned);
        let lock = self.ino_at(OsStr::new(LOCK));
        let of_lock = lock.and_then(|i| Self::epoch_of(&self.fs.inodes[&i]));
        if epoch.is_some() && epoch == of_lock {
            return true;
        }
        // Its lock moved aside by a remover's pin (the removal window):
        // put back in a moment, or taken, and then the reader is told.
        let moved = self.displaced.iter().any(|d| d.epoch == epoch)
            || epoch
                .as_ref()
                .is_some_and(|e| self.broken_epochs.contains_key(e));
        if moved {
            return true;
        }
        let who = self.who(id);
        let writer = (0..self.clients.len()).find(|&w| {
            let c = &self.clients[w];
            !c.crashed && !c.shared && c.holding.is_some() && c.holding == lock
        });
        let what = match writer {
            Some(w) => format!("an exclusive holder, {}", self.who(w)),
            None => format!("instance {lock:?}, not its readers' lock"),
        };
        self.violation(format!(
            "I1: {who} reads (its link {}) while the lock is {what}, and nobody broke it",
            member.to_string_lossy()
        ));
        false
    }

    /// Writer preference: a reader that got in had no live writer's seal
    /// in its readers' directory from before it linked itself in.
    fn check_preference(&mut self, id: usize) {
        let member = self.clients[id].lock_name.clone();
        let (Some(epoch), Some(&joined)) = (MemFs::parent(&member), self.name_at.get(&member))
        else {
            return;
        };
        for seal in self.fs.entries(epoch) {
            let key = Path::new(epoch).join(&seal).into_os_string();
            let Some(&ino) = self.fs.names.get(&key) else {
                continue;
            };
            let (Some(&by), Some(&at)) = (self.name_by.get(&key), self.name_at.get(&key)) else {
                continue;
            };
            let w = &self.clients[by];
            let waiting = !w.crashed && !w.shared && w.phase == Phase::Acquiring;
            if self.fs.inodes[&ino].dir && waiting && at < joined {
                let (r, wr) = (self.who(id), self.who(by));
                self.violation(format!(
                    "writer preference: {r} got in past {wr}, whose seal was there before it came"
                ));
                return;
            }
        }
    }

    /// I4 at one lock name: the instance there is believed held by its
    /// maker (or explained).
    fn check_phantom(&mut self, name: &OsStr) {
        if let Some(j) = self.ino_at(name) {
            let inode = self.fs.inodes[&j].clone();
            // A shared lock is held by the readers linked in its
            // directory, each checked at its own link.
            if Self::epoch_of(&inode).is_some() {
                return;
            }
            if let Some(l) = self.lease_of(j, &inode) {
                if self.server_now().0 - inode.mtime.0 >= l.as_nanos() as i128 {
                    self.expired_at.insert(j, self.now);
                }
            }
            let k = inode.creator;
            let c = &self.clients[k];
            let believes = c.holding == Some(j) || c.phase == Phase::Acquiring;
            if !c.crashed && !believes && !c.uncertain.contains(&j) && !self.told_lost.contains(&j)
            {
                let who = self.who(k);
                self.violation(format!(
                    "I4: phantom lock: the lock is instance {j} of {who}, which does not believe it holds it"
                ));
            }
        }
    }

    pub fn begin(&mut self, id: usize, phase: Phase, stale_after: Option<Duration>) {
        let now = self.now;
        let lock = self.lock_of(id);
        // A reader whose lock is moved aside by a pin as it begins.
        let epoch = MemFs::parent(&self.clients[id].lock_name).map(OsStr::to_owned);
        let epoch_away = self.clients[id].shared
            && epoch.is_some()
            && self.displaced.iter().any(|d| d.epoch == epoch);
        let c = &mut self.clients[id];
        c.phase = phase;
        c.lost_unlink = false;
        c.made = None;
        c.left = false;
        c.stale_after = stale_after;
        c.since = now;
        c.away_at_begin = c.holding.is_some() && (c.holding != lock || epoch_away);
        let line = format!("{} begins {phase:?}", self.who(id));
        self.log(line);
    }

    fn idle(&mut self, id: usize, line: String) {
        let line = format!("{} {line}", self.who(id));
        self.log(line);
        self.clients[id].phase = Phase::Idle;
        self.clients[id].stale_after = None;
        self.end_of_operation(id, false);
    }

    /// Client `id` was told it holds instance `ino`; a reader, at its
    /// link `member` in the readers' directory.
    pub fn acquired(&mut self, id: usize, ino: u64, member: Option<OsString>) {
        self.report.acquisitions += 1;
        if self.report.acquisitions >= self.cfg.acquisitions {
            self.stop = true;
        }
        self.clients[id].holding = Some(ino);
        if let Some(name) = member {
            self.report.shared += 1;
            self.clients[id].lock_name = name;
            self.check_preference(id);
        } else if let Some(name) = self
            .lock_names()
            .into_iter()
            .find(|n| self.ino_at(n) == Some(ino))
        {
            self.clients[id].lock_name = name;
        } else if let Some(d) = self.displaced.iter().find(|d| d.ino == ino) {
            // Told while its lock is moved aside by a remover (the
            // documented window): the name it was moved from, a slot's
            // too, not the one this client held last.
            self.clients[id].lock_name = d.name.clone();
        } else if self.cfg.slots.is_none() {
            // Told while its lock is moved aside by a remover's pin.
            self.clients[id].lock_name = OsString::from(LOCK);
        }
        self.idle(id, format!("ACQUIRED instance {ino}"));
        if self.lock_of(id) != Some(ino) && !self.broken.contains(&ino) && !self.displaced_now(ino)
        {
            let who = self.who(id);
            self.violation(format!(
                "I1/I4: acquire told {who} it holds instance {ino}, but the lock is {:?}",
                self.lock_of(id)
            ));
        }
    }

    pub fn acquire_failed(&mut self, id: usize, err: &str) {
        self.idle(id, format!("acquire failed: {err}"));
    }

    /// The result of a touch or release of the held instance.
    pub fn checked(&mut self, id: usize, release: bool, outcome: Outcome) {
        let Some(ino) = self.clients[id].holding else {
            return;
        };
        let what = if release { "release" } else { "touch" };
        let broken = self.broken.contains(&ino);
        let at_lock = self.lock_of(id) == Some(ino);
        let who = self.who(id);
        match &outcome {
            _ if self.clients[id].shared => self.checked_reader(id, release, &outcome, ino),
            Outcome::Ok => {
                if broken {
                    self.violation(format!(
                        "I1: {what} by {who} succeeded although its lock (instance {ino}) was broken"
                    ));
                } else if release && at_lock {
                    self.violation(format!(
                        "I4: {who}'s release succeeded but the lock is still there"
                    ));
                } else if !release && !at_lock {
                    self.violation(format!(
                        "I1: {who}'s touch succeeded but the lock is not its own"
                    ));
                }
            }
            Outcome::Lost => {
                // Told while its lock was away from the lock name (a
                // removal that was then undone): the documented window.
                let since = self.clients[id].since;
                let moved = self.clients[id].away_at_begin
                    || self.disturbed.get(&ino).is_some_and(|&t| t >= since);
                if at_lock && !broken && !self.displaced_now(ino) && !moved {
                    self.violation(format!(
                        "false alarm: {what} told {who} its lock was lost, but it still holds it"
                    ));
                }
                if !at_lock || moved {
                    self.told_lost.insert(ino);
                }
                if at_lock && moved {
                    // Told while its lock was moved aside, which was then
                    // put back: the documented window.
                    self.report.windows += 1;
                }
            }
            Outcome::Error(e) => {
                let line = format!("{who}: {what} failed: {e}");
                self.log(line);
                if release {
                    self.clients[id].uncertain.insert(ino);
                }
            }
        }
        let keeps = !release && matches!(outcome, Outcome::Error(_) | Outcome::Ok);
        if !keeps {
            self.clients[id].holding = None;
        }
        self.idle(id, format!("{what} -> {outcome:?}"));
    }

    /// [`World::checked`] for a reader: its link among the readers is
    /// its lock name, and its readers' lock must still be at the lock name.
    fn checked_reader(&mut self, id: usize, release: bool, outcome: &Outcome, ino: u64) {
        let what = if release { "release" } else { "touch" };
        let who = self.who(id);
        let member = self.clients[id].lock_name.clone();
        let epoch = MemFs::parent(&member).map(OsStr::to_owned);
        let in_epoch = self.ino_at(&member) == Some(ino);
        // Broken as a reader, at its link (an opener's claim is also the
        // lock, which the removal window can break for all its readers).
        let broken = self.broken.contains(&ino) && self.broken_members.contains(&member);
        let lock = self.ino_at(OsStr::new(LOCK));
        let since = self.clients[id].since;
        // When its lock left the lock name for good (or for a pin).
        let moved_at = epoch
            .as_ref()
            .and_then(|e| self.broken_epochs.get(e).copied())
            .or_else(|| {
                self.displaced
                    .iter()
                    .filter(|d| d.epoch == epoch)
                    .map(|d| d.at)
                    .min()
            });
        let epoch_moved =
            moved_at.is_some() || lock.and_then(|i| Self::epoch_of(&self.fs.inodes[&i])) != epoch;
        // Moved before the touch began: the touch must have seen it.
        let moved_before = moved_at.is_some_and(|t| t < since);
        let pinned = self.pinned.get(&ino).is_some_and(|&t| t >= since)
            || self.clients[id].away_at_begin
            || epoch
                .as_ref()
                .and_then(|e| self.epoch_disturbed.get(e))
                .is_some_and(|&t| t >= since);
        match outcome {
            Outcome::Ok if broken => self.violation(format!(
                "I1: {what} by {who} succeeded although it was broken as a reader"
            )),
            Outcome::Ok if release && in_epoch => self.violation(format!(
                "I4: {who}'s release succeeded but its link among the readers is still there"
            )),
            Outcome::Ok if !release && (!in_epoch || moved_before) => self.violation(format!(
                "I1: {who}'s touch succeeded but it is no longer a reader of the lock"
            )),
            Outcome::Ok => {}
            Outcome::Lost => {
                let lost_reply = self.clients[id].lost_unlink;
                if !broken && !epoch_moved && !pinned && !lost_reply {
                    self.violation(format!(
                        "false alarm: {what} told reader {who} it was broken, but it was still in"
                    ));
                }
                self.told_lost.insert(ino);
            }
            Outcome::Error(e) => {
                let line = format!("{who}: {what} failed: {e}");
                self.log(line);
                if release {
                    self.clients[id].uncertain.insert(ino);
                }
            }
        }
    }

    pub fn other_done(&mut self, id: usize, line: String) {
        self.idle(id, line);
    }

    /// A client's script ended.
    fn client_done(&mut self, id: usize) {
        let c = &mut self.clients[id];
        c.wait = Wait::Done;
        let (host, pid) = (c.host, c.pid);
        self.hosts[host].procs.remove(&pid);
        let line = format!("{} exits", self.who(id));
        self.log(line);
    }

    /// No leftovers of processes that exited normally.
    fn check_litter(&mut self) {
        let mut bad = Vec::new();
        // The readers' directory of the lock is part of the lock: it stays
        // while the lock does (a writer that crashed while closing it
        // leaves both to the next contender, or to `break`).
        let lock_epoch = self
            .ino_at(OsStr::new(LOCK))
            .and_then(|i| Self::epoch_of(&self.fs.inodes[&i]));
        for (name, ino) in &self.fs.names {
            // The lock names, and the slot count that stays by design.
            if self.lock_names().contains(name)
                || name == OsStr::new(SLOT_COUNT)
                || lock_epoch.as_ref() == Some(name)
            {
                continue;
            }
            let Some(&by) = self.name_by.get(name) else {
                continue;
            };
            let c = &self.clients[by];
            if !c.crashed && !c.uncertain.contains(ino) {
                bad.push(format!(
                    "{} (made by {})",
                    name.to_string_lossy(),
                    self.who(by)
                ));
            }
        }
        if !bad.is_empty() {
            self.violation(format!("I5: litter of processes that exited: {bad:?}"));
        }
    }
}

/// Whether a name is a reader's link in a readers' directory.
fn is_member(name: &OsStr) -> bool {
    let base = Path::new(name).file_name().unwrap_or_default();
    MemFs::parent(name).is_some()
        && base
            .as_bytes()
            .starts_with(format!(".{LOCK}.nfslock-share.").as_bytes())
}

/// How a touch or release ended, as the oracle sees it.
#[derive(Debug)]
pub(super) enum Outcome {
    Ok,
    /// "Not yours any more" (exit 76).
    Lost,
    Error(String),
}

/// Gives up the turn (after setting our wait state) and waits for it to
/// come back. `None` means this client is dead or the run is over.
fn hand_off<'a>(
    shared: &'a Arc<Shared>,
    mut w: MutexGuard<'a, World>,
    me: Option<usize>,
) -> Option<MutexGuard<'a, World>> {
    w.turn = None;
    let next = w.schedule();
    for id in std::mem::take(&mut w.pending_spawn) {
        let s = Arc::clone(shared);
        let h = std::thread::Builder::new()
            .name(format!("sim-c{id}"))
            .spawn(move || client::main(s, id))
            .expect("spawn a simulated client");
        shared.threads.lock().expect("threads").push(h);
    }
    match next {
        None => {
            for c in &w.clients {
                c.cv.notify_all();
            }
            shared.main_cv.notify_all();
            return None;
        }
        Some(n) if Some(n) == me => return Some(w),
        Some(n) => w.clients[n].cv.notify_one(),
    }
    let me = me?;
    if w.clients[me].wait == Wait::Done {
        return None;
    }
    let cv = Arc::clone(&w.clients[me].cv);
    loop {
        if w.finished || w.clients[me].crashed {
            return None;
        }
        if w.turn == Some(me) {
            return Some(w);
        }
        w = cv.wait(w).expect("world lock");
    }
}

/// A scheduling point of client `me`: returns with the world locked and
/// the turn ours, with what the scheduler granted.
pub(super) fn block(
    shared: &Arc<Shared>,
    me: usize,
    wait: Wait,
) -> Option<(MutexGuard<'_, World>, Grant)> {
    let mut w = shared.world.lock().expect("world lock");
    if !w.live(me) {
        return None;
    }
    w.clients[me].wait = match wait {
        Wait::Sleep(d) => Wait::Sleep(w.now + d),
        Wait::Watch { until, ino, ctime } => Wait::Watch {
            until: w.now + until,
            ino,
            ctime,
        },
        other => other,
    };
    let mut w = hand_off(shared, w, Some(me))?;
    let grant = w.clients[me].grant.take().unwrap_or(Grant::Wake);
    Some((w, grant))
}

/// Ends the run with `why` as its violation (a panic in a client).
pub(super) fn abort(shared: &Arc<Shared>, why: String) {
    let mut w = match shared.world.lock() {
        Ok(w) => w,
        Err(p) => p.into_inner(),
    };
    w.violation(why);
    w.finished = true;
    for c in &w.clients {
        c.cv.notify_all();
    }
    shared.main_cv.notify_all();
}

/// Waits for a new client's first turn.
pub(super) fn first_turn(shared: &Arc<Shared>, me: usize) -> bool {
    let mut w = shared.world.lock().expect("world lock");
    let cv = Arc::clone(&w.clients[me].cv);
    loop {
        if !w.live(me) {
            return false;
        }
        if w.turn == Some(me) {
            w.clients[me].grant = None;
            return true;
        }
        w = cv.wait(w).expect("world lock");
    }
}

/// A client's script is over: hand the turn on for good.
pub(super) fn finish(shared: &Arc<Shared>, me: usize) {
    let mut w = shared.world.lock().expect("world lock");
    if !w.live(me) {
        return;
    }
    w.client_done(me);
    let _ = hand_off(shared, w, Some(me));
}

fn drive(shared: &Arc<Shared>) {
    let w = shared.world.lock().expect("world lock");
    let _ = hand_off(shared, w, None);
    let mut w = shared.world.lock().expect("world lock");
    let mut seen = (w.report.steps, w.now, w.report.checks);
    let mut quiet = 0;
    // The oracle may end the run inside any client's turn; polling for
    // that is simpler than waking this thread from every such place.
    while !w.finished {
        let (g, _) = shared
            .main_cv
            .wait_timeout(w, std::time::Duration::from_millis(50))
            .expect("world lock");
        w = g;
        let now = (w.report.steps, w.now, w.report.checks);
        quiet = if now == seen { quiet + 1 } else { 0 };
        seen = now;
        if quiet == 400 {
            // A scheduling bug of the simulator itself: say where it stands.
            let state: Vec<String> = (0..w.clients.len())
                .map(|i| {
                    let c = &w.clients[i];
                    format!(
                        "{} {:?} crashed={} {:?}",
                        w.who(i),
                        c.wait,
                        c.crashed,
                        c.phase
                    )
                })
                .collect();
            let turn = w.turn;
            w.violation(format!("simulator stuck: turn {turn:?}, clients {state:?}"));
        }
    }
    for c in &w.clients {
        c.cv.notify_all();
    }
    drop(w);
    loop {
        let h = shared.threads.lock().expect("threads").pop();
        match h {
            Some(h) => {
                if let Err(p) = h.join() {
                    std::panic::resume_unwind(p);
                }
            }
            None => break,
        }
    }
}

/// Runs one seeded simulation to the end and reports what it found.
pub fn run(cfg: &Config) -> Report {
    let shared = Arc::new(Shared {
        world: Mutex::new(World::new(cfg.clone())),
        main_cv: Condvar::new(),
        threads: Mutex::new(Vec::new()),
    });
    drive(&shared);
    let hosts = {
        let mut w = shared.world.lock().expect("world lock");
        if w.report.violation.is_none() {
            w.check_litter();
        }
        // Clean-up, long after everything expired: one `break` per host,
        // one after the other, must leave the directory empty.
        w.now += (ORPHAN_AGE + Duration::from_secs(3600)).as_nanos() as u64;
        w.cleaning = true;
        w.stop = true;
        w.log("clean-up: one break per host".into());
        w.hosts.len()
    };
    for h in 0..hosts {
        {
            let mut w = shared.world.lock().expect("world lock");
            if w.report.violation.is_some() {
                break;
            }
            w.finished = false;
            w.add_client(h, true);
        }
        drive(&shared);
    }
    {
        let mut w = shared.world.lock().expect("world lock");
        // The slot count stays by design (like the fencing counter).
        let left: Vec<String> =
            w.fs.names
                .keys()
                .filter(|n| n.as_os_str() != OsStr::new(SLOT_COUNT))
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
        if w.report.violation.is_none() && !left.is_empty() {
            w.violation(format!("I5: left after clean-up: {left:?}"));
        }
    }
    let mut w = shared.world.lock().expect("world lock");
    w.report.virtual_secs = w.now as f64 / 1e9;
    w.report.clone()
}
