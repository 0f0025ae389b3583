//! The outer structure of a HAR file, scanned as a stream: `{"log": {"entries": [ ... ]}}`.
//!
//! Only the few levels around `entries` are parsed here, byte by byte; every value inside them
//! (an entry, `pages`, `creator`, ...) is first delimited by a fast scan and then parsed or
//! validated whole by serde_json from memory, which is many times faster than serde_json
//! reading a stream. Errors carry the line and column serde_json would give for the whole file.

use std::io::{self, Read};

use serde::de::IgnoredAny;

/// How much input is read at a time.
const CHUNK: usize = 256 << 10;

/// Why scanning stopped.
#[derive(Debug)]
pub(crate) enum Fail {
    Io(io::Error),
    /// Not valid JSON here (line and column from 1, columns in bytes, as serde_json counts).
    Syntax {
        message: String,
        line: u64,
        column: u64,
    },
    /// A value starting here is larger than the scanner may hold.
    TooLarge {
        line: u64,
        column: u64,
    },
    /// The consumer went away.
    Stopped,
}

/// Receives what the scan finds.
pub(crate) trait Sink {
    /// One element of `entries`: its bytes (a complete JSON value, or the rest of a file cut
    /// short), where it starts, and the input offset where it ends.
    fn entry(&mut self, bytes: &[u8], line: u64, column: u64, end: u64) -> Result<(), Fail>;
    /// `entries` was found and is an array.
    fn found_entries(&mut self);
    /// The file is not shaped like a HAR; scanning goes on to check that it is valid JSON.
    fn not_har(&mut self, why: String, line: u64, column: u64);
}

