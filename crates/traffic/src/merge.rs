//! Merging several sources into one stream in request-time order.

use crate::error::ReadError;
use crate::model::Exchange;
use crate::source::{ExchangeReader, ReadReport};

/// A k-way merge of readers that are each in request-time order. Holds one exchange per input.
pub struct Merge {
    inputs: Vec<Box<dyn ExchangeReader>>,
    heads: Vec<Option<Exchange>>,
    primed: bool,
    /// Errors go out before the next exchange; one input's error does not end the others.
    errors: Vec<ReadError>,
}

impl Merge {
    pub fn new(inputs: Vec<Box<dyn ExchangeReader>>) -> Self {
        let heads = inputs.iter().map(|_| None).collect();
        Merge {
            inputs,
            heads,
            primed: false,
            errors: Vec::new(),
        }
    }

    fn refill(&mut self, i: usize) {
        let Some(input) = self.inputs.get_mut(i) else {
            return;
        };
        // Readers end after an unrecoverable error and under `lenient` skip on their own, so this
        // loop ends.
        for item in input.by_ref() {
            match item {
                Ok(ex) => {
                    self.heads[i] = Some(ex);
                    return;
                }
                Err(e) => self.errors.push(e),
            }
        }
    }
}

impl Iterator for Merge {
    type Item = Result<Exchange, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.primed {
            self.primed = true;
            for i in 0..self.inputs.len() {
                self.refill(i);
            }
        }
        if !self.errors.is_empty() {
            return Some(Err(self.errors.remove(0)));
        }
        let best = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|e| (e.timing.request_start, i)))
            .min()?;
        let ex = self.heads[best.1].take();
        self.refill(best.1);
        ex.map(Ok)
    }
}

impl ExchangeReader for Merge {
    fn report(&self) -> ReadReport {
        let mut r = ReadReport::default();
        for i in &self.inputs {
            r.merge(&i.report());
        }
        r
    }
}
