//! Streaming HAR reading: a parser thread walks `log.entries` one element at a time and sends
//! converted exchanges through a bounded channel; the iterator puts them in time order.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::entry::{convert, Connections, EXPLICIT_INDEX, MAX_CONNECTIONS};
use super::input::Prep;
use super::json::J;
use super::scan::{json_error_at, Fail, Scanner, Sink};
use crate::error::{Location, ReadError};
use crate::model::Exchange;
use crate::order::TimeOrder;
use crate::source::{ExchangeReader, ReadOptions, ReadReport};

/// Entries held back to put them in time order: a file whose entries are out of order by more
/// than this is yielded only approximately sorted.
pub const ORDER_WINDOW: usize = 4096;
/// The most body bytes held in the ordering window; past it the earliest exchanges are released
/// early.
pub const ORDER_WINDOW_BYTES: usize = 64 << 20;
/// The largest single entry accepted (an entry is held in memory whole while it is converted).
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;
/// Batches of messages in flight between the parser thread and the iterator.
const CHANNEL_DEPTH: usize = 8;
/// Messages per batch (a batch per entry would cost a thread hand-off per entry).
const BATCH: usize = 64;
/// Body bytes per batch, past which it is sent early.
const BATCH_BYTES: usize = 1 << 20;

const INVALID_JSON_HINT: &str = "the file is not valid JSON; HAR exports cut short by the \
browser (or saved while the page was still loading) are a common cause: re-export it";

enum Msg {
    Entry {
        exchange: Box<Exchange>,
        websocket_messages: u64,
        bytes: u64,
    },
    /// An entry that could not be converted; parsing goes on.
    BadEntry {
        error: ReadError,
        bytes: u64,
    },
    /// Parsing stopped here.
    Fatal {
        error: ReadError,
        bytes: u64,
    },
    Done {
        bytes: u64,
    },
}

/// Reads a HAR (or JSONP-wrapped HARP) file as a stream of exchanges in request-start order,
/// with memory bounded by the ordering window and the largest entry, whatever the file size.
///
/// Entries that cannot be converted are errors at the entry's line and column (`recoverable`:
/// with `lenient` they are skipped and counted); invalid JSON ends the stream with an error at
/// the line and column where the JSON broke, after the exchanges read before it.
pub struct HarReader {
    rx: Option<Receiver<Vec<Msg>>>,
    /// The parser thread, joined once it sent its last message so that it never outlives a
    /// reader that reached the end. A reader dropped early does not wait for it: the thread
    /// stops at its next send.
    parser: Option<std::thread::JoinHandle<()>>,
    /// Messages received and not yet handled.
    inbox: std::vec::IntoIter<Msg>,
    window: TimeOrder,
    window_bytes: usize,
    /// An error to yield once the window is drained.
    pending: Option<ReadError>,
    report: ReadReport,
    lenient: bool,
    yielded: u64,
    /// Connection numbers from the parser thread -> (id in yield order, exchanges yielded on it).
    connections: HashMap<u64, (u64, u32)>,
    next_connection: u64,
}

impl HarReader {
    /// Starts reading `input` on a parser thread. Fails only if the thread cannot be started;
    /// problems with the content come out of the iterator.
    pub fn new(input: Box<dyn BufRead + Send>, opts: ReadOptions) -> Result<Self, ReadError> {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let parser = std::thread::Builder::new()
            .name("har-reader".into())
            .spawn(move || parse(input, tx))
            .map_err(|e| ReadError::new(format!("cannot start the HAR parser thread: {e}")))?;
        Ok(HarReader {
            rx: Some(rx),
            parser: Some(parser),
            inbox: Vec::new().into_iter(),
            window: TimeOrder::new(),
            window_bytes: 0,
            pending: None,
            report: ReadReport::default(),
            lenient: opts.lenient,
            yielded: 0,
            connections: HashMap::new(),
            next_connection: 0,
        })
    }

