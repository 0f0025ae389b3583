//! Writing exchanges to a capture file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::model::Exchange;
use crate::source::Format;

/// Receives exchanges in order and writes them out.
pub trait ExchangeWriter {
    fn write(&mut self, exchange: &Exchange) -> io::Result<()>;
    /// Flushes and closes the output (HAR needs this to close its JSON).
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Creates `path` and a writer for `format`; a name ending in `.gz` is gzip-compressed.
pub fn create(path: &Path, format: Format) -> io::Result<Box<dyn ExchangeWriter>> {
    let file = BufWriter::with_capacity(256 << 10, File::create(path)?);
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let out = if gz {
        Output::Gzip(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ))
    } else {
        Output::Plain(file)
    };
    match format {
        Format::Gor => Ok(Box::new(crate::gor::GorWriter::new(out))),
        Format::Har => Ok(Box::new(crate::har::HarWriter::new(out)?)),
        Format::Pcap => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "mynah does not write pcap files; write .gor or .har",
        )),
    }
}

/// A file being written, plain or gzipped. [`Output::finish`] writes the gzip trailer and reports
/// errors that a drop would swallow.
pub enum Output {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    /// In memory (tests, and callers that want the bytes).
    Memory(Vec<u8>),
}

impl Output {
    pub fn finish(self) -> io::Result<Option<Vec<u8>>> {
        match self {
            Output::Plain(mut f) => f.flush().map(|_| None),
            Output::Gzip(g) => g.finish()?.flush().map(|_| None),
            Output::Memory(v) => Ok(Some(v)),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(f) => f.write(buf),
            Output::Gzip(g) => g.write(buf),
            Output::Memory(v) => v.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Plain(f) => f.write_all(buf),
            Output::Gzip(g) => g.write_all(buf),
            Output::Memory(v) => v.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(f) => f.flush(),
            Output::Gzip(g) => g.flush(),
            Output::Memory(_) => Ok(()),
        }
    }
}
