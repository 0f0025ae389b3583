//! A small per-user cookie jar.
//!
//! Hand-written on purpose: `cookie_store` pulls in `url`, `publicsuffix` and `time` for
//! features a load generator does not need (public-suffix lists, persistence, full URL
//! parsing). What a virtual user needs is what this does: keep `name=value` per host (or per
//! `Domain`), drop cookies on `Max-Age<=0` or an `Expires` in the past, send them back on
//! matching paths, and keep `Secure` cookies to https. An empty jar allocates nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::HeaderValue;

#[derive(Debug)]
struct Cookie {
    name: Box<str>,
    value: Box<str>,
    /// The request host for host-only cookies, else the `Domain` attribute (lowercase, no dot).
    domain: Box<str>,
    host_only: bool,
    path: Box<str>,
    secure: bool,
    expires: Option<SystemTime>,
}

impl Cookie {
    fn matches(&self, https: bool, host: &str, path: &str) -> bool {
        (https || !self.secure) && self.domain_matches(host) && path_matches(&self.path, path)
    }

    fn domain_matches(&self, host: &str) -> bool {
        let d = &*self.domain;
        if host.eq_ignore_ascii_case(d) {
            return true;
        }
        !self.host_only && is_subdomain(host, d)
    }
}

/// `host` ends with `.domain` (case-insensitive).
fn is_subdomain(host: &str, domain: &str) -> bool {
    host.len() > domain.len()
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
}

/// RFC 6265 5.1.4 path-match.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    if cookie_path == request_path {
        return true;
    }
    request_path.starts_with(cookie_path)
        && (cookie_path.ends_with('/')
            || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/'))
}

/// RFC 6265 5.1.4 default-path: the request path up to (not including) its last `/`.
fn default_path(request_path: &str) -> &str {
    if !request_path.starts_with('/') {
        return "/";
    }
    match request_path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &request_path[..i],
    }
}

/// The cookies of one virtual user.
#[derive(Debug, Default)]
pub(crate) struct Jar {
    cookies: Vec<Cookie>,
}

impl Jar {
    /// Stores every `Set-Cookie` of a response to `https`/`host`/`path`, and appends the
    /// `(name, value)` of each to `set`.
    pub(crate) fn store(
        &mut self,
        https: bool,
        host: &str,
        path: &str,
        headers: &super::ResponseHeaders,
        set: &mut Vec<(String, String)>,
    ) {
        for value in headers.get_all("set-cookie") {
            let Ok(text) = std::str::from_utf8(value) else {
                continue;
            };
            if let Some(cookie) = parse(text, https, host, path) {
                set.push((cookie.name.to_string(), cookie.value.to_string()));
                self.put(cookie);
            }
        }
    }

    fn put(&mut self, cookie: Cookie) {
        let expired = cookie.expires.is_some_and(|at| at <= SystemTime::now());
        let existing = self.cookies.iter().position(|c| {
            c.name == cookie.name
                && c.domain.eq_ignore_ascii_case(&cookie.domain)
                && c.host_only == cookie.host_only
                && c.path == cookie.path
        });
        match (existing, expired) {
            (Some(i), true) => {
                self.cookies.remove(i);
            }
            (Some(i), false) => self.cookies[i] = cookie,
            (None, true) => {}
            (None, false) => self.cookies.push(cookie),
        }
    }

    /// The `Cookie` header for a request, or `None` when no cookie matches. Expired cookies are
    /// dropped on the way.
    pub(crate) fn header(&mut self, https: bool, host: &str, path: &str) -> Option<HeaderValue> {
        if self.cookies.is_empty() {
            return None;
        }
        if self.cookies.iter().any(|c| c.expires.is_some()) {
            let now = SystemTime::now();
            self.cookies.retain(|c| c.expires.is_none_or(|at| at > now));
        }
        let mut out = String::new();
        for c in self.cookies.iter().filter(|c| c.matches(https, host, path)) {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&c.name);
            out.push('=');
            out.push_str(&c.value);
        }
        if out.is_empty() {
            return None;
        }
        HeaderValue::from_str(&out).ok()
    }

    /// The value of the first live cookie called `name`, whatever its host.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let now = SystemTime::now();
        self.cookies
            .iter()
            .find(|c| &*c.name == name && c.expires.is_none_or(|at| at > now))
            .map(|c| &*c.value)
    }
}

