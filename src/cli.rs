//! The command line, as data: clap definitions only, no I/O. Everything a
//! script can type is here, in one place.

use clap::{Args, Parser, Subcommand};
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

/// A slot count or number: 1 to 1000 (`protocol::slots::MAX_SLOTS`).
fn slots(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: a number from 1 to 1000")),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s)
}

/// The shortest lease: one that leaves room for a heartbeat every lease/3.
pub const MIN_LEASE: Duration = Duration::from_millis(100);

fn lease(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < MIN_LEASE {
        return Err(format!(
            "a lease must leave room for a heartbeat (one every lease/3): at least {}ms",
            MIN_LEASE.as_millis()
        ));
    }
    Ok(d)
}

/// A process id: 0 would name our process group, never a process.
fn pid(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("0 is not a process (it names a process group)".into()),
        Ok(p) if i32::try_from(p).is_ok() => Ok(p),
        _ => Err(format!("{s:?} is not a process id")),
    }
}

/// Mutual exclusion for scripts and cron jobs that stays correct on NFS.
///
/// Locks are files taken with the link(2) protocol and judged by stat, so they
/// work where flock(2) and fcntl(2) locks silently do not (nolock and
/// local_lock mounts, broken lockd, FUSE clients). Durations: 250ms, 90, 90s,
/// 5m, 1h30m. Exit codes: 0 ok, 1 stale (status), 64 usage, 66 no directory,
/// 69 unsafe filesystem, 70 internal, 73 cannot create, 74 I/O, 75 busy,
/// 76 not yours or lost, 128+n signal n.
#[derive(Debug, Parser)]
#[command(
    name = "nfslock",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = examples::NFSLOCK
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

// Options of every command, before or after its name. Each command has
// its own copy, merged by `Cli::options`: clap's `global = true` does the
// same by copying arguments and matches around, which cost a seventh of an
// uncontended `run`. (Not a doc comment: clap would make it the about text
// of every command that flattens this.)
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct Common {
    /// Print nothing but usage errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Explain waits, breaks and decisions on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Give up (exit 74) when an I/O error persists this long (default 30s).
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub io_timeout: Option<Duration>,
}

/// [`Common`] with both places merged and the default applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub quiet: bool,
    pub verbose: bool,
    pub io_timeout: Duration,
}

impl Cli {
    /// The options given before and after the command's name; where both
    /// give --io-timeout, the later one counts.
    pub fn options(&self) -> Options {
        let (top, sub) = (self.common, *self.command.common());
        Options {
            quiet: top.quiet || sub.quiet,
            verbose: top.verbose || sub.verbose,
            io_timeout: sub
                .io_timeout
                .or(top.io_timeout)
                .unwrap_or(Duration::from_secs(30)),
        }
    }

    /// What clap checks within one place, across both: -q with -v.
    pub fn check(self) -> Result<Cli, clap::Error> {
        let o = self.options();
        if o.quiet && o.verbose {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "the argument '--quiet' cannot be used with '--verbose'",
            ));
        }
        Ok(self)
    }
}

