//! The recently masked secrets, found again in any text in one pass whatever their number.
//!
//! A 65,536-bit map of the secrets' first two bytes rejects almost every position of the text with
//! one bit test; the rare hits are checked against the secrets that start with the same four bytes.

use std::collections::{HashMap, VecDeque};

/// Secrets shorter than this are not looked for elsewhere (they would match by chance).
pub(super) const MIN_SEEN: usize = 8;
/// How many recently masked secrets are looked for elsewhere.
pub(super) const MAX_SEEN: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Seen {
    order: VecDeque<Vec<u8>>,
    by_prefix: HashMap<[u8; 4], Vec<Vec<u8>>>,
    bits: Vec<u64>,
}

fn prefix2(b: &[u8]) -> usize {
    (b[0] as usize) << 8 | b[1] as usize
}

fn prefix4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

impl Seen {
    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Remembers `secret` (the oldest is forgotten past [`MAX_SEEN`]).
    pub(super) fn insert(&mut self, secret: &[u8]) {
        if secret.len() < MIN_SEEN {
            return;
        }
        let p = prefix4(secret);
        if self
            .by_prefix
            .get(&p)
            .is_some_and(|v| v.iter().any(|s| s == secret))
        {
            return;
        }
        if self.order.len() == MAX_SEEN {
            if let Some(old) = self.order.pop_front() {
                let op = prefix4(&old);
                if let Some(v) = self.by_prefix.get_mut(&op) {
                    v.retain(|s| *s != old);
                    if v.is_empty() {
                        self.by_prefix.remove(&op);
                    }
                }
                self.rebuild_bits();
            }
        }
        if self.bits.is_empty() {
            self.bits = vec![0; 1024];
        }
        let i = prefix2(secret);
        self.bits[i / 64] |= 1 << (i % 64);
        let v = self.by_prefix.entry(p).or_default();
        v.push(secret.to_vec());
        // Longest first, so a secret that extends another is replaced whole.
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.order.push_back(secret.to_vec());
    }

    fn rebuild_bits(&mut self) {
        self.bits = vec![0; 1024];
        for s in &self.order {
            let i = prefix2(s);
            self.bits[i / 64] |= 1 << (i % 64);
        }
    }

    /// `text` with every remembered secret replaced by `mask(secret)`, and how many were, or
    /// `None` when there was none.
    pub(super) fn replace(
        &self,
        text: &[u8],
        mask: impl Fn(&[u8]) -> String,
    ) -> Option<(Vec<u8>, u64)> {
        if self.order.is_empty() || text.len() < MIN_SEEN {
            return None;
        }
        let mut out: Option<Vec<u8>> = None;
        let mut n = 0;
        let mut last = 0;
        let mut i = 0;
        while i + MIN_SEEN <= text.len() {
            let b = prefix2(&text[i..]);
            if self.bits[b / 64] & (1 << (b % 64)) != 0 {
                if let Some(cands) = self.by_prefix.get(&prefix4(&text[i..])) {
                    if let Some(s) = cands.iter().find(|s| text[i..].starts_with(s)) {
                        let o = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                        o.extend_from_slice(&text[last..i]);
                        o.extend_from_slice(mask(s).as_bytes());
                        i += s.len();
                        last = i;
                        n += 1;
                        continue;
                    }
                }
            }
            i += 1;
        }
        let mut o = out?;
        o.extend_from_slice(&text[last..]);
        Some((o, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_secret_and_forgets_the_oldest() {
        let mut s = Seen::default();
        s.insert(b"short");
        assert!(s.is_empty());
        s.insert(b"abcdefgh");
        s.insert(b"abcdefghij");
        s.insert(b"zzzzzzzz");
        let (out, n) = s
            .replace(b"x abcdefghij abcdefgh zzzzzzzzz", |m| {
                format!("<{}>", m.len())
            })
            .unwrap();
        assert_eq!(out, b"x <10> <8> <8>z");
        assert_eq!(n, 3);
        assert!(s
            .replace(b"nothing here at all", |_| String::new())
            .is_none());
        for i in 0..MAX_SEEN {
            s.insert(format!("secret-{i:04}").as_bytes());
        }
        assert!(s.replace(b"abcdefgh", |_| String::new()).is_none());
        assert!(s.replace(b"secret-0000", |_| String::new()).is_some());
    }
}
