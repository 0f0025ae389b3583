//! The command line: one definition per flag, so `--help` documents everything.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// mynah: load tests that look like production.
///
/// Read real HTTP traffic (pcap/pcapng, HAR, GoReplay .gor), inspect and convert it, replay it
/// against a test host, learn a scenario from it, run scenarios at any load, and compare runs.
#[derive(Debug, Parser)]
#[command(name = "mynah", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole loop on an embedded demo shop, in under two minutes: record production-like
    /// traffic through the proxy, synthesize a scenario, run it with a load shape, replay the
    /// recording, compare the two. Nothing else to install or run.
    Demo(DemoArgs),
    /// Show what a capture holds: requests, responses, incomplete exchanges, methods, statuses, hosts, paths.
    Inspect(InspectArgs),
    /// Convert captures between formats (pcap/pcapng/HAR/.gor in; HAR/.gor out), merging inputs by time.
    Convert(ConvertArgs),
    /// Run a scenario file: virtual users, load shape, checks, live view, reports and thresholds.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Replay recorded traffic against a target host: recorded timing or a set rate, sessions
    /// mapped, responses compared, the same statistics and reports as `run`.
    #[command(after_help = REPLAY_AFTER_HELP)]
    Replay(Box<ReplayArgs>),
    /// Learn a workload from recordings: a scenario for `mynah run` (endpoint templates, user
    /// classes, weights, think times, data feeds, logins) and optionally a Locust locustfile.
    #[command(after_help = SYNTH_AFTER_HELP)]
    Synth(Box<SynthArgs>),
    /// Compare two run/replay summaries (before vs after), or two recordings (fidelity).
    #[command(after_help = COMPARE_AFTER_HELP)]
    Compare(CompareArgs),
    /// Record live traffic as a reverse proxy: clients connect to --listen, everything is
    /// forwarded to --upstream, and each exchange is masked and written to a capture file.
    #[command(after_help = PROXY_AFTER_HELP)]
    Proxy(Box<ProxyArgs>),
    /// Record live traffic passively from a network interface (libpcap; needs root or
    /// CAP_NET_RAW): the same reassembly and parsing as pcap import, masked before disk.
    #[command(after_help = RECORD_AFTER_HELP)]
    Record(Box<RecordArgs>),
}

const RECORD_AFTER_HELP: &str = "\
Needs root or CAP_NET_RAW (sudo setcap cap_net_raw,cap_net_admin=eip $(which mynah)); where packets
cannot be read (no privileges, TLS terminated in the application) use `mynah proxy`. Ctrl-C, SIGTERM,
--duration and --max-exchanges stop it cleanly: exchanges still open are written as incomplete
(capture_ended) and the file is valid. Default masking is on. See docs/record.md.

Exit codes: 0 recorded; 1 the capture could not start or failed (no privilege, unknown interface,
unwritable file); 2 usage error.

Examples:
  sudo mynah record --interface eth0 --port 8080 -o prod.gor --duration 10m
  sudo mynah record --interface lo --port 8080 -o prod.gor.gz --rotate-size 100MB --sample 10%
  sudo mynah record --interface any --port 80 --bpf 'host 10.0.0.5' -o web.har --max-exchanges 5000";

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The network interface to capture on (lo, eth0, any).
    #[arg(short, long, value_name = "IFACE")]
    pub interface: String,
    /// The server's TCP port(s): the capture filter is `tcp port PORT` and only these connections
    /// are parsed (comma-separated or repeated). Required unless --bpf is given.
    #[arg(
        short,
        long,
        value_name = "PORT",
        value_delimiter = ',',
        required_unless_present = "bpf"
    )]
    pub port: Vec<u16>,
    /// A BPF expression (man pcap-filter): with --port it narrows the port filter, e.g.
    /// 'host 10.0.0.5'; alone it is the whole filter and HTTP is recognised on any port.
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// The capture file to write: .gor, .gor.gz, .har (or .har.gz).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long, e.g. 30s, 10m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop once this many exchanges were written.
    #[arg(long, value_name = "N")]
    pub max_exchanges: Option<u64>,
    /// Start a new file when the current one reaches this size (e.g. 100MB, 64MiB), numbered
    /// like GoReplay: out.gor becomes out_0.gor, out_1.gor, ...; every file is valid alone.
    #[arg(long, value_name = "SIZE")]
    pub rotate_size: Option<String>,
    /// Bytes kept of each packet; exchanges of longer packets are marked incomplete.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub snaplen: u32,
    /// The kernel's capture buffer (e.g. 64MB): what absorbs bursts before packets are dropped.
    #[arg(long, value_name = "SIZE", default_value = "64MB")]
    pub buffer_size: String,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

