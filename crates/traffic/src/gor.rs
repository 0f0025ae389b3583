//! GoReplay `.gor` files. IMPLEMENTATION PENDING (being written in parallel).
use crate::{Exchange, ExchangeReader, Output, ReadError, ReadOptions, ReadReport};
use std::io::BufRead;
pub struct GorReader;
impl GorReader {
    pub fn new(_input: Box<dyn BufRead + Send>, _opts: ReadOptions) -> Self {
        todo!()
    }
}
impl Iterator for GorReader {
    type Item = Result<Exchange, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}
impl ExchangeReader for GorReader {
    fn report(&self) -> ReadReport {
        todo!()
    }
}
pub struct GorWriter;
impl GorWriter {
    pub fn new(_out: Output) -> Self {
        todo!()
    }
}
impl crate::ExchangeWriter for GorWriter {
    fn write(&mut self, _e: &Exchange) -> std::io::Result<()> {
        todo!()
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        todo!()
    }
}
