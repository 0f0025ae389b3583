//! The command line: one definition per flag, so `--help` documents everything.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// mynah: load tests that look like production.
///
/// Capture real HTTP traffic (pcap/pcapng, HAR, GoReplay .gor), inspect and convert it, and run
/// scripted load from a scenario file.
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
    /// Run a scenario file: virtual users, load shape, checks, live view, reports and thresholds.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
}

const RUN_AFTER_HELP: &str = "\
Exit codes:
  0  the run completed and every threshold passed
  3  the run completed and a threshold failed
  1  the run could not be done (bad scenario, unreachable host, a data feed ran out, a report could not be written)
  2  usage error (bad flags)

The scenario format is documented in docs/scenario.md. Command-line values override the file's.

Examples:
  mynah run scenario.yaml
  mynah run scenario.yaml --host http://127.0.0.1:8080 -u 100 -r 20 -t 2m --csv out/run --html out/run.html
  mynah run scenario.yaml --threshold 'p95 < 300ms' --threshold 'fail_rate < 1%' --junit junit.xml";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (YAML).
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Base URL for the requests, replacing the scenario's `host`.
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    /// Number of users (replaces the scenario's load shape with a fixed user count).
    #[arg(short = 'u', long, value_name = "N")]
    pub users: Option<u32>,
    /// Users started per second while ramping up.
    #[arg(short = 'r', long, value_name = "N")]
    pub spawn_rate: Option<f64>,
    /// Run length, e.g. 30s, 5m, 1h30m (with stages: stop after this long).
    #[arg(short = 't', long, value_name = "DURATION", value_parser = parse_duration)]
    pub run_time: Option<std::time::Duration>,
    /// Run only tasks with one of these tags.
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Do not run tasks with any of these tags.
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub exclude_tags: Vec<String>,
    /// A pass/fail threshold, added to the scenario's (repeatable), e.g. 'p95 < 300ms',
    /// 'GET /search: p99 < 1s', 'fail_rate < 1%', 'rps > 100'.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Write the run summary as JSON.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
    /// Write Locust-format CSV files PREFIX_stats.csv, PREFIX_stats_history.csv,
    /// PREFIX_failures.csv and PREFIX_exceptions.csv.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write a self-contained HTML report.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write a JUnit XML report with one test case per threshold.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// At the end (or on Ctrl-C), how long running tasks may finish before they are abandoned.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub stop_timeout: std::time::Duration,
    /// Accept any TLS certificate (self-signed test hosts).
    #[arg(long)]
    pub insecure: bool,
    /// Use HTTP/2 with prior knowledge on http:// hosts (https:// hosts negotiate it by ALPN).
    #[arg(long)]
    pub http2: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    mynah_scenario::parse_duration(s)
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
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Filtering, sampling, rewriting and masking of exchanges; shared by every command that passes
/// captured traffic on (`convert`, later `replay`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Filtering and masking")]
pub struct PipelineArgs {
    /// Keep only requests whose path and query match this regex (repeatable: any may match).
    #[arg(long, value_name = "REGEX")]
    pub allow_url: Vec<String>,
    /// Drop requests whose path and query match this regex (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub deny_url: Vec<String>,
    /// Keep only these methods (repeatable or comma-separated, case-insensitive), e.g. GET,POST.
    #[arg(long, value_name = "METHOD")]
    pub allow_method: Vec<String>,
    /// Keep only requests with a header whose value matches, e.g. 'Content-Type: json'
    /// (repeatable: all must match).
    #[arg(long, value_name = "'NAME: REGEX'")]
    pub allow_header: Vec<String>,
    /// Drop requests with a header whose value matches, e.g. 'User-Agent: bot' (repeatable).
    #[arg(long, value_name = "'NAME: REGEX'")]
    pub deny_header: Vec<String>,
    /// Keep this share of the sample keys (e.g. 10%); everything sharing a key is kept or dropped
    /// together. Deterministic: the same input always keeps the same exchanges.
    #[arg(long, value_name = "PERCENT")]
    pub sample: Option<String>,
    /// What --sample groups by: cookie:NAME, header:NAME or client-ip (default). Exchanges without
    /// the key fall back to the client IP, then the connection.
    #[arg(long, value_name = "KEY")]
    pub sample_key: Option<String>,
    /// Set a request header, replacing any existing value (repeatable), e.g. 'X-Replay: 1'.
    /// Applied after masking, so the value is written as given.
    #[arg(long, value_name = "'NAME: VALUE'")]
    pub set_header: Vec<String>,
    /// Remove a request header (repeatable).
    #[arg(long, value_name = "NAME")]
    pub drop_header: Vec<String>,
    /// Rewrite the path and query, e.g. '^/v1/(.*)=>/v2/$1' (repeatable, applied in order;
    /// write ${1} when a letter or digit follows the group).
    #[arg(long, value_name = "'REGEX=>REPLACEMENT'")]
    pub rewrite_url: Vec<String>,
    /// Also mask: header:NAME, cookie:NAME, query:NAME, json:$.path, form:NAME or regex:PATTERN
    /// (repeatable; a regex with a group masks group 1 only).
    #[arg(long, value_name = "RULE")]
    pub redact: Vec<String>,
    /// Turn off the default masking (Authorization, cookies, secret query/form/JSON names, card
    /// numbers); only --redact rules apply.
    #[arg(long)]
    pub no_default_redaction: bool,
    /// Key for the pseudonyms: the same key always gives the same masks (default: random per run).
    #[arg(long, value_name = "KEY")]
    pub redact_key: Option<String>,
}

impl PipelineArgs {
    pub fn options(&self) -> mynah_traffic::PipelineOptions {
        mynah_traffic::PipelineOptions {
            allow_url: self.allow_url.clone(),
            deny_url: self.deny_url.clone(),
            allow_method: self.allow_method.clone(),
            allow_header: self.allow_header.clone(),
            deny_header: self.deny_header.clone(),
            sample: self.sample.clone(),
            sample_key: self.sample_key.clone(),
            set_header: self.set_header.clone(),
            drop_header: self.drop_header.clone(),
            rewrite_url: self.rewrite_url.clone(),
            redact: self.redact.clone(),
            no_default_redaction: self.no_default_redaction,
            redact_key: self.redact_key.clone(),
        }
    }
}