/// Parses one `Set-Cookie` value received from `host` for a request to `path`. `None` for a
/// cookie to ignore (no `=`, empty name, foreign `Domain`, `Secure` over http).
fn parse(text: &str, https: bool, host: &str, path: &str) -> Option<Cookie> {
    let mut parts = text.split(';');
    let pair = parts.next()?;
    let (name, value) = pair.split_once('=')?;
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() {
        return None;
    }
    let mut max_age: Option<i64> = None;
    let mut expires: Option<SystemTime> = None;
    let mut cookie_path: Option<&str> = None;
    let mut domain: Option<&str> = None;
    let mut secure = false;
    for attr in parts {
        let (key, val) = match attr.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (attr.trim(), ""),
        };
        if key.eq_ignore_ascii_case("max-age") {
            let digits = val.strip_prefix('-').unwrap_or(val);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                // Saturate absurd values instead of failing.
                max_age = Some(val.parse::<i64>().unwrap_or(if val.starts_with('-') {
                    i64::MIN
                } else {
                    i64::MAX
                }));
            }
        } else if key.eq_ignore_ascii_case("expires") {
            if let Some(at) = parse_date(val) {
                expires = Some(at);
            }
        } else if key.eq_ignore_ascii_case("path") {
            cookie_path = val.starts_with('/').then_some(val);
        } else if key.eq_ignore_ascii_case("domain") {
            let d = val.strip_prefix('.').unwrap_or(val);
            domain = (!d.is_empty()).then_some(d);
        } else if key.eq_ignore_ascii_case("secure") {
            secure = true;
        }
    }
    if secure && !https {
        return None;
    }
    let (domain, host_only) = match domain {
        // No public-suffix check: a load test talks to the hosts its author chose.
        Some(d) if host.eq_ignore_ascii_case(d) || is_subdomain(host, d) => {
            (d.to_ascii_lowercase(), false)
        }
        Some(_) => return None,
        None => (host.to_ascii_lowercase(), true),
    };
    // Max-Age wins over Expires (RFC 6265 5.3 step 3).
    let expires = match max_age {
        Some(secs) if secs <= 0 => Some(UNIX_EPOCH),
        Some(secs) => SystemTime::now().checked_add(Duration::from_secs(secs.unsigned_abs())),
        None => expires,
    };
    Some(Cookie {
        name: name.into(),
        value: value.into(),
        domain: domain.into(),
        host_only,
        path: cookie_path.unwrap_or_else(|| default_path(path)).into(),
        secure,
        expires,
    })
}

