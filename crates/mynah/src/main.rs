//! The `mynah` binary: command-line parsing and wiring of the library crates, nothing more.

mod cli;
mod cmd;
mod live;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a replay builds and frees a dozen small strings per
/// recorded request, often on different threads, where glibc's malloc spent about a third of the
/// reader thread's time (measured in `bench/run_replay.sh`); oha links jemalloc for the same reason.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes, as documented in the README and `mynah run --help`: 0 success, 1 bad input or a
/// run that could not be done, 2 usage, 3 a threshold failed.
pub const EXIT_BAD_INPUT: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_THRESHOLD: u8 = 3;

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
        cli::Command::Demo(args) => cmd::demo::run(args),
        cli::Command::Inspect(args) => cmd::inspect::run(args),
        cli::Command::Convert(args) => cmd::convert::run(args),
        cli::Command::Run(args) => cmd::run::run(args),
        cli::Command::Replay(args) => cmd::replay::run(*args),
        cli::Command::Synth(args) => cmd::synth::run(*args),
        cli::Command::Compare(args) => cmd::compare::run(args),
        cli::Command::Proxy(args) => cmd::proxy::run(*args),
        cli::Command::Record(args) => cmd::record::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`mynah inspect big.pcap | head`): like other Unix
        // tools, stop quietly.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) if e.downcast_ref::<cmd::run::ThresholdsFailed>().is_some() => {
            eprintln!("mynah: {e}");
            ExitCode::from(EXIT_THRESHOLD)
        }
        Err(e) => {
            eprintln!("mynah: error: {e:#}");
            ExitCode::from(
                e.downcast_ref::<cmd::UsageError>()
                    .map_or(EXIT_BAD_INPUT, |_| EXIT_USAGE),
            )
        }
    }
}
