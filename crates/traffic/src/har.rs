//! HAR files. IMPLEMENTATION PENDING (being written in parallel).
use crate::{Exchange, ExchangeReader, Output, ReadError, ReadOptions, ReadReport};
use std::io::BufRead;
pub struct HarReader;
impl HarReader {
    pub fn new(_input: Box<dyn BufRead + Send>, _opts: ReadOptions) -> Result<Self, ReadError> {
        todo!()
    }
}
impl Iterator for HarReader {
    type Item = Result<Exchange, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}
impl ExchangeReader for HarReader {
    fn report(&self) -> ReadReport {
        todo!()
    }
}
pub struct HarWriter;
impl HarWriter {
    pub fn new(_out: Output) -> std::io::Result<Self> {
        todo!()
    }
}
impl crate::ExchangeWriter for HarWriter {
    fn write(&mut self, _e: &Exchange) -> std::io::Result<()> {
        todo!()
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        todo!()
    }
}
