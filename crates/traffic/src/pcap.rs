//! pcap/pcapng files. IMPLEMENTATION PENDING (being written in parallel).
use crate::{Exchange, ExchangeReader, ReadError, ReadOptions, ReadReport};
use std::io::BufRead;
pub struct PcapReader;
impl PcapReader {
    pub fn new(_input: Box<dyn BufRead + Send>, _opts: ReadOptions) -> Result<Self, ReadError> {
        todo!()
    }
}
impl Iterator for PcapReader {
    type Item = Result<Exchange, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}
impl ExchangeReader for PcapReader {
    fn report(&self) -> ReadReport {
        todo!()
    }
}
