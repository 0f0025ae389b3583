//! Bounded summaries of unbounded streams: reservoir samples, capped counters, and the two
//! distances (Jensen–Shannon, Kolmogorov–Smirnov) the fidelity report and the class split use.
//!
//! Everything here has a fixed capacity chosen by the caller, so a recording of any length is
//! summarised in constant memory.

use std::collections::HashMap;
use std::hash::Hash;

/// A uniform random sample of at most `cap` items of a stream (Vitter's algorithm R).
///
/// Why: think times, sizes and session lengths must be summarised as distributions (quantiles,
/// KS distances) without keeping every value. Memory: `cap` items. The generator is seeded, so
/// the same input gives the same sample and the same generated files.
#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    cap: usize,
    seen: u64,
    items: Vec<T>,
    rng: fastrand::Rng,
}

impl<T: Clone> Reservoir<T> {
    /// An empty reservoir keeping at most `cap` items (at least 1).
    pub fn new(cap: usize) -> Self {
        Reservoir {
            cap: cap.max(1),
            seen: 0,
            items: Vec::new(),
            rng: fastrand::Rng::with_seed(0x5eed_5a3d),
        }
    }

    /// Offers one item; it is kept with probability `cap / seen`.
    pub fn add(&mut self, item: T) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(item);
            return;
        }
        let j = self.rng.u64(0..self.seen);
        if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.items.get_mut(j)) {
            *slot = item;
        }
    }

    /// The items kept (in no particular order).
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// How many items were offered in total.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Offers every item of another reservoir (an approximation of the union's sample, good
    /// enough for summaries).
    pub fn merge(&mut self, other: &Reservoir<T>) {
        for it in &other.items {
            self.add(it.clone());
        }
        // The other's unseen items still count towards the total.
        self.seen += other.seen.saturating_sub(other.items.len() as u64);
    }
}

/// Counts of distinct keys, at most `cap` of them; beyond that, new keys replace random
/// existing ones with reservoir probability (so a long tail is still sampled fairly).
///
/// Why: data pools (ids, search terms) must keep the frequent values with their frequencies,
/// and a sample of the rest, in bounded memory. Memory: `cap` keys and counts.
#[derive(Debug, Clone)]
pub struct CountedPool<K: Eq + Hash + Clone> {
    cap: usize,
    entries: Vec<(K, u64)>,
    index: HashMap<K, usize>,
    /// Offers of keys not in the pool once it was full.
    overflow: u64,
    total: u64,
    rng: fastrand::Rng,
}

impl<K: Eq + Hash + Clone> CountedPool<K> {
    /// An empty pool of at most `cap` distinct keys (at least 1).
    pub fn new(cap: usize) -> Self {
        CountedPool {
            cap: cap.max(1),
            entries: Vec::new(),
            index: HashMap::new(),
            overflow: 0,
            total: 0,
            rng: fastrand::Rng::with_seed(0xc0_ffee),
        }
    }

    /// Counts one occurrence of `key`.
    pub fn add(&mut self, key: K) {
        self.total += 1;
        if let Some(&i) = self.index.get(&key) {
            if let Some(e) = self.entries.get_mut(i) {
                e.1 += 1;
            }
            return;
        }
        if self.entries.len() < self.cap {
            self.index.insert(key.clone(), self.entries.len());
            self.entries.push((key, 1));
            return;
        }
        self.overflow += 1;
        let j = self.rng.u64(0..(self.cap as u64 + self.overflow));
        let Ok(j) = usize::try_from(j) else { return };
        if j < self.entries.len() {
            if let Some(old) = self.entries.get(j).map(|e| e.0.clone()) {
                self.index.remove(&old);
            }
            self.index.insert(key.clone(), j);
            if let Some(slot) = self.entries.get_mut(j) {
                *slot = (key, 1);
            }
        }
    }

    /// The kept keys with their counts, most frequent first (ties in insertion order).
    pub fn sorted(&self) -> Vec<(K, u64)> {
        let mut v = self.entries.clone();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v
    }

