//! Opening a capture file of any supported format as a stream of exchanges.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::ReadError;
use crate::model::Exchange;

/// The capture formats mynah reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// GoReplay's `.gor` (gzipped when the name ends in `.gz`).
    Gor,
    /// HTTP Archive (HAR 1.1/1.2/1.3, and JSONP-wrapped HARP).
    Har,
    /// libpcap `.pcap` or `.pcapng` (gzipped when the name ends in `.gz`). Read only.
    Pcap,
}

impl Format {
    /// Guesses the format from a file name: `.gor`, `.har`, `.harp`, `.pcap`, `.pcapng`, `.cap`,
    /// each optionally followed by `.gz`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit('.').next()?;
        match ext {
            "gor" => Some(Format::Gor),
            "har" | "harp" | "json" => Some(Format::Har),
            "pcap" | "pcapng" | "cap" | "dmp" => Some(Format::Pcap),
            _ => None,
        }
    }

    /// Guesses the format from a file's first bytes (after any gzip layer).
    pub fn sniff(head: &[u8]) -> Option<Format> {
        match head {
            [0xd4, 0xc3, 0xb2, 0xa1, ..]
            | [0xa1, 0xb2, 0xc3, 0xd4, ..]
            | [0x4d, 0x3c, 0xb2, 0xa1, ..]
            | [0xa1, 0xb2, 0x3c, 0x4d, ..]
            | [0x0a, 0x0d, 0x0d, 0x0a, ..] => return Some(Format::Pcap),
            _ => {}
        }
        let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
        let first = text.iter().find(|b| !b.is_ascii_whitespace())?;
        match first {
            b'{' => Some(Format::Har),
            b'1' | b'2' | b'3' if text.get(1) == Some(&b' ') => Some(Format::Gor),
            _ if text.starts_with(b"onInputData") || text.iter().take(64).any(|&b| b == b'(') => {
                Some(Format::Har)
            }
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Gor => "gor",
            Format::Har => "har",
            Format::Pcap => "pcap",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "gor" | "goreplay" => Some(Format::Gor),
            "har" | "harp" => Some(Format::Har),
            "pcap" | "pcapng" => Some(Format::Pcap),
            _ => None,
        }
    }
}

/// How readers treat what they find.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Skip corrupt records (counting them) instead of stopping at the first.
    pub lenient: bool,
    /// pcap: only TCP connections with one of these ports (either side) are parsed. Empty: any port;
    /// HTTP is then recognised by its request and status lines.
    pub ports: Vec<u16>,
}

/// What a reader saw besides the exchanges it yielded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Traffic deliberately not turned into exchanges, by reason (e.g. `http2_prior_knowledge`,
    /// `upgraded_websocket`, `not_http`), counted in connections or records as the reason says.
    pub skipped: BTreeMap<String, u64>,
    /// Corrupt records passed over under `--lenient`.
    pub corrupt_skipped: u64,
    /// The first error passed over under `--lenient`, for the report.
    pub first_corrupt: Option<String>,
    /// Bytes read from the input (after decompression).
    pub bytes_read: u64,
}

impl ReadReport {
    pub fn skip(&mut self, reason: &str, n: u64) {
        *self.skipped.entry(reason.to_string()).or_default() += n;
    }

    pub fn merge(&mut self, other: &ReadReport) {
        for (k, v) in &other.skipped {
            self.skip(k, *v);
        }
        self.corrupt_skipped += other.corrupt_skipped;
        if self.first_corrupt.is_none() {
            self.first_corrupt.clone_from(&other.first_corrupt);
        }
        self.bytes_read += other.bytes_read;
    }
}

/// A stream of exchanges in request-time order.
///
/// After the iterator yields an error that is not recoverable, it yields `None`.
pub trait ExchangeReader: Iterator<Item = Result<Exchange, ReadError>> + Send {
    /// What was skipped or passed over so far.
    fn report(&self) -> ReadReport;
}

/// Wraps a reader so gzip input is decompressed transparently (detected by its magic bytes, not its name).
pub fn maybe_gunzip(r: impl Read + Send + 'static) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut r = BufReader::with_capacity(256 << 10, r);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            256 << 10,
            flate2::read::MultiGzDecoder::new(r),
        )))
    } else {
        Ok(Box::new(r))
    }
}

/// Opens `path` as a stream of exchanges; the format comes from `format`, else the file's content,
/// else its name.
pub fn open(
    path: &Path,
    format: Option<Format>,
    opts: &ReadOptions,
) -> Result<Box<dyn ExchangeReader>, ReadError> {
    let with_path = |e: ReadError| e.in_file(path);
    let file = File::open(path).map_err(|e| {
        ReadError::new(format!("cannot open: {e}"))
            .in_file(path)
            .hint("check the path and permissions")
    })?;
    let mut input = maybe_gunzip(file).map_err(|e| with_path(ReadError::io(e)))?;
    let format = match format {
        Some(f) => f,
        None => {
            let head = input.fill_buf().map_err(|e| with_path(ReadError::io(e)))?;
            Format::sniff(head).or_else(|| Format::from_path(path)).ok_or_else(|| {
                ReadError::new("unknown capture format")
                    .in_file(path)
                    .hint("mynah reads .gor, .har and .pcap/.pcapng files (optionally .gz); name the format with --from")
            })?
        }
    };
    let reader: Box<dyn ExchangeReader> = match format {
        Format::Gor => Box::new(crate::gor::GorReader::new(input, opts.clone())),
        Format::Har => {
            Box::new(crate::har::HarReader::new(input, opts.clone()).map_err(with_path)?)
        }
        Format::Pcap => {
            Box::new(crate::pcap::PcapReader::new(input, opts.clone()).map_err(with_path)?)
        }
    };
    Ok(Box::new(Named {
        inner: reader,
        path: path.to_path_buf(),
    }))
}

/// Attaches the file name to every error a reader yields.
struct Named {
    inner: Box<dyn ExchangeReader>,
    path: std::path::PathBuf,
}

impl Iterator for Named {
    type Item = Result<Exchange, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .next()
            .map(|r| r.map_err(|e| e.in_file(&self.path)))
    }
}

impl ExchangeReader for Named {
    fn report(&self) -> ReadReport {
        self.inner.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_names() {
        assert_eq!(
            Format::from_path(Path::new("a/b.gor.gz")),
            Some(Format::Gor)
        );
        assert_eq!(Format::from_path(Path::new("x.pcapng")), Some(Format::Pcap));
        assert_eq!(Format::from_path(Path::new("x.HAR")), Some(Format::Har));
        assert_eq!(Format::from_path(Path::new("x.txt")), None);
    }

    #[test]
    fn formats_from_content() {
        assert_eq!(Format::sniff(b"\xd4\xc3\xb2\xa1...."), Some(Format::Pcap));
        assert_eq!(Format::sniff(b"\x0a\x0d\x0d\x0a"), Some(Format::Pcap));
        assert_eq!(Format::sniff(b"\xef\xbb\xbf{\"log\""), Some(Format::Har));
        assert_eq!(
            Format::sniff(b"1 abc 123\nGET / HTTP/1.1"),
            Some(Format::Gor)
        );
        assert_eq!(Format::sniff(b"onInputData({"), Some(Format::Har));
    }
}
