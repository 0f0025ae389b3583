mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::*;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) -> (Killed, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mynah-testserver"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mynah-testserver");
    let stdout = child.stdout.take().unwrap();
    let guard = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .parse()
        .unwrap();
    (guard, addr)
}

#[test]
fn app_command_prints_its_url_and_serves() {
    let (_child, addr) = run(&["app", "--listen", "127.0.0.1:0", "--threads", "1"]);
    assert_eq!(get(addr, "/").text().trim(), "home");
}

#[test]
fn hostile_command_serves_the_mode() {
    let (_child, addr) = run(&["hostile", "garbage"]);
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"HTTP/9 banana\r\n\r\nxx");
}

#[test]
fn bad_arguments_exit_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_mynah-testserver"))
        .args(["hostile", "banana"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