    /// Number of distinct keys kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Occurrences offered in total (kept or not).
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Jensen–Shannon divergence, base 2 (so in `[0, 1]`), of two discrete distributions given as
/// counts over the same keys. Keys missing on one side count 0 there. Empty inputs give 0 when
/// both are empty and 1 when one is.
pub fn jsd<K: Eq + Hash>(p: &HashMap<K, f64>, q: &HashMap<K, f64>) -> f64 {
    let sp: f64 = p.values().filter(|v| v.is_finite() && **v > 0.0).sum();
    let sq: f64 = q.values().filter(|v| v.is_finite() && **v > 0.0).sum();
    if sp <= 0.0 && sq <= 0.0 {
        return 0.0;
    }
    if sp <= 0.0 || sq <= 0.0 {
        return 1.0;
    }
    let norm = |v: Option<&f64>, s: f64| match v {
        Some(v) if v.is_finite() && *v > 0.0 => v / s,
        _ => 0.0,
    };
    let mut d = 0.0;
    let mut term = |a: f64, b: f64| {
        let m = (a + b) / 2.0;
        let mut t = 0.0;
        if a > 0.0 {
            t += 0.5 * a * (a / m).log2();
        }
        if b > 0.0 {
            t += 0.5 * b * (b / m).log2();
        }
        d += t;
    };
    for (k, v) in p {
        term(norm(Some(v), sp), norm(q.get(k), sq));
    }
    for (k, v) in q {
        if !p.contains_key(k) {
            term(0.0, norm(Some(v), sq));
        }
    }
    d.clamp(0.0, 1.0)
}

/// The two-sample Kolmogorov–Smirnov statistic D: the largest distance between the two
/// empirical CDFs. In `[0, 1]`; 0 when both samples are empty, 1 when only one is. NaNs are
/// ignored.
pub fn ks(a: &[f64], b: &[f64]) -> f64 {
    let mut a: Vec<f64> = a.iter().copied().filter(|x| !x.is_nan()).collect();
    let mut b: Vec<f64> = b.iter().copied().filter(|x| !x.is_nan()).collect();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return 0.0,
        (true, false) | (false, true) => return 1.0,
        _ => {}
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        let v = if x <= y { x } else { y };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    d.clamp(0.0, 1.0)
}

/// The `q` quantile (0..=1) of a sample by nearest rank; `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * (v.len() - 1) as f64).round() as usize;
    v.get(rank.min(v.len() - 1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(pairs: &[(&'static str, f64)]) -> HashMap<&'static str, f64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn jsd_known_values() {
        let p = dist(&[("a", 1.0), ("b", 3.0)]);
        assert_eq!(jsd(&p, &p), 0.0);
        let q = dist(&[("c", 5.0)]);
        assert!((jsd(&p, &q) - 1.0).abs() < 1e-12);
        // P = (1, 0), Q = (1/2, 1/2): M = (3/4, 1/4);
        // KL(P||M) = log2(4/3); KL(Q||M) = 1/2 log2(2/3) + 1/2 log2(2);
        // JSD = 1/2 (log2(4/3)) + 1/4 log2(2/3) + 1/4 = 0.3112781...
        let p = dist(&[("a", 1.0)]);
        let q = dist(&[("a", 1.0), ("b", 1.0)]);
        let want = 0.5 * (4.0f64 / 3.0).log2() + 0.25 * (2.0f64 / 3.0).log2() + 0.25;
        assert!((jsd(&p, &q) - want).abs() < 1e-12, "{}", jsd(&p, &q));
        assert!((want - 0.311_278).abs() < 1e-6);
        assert_eq!(jsd::<&str>(&HashMap::new(), &HashMap::new()), 0.0);
        assert_eq!(jsd(&HashMap::new(), &p), 1.0);
    }

    #[test]
    fn ks_known_values() {
        let a = [1.0, 2.0, 3.0];
        assert_eq!(ks(&a, &a), 0.0);
        assert_eq!(ks(&a, &[10.0, 11.0]), 1.0);
        // CDFs: a = {1,2,3,4}, b = {3,4,5,6}: at 2, Fa = 0.5, Fb = 0 -> D = 0.5.
        assert!((ks(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]) - 0.5).abs() < 1e-12);
        // Ties across samples: {1,1,2} vs {1,2,2}: at 1, 2/3 vs 1/3.
        assert!((ks(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(ks(&[], &[]), 0.0);
        assert_eq!(ks(&[], &[1.0]), 1.0);
    }

    #[test]
    fn reservoir_and_pool_are_bounded() {
        let mut r = Reservoir::new(10);
        for i in 0..10_000 {
            r.add(i);
        }
        assert_eq!(r.items().len(), 10);
        assert_eq!(r.seen(), 10_000);
        let mut p = CountedPool::new(5);
        for i in 0..1000u32 {
            p.add(i % 3);
            p.add(1000 + i);
        }
        assert_eq!(p.len(), 5);
        assert_eq!(p.total(), 2000);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
