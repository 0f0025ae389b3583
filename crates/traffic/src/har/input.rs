//! The byte stream the JSON scanner sees: BOM and JSONP wrapper removed.

use std::io::{self, BufRead, Read};

/// How many bytes at the start may hold a JSONP callback name (`onInputData(`).
const HEAD_LEN: usize = 512;
/// The most trailing `)`/`;`/whitespace bytes held back while looking for the JSONP tail.
const MAX_TAIL: usize = 64 << 10;

fn is_tail_byte(b: u8) -> bool {
    matches!(b, b')' | b';') || b.is_ascii_whitespace()
}

/// Removes a UTF-8 BOM and turns a JSONP wrapper (`callback( ... );`) into whitespace while
/// streaming, so positions the parser reports stay those of the file (the BOM, invisible in
/// editors, is not counted).
pub(crate) struct Prep {
    inner: Box<dyn BufRead + Send>,
    started: bool,
    jsonp: bool,
    eof: bool,
    out: Vec<u8>,
    out_pos: usize,
    /// In JSONP mode: the trailing run of `)`, `;` and whitespace seen so far, held back until
    /// more JSON follows it or the input ends.
    tail: Vec<u8>,
    /// Reused copy of the input's buffer (JSONP mode).
    chunk: Vec<u8>,
}

impl Prep {
    pub fn new(inner: Box<dyn BufRead + Send>) -> Self {
        Prep {
            inner,
            started: false,
            jsonp: false,
            eof: false,
            out: Vec::new(),
            out_pos: 0,
            tail: Vec::new(),
            chunk: Vec::new(),
        }
    }

    fn start(&mut self) -> io::Result<()> {
        self.started = true;
        let mut head = Vec::with_capacity(HEAD_LEN);
        while head.len() < HEAD_LEN {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(HEAD_LEN - head.len());
            head.extend_from_slice(&buf[..n]);
            self.inner.consume(n);
        }
        if head.starts_with(b"\xef\xbb\xbf") {
            head.drain(..3);
        }
        self.jsonp = blank_jsonp_prefix(&mut head);
        self.push(&head);
        Ok(())
    }

    /// Appends input bytes to `out`, holding back a possible JSONP tail.
    fn push(&mut self, data: &[u8]) {
        if !self.jsonp {
            self.out.extend_from_slice(data);
            return;
        }
        match data.iter().rposition(|&b| !is_tail_byte(b)) {
            Some(last) => {
                self.out.append(&mut self.tail);
                self.out.extend_from_slice(&data[..=last]);
                self.tail.extend_from_slice(&data[last + 1..]);
            }
            None => self.tail.extend_from_slice(data),
        }
        if self.tail.len() > MAX_TAIL {
            // Pathological whitespace: give up holding it (a `)` in it then stays as it is).
            self.out.append(&mut self.tail);
        }
    }

    fn finish_tail(&mut self) {
        if self.jsonp {
            blank_jsonp_tail(&mut self.tail);
            self.out.append(&mut self.tail);
        }
    }
}

/// If `head` (BOM removed) starts with `ident(` rather than JSON, blanks that prefix with spaces.
fn blank_jsonp_prefix(head: &mut [u8]) -> bool {
    let start = match head.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => i,
        None => return false,
    };
    let first = head[start];
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'$') {
        return false;
    }
    let mut i = start;
    while i < head.len()
        && (head[i].is_ascii_alphanumeric() || matches!(head[i], b'_' | b'$' | b'.'))
    {
        i += 1;
    }
    while i < head.len() && head[i].is_ascii_whitespace() {
        i += 1;
    }
    if head.get(i) != Some(&b'(') {
        return false;
    }
    for b in &mut head[start..=i] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    true
}

/// Blanks `)` and an optional `;` at the very end (whitespace around them allowed).
fn blank_jsonp_tail(tail: &mut [u8]) {
    let Some(paren) = tail.iter().position(|&b| b == b')') else {
        return;
    };
    if !tail[..paren].iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let mut semi = None;
    for (i, &b) in tail.iter().enumerate().skip(paren + 1) {
        match b {
            b';' if semi.is_none() => semi = Some(i),
            _ if b.is_ascii_whitespace() => {}
            _ => return,
        }
    }
    tail[paren] = b' ';
    if let Some(i) = semi {
        tail[i] = b' ';
    }
}

impl Read for Prep {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.start()?;
        }
        loop {
            if self.out_pos < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                if self.out_pos == self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
                return Ok(n);
            }
            if self.eof {
                return Ok(0);
            }
            if !self.jsonp {
                // Plain JSON: no reshaping needed, read straight through.
                return self.inner.read(buf);
            }
            let mut chunk = std::mem::take(&mut self.chunk);
            chunk.clear();
            chunk.extend_from_slice(self.inner.fill_buf()?);
            self.inner.consume(chunk.len());
            if chunk.is_empty() {
                self.eof = true;
                self.finish_tail();
            } else {
                self.push(&chunk);
            }
            self.chunk = chunk;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prep(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // A tiny buffer exercises every split of prefix, tail and BOM.
        let r = std::io::BufReader::with_capacity(3, std::io::Cursor::new(input.to_vec()));
        Prep::new(Box::new(r)).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn plain_json_passes_through() {
        assert_eq!(prep(b"{\"a\":\")\"}  )"), b"{\"a\":\")\"}  )");
        assert_eq!(prep(b""), b"");
    }

    #[test]
    fn bom_is_removed() {
        assert_eq!(prep(b"\xef\xbb\xbf{}"), b"{}");
    }

    #[test]
    fn jsonp_wrapper_becomes_whitespace() {
        assert_eq!(
            prep(b"onInputData({\"a\":\");\"});"),
            b"            {\"a\":\");\"}  "
        );
        assert_eq!(prep(b"\xef\xbb\xbf cb ({}) \n"), b"     {}  \n");
        assert_eq!(prep(b"a.b$({})\n;\n"), b"     {} \n \n");
        // Not a JSONP tail: left for the parser to report.
        assert_eq!(prep(b"cb({}) x"), b"   {}) x");
        assert_eq!(prep(b"cb({});;"), b"   {});;");
        assert_eq!(prep(b"cb{}"), b"cb{}");
    }
}
