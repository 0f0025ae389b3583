//! Writing exchanges to a capture file, optionally rotated by size ([`RotatingWriter`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    writer_for(open_output(path)?, format)
}

/// Creates `path` as an [`Output`], gzip-compressed when the name ends in `.gz`.
fn open_output(path: &Path) -> io::Result<Output> {
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
    Ok(out)
}

/// A writer for `format` on `out`.
fn writer_for(out: Output, format: Format) -> io::Result<Box<dyn ExchangeWriter>> {
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
    /// Another output, counting the bytes written to it (before any compression it does) into
    /// the shared counter: how [`RotatingWriter`] knows when a file is full.
    Counted(Box<Output>, Arc<AtomicU64>),
}

impl Output {
    pub fn finish(self) -> io::Result<Option<Vec<u8>>> {
        match self {
            Output::Plain(mut f) => f.flush().map(|_| None),
            Output::Gzip(g) => g.finish()?.flush().map(|_| None),
            Output::Memory(v) => Ok(Some(v)),
            Output::Counted(inner, _) => inner.finish(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(f) => f.write(buf),
            Output::Gzip(g) => g.write(buf),
            Output::Memory(v) => v.write(buf),
            Output::Counted(inner, n) => {
                let k = inner.write(buf)?;
                n.fetch_add(k as u64, Ordering::Relaxed);
                Ok(k)
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Plain(f) => f.write_all(buf),
            Output::Gzip(g) => g.write_all(buf),
            Output::Memory(v) => v.write_all(buf),
            Output::Counted(inner, n) => {
                inner.write_all(buf)?;
                n.fetch_add(buf.len() as u64, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(f) => f.flush(),
            Output::Gzip(g) => g.flush(),
            Output::Memory(_) => Ok(()),
            Output::Counted(inner, _) => inner.flush(),
        }
    }
}

/// Writes exchanges to one file, or to a numbered series of files of about a given size each
/// (GoReplay's `--output-file-size-limit` naming): `out.gor` becomes `out_0.gor`, `out_1.gor`,
/// ... and `out.gor.gz` becomes `out_0.gor.gz`, ... (see [`chunk_path`]).
///
/// Every file is complete on its own: a full file is finished (HAR closed, gzip trailer written)
/// before the next is opened, so each can be read, converted or replayed alone. The size counts
/// the bytes the format writes before compression (as GoReplay does), so `.gz` files come out
/// smaller than the limit. A file is closed once it reaches the limit, so it exceeds it by at
/// most one exchange.
pub struct RotatingWriter {
    path: PathBuf,
    format: Format,
    limit: Option<u64>,
    current: Option<Box<dyn ExchangeWriter>>,
    /// Bytes written to the current file.
    counter: Arc<AtomicU64>,
    /// Bytes written to the files finished before it.
    done_bytes: u64,
    files: Vec<PathBuf>,
}

impl RotatingWriter {
    /// Creates the first file now (so a path that cannot be written fails at once): `path`
    /// itself when `limit` is `None`, else chunk 0 of `path` (see [`chunk_path`]). `format` must
    /// be [`Format::Gor`] or [`Format::Har`]; a name ending in `.gz` is gzip-compressed.
    pub fn create(path: &Path, format: Format, limit: Option<u64>) -> io::Result<RotatingWriter> {
        if format == Format::Pcap {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "mynah does not write pcap files; write .gor or .har",
            ));
        }
        let mut w = RotatingWriter {
            path: path.to_path_buf(),
            format,
            limit: limit.map(|l| l.max(1)),
            current: None,
            counter: Arc::new(AtomicU64::new(0)),
            done_bytes: 0,
            files: Vec::new(),
        };
        w.open_next()?;
        Ok(w)
    }

    /// The files created so far, in order (the last one may still be open).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Bytes written so far over all files (before compression).
    pub fn bytes_written(&self) -> u64 {
        self.done_bytes + self.counter.load(Ordering::Relaxed)
    }

    /// Finishes the open file and returns every file written, in order.
    pub fn close(mut self) -> io::Result<Vec<PathBuf>> {
        self.finish_current()?;
        Ok(std::mem::take(&mut self.files))
    }

    fn open_next(&mut self) -> io::Result<()> {
        let path = match self.limit {
            Some(_) => chunk_path(&self.path, self.files.len()),
            None => self.path.clone(),
        };
        self.done_bytes += self.counter.swap(0, Ordering::Relaxed);
        let out = open_output(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
        })?;
        let out = Output::Counted(Box::new(out), self.counter.clone());
        self.current = Some(writer_for(out, self.format)?);
        self.files.push(path);
        Ok(())
    }

    fn finish_current(&mut self) -> io::Result<()> {
        match self.current.take() {
            Some(w) => w.finish().map_err(|e| {
                let path = self.files.last().map(|p| p.display().to_string());
                io::Error::new(
                    e.kind(),
                    format!("writing {}: {e}", path.unwrap_or_default()),
                )
            }),
            None => Ok(()),
        }
    }
}

impl ExchangeWriter for RotatingWriter {
    fn write(&mut self, exchange: &Exchange) -> io::Result<()> {
        if self.current.is_none() {
            self.open_next()?;
        }
        if let Some(w) = self.current.as_mut() {
            w.write(exchange)?;
        }
        if self
            .limit
            .is_some_and(|l| self.counter.load(Ordering::Relaxed) >= l)
        {
            // Closed now rather than at the next write, so a finished chunk is complete on disk
            // while the next one fills.
            self.finish_current()?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.close().map(|_| ())
    }
}

/// The name of chunk `index` of a rotated `path`: the index goes before the format's extension
/// (GoReplay's naming), and a `.gz` after it stays last: `out.gor` gives `out_0.gor`,
/// `out.gor.gz` gives `out_0.gor.gz`, `dir/log.har` gives `dir/log_0.har`, `out` gives `out_0`.
pub fn chunk_path(path: &Path, index: usize) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, gz) = match name.len().checked_sub(3) {
        Some(i) if name.get(i..).is_some_and(|t| t.eq_ignore_ascii_case(".gz")) => {
            (&name[..i], &name[i..])
        }
        _ => (name.as_str(), ""),
    };
    let (stem, ext) = match base.rfind('.') {
        Some(i) if i > 0 => (&base[..i], &base[i..]),
        _ => (base, ""),
    };
    path.with_file_name(format!("{stem}_{index}{ext}{gz}"))
}

