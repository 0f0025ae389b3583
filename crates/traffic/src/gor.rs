//! GoReplay `.gor` files: a streaming reader that pairs requests with responses and yields them in
//! request-time order, and a writer whose output GoReplay itself reads.
//!
//! # Format
//!
//! A record is a header line `TYPE ID TIMESTAMP[ LATENCY]\n`, the raw HTTP payload, then the
//! separator `\n🐵🙈🙉\n`. TYPE is `1` (request), `2` (original response) or `3` (replayed
//! response); a request and its response share the ID. There is no escaping: a record ends at the
//! first line that is exactly `🐵🙈🙉`, as in GoReplay's own reader. A file may end without a
//! separator after its last record.
//!
//! # Pairing and order
//!
//! Records come in emission order, not time order (a `100 Continue` can precede its request), so the
//! reader holds them in a window — up to [`WINDOW_RECORDS`] records, [`WINDOW_BYTES`] of messages,
//! or until the timestamps have moved on by [`WINDOW_NS`] — to pair them by id and release the
//! exchanges sorted by request start. A request whose response does not arrive within the window is
//! kept with `incomplete = NoResponse`; a response record whose request does not arrive is counted
//! as skipped `response_without_request` (per record). Replayed responses (type 3) are not part of the captured
//! traffic: counted as skipped `replayed_response`. Records further out of order than the window
//! come out where they are read.
//!
//! A type-1 record can hold several pipelined requests (GoReplay merges the requests of one TCP
//! segment): they become separate exchanges, the first paired with the record's response, the
//! others `NoResponse` (their responses, if captured, carry other ids). `connection.index` is the
//! request's position in its record, the only connection fact a `.gor` file gives.
//!
//! A type-2 record can hold several responses: interim ones before the final one (read into
//! `interim`), and, after a HEAD response with a Content-Length, the connection's next responses,
//! which GoReplay glues onto it under the id of the last request (see
//! [`wire::parse_recorded_responses`]). The last final responses pair with the record's requests;
//! the earlier ones are counted as skipped `merged_response` (per response message).
//!
//! # Timing
//!
//! `request_start` is the request record's TIMESTAMP and `response_start` the final response's.
//! LATENCY, when present and positive, is read as GoReplay 1.x writes it for raw captures: the time
//! from the first to the last packet of that record's message. So a request record's LATENCY gives
//! `request_end = TIMESTAMP + LATENCY` and a response record's gives `response_end = TIMESTAMP +
//! LATENCY`. (GoReplay 0.x stamped responses with the request's time and a round-trip latency, which
//! this reading also turns into the right `response_end`.) The writer writes LATENCY the same way,
//! so timing round-trips.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::io::{self, BufRead, Read, Write};

use crate::error::Location;
use crate::model::{Incomplete, Nanos, Response};
use crate::order::TimeOrder;
use crate::wire::{self, Framing, ParsedRequest};
use crate::{Exchange, ExchangeReader, Output, ReadError, ReadOptions, ReadReport};

/// The record separator: a newline, three monkeys, a newline.
pub const SEPARATOR: &[u8] = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n";
const MONKEYS: &[u8] = b"\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89";

/// How far (in nanoseconds of record timestamps) a response may trail its request, and records
/// may be out of time order, and still be paired and sorted.
pub const WINDOW_NS: Nanos = 5_000_000_000;
/// The most records (open pairings plus exchanges waiting to be released) held at once.
pub const WINDOW_RECORDS: usize = 10_000;
/// The most message bytes held at once; past it the earliest exchanges are released early.
pub const WINDOW_BYTES: usize = 64 << 20;
/// The largest record payload read; a larger record is an error (skipped under `--lenient`).
pub const MAX_RECORD: usize = 32 << 20;
/// The longest record header line (a real one is under 100 bytes).
const MAX_HEADER_LINE: usize = 4096;

const NOT_GOR_HINT: &str = "this does not look like a GoReplay .gor file: each record starts with a \
     line `TYPE ID TIMESTAMP` (e.g. `1 8f3c...e1 1568139746437296000`); name the format with --from if \
     the file is something else";
const LENIENT_HINT: &str = "--lenient skips corrupt records";

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// Where [`GorReader::scan`] stopped.
enum Scan {
    Separator,
    Eof,
    TooLarge,
}

/// A record id, the key that pairs a request with its response. GoReplay writes 24 or 40 hex
/// digits: those are held inline, so the window's maps and their copies of the key cost no
/// allocation per record (the window holds up to [`WINDOW_RECORDS`] of them).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Id {
    Short { len: u8, bytes: [u8; 46] },
    Long(Box<[u8]>),
}

impl Id {
    fn new(raw: &[u8]) -> Id {
        if raw.len() <= 46 {
            let mut bytes = [0u8; 46];
            bytes[..raw.len()].copy_from_slice(raw);
            Id::Short {
                len: raw.len() as u8,
                bytes,
            }
        } else {
            Id::Long(raw.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Id::Short { len, bytes } => &bytes[..*len as usize],
            Id::Long(b) => b,
        }
    }
}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

/// The window's maps are keyed by ids read from the file: a fast hash that still mixes every
/// byte into every bit (ids are often counters in hex, which defeat a plain multiply-add hash;
/// SipHash was a tenth of the reader's time).
type IdMap<V> = HashMap<Id, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl IdHasher {
    /// The high and low halves of a 128-bit product folded together (as in wyhash and
    /// foldhash): each input bit reaches the output bits both above and below it.
    #[inline]
    fn fold(a: u64, b: u64) -> u64 {
        let p = a as u128 * b as u128;
        (p as u64) ^ ((p >> 64) as u64)
    }
}

impl std::hash::Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = Self::fold(
                self.0 ^ u64::from_le_bytes(w) ^ 0x243f_6a88_85a3_08d3,
                0x9e37_79b9_7f4a_7c15,
            );
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        Self::fold(self.0, 0xbf58_476d_1ce4_e5b9)
    }
}

/// A parsed record header line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordHeader {
    kind: u8,
    id: Id,
    ts: Nanos,
    /// 0 when absent.
    latency: i64,
}

/// A request record waiting in the window.
struct RequestRecord {
    requests: Vec<ParsedRequest>,
    ts: Nanos,
    latency: i64,
}

/// A response message held in the window, with what its record says about its timing.
struct HeldResponse {
    response: Response,
    /// The record's TIMESTAMP and LATENCY.
    ts: Nanos,
    latency: i64,
    /// The first final response of its record: the record's TIMESTAMP is its first byte.
    first_in_record: bool,
    /// The last final response of its record: the record's LATENCY ends with it.
    last_in_record: bool,
}

/// Everything seen so far under one id.
/// Open slots in key order, so the oldest can be closed first.
///
/// A `BTreeMap` alone did this at about 2k instructions per record. Records arrive mostly in time
/// order, so an in-order key is pushed at the back of a sorted `VecDeque`; closing a slot marks
/// its entry (found by binary search: keys are unique, they end with the record number), and
/// marked entries are dropped when they reach the front, or all at once when they outnumber the
/// live ones. The few keys that arrive out of order go to a `BTreeMap` beside it, so a shuffled
/// file costs what it did before rather than a shift per record.
#[derive(Default)]
struct TimeIndex {
    entries: VecDeque<((Nanos, u64), Option<Id>)>,
    /// Marked entries still in `entries`.
    dead: usize,
    late: BTreeMap<(Nanos, u64), Id>,
}

impl TimeIndex {
    fn insert(&mut self, key: (Nanos, u64), id: Id) {
        match self.entries.back() {
            Some((last, _)) if *last > key => {
                self.late.insert(key, id);
            }
            _ => self.entries.push_back((key, Some(id))),
        }
    }

    fn remove(&mut self, key: &(Nanos, u64)) {
        if self.late.remove(key).is_some() {
            return;
        }
        if let Ok(i) = self.entries.binary_search_by_key(key, |(k, _)| *k) {
            if self.entries[i].1.take().is_some() {
                self.dead += 1;
            }
        }
        self.trim();
        if self.dead > self.entries.len() - self.dead + 1024 {
            self.entries.retain(|(_, id)| id.is_some());
            self.dead = 0;
        }
    }

    /// Keeps the front live, so `first` is one look.
    fn trim(&mut self) {
        while self.entries.front().is_some_and(|(_, id)| id.is_none()) {
            self.entries.pop_front();
            self.dead -= 1;
        }
    }

    fn first(&self) -> Option<(Nanos, u64)> {
        let front = self.entries.front().map(|(k, _)| *k);
        let late = self.late.first_key_value().map(|(k, _)| *k);
        match (front, late) {
            (Some(f), Some(l)) => Some(f.min(l)),
            (f, l) => f.or(l),
        }
    }

    fn pop_first(&mut self) -> Option<Id> {
        let first = self.first()?;
        if self
            .late
            .first_key_value()
            .is_some_and(|(k, _)| *k == first)
        {
            return self.late.pop_first().map(|(_, id)| id);
        }
        let (_, id) = self.entries.pop_front()?;
        self.trim();
        id
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len() + self.late.len()
    }
}

