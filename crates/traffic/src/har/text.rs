//! Small text formats HAR files embed: timestamps, URLs, query strings, cookies, base64.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::model::Nanos;

const NS_PER_SEC: i128 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A cursor over ASCII digits and separators.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Exactly `n` digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let b = self.peek().filter(u8::is_ascii_digit)?;
            v = v * 10 + u32::from(b - b'0');
            self.i += 1;
        }
        Some(v)
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
}

/// Parses an ISO 8601 / RFC 3339 timestamp as HAR writers spell it, to nanoseconds since the epoch.
///
/// Lenient where tools differ: any number of fraction digits (Fiddler writes 7), `Z`, `±hh:mm`,
/// `±hhmm` or `±hh` offsets, no offset at all (taken as UTC), a space instead of `T`, seconds
/// omitted, and a trailing ` UTC`/` GMT`.
pub(crate) fn parse_timestamp(s: &str) -> Option<Nanos> {
    let mut c = Cur {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let year = i64::from(c.digits(4)?);
    c.eat(b'-');
    let month = c.digits(2)?;
    c.eat(b'-');
    let day = c.digits(2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let (mut hour, mut minute, mut second, mut frac) = (0u32, 0u32, 0u32, 0i128);
    if matches!(c.peek(), Some(b'T' | b't' | b' ')) {
        c.i += 1;
        hour = c.digits(2)?;
        c.eat(b':');
        minute = c.digits(2)?;
        if c.eat(b':') || c.peek().is_some_and(|b| b.is_ascii_digit()) {
            second = c.digits(2)?;
            if c.eat(b'.') || c.eat(b',') {
                let mut scale = NS_PER_SEC;
                let mut any = false;
                while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
                    // Digits past nanoseconds are dropped.
                    scale /= 10;
                    frac += i128::from(b - b'0') * scale;
                    c.i += 1;
                    any = true;
                }
                if !any {
                    return None;
                }
            }
        }
    }
    // A leap second (60) is accepted and lands on the next second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    c.skip_spaces();
    let offset_secs: i64 = match c.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            c.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let oh = c.digits(2)?;
            c.eat(b':');
            let om = if c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.digits(2)?
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        Some(_) => {
            let rest = &c.s[c.i..];
            if rest.eq_ignore_ascii_case(b"UTC") || rest.eq_ignore_ascii_case(b"GMT") {
                c.i = c.s.len();
                0
            } else {
                return None;
            }
        }
    };
    c.skip_spaces();
    if c.i != c.s.len() {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_secs;
    let ns = i128::from(secs) * NS_PER_SEC + frac;
    Nanos::try_from(ns).ok()
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with 3, 6 or 9 fraction digits (the fewest
/// that keep every nanosecond).
pub(crate) fn format_timestamp(ns: Nanos) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sub = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (tod / 3600, tod % 3600 / 60, tod % 60);
    let frac = if sub % 1_000_000 == 0 {
        format!("{:03}", sub / 1_000_000)
    } else if sub % 1_000 == 0 {
        format!("{:06}", sub / 1_000)
    } else {
        format!("{sub:09}")
    };
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac}Z")
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, or the `06-Nov-1994` cookie spelling) for
/// cookie `expires`.
pub(crate) fn parse_http_date(s: &str) -> Option<Nanos> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let s = s.trim();
    let s = s.split_once(',').map_or(s, |(_, rest)| rest).trim();
    let mut parts = s.split([' ', '-']).filter(|p| !p.is_empty());
    let day: u32 = parts.next()?.parse().ok()?;
    let mon = parts.next()?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| mon.starts_with(m))? as u32 + 1;
    let mut year: i64 = parts.next()?.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let time = parts.next()?;
    let mut hms = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1000..=9999).contains(&year) {
        return None;
    }
    parse_timestamp(&format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{mi:02}:{se:02}Z"
    ))
}

/// A URL split the way HAR needs it. Only `scheme://authority/path?query#fragment` URLs split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    pub scheme: &'a str,
    /// Host and port as written (userinfo removed).
    pub authority: &'a str,
    /// The host without brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Path and query, without the fragment; may be empty.
    pub path_query: &'a str,
}