/// `defer`: only the subcommand being run has its arguments built; building
/// all of them took a tenth of an uncontended lock cycle.
///
/// Each command's help ends with examples (`after_help`); the man pages
/// print them as their EXAMPLES section, and a test parses every one.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Take the lock for a process (by default the calling shell), then exit.
    #[command(after_help = examples::ACQUIRE)]
    Acquire(AcquireArgs),
    /// Release a lock taken by `acquire`. Exit 76 if it is not yours.
    #[command(after_help = examples::RELEASE)]
    Release(OwnerArgs),
    /// Refresh the lock's mtime (file-system time). Exit 76 if not yours.
    #[command(after_help = examples::TOUCH)]
    Touch(OwnerArgs),
    /// Show who holds the lock. Exit 0 free, 75 held, 1 held but stale.
    #[command(visible_alias = "inspect", after_help = examples::STATUS)]
    Status(StatusArgs),
    /// Break a stale lock (dead owner, expired lease, or older than DUR).
    #[command(after_help = examples::BREAK)]
    Break(BreakArgs),
    /// Hold the lock while a command runs, refreshing it; exit with the
    /// command's status (76 if the lock was lost meanwhile).
    #[command(after_help = examples::RUN)]
    Run(RunArgs),
    /// List the locks in directories (or at lock paths) with their holders.
    /// Read-only. Exit 0 when the listing is complete.
    #[command(after_help = examples::LIST)]
    List(ListArgs),
    /// Break every stale lock in directories, by the rules of `break`, and
    /// remove leftovers of dead processes.
    #[command(after_help = examples::SWEEP)]
    Sweep(SweepArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(after_help = examples::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// The detached keeper behind `acquire --keepalive` (internal).
    #[command(hide = true)]
    Keeper(KeeperArgs),
}

impl Command {
    /// The lock (or the one directory) the command is about, as typed:
    /// every error line names it first.
    pub fn subject(&self) -> Option<&std::path::Path> {
        fn one(v: &[PathBuf]) -> Option<&std::path::Path> {
            match v {
                [p] => Some(p),
                _ => None,
            }
        }
        match self {
            Command::Acquire(a) => Some(&a.lock),
            Command::Release(a) | Command::Touch(a) => Some(&a.lock),
            Command::Status(a) => Some(&a.lock),
            Command::Break(a) => Some(&a.lock),
            Command::Run(a) => Some(&a.lock),
            Command::Keeper(a) => Some(&a.lock),
            Command::List(a) => one(&a.paths),
            Command::Sweep(a) => one(&a.dirs),
            Command::Completions(_) => None,
        }
    }

    /// The options given after the command's name.
    pub fn common(&self) -> &Common {
        match self {
            Command::Acquire(a) => &a.common,
            Command::Release(a) | Command::Touch(a) => &a.common,
            Command::Status(a) => &a.common,
            Command::Break(a) => &a.common,
            Command::Run(a) => &a.common,
            Command::List(a) => &a.common,
            Command::Sweep(a) => &a.common,
            Command::Keeper(a) => &a.common,
            Command::Completions(a) => &a.common,
        }
    }
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    #[command(flatten)]
    pub common: Common,
    /// Fail at once if the lock is busy (after breaking stale locks).
    #[arg(short = 'n', long = "nonblock", conflicts_with = "wait")]
    pub nonblock: bool,
    /// Wait at most DUR (default: wait forever; 0 means -n).
    #[arg(short = 'w', long = "wait", visible_alias = "timeout", value_name = "DUR", value_parser = duration)]
    pub wait: Option<Duration>,
    /// The owner process (default: the parent, i.e. the calling shell). Use
    /// `--pid $$` in subshells and command substitutions.
    #[arg(long, value_name = "PID", value_parser = pid)]
    pub pid: Option<u32>,
    /// Let others break the lock if it is not touched for DUR.
    #[arg(long, value_name = "DUR", value_parser = lease)]
    pub lease: Option<Duration>,
    /// Also break locks older than DUR (file-system time) that have no
    /// lease and no provably alive owner (another host's, another tool's);
    /// never a valid lease or a live owner.
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub stale_after: Option<Duration>,
    /// Exit status when busy or timed out (default 75).
    #[arg(short = 'E', long = "conflict-exit-code", value_name = "N")]
    pub conflict_exit_code: Option<u8>,
    /// Print the lock's token on stdout, for `release --token`.
    #[arg(long)]
    pub print_token: bool,
    /// Longest pause between polls while waiting.
    #[arg(long, value_name = "DUR", value_parser = duration, default_value = "1s")]
    pub poll_max: Duration,
    /// Start a detached keeper that refreshes the lock while the owner lives
    /// and releases it as soon as the owner dies (lease default 60s). It
    /// outlives SIGTERM, SIGINT and SIGHUP; only its owner's end ends it.
    #[arg(long)]
    pub keepalive: bool,
    /// With --keepalive, what the keeper does to the owner when the lock is
    /// lost: term (TERM, then KILL after --kill-after), kill, warn, or
    /// signal:NAME.
    #[arg(long, value_name = "POLICY", value_parser = on_lost, default_value = "term", requires = "keepalive")]
    pub on_lost: OnLost,
    /// Grace between TERM and KILL for --on-lost term.
    #[arg(long, value_name = "DUR", value_parser = duration, default_value = "10s", requires = "keepalive")]
    pub kill_after: Duration,
    /// Take one of N slots of the lock (at most N holders at once, on all
    /// hosts): slot K is the lock LOCK.slot-K.
    #[arg(long, value_name = "N", value_parser = slots)]
    pub slots: Option<u32>,
    /// Take the lock shared, with any number of other readers, never with
    /// a writer; a waiting writer goes before readers that come after it.
    #[arg(short = 's', long = "shared", conflicts_with_all = ["exclusive", "slots"])]
    pub shared: bool,
    /// Take the lock exclusive: the default (flock's spelling).
    #[arg(short = 'x', long = "exclusive")]
    pub exclusive: bool,
    /// The lock file.
    pub lock: PathBuf,
}

fn on_lost(s: &str) -> Result<OnLost, String> {
    OnLost::parse(s)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Fail at once if the lock is busy (after breaking stale locks).
    #[arg(short = 'n', long = "nonblock", conflicts_with = "wait")]
    pub nonblock: bool,
    /// Wait at most DUR for the lock (default: forever; 0 means -n).
    #[arg(short = 'w', long = "wait", visible_alias = "timeout", value_name = "DUR", value_parser = duration)]
    pub wait: Option<Duration>,
    /// Also break locks older than DUR (file-system time) that have no
    /// lease and no provably alive owner (another host's, another tool's);
    /// never a valid lease or a live owner.
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub stale_after: Option<Duration>,
    /// Others may break the lock if the heartbeat stops for DUR; the
    /// heartbeat refreshes it every DUR/3.
    #[arg(long, value_name = "DUR", value_parser = lease, default_value = "60s")]
    pub lease: Duration,
    /// When the lock is lost: term (TERM, then KILL after --kill-after),
    /// kill, warn, or signal:NAME. The exit status is 76 whatever the policy.
    #[arg(long, value_name = "POLICY", value_parser = on_lost, default_value = "term")]
    pub on_lost: OnLost,
    /// Grace between TERM and KILL for --on-lost term.
    #[arg(long, value_name = "DUR", value_parser = duration, default_value = "10s")]
    pub kill_after: Duration,
    /// Give the command NFSLOCK_FENCE, a counter that grows on every fenced
    /// acquisition of this lock.
    #[arg(long)]
    pub fence: bool,
    /// Hold one of N slots of the lock (at most N commands at once, on all
    /// hosts); the command sees NFSLOCK_SLOT (1..N) and NFSLOCK_SLOTS.
    #[arg(long, value_name = "N", value_parser = slots)]
    pub slots: Option<u32>,
    /// Hold the lock shared, with any number of other readers, never with
    /// a writer; a waiting writer goes before readers that come after it.
    #[arg(short = 's', long = "shared", conflicts_with_all = ["exclusive", "slots", "fence"])]
    pub shared: bool,
    /// Hold the lock exclusive: the default (flock's spelling).
    #[arg(short = 'x', long = "exclusive")]
    pub exclusive: bool,
    /// Run the command only if it last started at least DUR ago (in
    /// file-system time, on any host); else release and exit 75 (or -E N).
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub min_interval: Option<Duration>,
    /// Exit status when busy or timed out (default 75).
    #[arg(short = 'E', long = "conflict-exit-code", value_name = "N")]
    pub conflict_exit_code: Option<u8>,
    /// Longest pause between polls while waiting.
    #[arg(long, value_name = "DUR", value_parser = duration, default_value = "1s")]
    pub poll_max: Duration,
    /// Run STRING with /bin/sh -c (may also follow LOCK, as with flock).
    #[arg(short = 'c', long = "command", value_name = "STRING")]
    pub shell: Option<std::ffi::OsString>,
    /// The lock file.
    pub lock: PathBuf,
    /// The command and its arguments; options after LOCK belong to it.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<std::ffi::OsString>,
}

/// The shells `completions` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// What `run` gives its command in the environment, for the man pages.
pub const RUN_ENVIRONMENT: &[(&str, &str)] = &[
    ("NFSLOCK_PATH", "the lock's path, as given"),
    (
        "NFSLOCK_TOKEN",
        "the lock's token (for `release --token` and `touch --token`)",
    ),
    (
        "NFSLOCK_FENCE",
        "with --fence: the fencing counter, larger at every fenced acquisition",
    ),
    ("NFSLOCK_SLOT", "with --slots N: the slot held, 1 to N"),
    ("NFSLOCK_SLOTS", "with --slots N: N"),
];

/// The examples that end each command's help (and its man page).
mod examples {
    pub const NFSLOCK: &str = "\
Examples:
  nfslock run -n /srv/locks/backup.lock -- /usr/local/bin/backup
  nfslock status /srv/locks/backup.lock
  nfslock list /srv/locks";
    pub const ACQUIRE: &str = "\
Examples:
  nfslock acquire -w 10m /srv/locks/nightly.lock || exit 75
  nfslock acquire --keepalive --pid $$ /srv/locks/deploy.lock
  nfslock acquire -s -n /srv/locks/db.lock || echo 'a writer has it'";
    pub const RELEASE: &str = "\
Examples:
  nfslock release /srv/locks/nightly.lock
  nfslock release --token \"$TOKEN\" /srv/locks/nightly.lock";
    pub const TOUCH: &str = "\
Examples:
  nfslock touch /srv/locks/nightly.lock
  nfslock touch --pid $$ /srv/locks/nightly.lock";
    pub const STATUS: &str = "\
Examples:
  nfslock status /srv/locks/nightly.lock
  nfslock status --json /srv/locks/nightly.lock | jq -r .holder.host";
    pub const BREAK: &str = "\
Examples:
  nfslock break /srv/locks/nightly.lock
  nfslock break --older-than 2h --dry-run /srv/locks/nightly.lock
  nfslock break --force /srv/locks/nightly.lock";
    pub const RUN: &str = "\
Examples:
  nfslock run -n /srv/locks/backup.lock -- /usr/local/bin/backup
  nfslock run -s -w 5m /srv/locks/db.lock -- report db.json
  nfslock run --slots 4 /srv/locks/encode.lock -- encode input.mkv
  nfslock run -n --min-interval 1h /srv/locks/feeds.lock -- fetch-feeds";
    pub const LIST: &str = "\
Examples:
  nfslock list /srv/locks
  nfslock list --stale-only --json /srv/locks /var/lock/team";
    pub const SWEEP: &str = "\
Examples:
  nfslock sweep --dry-run /srv/locks
  nfslock sweep --rebooted /srv/locks";
    pub const COMPLETIONS: &str = "\
Examples:
  nfslock completions bash > /etc/bash_completion.d/nfslock
  nfslock completions fish > ~/.config/fish/completions/nfslock.fish";
}

#[derive(Debug, Args)]
pub struct KeeperArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub token: String,
    #[arg(long)]
    pub owner: u32,
    #[arg(long)]
    pub owner_start: String,
    #[arg(long, value_parser = duration)]
    pub lease: Duration,
    #[arg(long, value_parser = on_lost)]
    pub on_lost: OnLost,
    #[arg(long, value_parser = duration)]
    pub kill_after: Duration,
    pub lock: PathBuf,
}

