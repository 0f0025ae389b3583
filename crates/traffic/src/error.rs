//! Errors that name where in a file reading stopped, how much was read before it, and what to do.

use std::fmt;
use std::path::PathBuf;

/// Where in an input a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A byte offset from the start of the (decompressed) file.
    Byte(u64),
    /// The n-th record of a record-oriented file (`.gor`), from 1, starting at a byte offset.
    Record { number: u64, byte: u64 },
    /// The n-th packet of a pcap/pcapng file, from 1, starting at a byte offset.
    Packet { number: u64, byte: u64 },
    /// A line and column of a text file, from 1.
    LineColumn { line: u64, column: u64 },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Byte(b) => write!(f, "byte offset {b}"),
            Location::Record { number, byte } => write!(f, "record {number} (byte offset {byte})"),
            Location::Packet { number, byte } => write!(f, "packet {number} (byte offset {byte})"),
            Location::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
        }
    }
}

/// A capture could not be read (or not read further).
///
/// Displays as `FILE: LOCATION: what went wrong (N exchanges read before it); hint`.
#[derive(Debug, Clone)]
pub struct ReadError {
    pub path: Option<PathBuf>,
    pub location: Option<Location>,
    pub message: String,
    /// How many exchanges the reader had yielded before this error.
    pub exchanges_read: u64,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// False when reading cannot go on at all (I/O errors, unusable headers); true when `--lenient`
    /// could skip past this record.
    pub recoverable: bool,
}

impl ReadError {
    pub fn new(message: impl Into<String>) -> Self {
        ReadError {
            path: None,
            location: None,
            message: message.into(),
            exchanges_read: 0,
            hint: None,
            recoverable: false,
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn read_before(mut self, n: u64) -> Self {
        self.exchanges_read = n;
        self
    }

    pub fn recoverable(mut self) -> Self {
        self.recoverable = true;
        self
    }

    pub fn in_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn io(e: std::io::Error) -> Self {
        ReadError::new(format!("I/O error: {e}"))
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        if let Some(l) = &self.location {
            write!(f, "{l}: ")?;
        }
        write!(
            f,
            "{} ({} exchanges read before it)",
            self.message, self.exchanges_read
        )?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReadError {}