    /// The parser thread sent its last message (or died): wait for it to release its input.
    fn parser_done(&mut self) {
        self.rx = None;
        if let Some(t) = self.parser.take() {
            // A panic there already shows as the channel closing early.
            let _ = t.join();
        }
    }

    fn release(&mut self, exchange: Option<Exchange>) -> Option<Result<Exchange, ReadError>> {
        let mut x = exchange?;
        self.window_bytes = self.window_bytes.saturating_sub(held_bytes(&x));
        // Connections are numbered, and exchanges counted on them, in the order yielded (request
        // start), not the order the file lists them.
        let explicit = x.connection.index & EXPLICIT_INDEX != 0;
        x.connection.index &= !EXPLICIT_INDEX;
        if let Some(file_id) = x.connection.id {
            if !self.connections.contains_key(&file_id) && self.connections.len() >= MAX_CONNECTIONS
            {
                self.connections.clear();
            }
            let next = &mut self.next_connection;
            let slot = self.connections.entry(file_id).or_insert_with(|| {
                *next += 1;
                (*next - 1, 0)
            });
            x.connection.id = Some(slot.0);
            if !explicit {
                x.connection.index = slot.1;
            }
            slot.1 = slot.1.saturating_add(1);
        }
        self.yielded += 1;
        Some(Ok(x))
    }
}

/// What an exchange costs the ordering window (bodies dominate).
fn held_bytes(x: &Exchange) -> usize {
    x.request.body.len() + x.response.as_ref().map_or(0, |r| r.body.len())
}