/// A serde_json error in a value that starts at `line`:`column`, moved to file coordinates.
pub(crate) fn json_error_at(e: &serde_json::Error, line: u64, column: u64) -> Fail {
    let (l, c) = ((e.line() as u64).max(1), e.column() as u64);
    let (line, column) = if l == 1 {
        (line, (column + c).saturating_sub(1))
    } else {
        (line + l - 1, c)
    };
    let msg = e.to_string();
    // serde_json appends " at line L column C": the location says it already.
    let message = match msg.rsplit_once(" at line ") {
        Some((m, _)) => m.to_string(),
        None => msg,
    };
    Fail::Syntax {
        message,
        line,
        column,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Log,
}

fn what_json(first: u8) -> &'static str {
    match first {
        b'[' => "an array",
        b'{' => "an object",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A window over the input with line counting.
pub(crate) struct Scanner<R> {
    src: R,
    /// Input bytes in `buf[..end]`; the rest is room to read into (kept initialized, so each
    /// read does not clear it again).
    buf: Vec<u8>,
    end: usize,
    /// Next unread byte, as an index into `buf`.
    pos: usize,
    /// The absolute offset of `buf[0]`.
    base: u64,
    /// While a value is being delimited: its absolute start (bytes from there on stay in `buf`).
    keep: Option<u64>,
    eof: bool,
    /// Newlines are counted up to this absolute offset...
    lines_at: u64,
    /// ...where the line number is this...
    line: u64,
    /// ...and the line began at this absolute offset.
    line_start: u64,
    max_value: u64,
}

impl<R: Read> Scanner<R> {
    pub fn new(src: R, max_value: u64) -> Self {
        Scanner {
            src,
            buf: Vec::new(),
            end: 0,
            pos: 0,
            base: 0,
            keep: None,
            eof: false,
            lines_at: 0,
            line: 1,
            line_start: 0,
            max_value,
        }
    }

    /// Bytes read from the input so far.
    pub fn bytes_read(&self) -> u64 {
        self.base + self.end as u64
    }

    fn abs(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Reads more input (dropping what is no longer needed first); false at the end.
    fn fill(&mut self) -> Result<bool, Fail> {
        if self.eof {
            return Ok(false);
        }
        let keep_from = self.keep.map_or(self.abs(), |k| k.min(self.abs()));
        let drop_to = (keep_from - self.base) as usize;
        if drop_to > 0 && drop_to >= self.end / 2 {
            self.track(keep_from);
            self.buf.copy_within(drop_to..self.end, 0);
            self.end -= drop_to;
            self.base += drop_to as u64;
            self.pos -= drop_to;
        }
        if self.buf.len() - self.end < CHUNK / 2 {
            self.buf.resize(self.end + CHUNK, 0);
        }
        let n = loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Io(e)),
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Counts newlines up to absolute offset `abs` (which must still be in `buf`).
    fn track(&mut self, abs: u64) {
        if abs <= self.lines_at || abs < self.base {
            return;
        }
        let from = (self.lines_at.max(self.base) - self.base) as usize;
        let to = ((abs - self.base) as usize).min(self.end);
        let seg = self.buf.get(from..to).unwrap_or_default();
        let newlines = seg.iter().filter(|&&b| b == b'\n').count();
        if newlines > 0 {
            self.line += newlines as u64;
            if let Some(last) = seg.iter().rposition(|&b| b == b'\n') {
                self.line_start = self.base + (from + last) as u64 + 1;
            }
        }
        self.lines_at = abs;
    }

    /// Line and column of the byte at `abs` (not before anything already counted).
    fn position(&mut self, abs: u64) -> (u64, u64) {
        self.track(abs);
        (self.line, abs.saturating_sub(self.line_start) + 1)
    }

    fn error_here(&mut self, message: &str) -> Fail {
        let (line, column) = self.position(self.abs());
        Fail::Syntax {
            message: message.to_string(),
            line,
            column,
        }
    }

    /// An error at the end of the input, where serde_json puts it: on the last byte read.
    fn eof_error(&mut self, message: &str) -> Fail {
        let end = self.bytes_read();
        self.track(end);
        Fail::Syntax {
            message: message.to_string(),
            line: self.line,
            column: end - self.line_start,
        }
    }

    /// The next byte that is not whitespace, without consuming it.
    fn peek(&mut self) -> Result<Option<u8>, Fail> {
        loop {
            while let Some(&b) = self.buf[..self.end].get(self.pos) {
                if !is_ws(b) {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Delimits and consumes the value starting at the current (non-whitespace) byte; returns its
    /// absolute start and end. Input cut short ends the value where the input ends: the parser
    /// the bytes go to then reports what is missing.
    fn value(&mut self) -> Result<(u64, u64), Fail> {
        let start = self.abs();
        self.keep = Some(start);
        let first = self.buf[..self.end].get(self.pos).copied().unwrap_or(b' ');
        let mut i = self.pos + 1;
        let mut depth = 1u64;
        let mut in_str = first == b'"';
        let compound = matches!(first, b'{' | b'[');
        let scalar = !compound && !in_str;
        let end = 'scan: loop {
            let buf = &self.buf[..self.end];
            while i < buf.len() {
                if scalar {
                    match buf[i..]
                        .iter()
                        .position(|&b| matches!(b, b',' | b']' | b'}') || is_ws(b))
                    {
                        Some(k) => break 'scan i + k,
                        None => i = buf.len(),
                    }
                } else if in_str {
                    match buf[i..].iter().position(|&b| b == b'"' || b == b'\\') {
                        Some(k) if buf[i + k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k + 1;
                            in_str = false;
                            if !compound {
                                break 'scan i;
                            }
                        }
                        None => i = buf.len(),
                    }
                } else {
                    match buf[i..]
                        .iter()
                        .position(|&b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']'))
                    {
                        Some(k) => {
                            i += k;
                            match buf[i] {
                                b'"' => in_str = true,
                                b'{' | b'[' => depth += 1,
                                _ => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break 'scan i + 1;
                                    }
                                }
                            }
                            i += 1;
                        }
                        None => i = buf.len(),
                    }
                }
            }
            if self.base + i as u64 - start > self.max_value {
                let (line, column) = self.position(start);
                return Err(Fail::TooLarge { line, column });
            }
            let i_abs = self.base + i as u64;
            if !self.fill()? {
                break self.end;
            }
            i = (i_abs - self.base) as usize;
        };
        let end = end.min(self.end);
        self.pos = end;
        self.keep = None;
        Ok((start, self.base + end as u64))
    }

    fn slice(&self, start: u64, end: u64) -> &[u8] {
        let s = (start.saturating_sub(self.base)) as usize;
        let e = (end.saturating_sub(self.base)) as usize;
        self.buf[..self.end].get(s..e).unwrap_or_default()
    }

    /// Consumes a value we do not need, checking that it is valid JSON.
    fn skip_value(&mut self) -> Result<(), Fail> {
        let (line, column) = self.position(self.abs());
        let (s, e) = self.value()?;
        serde_json::from_slice::<IgnoredAny>(self.slice(s, e))
            .map(|_| ())
            .map_err(|err| json_error_at(&err, line, column))
    }

    /// The whole document.
    pub fn document(&mut self, sink: &mut impl Sink) -> Result<(), Fail> {
        match self.peek()? {
            None => return Err(self.eof_error("EOF while parsing a value")),
            Some(b'{') => self.object(Level::Top, sink)?,
            Some(b) => {
                let (line, column) = self.position(self.abs());
                self.skip_value()?;
                let why = format!("the top-level JSON value is {}", what_json(b));
                sink.not_har(why, line, column);
            }
        }
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(self.error_here("trailing characters")),
        }
    }

    fn object(&mut self, level: Level, sink: &mut impl Sink) -> Result<(), Fail> {
        self.pos += 1;
        match self.peek()? {
            Some(b'}') => {
                self.pos += 1;
                return Ok(());
            }
            None => return Err(self.eof_error("EOF while parsing an object")),
            Some(_) => {}
        }
        loop {
            match self.peek()? {
                Some(b'"') => {}
                None => return Err(self.eof_error("EOF while parsing an object")),
                Some(_) => return Err(self.error_here("key must be a string")),
            }
            let (line, column) = self.position(self.abs());
            let (ks, ke) = self.value()?;
            let key = self.slice(ks, ke);
            let (is_log, is_entries) = (key == b"\"log\"", key == b"\"entries\"");
            serde_json::from_slice::<IgnoredAny>(key)
                .map_err(|err| json_error_at(&err, line, column))?;
            match self.peek()? {
                Some(b':') => self.pos += 1,
                None => return Err(self.eof_error("EOF while parsing an object")),
                Some(_) => return Err(self.error_here("expected `:`")),
            }
            let Some(first) = self.peek()? else {
                return Err(self.eof_error("EOF while parsing a value"));
            };
            let (line, column) = self.position(self.abs());
            match (level, is_log, is_entries) {
                (Level::Top, true, _) if first == b'{' => self.object(Level::Log, sink)?,
                (Level::Top, true, _) => {
                    self.skip_value()?;
                    let why = format!("\"log\" is {}, not an object", what_json(first));
                    sink.not_har(why, line, column);
                }
                // Some tools write the log object's content at the top level.
                (Level::Top | Level::Log, _, true) if first == b'[' => self.entries(sink)?,
                (Level::Top | Level::Log, _, true) => {
                    self.skip_value()?;
                    let why = format!("log.entries is {}, not an array", what_json(first));
                    sink.not_har(why, line, column);
                }
                _ => self.skip_value()?,
            }
            match self.peek()? {
                Some(b',') => {
                    self.pos += 1;
                    if self.peek()? == Some(b'}') {
                        return Err(self.error_here("trailing comma"));
                    }
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err(self.eof_error("EOF while parsing an object")),
                Some(_) => return Err(self.error_here("expected `,` or `}`")),
            }
        }
    }

    fn entries(&mut self, sink: &mut impl Sink) -> Result<(), Fail> {
        self.pos += 1;
        sink.found_entries();
        match self.peek()? {
            Some(b']') => {
                self.pos += 1;
                return Ok(());
            }
            None => return Err(self.eof_error("EOF while parsing a list")),
            Some(_) => {}
        }
        loop {
            if self.peek()?.is_none() {
                return Err(self.eof_error("EOF while parsing a value"));
            }
            let (line, column) = self.position(self.abs());
            let (s, e) = self.value()?;
            sink.entry(self.slice(s, e), line, column, e)?;
            match self.peek()? {
                Some(b',') => {
                    self.pos += 1;
                    if self.peek()? == Some(b']') {
                        return Err(self.error_here("trailing comma"));
                    }
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err(self.eof_error("EOF while parsing a list")),
                Some(_) => return Err(self.error_here("expected `,` or `]`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        entries: Vec<(String, u64, u64)>,
        found: bool,
        not_har: Vec<String>,
    }

    impl Sink for Collect {
        fn entry(&mut self, bytes: &[u8], line: u64, column: u64, _: u64) -> Result<(), Fail> {
            serde_json::from_slice::<IgnoredAny>(bytes)
                .map_err(|e| json_error_at(&e, line, column))?;
            self.entries
                .push((String::from_utf8_lossy(bytes).into_owned(), line, column));
            Ok(())
        }
        fn found_entries(&mut self) {
            self.found = true;
        }
        fn not_har(&mut self, why: String, _: u64, _: u64) {
            self.not_har.push(why);
        }
    }

    /// Scans `input` read a few bytes at a time (every value split across reads).
    fn scan(input: &str, max: u64) -> (Collect, Result<(), Fail>) {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut c = Collect::default();
        let r = Scanner::new(Trickle(input.as_bytes()), max).document(&mut c);
        (c, r)
    }

    fn syntax(r: Result<(), Fail>) -> (String, u64, u64) {
        match r {
            Err(Fail::Syntax {
                message,
                line,
                column,
            }) => (message, line, column),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finds_entries_with_positions() {
        let input = "{\"log\": {\"pages\": [{\"x\": \"]}\\\"\"}],\n \"entries\": [\n  {\"a\": \"}\\\\\"},\n  {\"b\": [1, {\"c\": null}]}, 5, \"s\"\n]}, \"x\": -1.5e3}";
        let (c, r) = scan(input, 1 << 20);
        r.unwrap();
        assert!(c.found);
        let got: Vec<_> = c
            .entries
            .iter()
            .map(|(s, l, col)| (s.as_str(), *l, *col))
            .collect();
        assert_eq!(
            got,
            [
                ("{\"a\": \"}\\\\\"}", 3, 3),
                ("{\"b\": [1, {\"c\": null}]}", 4, 3),
                ("5", 4, 28),
                ("\"s\"", 4, 31)
            ]
        );
    }

    #[test]
    fn syntax_errors_where_serde_json_puts_them() {
        // The whole-file parse of serde_json is the reference.
        for input in [
            "{\"log\": {\"creator\": {}\n  xxx}}",
            "{\"log\":\n[\n    2,1,3\n]\n\"request:\"}",
            "{\"log\": {\"entries\": [{\"a\": tru}]}}",
            "{\"log\": {\"entries\": [{\"a\":\n 1,}]}}",
            "{\"log\": {\"entries\": [{\"a\": \"cut",
            "{\"log\": {\"entries\": [{}, {}\n",
            "{\"log\": {\"entries\": [{} {}]}}",
            "{\"log\" {}}",
            "{\"log\": {}} x",
            "{\"log\": {},}",
            "{1: 2}",
            "{\"x\": [1, 2}",
            "nul",
            "{\"log\": {\"version\": 1.2.3}}",
            "{\"log\": {\"entries\": [1,]}}",
        ] {
            let want = serde_json::from_str::<serde_json::Value>(input).unwrap_err();
            let (_, line, column) = syntax(scan(input, 1 << 20).1);
            assert_eq!(
                (line, column),
                (want.line() as u64, want.column() as u64),
                "{input:?}: serde_json says {want}"
            );
        }
    }

    #[test]
    fn shapes_that_are_not_har() {
        let (c, r) = scan("[1]", 100);
        r.unwrap();
        assert_eq!(c.not_har, ["the top-level JSON value is an array"]);
        let (c, r) = scan("{\"log\": \"x\", \"entries\": {}}", 100);
        r.unwrap();
        assert_eq!(
            c.not_har,
            [
                "\"log\" is a string, not an object",
                "log.entries is an object, not an array"
            ]
        );
        assert!(!c.found);
    }

    #[test]
    fn oversized_values_are_refused() {
        let (_, r) = scan("{\"log\": {\"entries\": [\n {\"a\": \"0123456789\"}]}}", 10);
        assert!(
            matches!(r, Err(Fail::TooLarge { line: 2, column: 2 })),
            "{r:?}"
        );
    }
}
