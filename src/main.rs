//! The `nfslock` binary: parse, run, exit. Everything else is in the library.

use clap::Parser;
use nfslock::{cli::Cli, commands, exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; clap's usage exit 2 is 64.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    // A bug must not look like "busy" or like a child's status: exit 70,
    // from the hook, since release builds abort instead of unwinding.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("nfslock: internal error: {info}");
        std::process::exit(exit::INTERNAL.into());
    }));
    ExitCode::from(commands::run(cli))
}
