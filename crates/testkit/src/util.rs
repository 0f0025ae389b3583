//! Small helpers shared by the servers.

use std::time::{Duration, Instant};

/// How much earlier than the deadline the coarse tokio timer is asked to
/// wake up; the rest is slept on a blocking thread with `thread::sleep`,
/// which on Linux is accurate to some tens of microseconds.
const COARSE_MARGIN: Duration = Duration::from_millis(2);

/// The last stretch of a precise sleep is spun instead of slept: a sleeping
/// thread wakes some tens of µs late even with no timer slack, a spinning one
/// within a µs. Long enough to cover the wake-up, short enough to cost little
/// CPU (at most this much per delayed request).
const SPIN: Duration = Duration::from_micros(150);

/// Sleeps until `deadline`, precisely: never early, and late only by the
/// time it takes the server's task to be polled again after the deadline
/// (tens of µs on an idle box; more when the CPU is saturated).
///
/// tokio's timer has a 1 ms granularity and rounds up, so a plain
/// `tokio::time::sleep_until` is 0..~1 ms late; here the timer wakes us up to
/// ~2 ms early, then a thread of tokio's blocking pool sleeps (with the
/// kernel's timer slack set to 1 ns, instead of the default 50 µs) until
/// [`SPIN`] before the deadline and spins the rest. The `/accuracy` route's
/// known percentiles (bench/run_accuracy.sh) depend on it.
pub(crate) async fn sleep_until_precise(deadline: Instant) {
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    if deadline - now > COARSE_MARGIN {
        tokio::time::sleep_until((deadline - COARSE_MARGIN).into()).await;
    }
    let now = Instant::now();
    if deadline > now {
        // If the blocking pool is gone (runtime shutting down) just return.
        let _ = tokio::task::spawn_blocking(move || {
            tight_timer_slack();
            let now = Instant::now();
            if deadline > now + SPIN {
                std::thread::sleep(deadline - now - SPIN);
            }
            while Instant::now() < deadline {
                std::hint::spin_loop();
            }
        })
        .await;
    }
}

/// Sets this thread's timer slack to 1 ns (once per thread), so its sleeps
/// end when asked rather than up to 50 µs later.
fn tight_timer_slack() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.get() {
            done.set(true);
            #[cfg(target_os = "linux")]
            // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only
            // changes the calling thread's timer slack.
            unsafe {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
            }
        }
    });
}

/// Decodes `application/x-www-form-urlencoded` percent escapes (and `+`).
/// Invalid escapes are kept literally; invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A random lowercase hex string of `bytes` random bytes.
pub(crate) fn random_hex(rng: &mut fastrand::Rng, bytes: usize) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let _ = write!(s, "{:02x}", rng.u8(..));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        assert_eq!(percent_decode("a+b%20c%2"), "a b c%2");
        assert_eq!(percent_decode("%41%zz%"), "A%zz%");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }
}
