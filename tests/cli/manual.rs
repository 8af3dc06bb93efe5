//! The man pages and shell completions, generated from the CLI's clap
//! definition and committed under `contrib/`: these tests fail when a
//! committed file differs from what the definition gives now. To bring
//! them up to date after changing the CLI: `NFSLOCK_BLESS=1 cargo test
//! --test cli manual::`.

use crate::util::*;
use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use nfslock::cli::{Cli, RUN_ENVIRONMENT};
use nfslock::exit;
use std::path::{Path, PathBuf};

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(rel)
}

/// The whole command, every subcommand built (the binary builds only the
/// one it runs).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The command as users see it: without the internal `keeper`, which
/// clap_complete would offer although it is hidden.
fn visible() -> clap::Command {
    let full = Cli::command();
    let subs: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let args: Vec<clap::Arg> = full.get_arguments().cloned().collect();
    let mut bare = clap::Command::new("nfslock")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(args)
        .subcommands(subs);
    bare.build();
    bare
}

/// Compares `text` with the committed file, or writes it when blessing.
fn committed(path: &Path, text: &[u8], stale: &mut Vec<String>) {
    if std::env::var_os("NFSLOCK_BLESS").is_some() {
        std::fs::write(path, text).unwrap();
        return;
    }
    if std::fs::read(path).ok().as_deref() != Some(text) {
        stale.push(path.display().to_string());
    }
}

fn assert_fresh(stale: Vec<String>) {
    assert!(
        stale.is_empty(),
        "out of date with the CLI definition: {stale:?}; regenerate with \
         NFSLOCK_BLESS=1 cargo test --test cli manual::"
    );
}

/// The pages: nfslock(1) and one per visible command, nfslock-CMD(1).
fn pages() -> Vec<(String, Vec<u8>)> {
    let cmd = command();
    let mut out = vec![("nfslock.1".to_string(), page(&cmd, None))];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.push((
            format!("nfslock-{}.1", sub.get_name()),
            page(sub, Some(&cmd)),
        ));
    }
    out
}

fn page(cmd: &clap::Command, parent: Option<&clap::Command>) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone())
        .manual("nfslock manual")
        .source(format!("nfslock {}", env!("CARGO_PKG_VERSION")));
    let mut buf = Vec::new();
    man.render_title(&mut buf).unwrap();
    man.render_name_section(&mut buf).unwrap();
    man.render_synopsis_section(&mut buf).unwrap();
    man.render_description_section(&mut buf).unwrap();
    man.render_options_section(&mut buf).unwrap();
    if parent.is_none() {
        man.render_subcommands_section(&mut buf).unwrap();
    }
    let mut roff = Roff::new();
    let sub = parent.map(|_| cmd.get_name());
    if let Some(ex) = cmd.get_after_help() {
        examples_section(&mut roff, &ex.to_string());
    }
    exit_section(&mut roff, sub);
    environment_section(&mut roff, sub);
    files_section(&mut roff);
    see_also_section(&mut roff, parent.unwrap_or(cmd), sub);
    roff.to_writer(&mut buf).unwrap();
    buf
}

fn examples_section(roff: &mut Roff, text: &str) {
    roff.control("SH", ["EXAMPLES"]);
    for line in text.lines().skip(1) {
        roff.control("TP", []);
        roff.text([roman(line.trim())]);
    }
}

fn exit_section(roff: &mut Roff, sub: Option<&str>) {
    roff.control("SH", ["EXIT STATUS"]);
    let mut rows: Vec<(String, String)> = exit::TABLE
        .iter()
        .map(|(c, m)| (c.to_string(), m.to_string()))
        .collect();
    if sub.is_none() || sub == Some("run") {
        rows.push((
            "126".into(),
            "run: the command could not be executed".into(),
        ));
        rows.push(("127".into(), "run: the command was not found".into()));
        rows.push(("other".into(), "run: the command's own exit status".into()));
    }
    rows.push((
        "128+n".into(),
        "killed by signal n while waiting (run: the command was)".into(),
    ));
    for (code, meaning) in rows {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
}

fn environment_section(roff: &mut Roff, sub: Option<&str>) {
    if !matches!(sub, None | Some("run")) {
        return;
    }
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman("nfslock run gives its command:")]);
    for (name, meaning) in RUN_ENVIRONMENT {
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*meaning)]);
    }
}

fn files_section(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (name, meaning) in [
        (
            "LOCK",
            "the lock: a hard link to its holder's claim, holding its record (text, key=value)",
        ),
        (
            ".LOCK.nfslock-*",
            "claims, readers' directories, pins and private names beside the lock, \
             named after their maker's host and pid; nfslock removes its own, and sweep \
             those of dead processes",
        ),
        ("LOCK.slot-K", "slot K of a lock taken with --slots"),
        (
            "/lib/systemd/system/nfslock-sweep-rebooted.service",
            "runs nfslock sweep --rebooted at boot on the directories it is given",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([roman(meaning)]);
    }
}

fn see_also_section(roff: &mut Roff, root: &clap::Command, sub: Option<&str>) {
    roff.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<String> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && Some(s.get_name()) != sub)
        .map(|s| format!("nfslock-{}(1)", s.get_name()))
        .collect();
    if sub.is_some() {
        refs.insert(0, "nfslock(1)".into());
    }
    refs.extend(["flock(1)", "dotlockfile(1)", "link(2)", "nfs(5)"].map(String::from));
    roff.text([roman(refs.join(", "))]);
}