/// RFC 6265 5.1.1 cookie-date (accepts IMF-fixdate, RFC 850 and asctime forms).
pub(crate) fn parse_date(text: &str) -> Option<SystemTime> {
    let mut time: Option<(u64, u64, u64)> = None;
    let mut day: Option<u64> = None;
    let mut month: Option<u64> = None;
    let mut year: Option<u64> = None;
    let is_delimiter = |c: char| !(c.is_ascii_alphanumeric() || c == ':');
    for token in text.split(is_delimiter).filter(|t| !t.is_empty()) {
        if time.is_none() {
            if let Some(t) = parse_time(token) {
                time = Some(t);
                continue;
            }
        }
        let digits = token.bytes().take_while(u8::is_ascii_digit).count();
        if day.is_none() && (1..=2).contains(&digits) {
            day = token[..digits].parse().ok();
            continue;
        }
        if month.is_none() && token.len() >= 3 {
            const MONTHS: [&str; 12] = [
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ];
            if let Some(m) = MONTHS
                .iter()
                .position(|m| token[..3].eq_ignore_ascii_case(m))
            {
                month = Some(m as u64 + 1);
                continue;
            }
        }
        if year.is_none() && (2..=4).contains(&digits) {
            year = token[..digits].parse().ok();
            continue;
        }
    }
    let (h, mi, s) = time?;
    let (day, month, mut year) = (day?, month?, year?);
    if (70..=99).contains(&year) {
        year += 1900;
    } else if year <= 69 {
        year += 2000;
    }
    if !(1..=31).contains(&day) || year < 1601 || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + s;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn parse_time(token: &str) -> Option<(u64, u64, u64)> {
    let mut it = token.split(':');
    let (h, m, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        let digits = p.bytes().take_while(u8::is_ascii_digit).count();
        if (1..=2).contains(&digits) {
            p[..digits].parse().ok()
        } else {
            None
        }
    };
    Some((num(h)?, num(m)?, num(s)?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm); dates
/// before the epoch clamp to 0 (they are in the past either way).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = year as i64 - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderMap, SET_COOKIE};

    fn jar_with(
        headers: &[&str],
        https: bool,
        host: &str,
        path: &str,
    ) -> (Jar, Vec<(String, String)>) {
        let mut map = HeaderMap::new();
        for h in headers {
            map.append(SET_COOKIE, HeaderValue::from_str(h).unwrap());
        }
        let mut jar = Jar::default();
        let mut set = Vec::new();
        jar.store(https, host, path, &map.into(), &mut set);
        (jar, set)
    }

    #[test]
    fn dates() {
        let t = parse_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_445_412_480
        );
        let t = parse_date("Sunday, 06-Nov-94 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        let t = parse_date("Sun Nov  6 08:49:37 1994").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        assert_eq!(
            parse_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert!(parse_date("garbage").is_none());
        assert!(parse_date("").is_none());
    }

    #[test]
    fn paths_and_domains() {
        let (mut jar, set) = jar_with(
            &[
                "a=1; Path=/api",
                "b=2",
                "c=3; Domain=.example.com; Path=/",
                "d=4; Secure",
                "e=5; Domain=other.org",
            ],
            true,
            "www.example.com",
            "/api/users/7",
        );
        assert_eq!(set.len(), 4);
        let h = |jar: &mut Jar, https, host, path| {
            jar.header(https, host, path)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            h(&mut jar, true, "www.example.com", "/api/users/8").as_deref(),
            Some("a=1; b=2; c=3; d=4")
        );
        assert_eq!(
            h(&mut jar, false, "www.example.com", "/api").as_deref(),
            Some("a=1; c=3")
        );
        assert_eq!(
            h(&mut jar, false, "www.example.com", "/apix").as_deref(),
            Some("c=3")
        );
        assert_eq!(
            h(&mut jar, false, "example.com", "/api/x").as_deref(),
            Some("c=3")
        );
        assert_eq!(h(&mut jar, false, "badexample.com", "/api/x"), None);
        assert_eq!(jar.get("b"), Some("2"));
        assert_eq!(jar.get("e"), None);
    }

    #[test]
    fn deletion_and_replacement() {
        let (mut jar, _) = jar_with(&["s=1; Path=/", "t=2; Path=/"], false, "h", "/");
        let mut map = HeaderMap::new();
        map.append(
            SET_COOKIE,
            HeaderValue::from_static("s=; Max-Age=0; Path=/"),
        );
        map.append(
            SET_COOKIE,
            HeaderValue::from_static("t=3; Path=/; Expires=Wed, 21 Oct 2099 07:28:00 GMT"),
        );
        let mut set = Vec::new();
        jar.store(false, "h", "/", &map.clone().into(), &mut set);
        assert_eq!(jar.header(false, "h", "/").unwrap(), "t=3");
        map.clear();
        map.append(
            SET_COOKIE,
            HeaderValue::from_static("t=x; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        jar.store(false, "h", "/", &map.into(), &mut set);
        assert!(jar.header(false, "h", "/").is_none());
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn junk_is_ignored() {
        let (jar, set) = jar_with(
            &["novalue", "=x", "; ;", "ok=1; Max-Age=abc"],
            false,
            "h",
            "/",
        );
        assert_eq!(set, vec![("ok".to_string(), "1".to_string())]);
        assert_eq!(jar.get("ok"), Some("1"));
    }
}