const PROXY_AFTER_HELP: &str = "\
Forwarding follows nginx proxy_pass: hop-by-hop headers are removed, Host is the upstream's
(--preserve-host keeps the client's), X-Forwarded-For/-Proto/-Host are set, and the upstream URL's
path is a prefix. Bodies stream through whole; the recording keeps each up to --max-body and marks
longer ones truncated. Default masking is on. See docs/proxy.md.

Examples:
  mynah proxy --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000 -o prod.gor
  mynah proxy --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --upstream https://app.internal --upstream-ca ca.pem -o prod.har --duration 10m";

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where clients connect, e.g. 127.0.0.1:8080 (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Where requests go: http://host:port or https://host, optionally with a path prefix.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// The capture file to write: .gor, .gor.gz, .har (or .har.gz).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Bodies are recorded up to this size each (e.g. 64KB, 1MB); longer ones still pass whole.
    #[arg(long, value_name = "SIZE", default_value = "1MB")]
    pub max_body: String,
    /// Serve TLS to clients with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Trust only these CA certificates (PEM) for an https:// upstream (default: the web's roots).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub upstream_ca: Option<PathBuf>,
    /// Do not check the https:// upstream's certificate (test servers only).
    #[arg(long)]
    pub insecure: bool,
    /// Forward the client's Host header instead of the upstream's.
    #[arg(long)]
    pub preserve_host: bool,
    /// Stop after this long, e.g. 30s, 10m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop once this many exchanges were recorded.
    #[arg(long, value_name = "N")]
    pub max_exchanges: Option<u64>,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub progress: u64,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

const SYNTH_AFTER_HELP: &str = "\
The recording goes through the filtering and masking pipeline first (default masking on), is read
twice (templates, then sessions), and never held in memory whole.

Examples:
  mynah synth prod.gor -o scenario.yaml
  mynah synth capture.pcap browsing.har -o out/scenario.yaml --locustfile out/locustfile.py --host http://127.0.0.1:8080
  mynah run out/scenario.yaml -u 100 -t 5m";

const COMPARE_AFTER_HELP: &str = "\
Two summaries (--summary-json of run or replay): per endpoint, side by side, with the changes; the
endpoints whose tail latency or failure rate changed most come first. --fail-on rules set exit code 3.

Two recordings (any format mynah reads): how close the second is to the first (endpoint, method and
status mix as Jensen-Shannon divergence; think times, sizes and session lengths as Kolmogorov-Smirnov
distance), e.g. a recording of a synthesized run against the original.

Examples:
  mynah compare before.json after.json --fail-on 'p95 +10%' --fail-on 'fail_rate +1%' --html diff.html
  mynah compare prod.gor synthetic-run.gor --json fidelity.json";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The folder for everything the demo writes (default: mynah-demo-DATE-TIME here).
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Watch the synthetic run in the web dashboard (its URL is printed).
    #[arg(long)]
    pub web: bool,
    /// A shorter demo (about 30 s): the same steps with less traffic.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Recordings (.gor, .har, .pcap/.pcapng, optionally .gz); several are merged by time.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The scenario file to write (YAML).
    #[arg(short, long, value_name = "SCENARIO")]
    pub output: PathBuf,
    /// Also write a Locust locustfile (Python) using the same data files.
    #[arg(long, value_name = "PATH")]
    pub locustfile: Option<PathBuf>,
    /// Where the CSV data feeds go (default: SCENARIO-STEM-data beside the scenario).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What identifies a session: auto (a session cookie, else Authorization, else the client
    /// address and User-Agent with an idle gap), cookie:NAME, header:NAME or client-ip.
    #[arg(long, value_name = "KEY", default_value = "auto")]
    pub session_key: String,
    /// Endpoints with a smaller share of the requests are merged into a catch-all that replays
    /// recorded examples.
    #[arg(long, value_name = "SHARE", default_value = "0.1%")]
    pub min_share: String,
    /// The host to write in the scenario and locustfile (else give it to `mynah run --host`).
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a summary JSON, or a recording.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The other: a summary JSON, or a recording.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Write the comparison as a self-contained HTML page (summaries).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write the comparison as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// A regression rule on two summaries (repeatable), e.g. 'p95 +10%', 'p99 +50ms',
    /// 'fail_rate +1%', 'rps -20%', 'GET /search: p99 +10%'. A rule that fails exits with 3.
    #[arg(long, value_name = "RULE")]
    pub fail_on: Vec<String>,
    #[command(flatten)]
    pub input: InputArgs,
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
    #[command(flatten)]
    pub reports: ReportArgs,
    /// At the end (or on Ctrl-C), how long running tasks may finish before they are abandoned.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub stop_timeout: std::time::Duration,
    /// Accept any TLS certificate (self-signed test hosts).
    #[arg(long)]
    pub insecure: bool,
    /// Use HTTP/2 with prior knowledge on http:// hosts (https:// hosts negotiate it by ALPN).
    #[arg(long)]
    pub http2: bool,
    #[command(flatten)]
    pub web: WebArgs,
    /// With --web: start the run at once instead of waiting for Start on the page.
    #[arg(long, requires = "web")]
    pub autostart: bool,
    /// With --autostart: quit this many seconds after the run ends (the page shows the final
    /// numbers meanwhile) instead of waiting for Ctrl-C, like Locust's --autoquit.
    #[arg(long, value_name = "SECONDS", requires = "autostart")]
    pub autoquit: Option<u64>,
}

/// The live web dashboard; shared by `run` and `replay` (docs/web.md).
#[derive(Debug, Args, Clone, Default)]
pub struct WebArgs {
    /// Serve the live dashboard (statistics, charts, controls, downloads) and print its URL.
    #[arg(long)]
    pub web: bool,
    /// Address the dashboard listens on; anything but loopback needs --web-auth.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1",
        requires = "web"
    )]
    pub web_host: String,
    /// Port of the dashboard (0 picks a free one).
    #[arg(long, value_name = "PORT", default_value_t = 8089, requires = "web")]
    pub web_port: u16,
    /// Who may use the dashboard: user:password (HTTP Basic) or token:SECRET (Bearer, or
    /// ?token=SECRET in the URL).
    #[arg(long, value_name = "user:pass|token:SECRET", requires = "web")]
    pub web_auth: Option<String>,
}

