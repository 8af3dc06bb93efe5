//! The command line, as data: clap definitions only, no I/O. Everything a
//! script can type is here, in one place.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

fn duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s)
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
    max_term_width = 100
)]
pub struct Cli {
    /// Print nothing but usage errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Explain waits, breaks and decisions on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Give up (exit 74) when an I/O error persists this long.
    #[arg(long, global = true, value_name = "DUR", value_parser = duration, default_value = "30s")]
    pub io_timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

/// `defer`: only the subcommand being run has its arguments built; building
/// all of them took a tenth of an uncontended lock cycle.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Take the lock for a process (by default the calling shell), then exit.
    Acquire(AcquireArgs),
    /// Release a lock taken by `acquire`. Exit 76 if it is not yours.
    Release(OwnerArgs),
    /// Refresh the lock's mtime (file-system time). Exit 76 if not yours.
    Touch(OwnerArgs),
    /// Show who holds the lock. Exit 0 free, 75 held, 1 held but stale.
    #[command(visible_alias = "inspect")]
    Status(StatusArgs),
    /// Break a stale lock (dead owner, expired lease, or older than DUR).
    Break(BreakArgs),
    /// Hold the lock while a command runs, refreshing it; exit with the
    /// command's status (76 if the lock was lost meanwhile).
    Run(RunArgs),
    /// The detached keeper behind `acquire --keepalive` (internal).
    #[command(hide = true)]
    Keeper(KeeperArgs),
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// Fail at once if the lock is busy (after breaking stale locks).
    #[arg(short = 'n', long = "nonblock", conflicts_with = "wait")]
    pub nonblock: bool,
    /// Wait at most DUR (default: wait forever; 0 means -n).
    #[arg(short = 'w', long = "wait", visible_alias = "timeout", value_name = "DUR", value_parser = duration)]
    pub wait: Option<Duration>,
    /// The owner process (default: the parent, i.e. the calling shell). Use
    /// `--pid $$` in subshells and command substitutions.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Let others break the lock if it is not touched for DUR.
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub lease: Option<Duration>,
    /// Also break locks whose mtime is older than DUR (file-system time).
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
    /// and releases it as soon as the owner dies (lease default 60s).
    #[arg(long)]
    pub keepalive: bool,
    /// The lock file.
    pub lock: PathBuf,
}

fn on_lost(s: &str) -> Result<crate::run::OnLost, String> {
    crate::run::OnLost::parse(s)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Fail at once if the lock is busy (after breaking stale locks).
    #[arg(short = 'n', long = "nonblock", conflicts_with = "wait")]
    pub nonblock: bool,
    /// Wait at most DUR for the lock (default: forever; 0 means -n).
    #[arg(short = 'w', long = "wait", visible_alias = "timeout", value_name = "DUR", value_parser = duration)]
    pub wait: Option<Duration>,
    /// Also break locks whose mtime is older than DUR (file-system time).
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub stale_after: Option<Duration>,
    /// Others may break the lock if the heartbeat stops for DUR; the
    /// heartbeat refreshes it every DUR/3.
    #[arg(long, value_name = "DUR", value_parser = duration, default_value = "60s")]
    pub lease: Duration,
    /// When the lock is lost: term (TERM, then KILL after --kill-after),
    /// kill, warn, or signal:NAME. The exit status is 76 whatever the policy.
    #[arg(long, value_name = "POLICY", value_parser = on_lost, default_value = "term")]
    pub on_lost: crate::run::OnLost,
    /// Grace between TERM and KILL for --on-lost term.
    #[arg(long, value_name = "DUR", value_parser = duration, default_value = "10s")]
    pub kill_after: Duration,
    /// Give the command NFSLOCK_FENCE, a counter that grows on every fenced
    /// acquisition of this lock.
    #[arg(long)]
    pub fence: bool,
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

#[derive(Debug, Args)]
pub struct KeeperArgs {
    #[arg(long)]
    pub token: String,
    #[arg(long)]
    pub owner: u32,
    #[arg(long)]
    pub owner_start: String,
    #[arg(long, value_parser = duration)]
    pub lease: Duration,
    pub lock: PathBuf,
}

#[derive(Debug, Args)]
pub struct OwnerArgs {
    /// The owner process (default: the parent, i.e. the calling shell).
    #[arg(long, value_name = "PID", conflicts_with = "token")]
    pub pid: Option<u32>,
    /// The token printed by `acquire --print-token`.
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
    /// The lock file.
    pub lock: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also call the lock stale when its mtime is older than DUR.
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub stale_after: Option<Duration>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The lock file.
    pub lock: PathBuf,
}

#[derive(Debug, Args)]
pub struct BreakArgs {
    /// Also break a lock whose mtime is older than DUR (file-system time).
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub older_than: Option<Duration>,
    /// Break even a live lock.
    #[arg(long)]
    pub force: bool,
    /// Say what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The lock file.
    pub lock: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_forms() {
        let c = Cli::try_parse_from(["nfslock", "acquire", "-w", "1h30m", "-E", "0", "-q", "/l"])
            .unwrap();
        assert!(c.quiet);
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
