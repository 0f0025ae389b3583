//! A response's headers, kept as the bytes they arrived in.
//!
//! Building an `http::HeaderMap` for every response (a name lookup, a hash and an insert per
//! header, three allocations, and their frees) was the largest single cost of a fast load loop
//! after the kernel's: most responses are only timed and counted, and the few headers the engine
//! itself reads (framing, `Set-Cookie`, `Location`) are found by a scan of five to ten names.
//! So an HTTP/1.1 response keeps its head's bytes and where each name and value lies in them;
//! lookups compare names case-insensitively, and [`ResponseHeaders::to_header_map`] builds a
//! map for whoever wants one. HTTP/2 responses arrive from hyper as a map and stay one.

use bytes::Bytes;

/// Where one header's name and value lie in the head (byte offsets; a head is at most
/// `h1::MAX_HEAD` bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub name: (u32, u32),
    pub value: (u32, u32),
}

/// The bytes of `range` in `head`; empty if the range does not fit (it always does when the
/// spans come from the parser, but a lookup must never panic).
fn part(head: &[u8], range: (u32, u32)) -> &[u8] {
    head.get(range.0 as usize..range.1 as usize)
        .unwrap_or_default()
}

/// A response's headers, in the order received. Names compare case-insensitively; an
/// HTTP/1.1 response keeps its names' case as sent, an HTTP/2 one has them lowercase.
#[derive(Clone, Default)]
pub struct ResponseHeaders {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// The response head's bytes (already checked: names are tokens, values have no control
    /// bytes) and the headers' places in it.
    Raw {
        head: Bytes,
        spans: Vec<Span>,
    },
    Map(http::HeaderMap),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Raw {
            head: Bytes::new(),
            spans: Vec::new(),
        }
    }
}

impl ResponseHeaders {
    /// Headers of a parsed HTTP/1.x head; `spans` must lie inside `head` and have been checked
    /// by the parser.
    pub(crate) fn raw(head: Bytes, spans: Vec<Span>) -> ResponseHeaders {
        ResponseHeaders {
            repr: Repr::Raw { head, spans },
        }
    }

    /// Number of header lines (a repeated name counts each time).
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Raw { spans, .. } => spans.len(),
            Repr::Map(m) => m.len(),
        }
    }

    /// Whether there is no header at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `(name, value)`, in the order received.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: match &self.repr {
                Repr::Raw { head, spans } => IterRepr::Raw(head, spans.iter()),
                Repr::Map(m) => IterRepr::Map(m.iter()),
            },
        }
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// The first value of `name` as text, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name` (any case), in order.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> GetAll<'a, 'n> {
        GetAll {
            name: name.as_bytes(),
            inner: self.iter().inner,
        }
    }

    /// Whether `name` (any case) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The headers as an `http::HeaderMap` (names lowercased).
    pub fn to_header_map(&self) -> http::HeaderMap {
        match &self.repr {
            Repr::Map(m) => m.clone(),
            Repr::Raw { head, spans } => {
                let mut map = http::HeaderMap::with_capacity(spans.len());
                for s in spans {
                    let name = part(head, s.name);
                    let value = head.slice_ref(part(head, s.value));
                    // Both were checked by the parser; skip rather than panic regardless.
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name),
                        http::HeaderValue::from_maybe_shared(value),
                    ) {
                        map.append(name, value);
                    }
                }
                map
            }
        }
    }
}

impl From<http::HeaderMap> for ResponseHeaders {
    fn from(map: http::HeaderMap) -> Self {
        ResponseHeaders {
            repr: Repr::Map(map),
        }
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for ResponseHeaders {
    /// Headers from `(name, value)` pairs (for tests and callers building a response by hand);
    /// pairs that are not a valid header are skipped.
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        let mut map = http::HeaderMap::new();
        for (n, v) in pairs {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(n.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                map.append(n, v);
            }
        }
        map.into()
    }
}

impl std::fmt::Debug for ResponseHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

/// Iterator over [`ResponseHeaders`]: `(name, value)` pairs.
pub struct Iter<'a> {
    inner: IterRepr<'a>,
}

enum IterRepr<'a> {
    Raw(&'a Bytes, std::slice::Iter<'a, Span>),
    Map(http::header::Iter<'a, http::HeaderValue>),
}

/// Iterator over the values of one name: see [`ResponseHeaders::get_all`]. Names are compared
/// as bytes (no UTF-8 check per header: this runs for every response).
pub struct GetAll<'a, 'n> {
    name: &'n [u8],
    inner: IterRepr<'a>,
}

impl<'a> Iterator for GetAll<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterRepr::Raw(head, spans) => {
                let head: &'a [u8] = head;
                spans
                    .find(|s| part(head, s.name).eq_ignore_ascii_case(self.name))
                    .map(|s| part(head, s.value))
            }
            IterRepr::Map(m) => m
                .find(|(n, _)| n.as_str().as_bytes().eq_ignore_ascii_case(self.name))
                .map(|(_, v)| v.as_bytes()),
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterRepr::Raw(head, spans) => {
                let s = spans.next()?;
                let head: &'a [u8] = head;
                let name = part(head, s.name);
                // Names were checked to be tokens (ASCII) by the parser.
                let name = std::str::from_utf8(name).unwrap_or("");
                Some((name, part(head, s.value)))
            }
            IterRepr::Map(m) => m.next().map(|(n, v)| (n.as_str(), v.as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> ResponseHeaders {
        let head = Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Id: 7\r\nset-cookie: b=2\r\n\r\n",
        );
        let find = |s: &str| {
            let i = head
                .windows(s.len())
                .position(|w| w == s.as_bytes())
                .unwrap() as u32;
            (i, i + s.len() as u32)
        };
        let spans = vec![
            Span {
                name: find("Set-Cookie"),
                value: find("a=1"),
            },
            Span {
                name: find("X-Id"),
                value: find("7"),
            },
            Span {
                name: find("set-cookie"),
                value: find("b=2"),
            },
        ];
        ResponseHeaders::raw(head, spans)
    }

    #[test]
    fn lookups_ignore_case_and_keep_order() {
        let h = raw();
        assert_eq!(h.len(), 3);
        assert_eq!(h.get("x-id"), Some(&b"7"[..]));
        assert_eq!(h.get_str("X-ID"), Some("7"));
        let cookies: Vec<&[u8]> = h.get_all("SET-COOKIE").collect();
        assert_eq!(cookies, vec![&b"a=1"[..], &b"b=2"[..]]);
        assert!(!h.contains("location"));
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Set-Cookie", "X-Id", "set-cookie"]);
    }

    #[test]
    fn the_map_view_matches() {
        let map = raw().to_header_map();
        assert_eq!(map.len(), 3);
        assert_eq!(map.get_all("set-cookie").iter().count(), 2);
        let back = ResponseHeaders::from(map);
        assert_eq!(back.get("X-Id"), Some(&b"7"[..]));
        let built: ResponseHeaders = [("X-A", "1"), ("bad name", "x")].into_iter().collect();
        assert_eq!((built.len(), built.get("x-a")), (1, Some(&b"1"[..])));
    }
}
