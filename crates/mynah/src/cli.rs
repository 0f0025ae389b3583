//! The command line: one definition per flag, so `--help` documents everything.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// mynah: load tests that look like production.
///
/// Capture real HTTP traffic (pcap/pcapng, HAR, GoReplay .gor), inspect and convert it.
#[derive(Debug, Parser)]
#[command(name = "mynah", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a capture holds: requests, responses, incomplete exchanges, methods, statuses, hosts, paths.
    Inspect(InspectArgs),
    /// Convert captures between formats (pcap/pcapng/HAR/.gor in; HAR/.gor out), merging inputs by time.
    Convert(ConvertArgs),
}

/// How input files are read; shared by every command that reads captures.
#[derive(Debug, Args, Clone)]
pub struct InputArgs {
    /// Input format for every file: gor, har or pcap (default: from each file's content, then its name).
    #[arg(long, value_name = "FORMAT")]
    pub from: Option<String>,
    /// Go on past corrupt records, counting how many were skipped, instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
    /// pcap: parse only TCP connections on these ports (comma-separated or repeated).
    /// Without it, HTTP is recognised on any port by its request and status lines.
    #[arg(long, value_name = "PORT", value_delimiter = ',')]
    pub port: Vec<u16>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Capture files (.pcap, .pcapng, .har, .gor, optionally .gz).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print a JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// How many of the most requested paths to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input captures; several are merged in request-time order.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Output file: .gor, .gor.gz, .har (or .har.gz).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Output format: gor or har (default: from the output file's name).
    #[arg(long, value_name = "FORMAT")]
    pub to: Option<String>,
    #[command(flatten)]
    pub input: InputArgs,
}