/// Parses a size such as `100MB`, `64MiB`, `1.5GB`, `500k` or `4096` (bytes). Decimal units
/// (`k`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB`) are powers of 1000, binary ones (`KiB`, `MiB`,
/// `GiB`, `TiB`) powers of 1024; case does not matter.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {s:?}: use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB"
            ))
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write e.g. 100MB, 64MiB or 4096"))?;
    let bytes = value * mult as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?} is not a usable size: give at least 1 byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names_follow_goreplay() {
        let c = |p: &str, i| chunk_path(Path::new(p), i).display().to_string();
        assert_eq!(c("out.gor", 0), "out_0.gor");
        assert_eq!(c("out.gor", 12), "out_12.gor");
        assert_eq!(c("dir/out.gor.gz", 1), "dir/out_1.gor.gz");
        assert_eq!(c("a.b/log.HAR", 2), "a.b/log_2.HAR");
        assert_eq!(c("x.har.GZ", 0), "x_0.har.GZ");
        assert_eq!(c("out", 3), "out_3");
        assert_eq!(c(".gor", 0), ".gor_0");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1gb"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("").is_err());
    }

    fn exchange(i: usize) -> Exchange {
        let mut e = Exchange::default();
        e.request.method = "GET".into();
        e.request.target = format!("/item/{i}");
        e
    }

    #[test]
    fn rotation_makes_whole_files() {
        let dir = std::env::temp_dir().join(format!("mynah-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, format) in [
            ("r.gor", Format::Gor),
            ("r.gor.gz", Format::Gor),
            ("r.har", Format::Har),
        ] {
            let path = dir.join(name);
            let mut w = RotatingWriter::create(&path, format, Some(2_000)).unwrap();
            for i in 0..100 {
                w.write(&exchange(i)).unwrap();
            }
            let files = w.close().unwrap();
            assert!(files.len() > 2, "{name}: {files:?}");
            let mut targets = Vec::new();
            for (i, f) in files.iter().enumerate() {
                assert_eq!(f, &chunk_path(&path, i));
                let r = crate::open(f, None, &Default::default()).unwrap();
                for e in r {
                    targets.push(e.unwrap().request.target);
                }
            }
            let want: Vec<String> = (0..100).map(|i| format!("/item/{i}")).collect();
            assert_eq!(targets, want, "{name}");
        }
        // Without a limit the path itself is written, even with nothing in it.
        let path = dir.join("plain.har");
        let w = RotatingWriter::create(&path, Format::Har, None).unwrap();
        assert_eq!(w.close().unwrap(), vec![path.clone()]);
        assert_eq!(
            crate::open(&path, None, &Default::default())
                .unwrap()
                .count(),
            0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
