mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use common::*;
use mynah_testkit::hostile::{self, Hostile};

const REQ: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

fn read_all(s: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).map(|_| out)
}

#[test]
fn reset_sends_rst_after_the_request() {
    let h = hostile::start(Hostile::Reset).unwrap();
    assert!(h.url().starts_with("http://127.0.0.1:"));
    for _ in 0..5 {
        let mut s = connect(h.addr);
        s.write_all(REQ).unwrap();
        let err = read_all(&mut s).expect_err("must be reset");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    }
    assert_eq!(h.accepted(), 5);
    assert_eq!(h.requests(), 5);
}

#[test]
fn garbage_answers_nonsense_and_closes() {
    let h = hostile::start(Hostile::Garbage).unwrap();
    let addr = h.addr;
    // Many concurrent connections.
    let threads: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                s.write_all(REQ).unwrap();
                // A keep-alive client may try a second request: it must not hang.
                let _ = s.write_all(REQ);
                read_all(&mut s).unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), b"HTTP/9 banana\r\n\r\nxx");
    }
    assert_eq!(h.accepted(), 40);
}

#[test]
fn slow_answers_after_the_delay_and_keeps_alive() {
    let h = hostile::start(Hostile::Slow(Duration::from_millis(300))).unwrap();
    let mut c = Conn::new(h.addr);
    for _ in 0..2 {
        let t = Instant::now();
        let r = c.send("GET", "/", &[], b"").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }
    // A POST body is consumed, not mistaken for the next request.
    let r = c
        .send("POST", "/x", &[], b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(h.accepted(), 1);
    assert_eq!(h.requests(), 3);
}

#[test]
fn slow_times_out_a_client_with_a_deadline() {
    let h = hostile::start(Hostile::Slow(Duration::from_secs(30))).unwrap();
    let mut s = connect(h.addr);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(REQ).unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).expect_err("no answer yet");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    // Shutdown must not wait for the 30 s.
    let t = Instant::now();
    drop(h);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn endless_body_never_ends() {
    let h = hostile::start(Hostile::EndlessBody).unwrap();
    let mut s = connect(h.addr);
    s.write_all(REQ).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    let mut head = Vec::new();
    while total < 4 * 1024 * 1024 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the body ended after {total} bytes");
        if head.len() < 200 {
            head.extend_from_slice(&buf[..n.min(200)]);
        }
        total += n;
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    // Shutdown stops the writer: the client sees the end of the stream.
    drop(h);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => continue,
            Err(e) => break Err(e),
        }
    };
    match end {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn close_mid_response_truncates_the_body() {
    let h = hostile::start(Hostile::CloseMidResponse).unwrap();
    for _ in 0..3 {
        let mut s = connect(h.addr);
        s.write_all(REQ).unwrap();
        let out = read_all(&mut s).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"));
        assert!(head.contains("Content-Length: 1000"));
        assert_eq!(body, "0123456789");
    }
    assert_eq!(h.accepted(), 3);
}

#[test]
fn silent_accepts_and_never_answers() {
    let h = hostile::start(Hostile::Silent).unwrap();
    let mut conns: Vec<_> = (0..10).map(|_| connect(h.addr)).collect();
    for s in &mut conns {
        s.write_all(REQ).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    for s in &mut conns {
        let mut buf = [0u8; 16];
        let err = s.read(&mut buf).expect_err("silent");
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );
    }
    assert_eq!(h.accepted(), 10);
    assert_eq!(h.requests(), 0);
    let addr = h.addr;
    h.shutdown();
    // After shutdown the sockets are closed and the port refuses.
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
    }
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}
