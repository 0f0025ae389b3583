//! Putting exchanges in request-time order with bounded buffering.
//!
//! Sources finish exchanges out of order (a slow response on one connection, records written in
//! emission order in `.gor`). Each reader pushes finished exchanges here and releases those that no
//! still-open exchange can precede: the reader supplies that bound (its *watermark*).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::{Exchange, Nanos};

struct Entry {
    key: (Nanos, u64),
    exchange: Exchange,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// A min-heap of exchanges by request start; ties keep insertion order.
#[derive(Default)]
pub struct TimeOrder {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl TimeOrder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, exchange: Exchange) {
        self.seq += 1;
        let key = (exchange.timing.request_start, self.seq);
        self.heap.push(Reverse(Entry { key, exchange }));
    }

    /// The earliest exchange if it started at or before `watermark`.
    pub fn pop_until(&mut self, watermark: Nanos) -> Option<Exchange> {
        if self.heap.peek()?.0.key.0 <= watermark {
            self.heap.pop().map(|e| e.0.exchange)
        } else {
            None
        }
    }

    /// The earliest exchange, whatever its time (when the input is exhausted).
    pub fn pop(&mut self) -> Option<Exchange> {
        self.heap.pop().map(|e| e.0.exchange)
    }

    pub fn earliest(&self) -> Option<Nanos> {
        self.heap.peek().map(|e| e.0.key.0)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(t: Nanos, tag: &str) -> Exchange {
        let mut e = Exchange::default();
        e.timing.request_start = t;
        e.request.target = tag.into();
        e
    }

    #[test]
    fn releases_in_order_up_to_watermark() {
        let mut o = TimeOrder::new();
        o.push(ex(30, "c"));
        o.push(ex(10, "a"));
        o.push(ex(10, "a2"));
        o.push(ex(20, "b"));
        assert_eq!(o.pop_until(15).unwrap().request.target, "a");
        assert_eq!(o.pop_until(15).unwrap().request.target, "a2");
        assert!(o.pop_until(15).is_none());
        assert_eq!(o.pop().unwrap().request.target, "b");
        assert_eq!(o.pop().unwrap().request.target, "c");
        assert!(o.pop().is_none());
    }
}
