//! `mynah proxy`: the recording reverse proxy of `mynah_capture::proxy`, run until a signal, a
//! duration or an exchange count, with progress on stderr.
//!
//! Ready line (tests and scripts wait for it): `mynah: proxy listening on http://ADDR ...`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mynah_capture::proxy::{
    ListenerTls, Proxy, ProxyConfig, ProxyStats, Recorder, RecorderOptions, RecorderStats,
    UpstreamTrust,
};
use mynah_traffic::Pipeline;

use super::UsageError;
use crate::cli::ProxyArgs;

pub fn run(args: ProxyArgs) -> Result<()> {
    let listen = parse_listen(&args.listen)?;
    let max_body = parse_size(&args.max_body)
        .map_err(|e| UsageError(format!("--max-body {:?}: {e}", args.max_body)))?;
    let format = super::output_format(&args.output)?;
    let mut config =
        ProxyConfig::new(listen, &args.upstream).map_err(|e| UsageError(e.to_string()))?;
    config.max_body = max_body;
    config.preserve_host = args.preserve_host;
    config.listener_tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ListenerTls {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    config.upstream_trust = match (&args.upstream_ca, args.insecure) {
        (Some(ca), _) => UpstreamTrust::CaFile(ca.clone()),
        (None, true) => UpstreamTrust::Insecure,
        (None, false) => UpstreamTrust::WebPki,
    };
    if !config.upstream.https && (args.upstream_ca.is_some() || args.insecure) {
        return Err(
            UsageError("--upstream-ca and --insecure are for an https:// upstream".into()).into(),
        );
    }
    let pipeline =
        Pipeline::new(&args.pipeline.options()).map_err(|e| UsageError(e.to_string()))?;
    // The queue may hold at least a few exchanges with whole bodies, and never less than 64 MiB.
    let options = RecorderOptions {
        queue_bytes: (64usize << 20).max(max_body.saturating_mul(8)),
        ..RecorderOptions::default()
    };
    let recorder = Recorder::to_file(&args.output, format, pipeline, options)
        .with_context(|| format!("cannot create {}", args.output.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mynah-proxy")
        .build()
        .context("cannot start the async runtime")?;
    let scheme = if config.listener_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let upstream = config.upstream.display();
    let started = Instant::now();
    let stats = runtime.block_on(async {
        // Before the ready line: a signal right after it must find the handlers in place.
        let signals = Signals::new();
        let proxy = Proxy::start(config, recorder.sink()).await?;
        eprintln!(
            "mynah: proxy listening on {scheme}://{} -> {upstream}, recording to {}",
            proxy.local_addr(),
            args.output.display()
        );
        let why = wait_for_stop(&args, &proxy, &recorder, signals).await;
        eprintln!("mynah: {why}: stopping (finishing exchanges in flight)");
        anyhow::Ok(proxy.shutdown().await)
    })?;
    drop(runtime);
    let finished = recorder.finish();
    let (report, failure) = match finished {
        Ok(r) => (r, None),
        Err(e) => ((*e.report).clone(), Some(e)),
    };
    eprintln!(
        "mynah: proxied {} requests in {:.1}s ({} connections, {} upstream errors, {} upgrades); {} request and {} response body bytes",
        stats.requests,
        started.elapsed().as_secs_f64(),
        stats.connections,
        stats.upstream_errors,
        stats.upgrades,
        stats.request_bytes,
        stats.response_bytes,
    );
    eprintln!(
        "mynah: wrote {} exchanges ({} incomplete, {} with a body over --max-body) to {}; not recorded {} (the writer could not keep up: {}, write errors: {}); filtered out {}",
        report.stats.written,
        report.stats.written_incomplete,
        stats.truncated,
        args.output.display(),
        report.stats.not_recorded + report.stats.write_failed,
        report.stats.not_recorded,
        report.stats.write_failed,
        report.stats.filtered,
    );
    eprintln!("mynah: {}", report.pipeline);
    match failure {
        Some(e) => Err(anyhow::Error::new(e)),
        None => Ok(()),
    }
}

/// SIGINT and SIGTERM, caught from the moment this is created.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Returns the name of the first signal received.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = one(&mut self.int) => "interrupted (SIGINT)",
                _ = one(&mut self.term) => "terminated (SIGTERM)",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted (Ctrl-C)"
        }
    }
}

/// Waits for SIGINT/SIGTERM, `--duration` or `--max-exchanges`, printing progress meanwhile;
/// returns why it stopped.
async fn wait_for_stop(
    args: &ProxyArgs,
    proxy: &mynah_capture::proxy::ProxyHandle,
    recorder: &Recorder,
    mut signals: Signals,
) -> String {
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let progress = (args.progress > 0).then(|| Duration::from_secs(args.progress));
    let mut next_progress = progress.map(|p| Instant::now() + p);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            why = signals.recv() => return why.into(),
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => return format!("--duration {:?} reached", args.duration.unwrap_or_default()),
            _ = tick.tick() => {
                let stats = proxy.stats();
                if let Some(max) = args.max_exchanges {
                    if stats.recorded >= max {
                        return format!("--max-exchanges {max} reached");
                    }
                }
                if let (Some(at), Some(every)) = (next_progress, progress) {
                    if Instant::now() >= at {
                        next_progress = Some(at + every);
                        eprintln!("mynah: {}", progress_line(&stats, &recorder.stats()));
                    }
                }
            }
        }
    }
}

fn progress_line(p: &ProxyStats, r: &RecorderStats) -> String {
    format!(
        "proxy: {} requests, {} recorded, {} not recorded, {} written, {} in flight; bodies {} in, {} out",
        p.requests,
        p.recorded,
        p.not_recorded + r.write_failed,
        r.written,
        p.in_flight,
        human_bytes(p.request_bytes),
        human_bytes(p.response_bytes),
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr> {
    let bad = || {
        UsageError(format!(
            "--listen {s:?}: expected an address and port, e.g. 127.0.0.1:8080 or [::1]:8080"
        ))
    };
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(|| bad().into())
}

/// `1048576`, `64KB`, `1MB`, `1m`, `2GiB`: binary units (KB = 1024 bytes), as nginx counts.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| "expected a size such as 65536, 64KB or 1MB".to_string())?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown unit {u:?}: use B, KB, MB or GB")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > (1u64 << 40) as f64 {
        return Err("out of range".into());
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1.5m"), Ok(3 << 19));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1TB").is_err());
    }
}