struct Slot {
    /// Position in `by_time`: the earliest timestamp seen under this id and the record number.
    key: (Nanos, u64),
    request: Option<RequestRecord>,
    /// Response messages (interim and final) of every type-2 record with this id, in order.
    responses: Vec<HeldResponse>,
    /// How many type-2 records those came in.
    response_records: u64,
    /// Message bytes held (for the window's byte cap).
    bytes: usize,
}

impl Slot {
    fn has_final(&self) -> bool {
        self.responses.iter().any(|r| !r.response.is_interim())
    }
}

/// Reads a `.gor` stream as exchanges in request-time order (see the module doc).
pub struct GorReader {
    input: Box<dyn BufRead + Send>,
    opts: ReadOptions,
    report: ReadReport,
    /// The current record's header line, and scratch space when skipping.
    line: Vec<u8>,
    /// The current record's payload (reused between records).
    payload: Vec<u8>,
    /// Records seen (including skipped and corrupt ones).
    records: u64,
    /// Bytes consumed from the input.
    offset: u64,
    /// The rest of a corrupt record must be skipped before the next one is read.
    skip_pending: bool,
    /// Whether that skipping starts at the beginning of a line.
    skip_at_line_start: bool,
    finder: memchr::memmem::Finder<'static>,
    done: bool,

    slots: IdMap<Slot>,
    /// Open slots, earliest key first.
    by_time: TimeIndex,
    order: TimeOrder,
    held_bytes: usize,
    max_ts: Option<Nanos>,

    ready: VecDeque<Result<Exchange, ReadError>>,
    yielded: u64,
}

impl GorReader {
    /// Reads records from `input` (already decompressed: see [`crate::source::maybe_gunzip`]).
    pub fn new(input: Box<dyn BufRead + Send>, opts: ReadOptions) -> Self {
        GorReader {
            input,
            opts,
            report: ReadReport::default(),
            line: Vec::with_capacity(256),
            payload: Vec::with_capacity(64 << 10),
            records: 0,
            offset: 0,
            skip_pending: false,
            skip_at_line_start: true,
            finder: memchr::memmem::Finder::new(SEPARATOR),
            done: false,
            slots: IdMap::default(),
            by_time: TimeIndex::default(),
            order: TimeOrder::new(),
            held_bytes: 0,
            max_ts: None,
            ready: VecDeque::new(),
            yielded: 0,
        }
    }

    /// Reads one record (or the end of input) and queues what it releases.
    fn step(&mut self) {
        if self.skip_pending {
            if let Err(e) = self.skip_record() {
                return self.fatal(e);
            }
            self.skip_pending = false;
        }
        // The header line; blank lines and stray separators between records are passed over.
        let start = loop {
            let start = self.offset;
            self.line.clear();
            match read_line(self.input.as_mut(), &mut self.line, MAX_HEADER_LINE) {
                Ok(0) => return self.finish(),
                Ok(n) => self.offset += n as u64,
                Err(e) => return self.fatal(e),
            }
            let l = strip_eol(&self.line);
            if !l.iter().all(u8::is_ascii_whitespace) && l != MONKEYS {
                break start;
            }
        };
        self.records += 1;
        let number = self.records;
        let at = Location::Record {
            number,
            byte: start,
        };
        let complete_line = self.line.ends_with(b"\n");
        if !complete_line && self.line.len() >= MAX_HEADER_LINE {
            self.skip_pending = true;
            self.skip_at_line_start = false;
            self.payload.clear();
            let msg = format!("record header line is longer than {MAX_HEADER_LINE} bytes");
            return self.corrupt(at, msg, number == 1);
        }
        let header = match parse_header_line(&self.line) {
            Ok(h) => h,
            Err(msg) => {
                self.skip_pending = complete_line;
                self.skip_at_line_start = true;
                self.payload.clear();
                return self.corrupt(at, msg, number == 1);
            }
        };
        match self.read_payload() {
            Ok(true) => {}
            Ok(false) => {
                // The payload's tail holds any newline a separator would start with.
                self.skip_pending = true;
                self.skip_at_line_start = false;
                let msg = format!(
                    "record payload is larger than {} MiB (the reader's limit)",
                    MAX_RECORD >> 20
                );
                return self.corrupt(at, msg, false);
            }
            Err(e) => return self.fatal(e),
        }
        if let Err(msg) = self.process(number, header) {
            self.corrupt(at, msg, false);
        }
    }

    /// Reads the payload up to the separator (excluded) or the end of input. False when the
    /// payload exceeds [`MAX_RECORD`].
    fn read_payload(&mut self) -> io::Result<bool> {
        self.payload.clear();
        // A buffer grown by one huge record is not kept for the rest of the file.
        if self.payload.capacity() > 8 << 20 {
            self.payload.shrink_to(64 << 10);
        }
        // The header line's newline can be the separator's first byte (an empty payload).
        Ok(!matches!(self.scan(true, true)?, Scan::TooLarge))
    }

    /// Passes over the rest of a corrupt record, up to and including its separator. `payload`
    /// holds what was read of the record (its tail can start a separator); `skip_at_line_start`
    /// says whether the input position follows a newline that is not in `payload`.
    fn skip_record(&mut self) -> io::Result<()> {
        let keep_from = self.payload.len().saturating_sub(SEPARATOR.len() - 1);
        self.payload.drain(..keep_from);
        let line_start = self.skip_at_line_start;
        let r = self.scan(false, line_start).map(|_| ());
        self.payload.clear();
        r
    }

