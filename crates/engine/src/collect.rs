//! The path from a finished request to the statistics.
//!
//! Users push small [`Sample`]s into one of several mutex-guarded buffers (each user always uses
//! the same shard, so contention is rare and a push is a lock, a `Vec::push` and an unlock); the
//! collector swaps the buffers out a few times a second and folds them into [`RunStats`] on its
//! own thread. Nothing on the hot path touches a histogram, a hash map or a string.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mynah_stats::{FailureKind, RunStats};

/// One request's outcome.
#[derive(Debug)]
pub(crate) struct Sample {
    /// Index into the plan's endpoints.
    pub endpoint: u32,
    /// When the request ended, in ns since the run's start.
    pub at: u64,
    /// Latency in µs; `None` when there was no response to time.
    pub latency_us: Option<u64>,
    /// Body bytes received.
    pub bytes: u64,
    /// Why it failed, if it did.
    pub failure: Option<Box<(FailureKind, String)>>,
}

/// The shared sample buffers.
pub(crate) struct Sink {
    shards: Box<[Mutex<Vec<Sample>>]>,
}

impl Sink {
    pub fn new(shards: usize) -> Sink {
        Sink {
            shards: (0..shards.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    pub fn push(&self, shard: usize, sample: Sample) {
        let mut buf = match self.shards[shard % self.shards.len()].lock() {
            Ok(b) => b,
            // A user task that panicked while holding the lock cannot corrupt a Vec push.
            Err(poisoned) => poisoned.into_inner(),
        };
        buf.push(sample);
    }

    /// Moves every buffered sample into `out`, leaving spare capacity behind for the next round.
    pub fn drain(&self, out: &mut Vec<Sample>) {
        for shard in self.shards.iter() {
            let mut buf = match shard.lock() {
                Ok(b) => b,
                Err(poisoned) => poisoned.into_inner(),
            };
            out.append(&mut buf);
        }
    }
}

/// The run's clock: monotonic offsets for latency, anchored to the wall clock for reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub start: Instant,
    pub start_unix_ns: i64,
}

impl Clock {
    pub fn new() -> Clock {
        let start_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Clock {
            start: Instant::now(),
            start_unix_ns,
        }
    }

    /// Nanoseconds since the start of the run.
    pub fn offset(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_nanos() as u64
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn unix_ns(&self, offset_ns: u64) -> i64 {
        self.start_unix_ns.saturating_add(offset_ns as i64)
    }
}

/// Folds samples into the statistics. `slots` caches, per plan endpoint, where the statistics
/// keep it (see [`RunStats::endpoint_slot`]); it belongs to the caller and survives between
/// calls (and statistics resets: a stale slot is only a slower lookup).
pub(crate) fn record(
    stats: &mut RunStats,
    endpoints: &[(String, String)],
    slots: &mut Vec<usize>,
    clock: &Clock,
    samples: &mut Vec<Sample>,
) {
    if slots.len() < endpoints.len() {
        slots.resize(endpoints.len(), usize::MAX);
    }
    for s in samples.drain(..) {
        let i = s.endpoint as usize;
        let Some((method, name)) = endpoints.get(i) else {
            continue;
        };
        let slot = stats.endpoint_slot(method, name, slots[i]);
        slots[i] = slot;
        let at_ns = clock.unix_ns(s.at);
        match s.failure {
            None => stats.record_success_at(slot, at_ns, s.latency_us.unwrap_or(0), s.bytes),
            Some(f) => stats.record_failure_at(slot, at_ns, s.latency_us, f.0, &f.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_reach_the_stats() {
        let sink = Sink::new(4);
        let clock = Clock::new();
        for i in 0..10u64 {
            sink.push(
                i as usize,
                Sample {
                    endpoint: (i % 2) as u32,
                    at: i * 1_000_000,
                    latency_us: Some(1000 + i),
                    bytes: 10,
                    failure: (i == 3).then(|| Box::new((FailureKind::Status, "status 500".into()))),
                },
            );
        }
        let mut buf = Vec::new();
        sink.drain(&mut buf);
        assert_eq!(buf.len(), 10);
        let mut stats = RunStats::new(clock.start_unix_ns);
        let endpoints = vec![
            ("GET".to_string(), "/a".to_string()),
            ("POST".to_string(), "/b".to_string()),
        ];
        let mut slots = Vec::new();
        record(&mut stats, &endpoints, &mut slots, &clock, &mut buf);
        assert_eq!(stats.total().requests(), 10);
        assert_eq!(stats.total().failures(), 1);
        assert_eq!(stats.endpoint("GET", "/a").unwrap().requests(), 5);
        assert_eq!(stats.endpoint("POST", "/b").unwrap().failures(), 1);
        // After the statistics are replaced (a reset), the cached slots still land right.
        let mut stats = RunStats::new(clock.start_unix_ns);
        stats.record_success("PUT", "/other", clock.start_unix_ns, 5, 0);
        let mut buf = vec![Sample {
            endpoint: 1,
            at: 0,
            latency_us: Some(7),
            bytes: 1,
            failure: None,
        }];
        record(&mut stats, &endpoints, &mut slots, &clock, &mut buf);
        assert_eq!(stats.endpoint("POST", "/b").unwrap().requests(), 1);
        assert_eq!(stats.endpoint("PUT", "/other").unwrap().requests(), 1);
        let mut again = Vec::new();
        sink.drain(&mut again);
        assert!(again.is_empty());
    }
}