#[derive(Debug, Args)]
pub struct OwnerArgs {
    #[command(flatten)]
    pub common: Common,
    /// The owner process (default: the parent, i.e. the calling shell).
    #[arg(long, value_name = "PID", value_parser = pid, conflicts_with = "token")]
    pub pid: Option<u32>,
    /// The token printed by `acquire --print-token`.
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
    /// The lock file.
    pub lock: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also call the lock stale when older than DUR, if it has no lease and
    /// no provably alive owner.
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub stale_after: Option<Duration>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The lock file.
    pub lock: PathBuf,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print one JSON object, {"locks": [...]}, each lock as `status --json`
    /// prints it.
    #[arg(long)]
    pub json: bool,
    /// Only stale locks.
    #[arg(long)]
    pub stale_only: bool,
    /// Also each lock's auxiliary files (claims, pins, private names,
    /// probes), with whether the process behind each is alive.
    #[arg(long)]
    pub all: bool,
    /// Directories (every lock directly in each) or lock paths.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also break locks older than DUR (file-system time) that have no
    /// lease and no provably alive owner.
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub older_than: Option<Duration>,
    /// Only locks left by an earlier boot of this machine (run it at boot).
    #[arg(long)]
    pub rebooted: bool,
    /// Say what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object, {"actions": [...]}, instead of a line per
    /// action on stderr.
    #[arg(long)]
    pub json: bool,
    /// Lock directories.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BreakArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also break a lock older than DUR (file-system time) that has no lease
    /// and no provably alive owner; never a valid lease or a live owner.
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub older_than: Option<Duration>,
    /// Break even a live lock.
    #[arg(long)]
    pub force: bool,
    /// Break slot K of a slotted lock (the lock LOCK.slot-K).
    #[arg(long, value_name = "K", value_parser = slots)]
    pub slot: Option<u32>,
    /// Say what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The lock file.
    pub lock: PathBuf,
}