    /// Moves through the input to the next separator, which is consumed. With `keep`, the bytes
    /// before it are appended to `payload` (up to [`MAX_RECORD`]); without, `payload` keeps only
    /// a tail long enough to see a separator that straddles two reads. `line_start`: the input
    /// position follows a newline (so a separator line right there counts).
    ///
    /// The search runs over the reader's buffer with a SIMD substring search, so payload bytes
    /// are copied once and looked at about once.
    fn scan(&mut self, keep: bool, mut line_start: bool) -> io::Result<Scan> {
        const TAIL: usize = SEPARATOR.len() - 1;
        let limit = MAX_RECORD + SEPARATOR.len();
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                // The end of input: a last separator may lack its final newline.
                let p = &self.payload;
                if p.ends_with(MONKEYS) && p.len() > MONKEYS.len() && p[p.len() - 13] == b'\n' {
                    self.payload.truncate(p.len() - 13);
                } else if line_start && p.as_slice() == MONKEYS {
                    self.payload.clear();
                }
                return Ok(Scan::Eof);
            }
            // A separator that starts in what was read before (or at the virtual newline before
            // the payload) and ends in this chunk.
            let mut straddle = [0u8; 2 * TAIL + 1];
            let mut n = 0;
            let held = self.payload.len();
            let from_payload = held.min(TAIL);
            let virtual_nl = line_start && held < TAIL;
            if virtual_nl {
                straddle[0] = b'\n';
                n = 1;
            }
            straddle[n..n + from_payload].copy_from_slice(&self.payload[held - from_payload..]);
            n += from_payload;
            let tail_len = n;
            let head = chunk.len().min(TAIL);
            straddle[n..n + head].copy_from_slice(&chunk[..head]);
            n += head;
            let found = self
                .finder
                .find(&straddle[..n])
                .filter(|&p| p < tail_len)
                .map(|p| {
                    // Bytes of the payload before the separator, and bytes of the chunk through it.
                    let payload_end = (held + p).saturating_sub(tail_len);
                    let used = p + SEPARATOR.len() - tail_len;
                    (payload_end, 0, used)
                });
            let found = found.or_else(|| {
                self.finder
                    .find(chunk)
                    .map(|p| (held + p, p, p + SEPARATOR.len()))
            });
            if let Some((payload_end, copy, used)) = found {
                if keep && payload_end > limit {
                    // Appending would pass the limit: treat as too large below.
                } else {
                    if keep {
                        self.payload.extend_from_slice(&chunk[..copy]);
                    }
                    self.payload.truncate(payload_end);
                    self.input.consume(used);
                    self.offset += used as u64;
                    return Ok(Scan::Separator);
                }
            }
            let take = if keep {
                chunk.len().min(limit.saturating_sub(held))
            } else {
                chunk.len()
            };
            if keep {
                self.payload.extend_from_slice(&chunk[..take]);
            } else {
                let keep_from = take.saturating_sub(TAIL);
                self.payload.extend_from_slice(&chunk[keep_from..take]);
                let excess = self.payload.len().saturating_sub(TAIL);
                self.payload.drain(..excess);
            }
            self.input.consume(take);
            self.offset += take as u64;
            if self.payload.len() >= TAIL {
                line_start = false;
            }
            if keep && self.payload.len() >= limit {
                return Ok(Scan::TooLarge);
            }
        }
    }

    /// Parses a record's payload and files it in the window.
    fn process(&mut self, number: u64, h: RecordHeader) -> Result<(), String> {
        match h.kind {
            1 => {
                let requests = wire::parse_requests(&self.payload)
                    .map_err(|e| format!("request record (type 1): {e}"))?;
                self.on_request(h, requests, number);
            }
            2 => {
                let responses = wire::parse_recorded_responses(&self.payload)
                    .map_err(|e| format!("response record (type 2): {e}"))?;
                self.on_response(h, responses, number);
            }
            // Replay results, stamped with the replay's time: not captured traffic, and their
            // timestamps must not move the window.
            _ => self.report.skip("replayed_response", 1),
        }
        Ok(())
    }

    fn on_request(&mut self, h: RecordHeader, requests: Vec<ParsedRequest>, number: u64) {
        let bytes: usize = requests.iter().map(|p| request_size(&p.request)).sum();
        self.held_bytes += bytes;
        let mut record = Some(RequestRecord {
            requests,
            ts: h.ts,
            latency: h.latency,
        });
        if let Some(slot) = self.slots.get_mut(&h.id) {
            if slot.request.is_none() {
                // Its response came first.
                slot.request = record.take();
                slot.bytes += bytes;
                let complete = slot.has_final();
                let old_key = slot.key;
                if h.ts < old_key.0 {
                    slot.key = (h.ts, old_key.1);
                    self.by_time.remove(&old_key);
                    self.by_time.insert(slot.key, h.id.clone());
                }
                if complete {
                    self.close(&h.id);
                }
            } else {
                // The same id again: the earlier request gets no response under it.
                self.close(&h.id);
            }
        }
        if record.is_some() {
            let key = (h.ts, number);
            self.by_time.insert(key, h.id.clone());
            self.slots.insert(
                h.id,
                Slot {
                    key,
                    request: record,
                    responses: Vec::new(),
                    response_records: 0,
                    bytes,
                },
            );
        }
        self.advance(h.ts);
    }

    fn on_response(&mut self, h: RecordHeader, responses: Vec<Response>, number: u64) {
        let bytes: usize = responses.iter().map(response_size).sum();
        self.held_bytes += bytes;
        let finals: Vec<usize> = responses
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_interim())
            .map(|(i, _)| i)
            .collect();
        let held = responses
            .into_iter()
            .enumerate()
            .map(|(i, response)| HeldResponse {
                response,
                ts: h.ts,
                latency: h.latency,
                first_in_record: finals.first() == Some(&i),
                last_in_record: finals.last() == Some(&i),
            });
        // A final response already waiting under this id was never claimed by a request.
        if !finals.is_empty()
            && self
                .slots
                .get(&h.id)
                .is_some_and(|s| s.request.is_none() && s.has_final())
        {
            self.close(&h.id);
        }
        match self.slots.get_mut(&h.id) {
            Some(slot) => {
                slot.responses.extend(held);
                slot.response_records += 1;
                slot.bytes += bytes;
                if slot.request.is_some() && slot.has_final() {
                    self.close(&h.id);
                }
            }
            None => {
                let key = (h.ts, number);
                self.by_time.insert(key, h.id.clone());
                self.slots.insert(
                    h.id,
                    Slot {
                        key,
                        request: None,
                        responses: held.collect(),
                        response_records: 1,
                        bytes,
                    },
                );
            }
        }
        self.advance(h.ts);
    }

    /// Takes the slot out of the window and turns it into exchanges (or counts an orphan).
    fn close(&mut self, id: &Id) {
        if let Some(slot) = self.slots.remove(id) {
            self.by_time.remove(&slot.key);
            self.finalize(slot);
        }
    }

    /// Pairs the requests of a slot with its responses.
    ///
    /// Each final response takes the interim responses before it. With as many final responses as
    /// requests they pair in order. With more (GoReplay glues the responses that follow a HEAD
    /// response onto it, under the id of the last request), the last ones pair with the requests
    /// and the earlier ones are counted as skipped `merged_response`: their requests are other
    /// records, which cannot be told apart. With fewer (pipelined requests whose later responses
    /// GoReplay recorded under other ids), the first requests get them.
    fn finalize(&mut self, slot: Slot) {
        self.held_bytes = self.held_bytes.saturating_sub(slot.bytes);
        let mut groups: Vec<(Vec<Response>, Option<HeldResponse>)> = Vec::new();
        let mut interim = Vec::new();
        for held in slot.responses {
            if held.response.is_interim() {
                interim.push(held.response);
            } else {
                groups.push((std::mem::take(&mut interim), Some(held)));
            }
        }
        let finals = groups.len();
        if !interim.is_empty() {
            groups.push((interim, None));
        }
        let Some(record) = slot.request else {
            // Counted in records, like everything a .gor reader skips.
            self.report
                .skip("response_without_request", slot.response_records);
            return;
        };
        let requests = record.requests.len();
        if finals > requests {
            self.report
                .skip("merged_response", (finals - requests) as u64);
            groups.drain(..finals - requests);
        }
        let mut groups = groups.into_iter();
        // The record's latency spans all the requests it holds.
        let request_end = (record.latency > 0).then(|| record.ts.saturating_add(record.latency));
        for (i, parsed) in record.requests.into_iter().enumerate() {
            let mut e = Exchange::new(parsed.request, record.ts);
            e.timing.request_end = request_end;
            e.connection.index = u32::try_from(i).unwrap_or(u32::MAX);
            if let Some((interim, fin)) = groups.next() {
                e.interim = interim;
                if let Some(held) = fin {
                    let t = &mut e.timing;
                    t.response_start = held.first_in_record.then_some(held.ts);
                    t.response_end = (held.last_in_record && held.latency > 0)
                        .then(|| held.ts.saturating_add(held.latency));
                    if parsed.truncated || response_truncated(&e.request.method, &held.response) {
                        e.incomplete = Some(Incomplete::TruncatedBody);
                    }
                    e.response = Some(held.response);
                }
            }
            if e.response.is_none() {
                e.incomplete = Some(Incomplete::NoResponse);
            }
            self.held_bytes += exchange_size(&e);
            self.order.push(e);
        }
    }

    /// Moves the window on to `ts`: closes what is too old to be paired, releases what nothing
    /// still to come can precede, and keeps what is held under the caps.
    fn advance(&mut self, ts: Nanos) {
        let max = self.max_ts.map_or(ts, |m| m.max(ts));
        self.max_ts = Some(max);
        let horizon = max.saturating_sub(WINDOW_NS);
        while let Some(key) = self.by_time.first() {
            if key.0 >= horizon {
                break;
            }
            if let Some(id) = self.by_time.pop_first() {
                if let Some(slot) = self.slots.remove(&id) {
                    self.finalize(slot);
                }
            }
        }
        while let Some(e) = self.order.pop_until(horizon) {
            self.release(e);
        }
        while self.slots.len() + self.order.len() > WINDOW_RECORDS || self.held_bytes > WINDOW_BYTES
        {
            let open = self.by_time.first().map(|k| k.0);
            match (self.order.earliest(), open) {
                (Some(o), Some(s)) if o <= s => self.release_one(),
                (Some(_), None) => self.release_one(),
                (_, Some(_)) => {
                    if let Some(id) = self.by_time.pop_first() {
                        if let Some(slot) = self.slots.remove(&id) {
                            self.finalize(slot);
                        }
                    }
                }
                (None, None) => break,
            }
        }
    }

    fn release_one(&mut self) {
        if let Some(e) = self.order.pop() {
            self.release(e);
        }
    }

    fn release(&mut self, e: Exchange) {
        self.held_bytes = self.held_bytes.saturating_sub(exchange_size(&e));
        self.ready.push_back(Ok(e));
    }

    /// Closes every open pairing and releases everything held, in time order.
    fn flush_all(&mut self) {
        while let Some(id) = self.by_time.pop_first() {
            if let Some(slot) = self.slots.remove(&id) {
                self.finalize(slot);
            }
        }
        while let Some(e) = self.order.pop() {
            self.release(e);
        }
    }

    fn finish(&mut self) {
        self.flush_all();
        self.done = true;
    }

    /// Exchanges yielded or queued before the next item.
    fn exchanges_before(&self) -> u64 {
        self.yielded + self.ready.iter().filter(|r| r.is_ok()).count() as u64
    }

    /// A corrupt record: skipped and counted under `--lenient`, else an error (after the
    /// exchanges already read, since a strict reader's caller stops here).
    fn corrupt(&mut self, at: Location, message: String, maybe_not_gor: bool) {
        let hint = if maybe_not_gor && self.exchanges_before() == 0 {
            NOT_GOR_HINT
        } else {
            LENIENT_HINT
        };
        if self.opts.lenient {
            self.report.corrupt_skipped += 1;
            if self.report.first_corrupt.is_none() {
                let e = ReadError::new(message)
                    .at(at)
                    .read_before(self.exchanges_before());
                self.report.first_corrupt = Some(e.to_string());
            }
            return;
        }
        self.flush_all();
        let e = ReadError::new(message)
            .at(at)
            .hint(hint)
            .recoverable()
            .read_before(self.exchanges_before());
        self.ready.push_back(Err(e));
    }

    /// The input failed: what is complete comes first, then the error, then nothing.
    fn fatal(&mut self, e: io::Error) {
        self.flush_all();
        let e = ReadError::io(e)
            .at(Location::Byte(self.offset))
            .hint("the file is truncated or corrupt")
            .read_before(self.exchanges_before());
        self.ready.push_back(Err(e));
        self.done = true;
    }
}

impl Iterator for GorReader {
    type Item = Result<Exchange, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                if item.is_ok() {
                    self.yielded += 1;
                }
                return Some(item);
            }
            if self.done {
                return None;
            }
            self.step();
        }
    }
}