impl Iterator for HarReader {
    type Item = Result<Exchange, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pending.is_some() {
                // Exchanges read before an error come out before it.
                if let Some(x) = self.window.pop() {
                    return self.release(Some(x));
                }
                return self
                    .pending
                    .take()
                    .map(|e| Err(e.read_before(self.yielded)));
            }
            if self.window.len() > ORDER_WINDOW || self.window_bytes > ORDER_WINDOW_BYTES {
                let x = self.window.pop();
                return self.release(x);
            }
            let msg = match self.inbox.next() {
                Some(m) => Ok(m),
                None => {
                    let Some(rx) = &self.rx else {
                        let x = self.window.pop();
                        return self.release(x);
                    };
                    match rx.recv() {
                        Ok(batch) => {
                            self.inbox = batch.into_iter();
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match msg {
                Ok(Msg::Entry {
                    exchange,
                    websocket_messages,
                    bytes,
                }) => {
                    self.report.bytes_read = bytes;
                    if websocket_messages > 0 {
                        self.report.skip("websocket_messages", websocket_messages);
                    }
                    self.window_bytes += held_bytes(&exchange);
                    self.window.push(*exchange);
                }
                Ok(Msg::BadEntry { error, bytes }) => {
                    self.report.bytes_read = bytes;
                    if self.lenient {
                        self.report.corrupt_skipped += 1;
                        if self.report.first_corrupt.is_none() {
                            self.report.first_corrupt = Some(error.to_string());
                        }
                    } else {
                        self.pending = Some(error);
                    }
                }
                Ok(Msg::Fatal { error, bytes }) => {
                    self.report.bytes_read = bytes;
                    self.parser_done();
                    self.pending = Some(error);
                }
                Ok(Msg::Done { bytes }) => {
                    self.report.bytes_read = bytes;
                    self.parser_done();
                }
                Err(_) => {
                    self.parser_done();
                    self.pending = Some(ReadError::new("the HAR parser stopped unexpectedly"));
                }
            }
        }
    }
}

impl ExchangeReader for HarReader {
    fn report(&self) -> ReadReport {
        self.report.clone()
    }
}

/// The parser thread's side: converts entries and sends them.
struct Parser {
    tx: SyncSender<Vec<Msg>>,
    batch: Vec<Msg>,
    batch_bytes: usize,
    conns: Connections,
    entries_seen: u64,
    /// Where the last entry ended in the input.
    bytes: u64,
    found_entries: bool,
    /// Why the file is not a HAR, and where that was noticed.
    not_har: Option<(String, Location)>,
}

impl Parser {
    fn push(&mut self, msg: Msg) -> Result<(), Fail> {
        if let Msg::Entry { exchange, .. } = &msg {
            self.batch_bytes += held_bytes(exchange);
        }
        self.batch.push(msg);
        if self.batch.len() >= BATCH || self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Fail> {
        self.batch_bytes = 0;
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send(batch).map_err(|_| Fail::Stopped)
    }
}

impl Sink for Parser {
    fn entry(&mut self, bytes: &[u8], line: u64, column: u64, end: u64) -> Result<(), Fail> {
        self.bytes = end;
        let value: J =
            serde_json::from_slice(bytes).map_err(|e| json_error_at(&e, line, column))?;
        self.entries_seen += 1;
        let msg = match convert(value, &mut self.conns) {
            Ok(c) => Msg::Entry {
                exchange: Box::new(c.exchange),
                websocket_messages: c.websocket_messages,
                bytes: self.bytes,
            },
            Err(why) => Msg::BadEntry {
                error: ReadError::new(format!("entry {}: {why}", self.entries_seen))
                    .at(Location::LineColumn { line, column })
                    .hint("pass --lenient to skip entries that cannot be read")
                    .recoverable(),
                bytes: self.bytes,
            },
        };
        self.push(msg)
    }

    fn found_entries(&mut self) {
        self.found_entries = true;
    }

    fn not_har(&mut self, why: String, line: u64, column: u64) {
        if self.not_har.is_none() {
            self.not_har = Some((why, Location::LineColumn { line, column }));
        }
    }
}

fn parse(input: Box<dyn BufRead + Send>, tx: SyncSender<Vec<Msg>>) {
    let mut scanner = Scanner::new(Prep::new(input), MAX_ENTRY_BYTES);
    let mut parser = Parser {
        tx,
        batch: Vec::with_capacity(BATCH),
        batch_bytes: 0,
        conns: Connections::default(),
        entries_seen: 0,
        bytes: 0,
        found_entries: false,
        not_har: None,
    };
    let result = scanner.document(&mut parser);
    let bytes = scanner.bytes_read();
    let error = match result {
        Err(Fail::Stopped) => return,
        Ok(()) if parser.found_entries => {
            let _ = parser.push(Msg::Done { bytes });
            let _ = parser.flush();
            return;
        }
        Ok(()) => {
            let (why, at) = match parser.not_har.take() {
                Some((why, at)) => (why, Some(at)),
                None => ("there is no log.entries array".to_string(), None),
            };
            let mut e = ReadError::new(format!("not a HAR file: {why}")).hint(
                "a HAR file is a JSON object {\"log\": {\"entries\": [...]}}; export one from the \
                 browser's network panel (\"Save all as HAR\") or a proxy",
            );
            e.location = at;
            e
        }
        Err(Fail::Io(e)) => ReadError::new(format!("I/O error: {e}")),
        Err(Fail::TooLarge { line, column }) => ReadError::new(format!(
            "the value starting here is larger than {} MiB",
            MAX_ENTRY_BYTES >> 20
        ))
        .at(Location::LineColumn { line, column })
        .hint("mynah holds one HAR entry in memory at a time; split the file or drop huge bodies"),
        Err(Fail::Syntax { .. }) if bytes == 0 => {
            ReadError::new("the file is empty").hint("an empty file is not a HAR file")
        }
        Err(Fail::Syntax {
            message,
            line,
            column,
        }) => ReadError::new(format!("invalid JSON: {message}"))
            .at(Location::LineColumn {
                line,
                column: column.max(1),
            })
            .hint(INVALID_JSON_HINT),
    };
    let _ = parser.push(Msg::Fatal { error, bytes });
    let _ = parser.flush();
}