/// Thresholds and report files; shared by `run` and `replay`.
#[derive(Debug, Args, Clone, Default)]
pub struct ReportArgs {
    /// A pass/fail threshold (repeatable; `run` adds them to the scenario's), e.g. 'p95 < 300ms',
    /// 'GET /search: p99 < 1s', 'fail_rate < 1%', 'rps > 100'.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Write the summary as JSON.
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
}

const REPLAY_AFTER_HELP: &str = "\
Timing: by default the recorded gaps between requests are kept; --speed divides them, --rate sends
an exact number of requests per second in recorded order, --max-speed sends as fast as the target
answers. The requests of one recorded connection go on one connection, in order.

Exit codes:
  0  the replay completed and every threshold passed
  3  the replay completed and a threshold failed
  1  the replay could not be done (unreadable recording, the target is a recorded host, unreachable target)
  2  usage error (bad flags)

The masking pipeline runs before anything is sent (default masking on, see --no-default-redaction);
server-issued session values (cookies, tokens in JSON responses) are mapped to the target's.

Examples:
  mynah replay prod.gor --target http://staging.internal:8080
  mynah replay capture.pcap --target http://127.0.0.1:8080/v2 --speed 10 --compare --html replay.html
  mynah replay prod.gor --target http://127.0.0.1:8080 --rate 500 --loop --duration 10m --threshold 'p99 < 500ms'";

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recordings (.gor, .har, .pcap/.pcapng, optionally .gz); several are merged by time.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where to send the requests: `http(s)://host[:port][/prefix]`. A path is a prefix: a
    /// recorded /a?b goes to /prefix/a?b.
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// Divide the recorded gaps by this factor: 2, 0.5 or 200%.
    #[arg(long, value_name = "FACTOR", conflicts_with_all = ["rate", "max_speed"])]
    pub speed: Option<String>,
    /// Send exactly N requests per second, in recorded order (open model).
    #[arg(long, value_name = "N", conflicts_with = "max_speed")]
    pub rate: Option<f64>,
    /// Send as fast as the target answers, on at most --concurrency connections.
    #[arg(long)]
    pub max_speed: bool,
    /// Connections at most (default: 50 with --max-speed, else 10000). Paced requests that would
    /// need more are counted as dropped.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Start over at the end of the recording (until --duration, --max-requests or Ctrl-C).
    #[arg(long = "loop")]
    pub looped: bool,
    /// Stop after this long, e.g. 30s, 10m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop after sending this many requests.
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// Send the recorded Host header (default: the target's host and port).
    #[arg(long)]
    pub keep_host: bool,
    /// Replay even when the target is a host the recording was made on.
    #[arg(long)]
    pub allow_recorded_host: bool,
    /// Print what would be sent (requests per endpoint, duration, rate) and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not map server-issued session values (cookies, tokens) to the target's.
    #[arg(long)]
    pub no_session_mapping: bool,
    /// Read and parse the recording on each pass. By default the scan before the replay writes
    /// the requests ready to send into an unlinked temporary file (about the recording's size, at
    /// most 4 GiB and half the free space of $TMPDIR), so the replay spends its CPU on sending;
    /// replays that compare responses or map session values the recording issues always read
    /// the recording.
    #[arg(long)]
    pub no_spool: bool,
    /// How statistics name endpoints: `path` (the recorded path) or `template` (templates learnt
    /// from the recording, like `mynah synth`'s: /articles/{article_id}), which groups them like
    /// a synthesized run's so that `mynah compare` can set them side by side.
    #[arg(long, value_name = "path|template", default_value = "path", value_parser = ["path", "template"])]
    pub endpoint_names: String,
    /// Compare each replayed response with the recorded one (status, headers, JSON-aware body).
    #[arg(long)]
    pub compare: bool,
    /// A response header the comparison ignores (repeatable; Date, ETag, Set-Cookie values and
    /// other volatile ones are ignored already).
    #[arg(long, value_name = "NAME")]
    pub compare_ignore_header: Vec<String>,
    /// A body part the comparison ignores: json:$.path (repeatable).
    #[arg(long, value_name = "json:PATH")]
    pub compare_ignore: Vec<String>,
    #[command(flatten)]
    pub reports: ReportArgs,
    #[command(flatten)]
    pub web: WebArgs,
    /// Per request: time allowed for the whole exchange.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// At the end of --duration (or on Ctrl-C), how long requests in flight may finish.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub stop_timeout: std::time::Duration,
    /// Accept any TLS certificate (self-signed test hosts).
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
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
