//! The `mynah` binary: command-line parsing and wiring of the library crates, nothing more.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, as documented in the README: 0 success, 1 bad input, 2 usage.
pub const EXIT_BAD_INPUT: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with success, usage errors to stderr.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        cli::Command::Inspect(args) => cmd::inspect::run(args),
        cli::Command::Convert(args) => cmd::convert::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mynah: error: {e:#}");
            ExitCode::from(
                e.downcast_ref::<cmd::UsageError>()
                    .map_or(EXIT_BAD_INPUT, |_| EXIT_USAGE),
            )
        }
    }
}
