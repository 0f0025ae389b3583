//! The recording side of the proxy: a bounded queue to one writer thread that runs the traffic
//! pipeline (filters, sampling, masking) and writes the capture file.
//!
//! The proxy never waits for the writer: [`RecordSink::offer`] either queues an exchange at once or
//! counts it as not recorded. The queue is bounded both in exchanges and in bytes (bodies are up to
//! `--max-body` each), so a slow disk costs recordings, never proxied traffic or unbounded memory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use mynah_traffic::sink::{self, ExchangeWriter};
use mynah_traffic::{Exchange, Format, Pipeline, PipelineReport};

/// How much the queue between the proxy and the writer thread may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderOptions {
    /// Exchanges waiting to be written, at most.
    pub queue_exchanges: usize,
    /// Bytes of waiting exchanges (bodies and header values), at most. One exchange is always
    /// accepted into an empty queue, whatever its size.
    pub queue_bytes: usize,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            queue_exchanges: 4096,
            queue_bytes: 64 << 20,
        }
    }
}

/// Counters of a [`Recorder`], readable while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Exchanges accepted into the queue.
    pub queued: u64,
    /// Exchanges refused because the queue was full (the writer could not keep up), or offered
    /// after [`Recorder::finish`].
    pub not_recorded: u64,
    /// Exchanges written to the file.
    pub written: u64,
    /// Exchanges written that are marked incomplete.
    pub written_incomplete: u64,
    /// Exchanges dropped by the pipeline's filters or sampling.
    pub filtered: u64,
    /// Exchanges lost because writing the file failed (the first error ends [`Recorder::finish`]).
    pub write_failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    not_recorded: AtomicU64,
    written: AtomicU64,
    written_incomplete: AtomicU64,
    filtered: AtomicU64,
    write_failed: AtomicU64,
    /// Bytes of the exchanges in the queue now.
    queued_bytes: AtomicUsize,
}

impl Counters {
    fn snapshot(&self) -> RecorderStats {
        RecorderStats {
            queued: self.queued.load(Ordering::Relaxed),
            not_recorded: self.not_recorded.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            written_incomplete: self.written_incomplete.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            write_failed: self.write_failed.load(Ordering::Relaxed),
        }
    }
}

enum Msg {
    Exchange(Box<Exchange>, usize),
    Finish,
}

/// Where the proxy hands its exchanges: cheap to clone, never blocks.
#[derive(Clone)]
pub struct RecordSink {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    max_bytes: usize,
}

impl std::fmt::Debug for RecordSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSink")
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

/// The memory an exchange holds, roughly: what the byte budget of the queue counts.
fn exchange_size(ex: &Exchange) -> usize {
    let heads = |h: &mynah_traffic::Headers| {
        h.iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum::<usize>()
    };
    let mut n = ex.request.target.len() + heads(&ex.request.headers) + ex.request.body.len() + 64;
    if let Some(r) = &ex.response {
        n += heads(&r.headers) + r.body.len() + 64;
    }
    n + ex
        .interim
        .iter()
        .map(|r| heads(&r.headers) + 64)
        .sum::<usize>()
}

impl RecordSink {
    /// Queues `exchange` for writing; false (and counted as not recorded) when the queue is full.
    pub fn offer(&self, exchange: Exchange) -> bool {
        let size = exchange_size(&exchange);
        let before = self.counters.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before + size > self.max_bytes {
            self.counters.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            self.counters.not_recorded.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match self.tx.try_send(Msg::Exchange(Box::new(exchange), size)) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                self.counters.not_recorded.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The recorder's counters now.
    pub fn stats(&self) -> RecorderStats {
        self.counters.snapshot()
    }
}

/// What a finished [`Recorder`] did.
#[derive(Debug, Clone, Default)]
pub struct RecorderReport {
    pub stats: RecorderStats,
    /// What filtering, sampling and masking did.
    pub pipeline: PipelineReport,
}

/// A failure of the writer thread: the file could not be written or finished.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct RecorderError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
    /// What was done before the failure.
    pub report: Box<RecorderReport>,
}

/// The writer thread and its queue. Create it first, give [`Recorder::sink`] to the proxy, and
/// call [`Recorder::finish`] after the proxy has shut down.
pub struct Recorder {
    sink: RecordSink,
    thread: Option<JoinHandle<Result<RecorderReport, RecorderError>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("sink", &self.sink)
            .finish()
    }
}

impl Recorder {
    /// Creates `path` (`.gor`, `.gor.gz`, `.har` as `format` says) and starts the writer thread.
    /// Fails at once, naming the file, when it cannot be created.
    pub fn to_file(
        path: &Path,
        format: Format,
        pipeline: Pipeline,
        options: RecorderOptions,
    ) -> io::Result<Recorder> {
        let p = path.to_path_buf();
        Recorder::spawn(path, pipeline, options, move || sink::create(&p, format))
    }

