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
    ExitCode::from(commands::run(cli))
}