impl<'a> UrlParts<'a> {
    pub fn parse(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return None;
        }
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = split_host_port(authority);
        let path_query = tail.split('#').next().unwrap_or(tail);
        Some(UrlParts {
            scheme,
            authority,
            host,
            port,
            path_query,
        })
    }

    /// The explicit port, else the scheme's default.
    pub fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(self.scheme))
    }

    /// The request target in origin-form (`/path?query`).
    pub fn origin_form(&self) -> String {
        if self.path_query.starts_with('/') {
            self.path_query.to_string()
        } else {
            format!("/{}", self.path_query)
        }
    }

    pub fn query(&self) -> Option<&'a str> {
        self.path_query.split_once('?').map(|(_, q)| q)
    }
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, `host`; a bad port is treated as part of the host.
pub(crate) fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address, no port.
        Some((h, _)) if h.contains(':') => (authority, None),
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `a=1&b&c=3` as (name, value) pairs, verbatim (not percent-decoded).
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Percent-encodes for `application/x-www-form-urlencoded` (space as `+`).
pub(crate) fn form_urlencode(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// The value of parameter `name` in a header value like `multipart/form-data; boundary=x`.
pub(crate) fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// Standard base64, lenient about padding and (MIME-style) line breaks; URL-safe as a fallback.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const CFG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CFG);
    const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CFG);
    let s = s.trim();
    let cleaned: Cow<'_, str> = if s.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(s.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(s)
    };
    LENIENT
        .decode(cleaned.as_bytes())
        .or_else(|_| LENIENT_URL.decode(cleaned.as_bytes()))
        .ok()
}

pub(crate) fn encode_base64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_the_spellings_seen() {
        let base = parse_timestamp("2010-06-06T07:40:21.181Z").unwrap();
        assert_eq!(base, 1_275_810_021_181_000_000);
        for s in [
            "2010-06-06T09:40:21.181+02:00",
            "2010-06-06T09:40:21.181+0200",
            "2010-06-06T09:40:21.181+02",
            "2010-06-06T02:40:21.181-05:00",
            "2010-06-06T07:40:21.181",
            "2010-06-06 07:40:21.181 UTC",
            "2010-06-06T07:40:21.1810000Z",
            "  2010-06-06T07:40:21.181z ",
        ] {
            assert_eq!(parse_timestamp(s), Some(base), "{s}");
        }
        assert_eq!(
            parse_timestamp("2023-08-29T13:03:20.195591+00:00"),
            Some(1_693_314_200_195_591_000)
        );
        assert_eq!(
            parse_timestamp("2016-02-03T18:33:49.6474346+01:00"),
            Some(1_454_520_829_647_434_600)
        );
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00.000000001234Z"),
            Some(1)
        );
        assert_eq!(
            parse_timestamp("2010-06-06"),
            Some(1_275_782_400_000_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2010-13-01T00:00:00Z",
            "2010-02-30T00:00:00Z",
            "2010-06-06T25:00:00Z",
            "2010-06-06T07:40:21.Z",
            "2010-06-06T07:40:21Z junk",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_format_and_round_trip() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1_275_810_021_181_000_000),
            "2010-06-06T07:40:21.181Z"
        );
        assert_eq!(format_timestamp(1_500), "1970-01-01T00:00:00.000001500Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999999999Z");
        for ns in [
            0,
            1,
            -1,
            951_782_400_123_456_000,
            1_693_314_200_195_591_007,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(parse_timestamp(&format_timestamp(ns)), Some(ns), "{ns}");
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_timestamp("1994-11-06T08:49:37Z").unwrap();
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun, 06-Nov-1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("never"), None);
    }

    #[test]
    fn urls_split() {
        let u = UrlParts::parse("https://user@[2001:db8::1]:8443/a/b?x=1#frag").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.port, Some(8443));
        assert_eq!(u.path_query, "/a/b?x=1");
        assert_eq!(u.query(), Some("x=1"));
        let u = UrlParts::parse("http://example.com?q").unwrap();
        assert_eq!(u.origin_form(), "/?q");
        assert_eq!(u.effective_port(), Some(80));
        let u = UrlParts::parse("wss://h").unwrap();
        assert_eq!(
            (u.origin_form().as_str(), u.effective_port()),
            ("/", Some(443))
        );
        assert!(UrlParts::parse("/just/a/path").is_none());
        assert!(UrlParts::parse("a b://x").is_none());
        assert_eq!(split_host_port("h:x"), ("h:x", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }

    #[test]
    fn form_encoding_and_params() {
        let mut s = String::new();
        form_urlencode(&mut s, "a b&c=d/é");
        assert_eq!(s, "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            header_param("multipart/form-data; boundary=\"xyz\"", "BOUNDARY"),
            Some("xyz")
        );
        assert_eq!(
            query_pairs("a=1&&b&c=").collect::<Vec<_>>(),
            [("a", "1"), ("b", ""), ("c", "")]
        );
    }

    #[test]
    fn base64_leniency() {
        assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVs\r\nbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("-_8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_base64("not base64!"), None);
    }
}