impl ExchangeReader for GorReader {
    fn report(&self) -> ReadReport {
        let mut r = self.report.clone();
        r.bytes_read = self.offset;
        r
    }
}

/// Appends the next line (up to and including `\n`, at most `cap` bytes) to `buf`.
fn read_line(input: &mut (dyn BufRead + Send), buf: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    // read_until finds the newline with memchr over the buffered bytes; take() bounds the line.
    Read::take(input, cap as u64).read_until(b'\n', buf)
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses `TYPE ID TIMESTAMP[ LATENCY]`.
fn parse_header_line(line: &[u8]) -> Result<RecordHeader, String> {
    let raw = strip_eol(line);
    let bad = |what: &str| {
        let shown: String = raw
            .iter()
            .take(80)
            .map(|b| b.escape_ascii().to_string())
            .collect();
        let more = if raw.len() > 80 { "..." } else { "" };
        format!(
            "bad record header \"{shown}{more}\": {what}; expected `TYPE ID TIMESTAMP [LATENCY]`"
        )
    };
    let text = std::str::from_utf8(raw).map_err(|_| bad("not text"))?;
    let mut fields = text.split(' ');
    let (Some(kind), Some(id), Some(ts)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad("fewer than 3 fields"));
    };
    let latency = fields.next();
    if fields.next().is_some() {
        return Err(bad("more than 4 fields"));
    }
    let kind = match kind {
        "1" => 1,
        "2" => 2,
        "3" => 3,
        other => return Err(bad(&format!("unknown record type {other:?} (1, 2 or 3)"))),
    };
    if id.is_empty() {
        return Err(bad("empty id"));
    }
    let ts: Nanos = ts
        .parse()
        .map_err(|_| bad(&format!("timestamp {ts:?} is not a number of nanoseconds")))?;
    let latency: i64 = match latency {
        Some(l) => l
            .parse()
            .map_err(|_| bad(&format!("latency {l:?} is not a number")))?,
        None => 0,
    };
    Ok(RecordHeader {
        kind,
        id: Id::new(id.as_bytes()),
        ts,
        latency,
    })
}

/// True when a final response's body is shorter than its framing says (HEAD, 1xx, 204 and 304
/// responses have no body whatever their headers say).
fn response_truncated(method: &str, r: &Response) -> bool {
    if method.eq_ignore_ascii_case("HEAD") || r.status < 200 || r.status == 204 || r.status == 304 {
        return false;
    }
    match wire::request_framing(&r.headers) {
        Ok(Framing::Length(n)) => (r.body.len() as u64) < n,
        Ok(Framing::Chunked) => matches!(wire::chunked_end(&r.body), Ok(None)),
        _ => false,
    }
}

fn headers_size(h: &crate::Headers) -> usize {
    h.iter().map(|f| f.name.len() + f.value.len() + 32).sum()
}

fn request_size(r: &crate::Request) -> usize {
    64 + r.target.len() + r.body.len() + headers_size(&r.headers)
}

fn response_size(r: &Response) -> usize {
    64 + r.reason.len() + r.body.len() + headers_size(&r.headers)
}

