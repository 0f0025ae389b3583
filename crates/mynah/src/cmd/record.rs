//! `mynah record`: passive live capture (`mynah_capture::sniff`) through the traffic pipeline
//! into a capture file, rotated by size if asked, until a signal, a duration or an exchange count.
//!
//! Ready line (tests and scripts wait for it): `mynah: capturing on IFACE ...`, printed once the
//! capture handle is active, so every packet after it is seen.

#[cfg(not(feature = "live"))]
pub fn run(_args: crate::cli::RecordArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this mynah was built without live capture (the `live` cargo feature, which needs \
         libpcap-dev): rebuild it with default features, or record through `mynah proxy`"
    )
}

#[cfg(feature = "live")]
pub use live::run;

#[cfg(feature = "live")]
mod live {
    use std::collections::BTreeMap;
    use std::io::{IsTerminal, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::RecvTimeoutError;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, Context, Result};
    use mynah_capture::sniff::{SniffCounts, SniffOptions, SniffStats, Sniffer};
    use mynah_traffic::sink::{self, ExchangeWriter, RotatingWriter};
    use mynah_traffic::{Incomplete, Pipeline};

    use super::super::UsageError;
    use crate::cli::RecordArgs;

    pub fn run(args: RecordArgs) -> Result<()> {
        let format = super::super::output_format(&args.output)?;
        let rotate = args
            .rotate_size
            .as_deref()
            .map(sink::parse_size)
            .transpose()
            .map_err(|e| UsageError(format!("--rotate-size: {e}")))?;
        let buffer_size = sink::parse_size(&args.buffer_size)
            .map_err(|e| UsageError(format!("--buffer-size: {e}")))?;
        if args.snaplen < 128 {
            return Err(UsageError(format!(
                "--snaplen {} is too small to hold the TCP/IP headers; the default 262144 keeps whole packets",
                args.snaplen
            ))
            .into());
        }
        if args.max_exchanges == Some(0) {
            return Err(UsageError("--max-exchanges must be at least 1".into()).into());
        }
        let mut pipeline =
            Pipeline::new(&args.pipeline.options()).map_err(|e| UsageError(e.to_string()))?;
        let opts = SniffOptions {
            interface: args.interface.clone(),
            ports: args.port.clone(),
            bpf: args.bpf.clone(),
            snaplen: args.snaplen,
            buffer_size,
        };

        // The file first: an unwritable path fails before the capture starts.
        let mut writer = RotatingWriter::create(&args.output, format, rotate)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        let sniffer = match Sniffer::start(&opts) {
            Ok(s) => s,
            Err(e) => {
                // Nothing was captured: leave no empty file behind.
                if let Ok(files) = writer.close() {
                    for f in files {
                        let _ = std::fs::remove_file(f);
                    }
                }
                return Err(anyhow!("{e}"));
            }
        };
        let signalled = watch_signals();
        eprintln!(
            "mynah: capturing on {} (filter: {}), writing {}{}",
            args.interface,
            sniffer.filter(),
            args.output.display(),
            match &args.rotate_size {
                Some(s) => format!(" in chunks of {s}"),
                None => String::new(),
            }
        );

        let started = Instant::now();
        let mut progress = Progress::new(std::io::stderr().is_terminal());
        let mut tally = Tally::default();
        let mut failure = None;
        let mut stopping = false;
        loop {
            match sniffer.exchanges().recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => {
                    for ex in batch {
                        let Some(ex) = pipeline.apply(ex) else {
                            continue;
                        };
                        if failure.is_some()
                            || args.max_exchanges.is_some_and(|m| tally.written >= m)
                        {
                            tally.over_limit += 1;
                            continue;
                        }
                        if let Err(e) = writer.write(&ex) {
                            failure = Some(anyhow!(e).context(format!(
                                "writing {}",
                                writer.files().last().unwrap_or(&args.output).display()
                            )));
                            continue;
                        }
                        tally.written += 1;
                        if let Some(r) = ex.incomplete {
                            *tally.incomplete.entry(r).or_default() += 1;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !stopping {
                let why = if signalled.load(Ordering::SeqCst) {
                    Some("interrupted")
                } else if args.duration.is_some_and(|d| started.elapsed() >= d) {
                    Some("--duration reached")
                } else if args.max_exchanges.is_some_and(|m| tally.written >= m) {
                    Some("--max-exchanges reached")
                } else if failure.is_some() {
                    Some("writing failed")
                } else {
                    None
                };
                if let Some(why) = why {
                    stopping = true;
                    sniffer.stop();
                    progress.clear();
                    eprintln!(
                        "mynah: stopping ({why}): finishing open exchanges as incomplete; \
                         Ctrl-C again to quit at once"
                    );
                }
            }
            if progress.due(started.elapsed()) {
                let r = pipeline.report();
                progress.show(started.elapsed(), sniffer.stats(), &tally, r.seen - r.kept);
            }
        }
        let outcome = sniffer.join();
        progress.clear();
        let files = writer.close();
        let elapsed = started.elapsed();
        let report = pipeline.report();

        // The final report.
        let files = match files {
            Ok(f) => f,
            Err(e) => {
                let e = anyhow!(e);
                return Err(match failure {
                    Some(f) => f.context(e.to_string()),
                    None => e,
                });
            }
        };
        eprintln!(
            "mynah: recorded {} exchanges ({} incomplete) in {:.1} s to {}",
            tally.written,
            tally.incomplete.values().sum::<u64>(),
            elapsed.as_secs_f64(),
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        eprintln!("mynah: {}", packet_line(&outcome.counts));
        if !tally.incomplete.is_empty() {
            eprintln!("mynah: incomplete: {}", tally.incomplete_line());
        }
        eprintln!(
            "mynah: filtered out by the pipeline: {} (of {} captured)",
            report.seen - report.kept,
            report.seen
        );
        eprintln!("mynah: {report}");
        if !outcome.skipped.skipped.is_empty() {
            let parts: Vec<String> = outcome
                .skipped
                .skipped
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            eprintln!("mynah: not recorded: {}", parts.join(", "));
        }
        if tally.over_limit > 0 {
            eprintln!(
                "mynah: {} exchanges finished after --max-exchanges was reached were not written",
                tally.over_limit
            );
        }
        if let Some(f) = failure {
            return Err(f);
        }
        if let Some(e) = outcome.error {
            return Err(anyhow!("{e} (everything captured before was written)"));
        }
        Ok(())
    }

    /// What was written, by the consumer's count.
    #[derive(Default)]
    struct Tally {
        written: u64,
        incomplete: BTreeMap<Incomplete, u64>,
        /// Finished after --max-exchanges was reached (or after a write failed): not written.
        over_limit: u64,
    }

    impl Tally {
        fn incomplete_line(&self) -> String {
            self.incomplete
                .iter()
                .map(|(r, n)| format!("{} {n}", r.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn packet_line(c: &SniffCounts) -> String {
        format!(
            "packets: {} seen ({} MB), {} dropped by the kernel, {} dropped by the interface",
            c.packets,
            c.bytes / 1_000_000,
            c.dropped_kernel,
            c.dropped_interface
        )
    }

    /// The progress report on stderr: one line rewritten in place every second on a terminal,
    /// a plain line every five seconds elsewhere (logs, pipes).
    struct Progress {
        tty: bool,
        next: Duration,
        shown: bool,
    }

    impl Progress {
        fn new(tty: bool) -> Self {
            Progress {
                tty,
                next: Duration::from_secs(if tty { 1 } else { 5 }),
                shown: false,
            }
        }

        /// Whether a progress line is due.
        fn due(&self, elapsed: Duration) -> bool {
            elapsed >= self.next
        }

        fn show(&mut self, elapsed: Duration, stats: &SniffStats, tally: &Tally, filtered: u64) {
            let step = Duration::from_secs(if self.tty { 1 } else { 5 });
            while self.next <= elapsed {
                self.next += step;
            }
            let c = stats.snapshot();
            let incomplete: u64 = tally.incomplete.values().sum();
            let line = format!(
                "mynah: {:>4.0}s  packets {} (dropped: kernel {}, interface {})  written {}  incomplete {}{}  filtered {}  connections {}",
                elapsed.as_secs_f64(),
                c.packets,
                c.dropped_kernel,
                c.dropped_interface,
                tally.written,
                incomplete,
                if incomplete > 0 {
                    format!(" ({})", tally.incomplete_line())
                } else {
                    String::new()
                },
                filtered,
                c.connections,
            );
            let mut err = std::io::stderr().lock();
            if self.tty {
                let _ = write!(err, "\r\x1b[K{line}");
                self.shown = true;
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
        }

        /// Ends the in-place line so that what follows starts on a line of its own.
        fn clear(&mut self) {
            if self.shown {
                eprint!("\r\x1b[K");
                self.shown = false;
            }
        }
    }

    /// Sets the returned flag on the first Ctrl-C or SIGTERM; a second one exits at once (130).
    fn watch_signals() -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        let spawned = std::thread::Builder::new()
            .name("mynah-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(super::super::run::stop_signal());
                set.store(true, Ordering::SeqCst);
                rt.block_on(super::super::run::stop_signal());
                eprintln!("\nmynah: interrupted twice: quitting without finishing the file");
                std::process::exit(130);
            });
        if spawned.is_err() {
            eprintln!(
                "mynah: warning: cannot watch for Ctrl-C; stop with --duration or --max-exchanges"
            );
        }
        flag
    }
}