    /// Starts the writer thread with the writer `make_writer` creates on that thread (writers are
    /// not `Send`); `path` only names the output in errors.
    pub fn spawn<F>(
        path: &Path,
        pipeline: Pipeline,
        options: RecorderOptions,
        make_writer: F,
    ) -> io::Result<Recorder>
    where
        F: FnOnce() -> io::Result<Box<dyn ExchangeWriter>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(options.queue_exchanges.max(1));
        let counters = Arc::new(Counters::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_counters = counters.clone();
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("mynah-proxy-writer".into())
            .spawn(move || {
                let writer = match make_writer() {
                    Ok(w) => {
                        let _ = ready_tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(RecorderReport::default());
                    }
                };
                write_loop(rx, writer, pipeline, &thread_counters, path)
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(io::Error::other("the recorder thread stopped at start")),
        }
        Ok(Recorder {
            sink: RecordSink {
                tx,
                counters,
                max_bytes: options.queue_bytes.max(1),
            },
            thread: Some(thread),
        })
    }

    /// A handle for the proxy to offer exchanges through.
    pub fn sink(&self) -> RecordSink {
        self.sink.clone()
    }

    /// The counters now.
    pub fn stats(&self) -> RecorderStats {
        self.sink.stats()
    }

    /// Writes everything queued, finishes the file (HAR closes its JSON, gzip its trailer) and
    /// stops the thread. Exchanges offered afterwards are counted as not recorded.
    pub fn finish(mut self) -> Result<RecorderReport, RecorderError> {
        // A blocking send: waits for room behind what is queued, so nothing queued is lost.
        let _ = self.sink.tx.send(Msg::Finish);
        let thread = self.thread.take().expect("finish runs once");
        match thread.join() {
            Ok(r) => r,
            Err(_) => Err(RecorderError {
                path: PathBuf::new(),
                source: io::Error::other("the recorder thread panicked"),
                report: Box::default(),
            }),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.sink.tx.send(Msg::Finish);
            let _ = t.join();
        }
    }
}

fn write_loop(
    rx: Receiver<Msg>,
    mut writer: Box<dyn ExchangeWriter>,
    mut pipeline: Pipeline,
    counters: &Counters,
    path: PathBuf,
) -> Result<RecorderReport, RecorderError> {
    let mut failure: Option<io::Error> = None;
    // Ends at `Finish`, or when every sink is gone.
    while let Ok(Msg::Exchange(ex, size)) = rx.recv() {
        counters.queued_bytes.fetch_sub(size, Ordering::AcqRel);
        let Some(ex) = pipeline.apply(*ex) else {
            counters.filtered.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if failure.is_some() {
            counters.write_failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match writer.write(&ex) {
            Ok(()) => {
                counters.written.fetch_add(1, Ordering::Relaxed);
                if ex.incomplete.is_some() {
                    counters.written_incomplete.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                counters.write_failed.fetch_add(1, Ordering::Relaxed);
                failure = Some(e);
            }
        }
    }
    let finished = writer.finish();
    let report = RecorderReport {
        stats: counters.snapshot(),
        pipeline: pipeline.report(),
    };
    match failure.map_or(finished, Err) {
        Ok(()) => Ok(report),
        Err(source) => Err(RecorderError {
            path,
            source,
            report: Box::new(report),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mynah_traffic::{PipelineOptions, Request};

    struct SlowWriter(
        Arc<std::sync::Mutex<Vec<Exchange>>>,
        Arc<std::sync::Barrier>,
    );

    impl ExchangeWriter for SlowWriter {
        fn write(&mut self, ex: &Exchange) -> io::Result<()> {
            self.1.wait();
            self.0.lock().unwrap().push(ex.clone());
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    fn exchange(target: &str) -> Exchange {
        Exchange::new(
            Request {
                method: "GET".into(),
                target: target.into(),
                ..Default::default()
            },
            1,
        )
    }

    #[test]
    fn a_full_queue_counts_instead_of_blocking() {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = Arc::new(std::sync::Barrier::new(2));
        let (o, g) = (out.clone(), gate.clone());
        let pipeline = Pipeline::new(&PipelineOptions::default()).unwrap();
        let opts = RecorderOptions {
            queue_exchanges: 2,
            queue_bytes: 1 << 20,
        };
        let rec = Recorder::spawn(Path::new("mem"), pipeline, opts, move || {
            Ok(Box::new(SlowWriter(o, g)) as Box<dyn ExchangeWriter>)
        })
        .unwrap();
        let sink = rec.sink();
        // The writer blocks on the first exchange; two more fill the queue; the rest are refused.
        let accepted: Vec<bool> = (0..6)
            .map(|i| sink.offer(exchange(&format!("/{i}"))))
            .collect();
        let refused = accepted.iter().filter(|a| !**a).count() as u64;
        assert!(refused >= 3, "{accepted:?}");
        assert_eq!(sink.stats().not_recorded, refused);
        let queued = 6 - refused;
        for _ in 0..queued {
            gate.wait();
        }
        let report = rec.finish().unwrap();
        assert_eq!(report.stats.written, queued);
        assert_eq!(out.lock().unwrap().len() as u64, queued);
    }

    #[test]
    fn the_byte_budget_bounds_the_queue() {
        let pipeline = Pipeline::new(&PipelineOptions::default()).unwrap();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        let opts = RecorderOptions {
            queue_exchanges: 100,
            queue_bytes: 10_000,
        };
        let rec = Recorder::spawn(Path::new("mem"), pipeline, opts, move || {
            Ok(Box::new(SlowWriter(Default::default(), g)) as Box<dyn ExchangeWriter>)
        })
        .unwrap();
        let sink = rec.sink();
        let mut big = exchange("/big");
        big.request.body = vec![b'x'; 6_000];
        let accepted: Vec<bool> = (0..5).map(|_| sink.offer(big.clone())).collect();
        // At most one in the writer and one queued within 10 000 bytes.
        assert!(accepted.iter().filter(|a| **a).count() <= 2, "{accepted:?}");
        for _ in 0..accepted.iter().filter(|a| **a).count() {
            gate.wait();
        }
        rec.finish().unwrap();
    }

    #[test]
    fn a_writer_that_cannot_be_created_fails_at_start() {
        let pipeline = Pipeline::new(&PipelineOptions::default()).unwrap();
        let err = Recorder::to_file(
            Path::new("/nonexistent-dir/x.gor"),
            Format::Gor,
            pipeline,
            RecorderOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