/// What to do when the lock is lost while the command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLost {
    /// SIGTERM, then SIGKILL after the grace period.
    Term,
    Kill,
    /// Keep running; warn on stderr.
    Warn,
    Signal(Signal),
}

impl OnLost {
    pub fn parse(s: &str) -> Result<OnLost, String> {
        match s {
            "term" => Ok(OnLost::Term),
            "kill" => Ok(OnLost::Kill),
            "warn" => Ok(OnLost::Warn),
            _ => match s.strip_prefix("signal:") {
                Some(name) => parse_signal(name).map(OnLost::Signal),
                None => Err(format!(
                    "invalid policy {s:?} (term, kill, warn or signal:NAME)"
                )),
            },
        }
    }

    /// The policy's spelling on a command line.
    pub fn spelling(self) -> String {
        match self {
            OnLost::Term => "term".into(),
            OnLost::Kill => "kill".into(),
            OnLost::Warn => "warn".into(),
            OnLost::Signal(s) => format!("signal:{}", s as i32),
        }
    }
}

fn parse_signal(name: &str) -> Result<Signal, String> {
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("no signal number {n}"));
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>()
        .map_err(|_| format!("unknown signal {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args).and_then(Cli::check)
    }

    /// -q, -v and --io-timeout work on either side of the command's name,
    /// as clap's global arguments did, and still exclude each other.
    #[test]
    fn common_options_go_before_or_after_the_command() {
        let before = parse(&["nfslock", "-q", "--io-timeout", "5s", "status", "/l"]).unwrap();
        let after = parse(&["nfslock", "status", "-q", "--io-timeout", "5s", "/l"]).unwrap();
        let both = parse(&[
            "nfslock",
            "--io-timeout",
            "1s",
            "status",
            "--io-timeout",
            "5s",
            "/l",
        ])
        .unwrap();
        for c in [&before, &after] {
            assert_eq!(
                c.options(),
                Options {
                    quiet: true,
                    verbose: false,
                    io_timeout: Duration::from_secs(5)
                }
            );
        }
        assert_eq!(both.options().io_timeout, Duration::from_secs(5));
        let default = parse(&["nfslock", "run", "-v", "/l", "true"]).unwrap();
        assert_eq!(default.options().io_timeout, Duration::from_secs(30));
        assert!(default.options().verbose);
        for args in [
            ["nfslock", "-q", "-v", "status", "/l"],
            ["nfslock", "-q", "status", "-v", "/l"],
            ["nfslock", "-v", "status", "-q", "/l"],
            ["nfslock", "status", "-q", "-v", "/l"],
        ] {
            let e = parse(&args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let c = Cli::try_parse_from(["nfslock", "acquire", "-w", "1h30m", "-E", "0", "-q", "/l"])
            .unwrap();
        assert!(c.options().quiet);
        let Command::Acquire(a) = c.command else {
            panic!()
        };
        assert_eq!(a.wait, Some(Duration::from_secs(5400)));
        assert_eq!(a.conflict_exit_code, Some(0));
        assert!(Cli::try_parse_from(["nfslock", "acquire", "-n", "-w", "1", "/l"]).is_err());
        assert!(Cli::try_parse_from(["nfslock", "acquire", "-E", "300", "/l"]).is_err());
        assert!(
            Cli::try_parse_from(["nfslock", "release", "--pid", "1", "--token", "a", "/l"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["nfslock", "-q", "-v", "status", "/l"]).is_err());
        let c = Cli::try_parse_from(["nfslock", "inspect", "--json", "/l"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Status(StatusArgs { json: true, .. })
        ));
        let c = Cli::try_parse_from(["nfslock", "break", "--older-than", "5m", "--dry-run", "/l"])
            .unwrap();
        let Command::Break(b) = c.command else {
            panic!()
        };
        assert_eq!(b.older_than, Some(Duration::from_secs(300)));
    }
}