fn exchange_size(e: &Exchange) -> usize {
    request_size(&e.request)
        + e.interim
            .iter()
            .chain(e.response.as_ref())
            .map(response_size)
            .sum::<usize>()
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// Writes exchanges as `.gor` records: a type-1 record for the request and, when there is a
/// response, a type-2 record with the same id holding any interim responses then the final one
/// (as they were on the wire).
///
/// Ids are 24 hex digits, a random per-writer prefix and a counter, so files written separately
/// can be merged. LATENCY is written as the reader reads it (see the module doc): the request's
/// `request_end - request_start`, the response's `response_end - response_start`, 0 when unknown.
pub struct GorWriter {
    out: Output,
    prefix: u64,
    count: u64,
    buf: Vec<u8>,
}

impl GorWriter {
    /// Writes records to `out`.
    pub fn new(out: Output) -> Self {
        GorWriter {
            out,
            prefix: random_u64(),
            count: 0,
            buf: Vec::with_capacity(64 << 10),
        }
    }

    /// Finishes the output and hands back its bytes when it was [`Output::Memory`].
    pub fn finish_output(self) -> io::Result<Option<Vec<u8>>> {
        self.out.finish()
    }

    fn next_id(&mut self) -> String {
        let c = self.count;
        self.count = self.count.wrapping_add(1);
        format!(
            "{:016x}{:08x}",
            self.prefix.wrapping_add(c >> 32),
            c & 0xffff_ffff
        )
    }
}

/// A random 64-bit number without a random-number crate: std's hasher keys are random per process.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

fn write_record_header(kind: u8, id: &str, ts: Nanos, latency: i64, buf: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = writeln!(buf, "{} {id} {ts} {latency}", kind as char);
}

/// A payload line that is exactly the monkeys would end the record early: `.gor` cannot hold it.
fn holds_separator(payload: &[u8]) -> bool {
    payload.split(|&b| b == b'\n').any(|line| line == MONKEYS)
}

impl crate::ExchangeWriter for GorWriter {
    fn write(&mut self, e: &Exchange) -> io::Result<()> {
        let id = self.next_id();
        let t = &e.timing;
        self.buf.clear();

        let latency = t
            .request_end
            .map_or(0, |end| end.saturating_sub(t.request_start).max(0));
        write_record_header(b'1', &id, t.request_start, latency, &mut self.buf);
        let start = self.buf.len();
        wire::write_request(&e.request, &mut self.buf);
        if holds_separator(self.buf.get(start..).unwrap_or_default()) {
            return Err(separator_error(e, "request"));
        }
        self.buf.extend_from_slice(SEPARATOR);

        if e.response.is_some() || !e.interim.is_empty() {
            let ts = t.response_start.unwrap_or(t.request_start);
            let latency = t
                .response_end
                .map_or(0, |end| end.saturating_sub(ts).max(0));
            write_record_header(b'2', &id, ts, latency, &mut self.buf);
            let start = self.buf.len();
            for r in &e.interim {
                if r.body.is_empty() {
                    wire::write_response(r, &mut self.buf);
                } else {
                    // An interim response has no body on the wire; one here would be read back
                    // as the start of the next response.
                    let head = Response {
                        body: Vec::new(),
                        ..r.clone()
                    };
                    wire::write_response(&head, &mut self.buf);
                }
            }
            if let Some(r) = &e.response {
                wire::write_response(r, &mut self.buf);
            }
            if holds_separator(self.buf.get(start..).unwrap_or_default()) {
                return Err(separator_error(e, "response"));
            }
            self.buf.extend_from_slice(SEPARATOR);
        }
        self.out.write_all(&self.buf)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.finish_output().map(|_| ())
    }
}

fn separator_error(e: &Exchange, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the {what} of {} {} contains a line that is the .gor record separator (🐵🙈🙉); \
             .gor cannot hold it: write HAR instead",
            e.request.method, e.request.target
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BodyForm, Header, Headers, Request, Timing, Version};
    use crate::ExchangeWriter;
    use std::io::Cursor;

    const DATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/traffic/gor/"
    );

    fn data_file(name: &str) -> std::fs::File {
        let path = format!("{DATA}{name}");
        std::fs::File::open(&path).unwrap_or_else(|e| {
            panic!(
                "test capture {path} is missing ({e}): the shared data set must be beside the repo"
            )
        })
    }

    fn reader_for(bytes: &[u8], lenient: bool) -> GorReader {
        GorReader::new(
            Box::new(Cursor::new(bytes.to_vec())),
            ReadOptions {
                lenient,
                ..Default::default()
            },
        )
    }

    fn read_all(bytes: &[u8]) -> (Vec<Exchange>, ReadReport) {
        let mut r = reader_for(bytes, false);
        let ex: Vec<Exchange> = r.by_ref().map(|x| x.unwrap()).collect();
        (ex, r.report())
    }

    fn read_file(name: &str) -> (Vec<Exchange>, ReadReport) {
        let input = crate::source::maybe_gunzip(data_file(name)).unwrap();
        let mut r = GorReader::new(input, ReadOptions::default());
        let mut ex = Vec::new();
        for item in r.by_ref() {
            match item {
                Ok(e) => ex.push(e),
                Err(e) => panic!("{name}: {e}"),
            }
        }
        (ex, r.report())
    }

    fn rec(kind: u8, id: &str, ts: i64, payload: &str) -> String {
        format!("{kind} {id} {ts}\n{payload}\n🐵🙈🙉\n")
    }

    fn assert_sorted(ex: &[Exchange]) {
        assert!(
            ex.windows(2)
                .all(|w| w[0].timing.request_start <= w[1].timing.request_start),
            "exchanges are not in request-time order"
        );
    }

    #[test]
    fn many_pairs_with_early_responses_and_late_requests_pair_in_order() {
        // 6,000 pairs: most request-then-response, every 7th response first, every 11th request
        // stamped earlier than the one before (re-keying its slot). Closed and re-keyed slots
        // leave stale entries in the time index, enough to force its compaction.
        let mut text = String::new();
        let n = 6000;
        for i in 0..n {
            let id = format!("{i:024x}");
            let ts = 1_000_000_000 + i as i64 * 1000 - if i % 11 == 0 { 500 } else { 0 };
            let req = rec(1, &id, ts, &format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n"));
            let resp = rec(
                2,
                &id,
                ts + 10,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            );
            if i == 0 {
                // No response: open at the head of the index while the others close behind it.
                text.push_str(&req);
            } else if i % 7 == 0 {
                text.push_str(&resp);
                text.push_str(&req);
            } else {
                text.push_str(&req);
                text.push_str(&resp);
            }
        }
        let mut r = reader_for(text.as_bytes(), false);
        let mut most_held = 0;
        while !r.done {
            r.step();
            most_held = most_held.max(r.by_time.len());
        }
        let ex: Vec<Exchange> = r.by_ref().map(|e| e.unwrap()).collect();
        assert_eq!(ex.len(), n);
        assert_eq!(ex[0].incomplete, Some(Incomplete::NoResponse));
        assert!(ex[1..]
            .iter()
            .all(|e| e.response.is_some() && e.incomplete.is_none()));
        let mut targets: Vec<&str> = ex.iter().map(|e| e.request.target.as_str()).collect();
        assert_sorted(&ex);
        targets.sort_unstable();
        targets.dedup();
        assert_eq!(targets.len(), n, "every request exactly once");
        assert!(r.report().skipped.is_empty(), "{:?}", r.report());
        // Compacted: a few live slots, never thousands of stale entries.
        assert!(most_held <= 1024 + 8, "time index held {most_held}");
    }

    #[test]
    fn the_time_index_closes_oldest_first_whatever_the_arrival_order() {
        let mut seed = 11u64;
        let mut index = TimeIndex::default();
        let mut keys = Vec::new();
        for n in 0..5000u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            // Mostly rising, one in four far back in time.
            let ts = if seed >> 62 == 0 {
                (seed >> 40) as i64 % 3000
            } else {
                n as i64
            };
            keys.push((ts, n));
            index.insert((ts, n), Id::new(format!("{n:x}").as_bytes()));
        }
        // Close every third slot by key.
        for k in keys.iter().step_by(3) {
            index.remove(k);
        }
        let mut left: Vec<_> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, k)| *k)
            .collect();
        left.sort_unstable();
        let mut got = Vec::new();
        while let Some(k) = index.first() {
            let id = index.pop_first().unwrap();
            assert_eq!(id, Id::new(format!("{:x}", k.1).as_bytes()));
            got.push(k);
        }
        assert_eq!(got, left);
    }

    // ---- the shared captures ----

    #[test]
    fn python_goreplay_test_head_lf_only_no_trailing_separator() {
        let (ex, rep) = read_file("python_goreplay_test_head.gor");
        assert_eq!(ex.len(), 83);
        assert_eq!(ex.iter().filter(|e| e.response.is_some()).count(), 78);
        assert_eq!(
            ex.iter()
                .filter(|e| e.incomplete == Some(Incomplete::NoResponse))
                .count(),
            5
        );
        assert!(ex
            .iter()
            .filter_map(|e| e.response.as_ref())
            .all(|r| r.status == 200));
        assert_eq!(ex.iter().filter(|e| e.request.method == "POST").count(), 1);
        assert!(rep.skipped.is_empty(), "{rep:?}");
        assert_eq!(rep.bytes_read, 91888);
        assert_sorted(&ex);
        // The last record has no separator: its payload still parses whole.
        assert!(ex.iter().all(|e| e.request.version == Version::Http11));
    }

    #[test]
    fn etg_mapmaker_one_exchange_with_a_418() {
        let (ex, rep) = read_file("etg_mapmaker_requests.gor");
        assert_eq!(ex.len(), 1);
        let e = &ex[0];
        let r = e.response.as_ref().unwrap();
        assert_eq!(r.status, 418);
        assert!(e.request.headers.contains("cookie"));
        assert_eq!(e.incomplete, None);
        // A 0.x-style response record: the request's timestamp and a round-trip latency.
        assert_eq!(e.timing.request_start, 1499932720871971000);
        assert_eq!(e.timing.response_start, Some(1499932720871971000));
        assert_eq!(e.timing.response_end, Some(1499932720871971000 + 352870697));
        assert!(rep.skipped.is_empty());
    }

    #[test]
    fn isucon5_1051_requests() {
        let (ex, rep) = read_file("isucon5_requests.gor");
        assert_eq!(ex.len(), 1051);
        assert_eq!(ex.iter().filter(|e| e.request.method == "GET").count(), 974);
        let posts: Vec<_> = ex.iter().filter(|e| e.request.method == "POST").collect();
        assert_eq!(posts.len(), 77);
        assert!(posts.iter().all(|e| !e.request.body.is_empty()));
        assert_eq!(
            ex.iter()
                .filter(|e| e.request.headers.contains("cookie"))
                .count(),
            992
        );
        assert!(ex
            .iter()
            .all(|e| e.incomplete == Some(Incomplete::NoResponse)));
        assert!(rep.skipped.is_empty());
        assert_sorted(&ex);
    }

    #[test]
    fn small_shared_files() {
        let cases = [
            ("datadog_ecommerce_requests_0.gor", 101, 2),
            ("python_goreplay_test_v01.gor", 7, 5),
            ("orcid_log-to-gor_requests.gor", 2, 0),
            ("orcid_log-to-gor_working.gor", 1, 0),
        ];
        for (name, n, posts) in cases {
            let (ex, rep) = read_file(name);
            assert_eq!(ex.len(), n, "{name}");
            assert_eq!(
                ex.iter().filter(|e| e.request.method == "POST").count(),
                posts,
                "{name}"
            );
            assert!(rep.skipped.is_empty(), "{name}: {rep:?}");
            assert_sorted(&ex);
        }
        // The multipart bodies were converted to LF-only line ends after capture, so they are
        // shorter than their Content-Length (which counted CRLFs): the body is what the record
        // holds.
        let (ex, _) = read_file("python_goreplay_test_v01.gor");
        for e in ex.iter().filter(|e| e.request.method == "POST") {
            let cl: usize = e
                .request
                .headers
                .get_str("content-length")
                .unwrap()
                .parse()
                .unwrap();
            let lfs = e.request.body.iter().filter(|&&b| b == b'\n').count();
            assert_eq!(e.request.body.len() + lfs, cl);
            assert!(e.request.body.ends_with(b"--\n"));
            assert_eq!(e.incomplete, Some(Incomplete::NoResponse));
        }
    }

    /// shop_capture: 273 type-1 records (one holds 2 pipelined GETs) and 262 type-2 records.
    /// The reader gives 274 exchanges, 258 with their final response; 16 have none: the second
    /// pipelined GET, the 100-continue PUT (its 201 came under another id), and 7 pairs of
    /// requests (a HEAD with a Content-Length response, then the next request on the connection)
    /// that GoReplay gave one id and no response. GoReplay glued the responses following those
    /// HEAD responses into 4 records: their last response pairs with the record's request, the 12
    /// others are `merged_response`. Response records without a request (3): the second
    /// pipelined GET's, the PUT's 201, and a glued one under an id no request has.
    fn check_shop(ex: &[Exchange], rep: &ReadReport) {
        assert_eq!(ex.len(), 274);
        assert_eq!(ex.iter().filter(|e| e.response.is_some()).count(), 258);
        assert_eq!(
            ex.iter()
                .filter(|e| e.incomplete == Some(Incomplete::NoResponse))
                .count(),
            16
        );
        assert_eq!(rep.skipped.get("response_without_request"), Some(&3));
        assert_eq!(rep.skipped.get("merged_response"), Some(&12));
        assert_eq!(rep.skipped.len(), 2);
        assert_eq!(rep.corrupt_skipped, 0);
        assert_sorted(ex);

        // Every article GET that has a response has its own article (glued records included).
        let mut articles = 0;
        for e in ex.iter().filter(|e| e.request.method == "GET") {
            if let (Some(r), true) = (&e.response, e.request.target.starts_with("/articles/")) {
                let body = r.decoded_body().unwrap();
                let want = format!("<html><body>article {} ", e.request.target);
                assert!(body.starts_with(want.as_bytes()), "{}", e.request.target);
                articles += 1;
            }
        }
        assert!(articles > 20);
        // The 3 glued records' last responses: the record's timestamp is the HEAD response's
        // first byte, not theirs; their LATENCY still ends with them.
        let glued: Vec<_> = ex
            .iter()
            .filter(|e| e.response.is_some() && e.timing.response_start.is_none())
            .collect();
        assert_eq!(glued.len(), 3);
        assert!(glued.iter().all(|e| e.timing.response_end.is_some()));
        assert!(glued.iter().all(|e| e.incomplete.is_none()));

        let users: Vec<&Exchange> = ex
            .iter()
            .filter(|e| e.request.target == "/users/7" || e.request.target == "/users/8")
            .collect();
        assert_eq!(users.len(), 2, "the pipelined pair is split");
        assert_eq!(users[0].request.target, "/users/7");
        assert_eq!(
            users[0].response.as_ref().unwrap().body,
            b"{\"id\": \"7\", \"name\": \"n\"}"
        );
        assert_eq!(users[1].connection.index, 1);
        assert_eq!(users[1].incomplete, Some(Incomplete::NoResponse));
        assert_eq!(users[0].timing.request_start, users[1].timing.request_start);

        // The 100 Continue came before its request in the file.
        let put = ex.iter().find(|e| e.request.method == "PUT").unwrap();
        assert_eq!(put.request.body.len(), 120000);
        assert_eq!(put.interim.len(), 1);
        assert_eq!(put.interim[0].status, 100);
        assert!(put.response.is_none());
        assert_eq!(put.incomplete, Some(Incomplete::NoResponse));
        // The upload's record spans the 100 ms the client waited before sending the body.
        let upload = put.timing.request_end.unwrap() - put.timing.request_start;
        assert!((100_000_000..101_000_000).contains(&upload), "{upload}");

        let v10 = ex.iter().find(|e| e.request.target == "/users/9").unwrap();
        assert_eq!(v10.request.version, Version::Http10);
        let del = ex.iter().find(|e| e.request.method == "DELETE").unwrap();
        assert_eq!(del.response.as_ref().unwrap().status, 204);

        // gzip and chunked responses decode.
        let mut gz = 0;
        for e in ex {
            if let Some(r) = &e.response {
                if r.headers.contains("content-encoding") || r.headers.contains("transfer-encoding")
                {
                    gz += 1;
                    assert!(r.decoded_body().is_ok(), "{}", e.request.target);
                }
            }
        }
        assert!(gz > 0);
    }

    #[test]
    fn shop_capture_plain_and_gzip() {
        let (ex, rep) = read_file("shop_capture.gor");
        check_shop(&ex, &rep);
        let (exz, repz) = read_file("shop_capture.gor.gz");
        check_shop(&exz, &repz);
        // The .gz was written by a second gor at the same time: same records, other ids and
        // slightly different timestamps.
        let key = |e: &Exchange| (e.request.clone(), e.response.clone(), e.interim.clone());
        let mut a: Vec<_> = ex.iter().map(key).collect();
        let mut b: Vec<_> = exz.iter().map(key).collect();
        let sort = |v: &mut Vec<(Request, Option<Response>, Vec<Response>)>| {
            v.sort_by_key(|(r, resp, _)| (format!("{r:?}"), format!("{resp:?}")))
        };
        sort(&mut a);
        sort(&mut b);
        assert!(a == b, "the .gz file holds the same messages");
    }

    /// Everything a reader yields, errors as text, reading `bytes` through a buffer of `cap`.
    fn outcome(
        bytes: &[u8],
        cap: usize,
        lenient: bool,
    ) -> (Vec<Result<Exchange, String>>, ReadReport) {
        let input = std::io::BufReader::with_capacity(cap, Cursor::new(bytes.to_vec()));
        let mut r = GorReader::new(
            Box::new(input),
            ReadOptions {
                lenient,
                ..Default::default()
            },
        );
        let items = r.by_ref().map(|x| x.map_err(|e| e.to_string())).collect();
        (items, r.report())
    }

    #[test]
    fn separators_split_across_reads_are_found() {
        let mut f = std::fs::read(format!("{DATA}python_goreplay_test_head.gor")).unwrap();
        f.extend_from_slice(b"\n");
        // Records with empty payloads, a bad record to skip, and a final separator without its
        // newline.
        f.extend_from_slice("1 e 5\n\n🐵🙈🙉\n1 f 6\n🐵🙈🙉\n1 g x\nGET /\n🐵🙈🙉\n".as_bytes());
        f.extend_from_slice(rec(1, "h", 7, "GET /h HTTP/1.1\n").as_bytes());
        f.extend_from_slice("1 i 8\nGET /i HTTP/1.1\n\n\n🐵🙈🙉".as_bytes());
        for lenient in [false, true] {
            let want = outcome(&f, 1 << 16, lenient);
            assert!(want.0.len() > 83);
            for cap in [1, 2, 3, 7, 12, 13, 14, 15, 16, 27, 100] {
                assert_eq!(outcome(&f, cap, lenient), want, "buffer of {cap} bytes");
            }
        }
    }

    // ---- pairing, order, window ----

    #[test]
    fn response_before_request_and_out_of_order_records_come_out_sorted() {
        let mut f = String::new();
        f += &rec(1, "c", 3_000, "GET /c HTTP/1.1\r\n\r\n");
        f += &rec(2, "a", 1_500, "HTTP/1.1 200 OK\r\n\r\na");
        f += &rec(1, "a", 1_000, "GET /a HTTP/1.1\r\n\r\n");
        f += &rec(1, "b", 2_000, "GET /b HTTP/1.1\r\n\r\n");
        f += &rec(2, "c", 3_500, "HTTP/1.1 404 Not Found\r\n\r\n");
        let (ex, rep) = read_all(f.as_bytes());
        let targets: Vec<_> = ex.iter().map(|e| e.request.target.as_str()).collect();
        assert_eq!(targets, ["/a", "/b", "/c"]);
        assert_eq!(ex[0].response.as_ref().unwrap().body, b"a");
        assert_eq!(ex[0].timing.response_start, Some(1_500));
        assert_eq!(ex[1].incomplete, Some(Incomplete::NoResponse));
        assert_eq!(ex[2].response.as_ref().unwrap().status, 404);
        assert!(rep.skipped.is_empty());
    }

    #[test]
    fn interim_in_separate_and_in_same_records() {
        let mut f = String::new();
        // 100 Continue first, then the request, then the final response in its own record.
        f += &rec(2, "x", 11, "HTTP/1.1 100 Continue\r\n\r\n");
        f += &rec(1, "x", 10, "PUT /u HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
        f += "2 x 20 5\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n\n🐵🙈🙉\n";
        // Interim and final in one payload.
        f += &rec(1, "y", 30, "PUT /v HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        f += &rec(
            2,
            "y",
            31,
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        );
        let (ex, rep) = read_all(f.as_bytes());
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].interim.len(), 1);
        assert_eq!(ex[0].response.as_ref().unwrap().status, 201);
        assert_eq!(ex[0].request.body, b"hi");
        assert_eq!(ex[0].timing.response_start, Some(20));
        assert_eq!(ex[0].timing.response_end, Some(25));
        assert_eq!(ex[0].incomplete, None);
        assert_eq!(ex[1].interim[0].status, 100);
        assert_eq!(ex[1].response.as_ref().unwrap().body, b"ok");
        assert!(rep.skipped.is_empty());
    }

    #[test]
    fn orphans_replays_duplicates_and_the_window() {
        let mut f = String::new();
        f += &rec(2, "lost", 1_000, "HTTP/1.1 200 OK\r\n\r\n");
        f += &rec(1, "dup", 1_000, "HEAD / HTTP/1.1\r\n\r\n");
        f += &rec(1, "dup", 1_001, "GET / HTTP/1.1\r\n\r\n");
        f += &rec(3, "dup", 9_000_000_000_000, "HTTP/1.1 200 OK\r\n\r\n");
        f += &rec(1, "late", 2_000, "GET /late HTTP/1.1\r\n\r\n");
        // 6 s later: "late"'s response is outside the window.
        f += &rec(1, "z", 6_000_002_000, "GET /z HTTP/1.1\r\n\r\n");
        f += &rec(2, "late", 6_000_002_001, "HTTP/1.1 200 OK\r\n\r\n");
        f += &rec(2, "dup", 6_000_002_002, "HTTP/1.1 200 OK\r\n\r\n");
        let (ex, rep) = read_all(f.as_bytes());
        let targets: Vec<_> = ex.iter().map(|e| e.request.target.as_str()).collect();
        assert_eq!(targets, ["/", "/", "/late", "/z"]);
        assert!(ex.iter().all(|e| e.response.is_none()));
        assert_eq!(rep.skipped.get("response_without_request"), Some(&3));
        assert_eq!(rep.skipped.get("replayed_response"), Some(&1));
    }

    #[test]
    fn window_caps_release_early_without_losing_exchanges() {
        let mut f = String::new();
        for i in 0..(WINDOW_RECORDS + 500) {
            f += &rec(
                1,
                &format!("id{i}"),
                1_000 + i as i64,
                "GET / HTTP/1.1\r\n\r\n",
            );
        }
        let mut r = reader_for(f.as_bytes(), false);
        // The first exchange comes out before the input is exhausted: memory stays bounded.
        assert!(r.next().unwrap().is_ok());
        assert!(r.records < (WINDOW_RECORDS + 500) as u64);
        assert_eq!(r.count(), WINDOW_RECORDS + 499);
    }

    // ---- corrupt input ----

    #[test]
    fn strict_mode_stops_at_a_corrupt_record_after_what_was_read() {
        let good = rec(1, "a", 100, "GET /a HTTP/1.1\r\n\r\n");
        let bad_header = "1 b notanumber\nGET /b HTTP/1.1\r\n\r\n\n🐵🙈🙉\n";
        let tail = rec(1, "c", 300, "GET /c HTTP/1.1\r\n\r\n");
        let f = format!("{good}{bad_header}{tail}");
        let mut r = reader_for(f.as_bytes(), false);
        assert_eq!(r.next().unwrap().unwrap().request.target, "/a");
        let e = r.next().unwrap().unwrap_err();
        assert_eq!(
            e.location,
            Some(Location::Record {
                number: 2,
                byte: good.len() as u64
            })
        );
        assert!(e.message.contains("timestamp \"notanumber\""), "{e}");
        assert_eq!(e.exchanges_read, 1);
        assert!(e.recoverable);
        assert_eq!(e.hint.as_deref(), Some(LENIENT_HINT));
        // A caller that goes on gets the records after it.
        assert_eq!(r.next().unwrap().unwrap().request.target, "/c");
        assert!(r.next().is_none());
    }

    #[test]
    fn unparseable_payload_strict_and_lenient() {
        let a = rec(1, "a", 100, "GET /a HTTP/1.1\r\n\r\n");
        let bad = rec(2, "a", 150, "this is not HTTP");
        let c = rec(1, "c", 300, "GET /c HTTP/1.1\r\n\r\n");
        let f = format!("{a}{bad}{c}");

        let mut r = reader_for(f.as_bytes(), false);
        let first = r.next().unwrap().unwrap();
        assert_eq!(first.request.target, "/a");
        assert_eq!(first.incomplete, Some(Incomplete::NoResponse));
        let e = r.next().unwrap().unwrap_err();
        assert_eq!(
            e.location,
            Some(Location::Record {
                number: 2,
                byte: a.len() as u64
            })
        );
        assert!(
            e.message
                .starts_with("response record (type 2): invalid HTTP response"),
            "{e}"
        );
        assert_eq!(e.exchanges_read, 1);

        let mut r = reader_for(f.as_bytes(), true);
        let ex: Vec<_> = r.by_ref().map(|x| x.unwrap()).collect();
        assert_eq!(ex.len(), 2);
        let rep = r.report();
        assert_eq!(rep.corrupt_skipped, 1);
        let first = rep.first_corrupt.unwrap();
        assert!(first.contains("record 2 (byte offset"), "{first}");
        assert!(first.contains("invalid HTTP response"), "{first}");
    }

    #[test]
    fn lenient_skips_bad_headers_to_the_next_separator() {
        let f = format!(
            "{}9 x 1\nGET /bad HTTP/1.1\r\n\r\n\n🐵🙈🙉\n{}",
            rec(1, "a", 1, "GET /a HTTP/1.1\r\n\r\n"),
            rec(1, "b", 2, "GET /b HTTP/1.1\r\n\r\n")
        );
        let mut r = reader_for(f.as_bytes(), true);
        let targets: Vec<_> = r.by_ref().map(|x| x.unwrap().request.target).collect();
        assert_eq!(targets, ["/a", "/b"]);
        let rep = r.report();
        assert_eq!(rep.corrupt_skipped, 1);
        assert!(rep
            .first_corrupt
            .unwrap()
            .contains("unknown record type \"9\""));
    }

    #[test]
    fn binary_garbage_is_an_error_at_record_one_with_a_hint() {
        let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut r = reader_for(&garbage, false);
        let e = r.next().unwrap().unwrap_err();
        assert_eq!(e.location, Some(Location::Record { number: 1, byte: 0 }));
        assert!(e
            .hint
            .as_deref()
            .unwrap()
            .contains("does not look like a GoReplay"));
        assert_eq!(e.exchanges_read, 0);
        // Strict mode did not read the whole file to say so.
        assert!(r.offset < 10_000);
        // And under --lenient it yields nothing and counts one corrupt record.
        let mut r = reader_for(&garbage, true);
        assert!(r.next().is_none());
        assert_eq!(r.report().corrupt_skipped, 1);
    }

    #[test]
    fn empty_and_blank_files_yield_nothing() {
        for f in [&b""[..], b"\n", b"\n\n  \n"] {
            let (ex, rep) = read_all(f);
            assert!(ex.is_empty());
            assert_eq!(rep.corrupt_skipped, 0);
        }
    }

    #[test]
    fn io_error_is_fatal_after_the_exchanges_read() {
        struct Failing(Cursor<Vec<u8>>);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(io::Error::other("disk on fire")),
                    n => Ok(n),
                }
            }
        }
        let f = rec(1, "a", 1, "GET /a HTTP/1.1\r\n\r\n");
        let input = std::io::BufReader::new(Failing(Cursor::new(f.into_bytes())));
        let mut r = GorReader::new(Box::new(input), ReadOptions::default());
        assert!(r.next().unwrap().is_ok());
        let e = r.next().unwrap().unwrap_err();
        assert!(!e.recoverable);
        assert_eq!(e.exchanges_read, 1);
        assert!(e.message.contains("disk on fire"));
        assert!(r.next().is_none());
    }

    #[test]
    fn header_line_variants() {
        assert_eq!(
            parse_header_line(b"1 ab 12 34\r\n"),
            Ok(RecordHeader {
                kind: 1,
                id: Id::new(b"ab"),
                ts: 12,
                latency: 34
            })
        );
        assert!(parse_header_line(b"2 x 5\n").is_ok());
        assert!(parse_header_line(b"1 x")
            .unwrap_err()
            .contains("fewer than 3"));
        assert!(parse_header_line(b"1 x 1 2 3")
            .unwrap_err()
            .contains("more than 4"));
        assert!(parse_header_line(b"1  1").unwrap_err().contains("empty id"));
        assert!(parse_header_line(b"1 x 1 y")
            .unwrap_err()
            .contains("latency"));
        assert!(parse_header_line(b"\xff\xfe 1 2")
            .unwrap_err()
            .contains("not text"));
    }

    #[test]
    fn separator_edge_cases() {
        // Payload containing the monkeys inside a line, LF-only, no final separator, and a
        // separator without its last newline.
        let f = "1 a 1\nPOST / HTTP/1.1\nContent-Length: 28\n\nxx🐵🙈🙉\n🐵🙈🙉 \n🐵🙈🙉\n1 b 2\nGET /b HTTP/1.1\n\n\n🐵🙈🙉";
        let (ex, _) = read_all(f.as_bytes());
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].request.body, "xx🐵🙈🙉\n🐵🙈🙉 ".as_bytes());
        assert_eq!(ex[0].incomplete, Some(Incomplete::NoResponse));
        assert_eq!(ex[1].request.target, "/b");
    }

    #[test]
    fn oversized_record_is_corrupt_not_a_memory_blowup() {
        let mut f = b"1 a 1\nPOST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n".to_vec();
        f.resize(f.len() + MAX_RECORD + 10, b'x');
        f.extend_from_slice(SEPARATOR);
        f.extend_from_slice(rec(1, "b", 2, "GET /b HTTP/1.1\r\n\r\n").as_bytes());
        let mut r = reader_for(&f, true);
        let ex: Vec<_> = r.by_ref().map(|x| x.unwrap()).collect();
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].request.target, "/b");
        assert_eq!(r.report().corrupt_skipped, 1);
        // The buffer grown for the big record is given back.
        assert!(r.payload.capacity() <= 8 << 20);
    }

    // ---- writer ----

    fn sample() -> Vec<Exchange> {
        let mut post = Request {
            method: "POST".into(),
            target: "/api/login?next=%2F".into(),
            version: Version::Http11,
            headers: Headers(vec![
                Header::new("host", "shop.example"),
                Header::new("Content-Type", "application/json"),
                Header::new("X-Odd-CASE", b"\xe9t\xe9".to_vec()),
                Header::new("Content-Length", "27"),
            ]),
            body: b"{\"user\":\"a\",\"password\":\"b\"}".to_vec(),
            body_form: BodyForm::Wire,
        };
        post.body.truncate(27);
        let ok = Response {
            version: Version::Http11,
            status: 200,
            reason: "OK".into(),
            headers: Headers(vec![
                Header::new("Transfer-Encoding", "chunked"),
                Header::new("Set-Cookie", "s=1"),
                Header::new("Set-Cookie", "t=2"),
            ]),
            body: b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
            body_form: BodyForm::Wire,
        };
        let cont = Response {
            version: Version::Http11,
            status: 100,
            reason: "Continue".into(),
            ..Default::default()
        };
        let mut a = Exchange::new(post, 1_000_000);
        a.timing = Timing {
            request_start: 1_000_000,
            request_end: Some(1_000_500),
            response_start: Some(2_000_000),
            response_end: Some(2_100_000),
        };
        a.interim = vec![cont];
        a.response = Some(ok);
        let get = Request {
            method: "GET".into(),
            target: "/".into(),
            version: Version::Http10,
            headers: Headers::new(),
            body: Vec::new(),
            body_form: BodyForm::Wire,
        };
        let mut b = Exchange::new(get, 3_000_000);
        b.incomplete = Some(Incomplete::NoResponse);
        vec![a, b]
    }

    fn write_all(ex: &[Exchange]) -> Vec<u8> {
        let mut w = GorWriter::new(Output::Memory(Vec::new()));
        for e in ex {
            w.write(e).unwrap();
        }
        w.finish_output().unwrap().unwrap()
    }

    #[test]
    fn writes_records_goreplay_reads() {
        let bytes = write_all(&sample());
        let text = String::from_utf8_lossy(&bytes);
        let headers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("1 ") || l.starts_with("2 "))
            .collect();
        assert_eq!(headers.len(), 3);
        let f: Vec<Vec<&str>> = headers.iter().map(|h| h.split(' ').collect()).collect();
        assert_eq!(f[0][0], "1");
        assert_eq!(f[0][1].len(), 24);
        assert!(f[0][1].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(f[1][1], f[0][1], "request and response share the id");
        assert_ne!(f[2][1], f[0][1], "ids are unique per exchange");
        assert_eq!(&f[0][2..], ["1000000", "500"]);
        assert_eq!(&f[1][2..], ["2000000", "100000"]);
        assert_eq!(&f[2][2..], ["3000000", "0"]);
        assert!(bytes.ends_with(SEPARATOR));
        // Each record is header line, payload, separator.
        assert_eq!(
            bytes
                .windows(SEPARATOR.len())
                .filter(|w| *w == SEPARATOR)
                .count(),
            3
        );
    }

    #[test]
    fn write_then_read_round_trips() {
        let ex = sample();
        let bytes = write_all(&ex);
        let (back, rep) = read_all(&bytes);
        assert_eq!(back, ex);
        assert!(rep.skipped.is_empty());
        // And writing what was read gives the same records, ids aside.
        let again = write_all(&back);
        let strip_ids = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .map(|l| {
                    if l.starts_with("1 ") || l.starts_with("2 ") {
                        let f: Vec<_> = l.split(' ').collect();
                        format!("{} ID {} {}", f[0], f[2], f[3])
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip_ids(&again), strip_ids(&bytes));
    }

    #[test]
    fn shop_capture_round_trips_through_the_writer() {
        let (ex, _) = read_file("shop_capture.gor");
        let bytes = write_all(&ex);
        let (back, rep) = read_all(&bytes);
        assert_eq!(back.len(), ex.len());
        for (a, b) in ex.iter().zip(&back) {
            assert_eq!(a.request, b.request);
            assert_eq!(a.response, b.response);
            assert_eq!(a.interim, b.interim);
            // .gor cannot say "response start unknown" (glued records): the writer stamps the
            // response record with the request's time.
            let mut want = a.timing;
            if a.response.is_some() && want.response_start.is_none() {
                want.response_start = Some(want.request_start);
            }
            assert_eq!(want, b.timing);
        }
        assert!(rep.skipped.is_empty(), "{rep:?}");
    }

    #[test]
    fn writer_refuses_a_payload_holding_the_separator() {
        let mut e = sample().remove(1);
        e.request.body = "a\n🐵🙈🙉\nb".into();
        let mut w = GorWriter::new(Output::Memory(Vec::new()));
        let err = w.write(&e).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("record separator"));
        // Monkeys elsewhere in a line are fine.
        e.request.body = "a🐵🙈🙉\n".into();
        assert!(w.write(&e).is_ok());
    }

    #[test]
    fn finish_through_the_trait_flushes_the_file() {
        let dir = std::env::temp_dir().join(format!("mynah-gor-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.gor.gz");
        let mut w = crate::sink::create(&path, crate::Format::Gor).unwrap();
        for e in &sample() {
            w.write(e).unwrap();
        }
        w.finish().unwrap();
        let input = crate::source::maybe_gunzip(std::fs::File::open(&path).unwrap()).unwrap();
        let back: Vec<_> = GorReader::new(input, ReadOptions::default())
            .map(|x| x.unwrap())
            .collect();
        assert_eq!(back, sample());
        let _ = std::fs::remove_dir_all(&dir);
    }

    // ---- properties ----

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn token() -> impl Strategy<Value = String> {
            "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,12}"
        }

        fn value() -> impl Strategy<Value = Vec<u8>> {
            // Visible ASCII, spaces inside, obs-text; no leading/trailing blanks (HTTP trims them).
            prop_oneof![
                Just(Vec::new()),
                proptest::collection::vec(
                    prop_oneof![0x21u8..0x7f, 0x80u8..=0xff, Just(b' ')],
                    1..20
                )
                .prop_map(|mut v| {
                    while v.last() == Some(&b' ') {
                        v.pop();
                    }
                    while v.first() == Some(&b' ') {
                        v.remove(0);
                    }
                    v
                })
            ]
        }

        fn headers() -> impl Strategy<Value = Headers> {
            proptest::collection::vec((token(), value()), 0..6).prop_map(|v| {
                Headers(
                    v.into_iter()
                        .filter(|(n, _)| {
                            !n.eq_ignore_ascii_case("content-length")
                                && !n.eq_ignore_ascii_case("transfer-encoding")
                        })
                        .map(|(n, v)| Header::new(n, v))
                        .collect(),
                )
            })
        }

        fn body() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(any::<u8>(), 0..200)
        }

        fn version() -> impl Strategy<Value = Version> {
            prop_oneof![Just(Version::Http10), Just(Version::Http11)]
        }

        fn request() -> impl Strategy<Value = Request> {
            (
                token(),
                "/[A-Za-z0-9/?=&%._~-]{0,30}",
                version(),
                headers(),
                body(),
            )
                .prop_map(|(method, target, version, mut headers, body)| {
                    if !body.is_empty() {
                        headers.push("Content-Length", body.len().to_string());
                    }
                    Request {
                        method,
                        target,
                        version,
                        headers,
                        body,
                        body_form: BodyForm::Wire,
                    }
                })
        }

        fn response(interim: bool) -> impl Strategy<Value = Response> {
            let status = if interim {
                prop_oneof![Just(100u16), Just(102), Just(103)].boxed()
            } else {
                prop_oneof![Just(101u16), 200u16..600].boxed()
            };
            (
                version(),
                status,
                "([A-Za-z][A-Za-z ]{0,14}[A-Za-z])?",
                headers(),
                body(),
            )
                .prop_map(move |(version, status, reason, headers, body)| Response {
                    version,
                    status,
                    reason,
                    headers,
                    body: if interim { Vec::new() } else { body },
                    body_form: BodyForm::Wire,
                })
        }

        fn exchange() -> impl Strategy<Value = Exchange> {
            (
                request(),
                proptest::option::of(response(false)),
                proptest::collection::vec(response(true), 0..3),
                0i64..10_000_000_000,
                proptest::option::of(1i64..1_000_000),
                0i64..3_000_000_000,
                proptest::option::of(1i64..1_000_000),
            )
                .prop_map(|(req, resp, interim, start, req_len, wait, resp_len)| {
                    let mut e = Exchange::new(req, start);
                    e.timing.request_end = req_len.map(|l| start + l);
                    if resp.is_some() {
                        e.timing.response_start = Some(start + wait);
                        e.timing.response_end = resp_len.map(|l| start + wait + l);
                    }
                    if resp.is_none() {
                        e.incomplete = Some(Incomplete::NoResponse);
                    }
                    e.response = resp;
                    e.interim = interim;
                    e
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn reader_never_panics_on_arbitrary_bytes(
                chunks in proptest::collection::vec(
                    prop_oneof![
                        proptest::collection::vec(any::<u8>(), 0..64),
                        Just(SEPARATOR.to_vec()),
                        Just(b"1 a 1\n".to_vec()),
                        Just(b"2 a 2 7\nHTTP/1.1 100 Continue\r\n\r\n".to_vec()),
                        Just(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n".to_vec()),
                        Just(b"3 b 9\n".to_vec()),
                    ],
                    0..20),
                lenient in any::<bool>(),
            ) {
                let bytes: Vec<u8> = chunks.concat();
                let mut r = reader_for(&bytes, lenient);
                let mut n = 0;
                for item in r.by_ref() {
                    n += 1;
                    prop_assert!(n < 10_000);
                    if let Err(e) = item {
                        prop_assert!(e.location.is_some());
                    }
                }
                let _ = r.report();
            }

            #[test]
            fn read_size_does_not_change_the_outcome(
                chunks in proptest::collection::vec(
                    prop_oneof![
                        proptest::collection::vec(any::<u8>(), 0..16),
                        Just(SEPARATOR.to_vec()),
                        Just(SEPARATOR[..7].to_vec()),
                        Just(b"\n1 a 1\n".to_vec()),
                        Just(b"2 a 2\nHTTP/1.1 200 OK\r\n\r\n".to_vec()),
                        Just(b"GET / HTTP/1.1\r\n\r\n".to_vec()),
                    ],
                    0..30),
                cap in 1usize..40,
                lenient in any::<bool>(),
            ) {
                let bytes: Vec<u8> = chunks.concat();
                prop_assert_eq!(outcome(&bytes, cap, lenient), outcome(&bytes, 1 << 16, lenient));
            }

        }

        proptest! {
            // Generation dominates this one's time (random strings in a debug build).
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn exchanges_round_trip_through_writer_and_reader(
                mut ex in proptest::collection::vec(exchange(), 0..12)
            ) {
                ex.sort_by_key(|e| e.timing.request_start);
                let bytes = write_all(&ex);
                let (back, rep) = read_all(&bytes);
                prop_assert!(rep.skipped.is_empty());
                prop_assert_eq!(back.len(), ex.len());
                for (a, b) in ex.iter().zip(&back) {
                    prop_assert_eq!(&a.request, &b.request);
                    prop_assert_eq!(&a.response, &b.response);
                    prop_assert_eq!(&a.interim, &b.interim);
                    prop_assert_eq!(a.timing, b.timing);
                    prop_assert_eq!(a.incomplete, b.incomplete);
                }
            }
        }
    }
}