#[test]
fn man_pages_match_the_cli_definition() {
    let mut stale = Vec::new();
    let dir = contrib("man");
    std::fs::create_dir_all(&dir).unwrap();
    let pages = pages();
    for (name, text) in &pages {
        committed(&dir.join(name), text, &mut stale);
    }
    // No page of a command that is gone.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !pages.iter().any(|(n, _)| *n == name) {
            stale.push(format!("{name} (no such command)"));
        }
    }
    assert_fresh(stale);
}

#[test]
fn completions_match_the_cli_definition() {
    use clap_complete::{generate, Shell};
    let mut stale = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "nfslock.bash"),
        (Shell::Zsh, "_nfslock"),
        (Shell::Fish, "nfslock.fish"),
    ] {
        let mut buf = Vec::new();
        generate(shell, &mut visible(), "nfslock", &mut buf);
        committed(&contrib("completions").join(file), &buf, &mut stale);
    }
    assert_fresh(stale);
}

/// Every page renders without a warning from man(1), where it is here.
#[test]
fn man_pages_render() {
    if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("man(1) is not installed");
    }
    for (name, _) in pages() {
        let out = std::process::Command::new("man")
            .args(["--warnings", "-l"])
            .arg(contrib("man").join(&name))
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_STDERR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("EXIT STATUS"), "{name}: {text}");
        assert!(
            out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `nfslock completions SHELL` prints the committed script, and bash,
/// having loaded it, completes the commands.
#[test]
fn bash_completes_the_commands() {
    if std::env::var_os("NFSLOCK_BLESS").is_some() {
        // The scripts are being rewritten (and the binary carries the old).
        return;
    }
    let s = Scratch::new();
    let script = s.run(["completions", "bash"]).code(0).stdout.clone();
    let committed = std::fs::read_to_string(contrib("completions/nfslock.bash")).unwrap();
    assert!(
        script.trim_end() == committed.trim_end(),
        "`completions bash` is not the committed script"
    );
    for shell in ["zsh", "fish"] {
        assert!(!s.run(["completions", shell]).code(0).stdout.is_empty());
    }
    s.run(["completions", "tcsh"]).code(64);
    let probe = r#"
        source "$1"
        complete_for() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ));
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=();
            _nfslock nfslock "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}";
            printf '%s\n' "${COMPREPLY[@]}"; }
        echo "== top"; complete_for nfslock ""
        echo "== run"; complete_for nfslock run --sh
    "#;
    let out = std::process::Command::new("bash")
        .args(["-c", probe, "probe"])
        .arg(contrib("completions/nfslock.bash"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let top = text.split("== run").next().unwrap();
    for cmd in [
        "acquire",
        "release",
        "touch",
        "status",
        "break",
        "run",
        "list",
        "sweep",
        "completions",
    ] {
        assert!(top.lines().any(|l| l == cmd), "{cmd} not completed: {text}");
    }
    assert!(
        !top.lines().any(|l| l == "keeper"),
        "the internal command is offered: {text}"
    );
    assert!(text.contains("--shared"), "run --sh not completed: {text}");
}

/// Each command's help ends with examples, and every example is a command
/// line nfslock accepts (the nfslock part of it, up to a shell operator).
#[test]
fn every_help_ends_with_examples_that_parse() {
    use clap::Parser;
    let cmd = command();
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .chain([&cmd])
    {
        let after = sub
            .get_after_help()
            .map(|a| a.to_string())
            .unwrap_or_default();
        assert!(
            after.starts_with("Examples:\n"),
            "{}: {after:?}",
            sub.get_name()
        );
        let n = after.lines().count() - 1;
        assert!((2..=4).contains(&n), "{}: {n} examples", sub.get_name());
        for line in after.lines().skip(1) {
            let line = line.replace("$$", &std::process::id().to_string());
            let words = shell_words(&line);
            assert_eq!(words[0], "nfslock", "{line}");
            Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
    let s = Scratch::new();
    s.run(["run", "--help"])
        .code(0)
        .stdout_has("Examples:\n  nfslock run -n");
}

/// Splits a simple shell line: quotes kept together, stopping at `&&`,
/// `||`, `|` or `>`.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut cur, mut quote, mut any) = (String::new(), None, false);
    for ch in line.trim().chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                any = true
            }
            (None, ' ') => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    let stop = words
        .iter()
        .position(|w| ["&&", "||", "|", ">"].contains(&w.as_str()))
        .unwrap_or(words.len());
    words.truncate(stop);
    words
}
