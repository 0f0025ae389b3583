//! Putting exchanges in request-time order with bounded buffering.
//!
//! Sources finish exchanges out of order (a slow response on one connection, records written in
//! emission order in `.gor`). Each reader pushes finished exchanges here and releases those that no
//! still-open exchange can precede: the reader supplies that bound (its *watermark*).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

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
/// Exchanges come in mostly in order; those that extend the sorted run go to a queue (one move in,
/// one out), the others to a heap. An exchange is a few hundred bytes, so sifting every one
/// through a heap was most of a `.gor` reader's copying.
#[derive(Default)]
pub struct TimeOrder {
    heap: BinaryHeap<Reverse<Entry>>,
    run: VecDeque<Entry>,
    seq: u64,
}

impl TimeOrder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, exchange: Exchange) {
        self.seq += 1;
        let key = (exchange.timing.request_start, self.seq);
        let entry = Entry { key, exchange };
        if self.run.back().is_none_or(|last| last.key <= key) {
            self.run.push_back(entry);
        } else {
            self.heap.push(Reverse(entry));
        }
    }

    /// The earliest key and whether it is in the run (else the heap).
    fn first(&self) -> Option<((Nanos, u64), bool)> {
        match (self.run.front(), self.heap.peek()) {
            (Some(r), Some(h)) if h.0.key < r.key => Some((h.0.key, false)),
            (Some(r), _) => Some((r.key, true)),
            (None, Some(h)) => Some((h.0.key, false)),
            (None, None) => None,
        }
    }

    pub fn pop_until(&mut self, watermark: Nanos) -> Option<Exchange> {
        let (key, _) = self.first()?;
        if key.0 <= watermark {
            self.pop()
        } else {
            None
        }
    }

    pub fn pop(&mut self) -> Option<Exchange> {
        let (_, in_run) = self.first()?;
        if in_run {
            self.run.pop_front().map(|e| e.exchange)
        } else {
            self.heap.pop().map(|e| e.0.exchange)
        }
    }

    pub fn earliest(&self) -> Option<Nanos> {
        self.first().map(|(k, _)| k.0)
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.run.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.run.is_empty()
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

    #[test]
    fn any_push_order_pops_sorted_and_stable() {
        // Pseudo-random times with many ties and in-order stretches, against a stable sort.
        let mut x = 12345u64;
        let mut times: Vec<Nanos> = Vec::new();
        for i in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let t = if x.is_multiple_of(3) {
                i
            } else {
                ((x >> 33) % 500) as Nanos
            };
            times.push(t);
        }
        let mut o = TimeOrder::new();
        let mut popped = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            o.push(ex(t, &i.to_string()));
            if i % 7 == 0 {
                while let Some(e) = o.pop_until(t / 2) {
                    popped.push(e);
                }
            }
        }
        while let Some(e) = o.pop() {
            popped.push(e);
        }
        assert!(o.is_empty());
        assert_eq!(popped.len(), times.len());
        // Interleaved releases lose nothing; the order itself is checked on a drain of all.
        let mut o = TimeOrder::new();
        for (i, &t) in times.iter().enumerate() {
            o.push(ex(t, &i.to_string()));
        }
        let got: Vec<(Nanos, usize)> = std::iter::from_fn(|| o.pop())
            .map(|e| (e.timing.request_start, e.request.target.parse().unwrap()))
            .collect();
        let mut want: Vec<(Nanos, usize)> = times.iter().copied().zip(0..).collect();
        want.sort_by_key(|&(t, _)| t);
        assert_eq!(got, want);
    }
}
