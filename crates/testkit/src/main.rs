//! `mynah-testserver`: runs a mynah-testkit server for benchmarks.
//!
//! ```text
//! mynah-testserver app [--listen 127.0.0.1:8080] [--threads N] [--variant N]
//! mynah-testserver hostile <reset|garbage|slow[:ms]|endless-body|close-mid-response|silent> [--listen ADDR]
//! ```
//!
//! Prints the bound URL as the first stdout line, then runs until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use mynah_testkit::{app, hostile};

const USAGE: &str = "usage:
  mynah-testserver app [--listen ADDR] [--threads N] [--variant N]
  mynah-testserver hostile <MODE> [--listen ADDR]
MODE: reset | garbage | slow | slow:<ms> | endless-body | close-mid-response | silent
ADDR defaults to 127.0.0.1:0 (a free port); the bound URL is printed first.
--variant 1 makes /catalog/{id} differ on purpose (see the app module docs); default 0.";

enum Cmd {
    App {
        listen: Option<SocketAddr>,
        threads: Option<usize>,
        variant: u8,
    },
    Hostile {
        mode: hostile::Hostile,
        listen: Option<SocketAddr>,
    },
}

fn parse(args: &[String]) -> Result<Cmd, String> {
    let mut it = args.iter();
    let kind = it.next().ok_or("missing command")?;
    let mut listen = None;
    let mut threads = None;
    let mut variant = 0u8;
    let mut mode = None;
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{name} needs a value"))
        };
        match flag {
            "--listen" | "-l" => {
                let v = value("--listen")?;
                listen = Some(v.parse().map_err(|e| format!("bad --listen {v:?}: {e}"))?);
            }
            "--threads" if kind == "app" => {
                let v = value("--threads")?;
                threads = Some(v.parse().map_err(|e| format!("bad --threads {v:?}: {e}"))?);
            }
            "--variant" if kind == "app" => {
                let v = value("--variant")?;
                variant = v.parse().map_err(|e| format!("bad --variant {v:?}: {e}"))?;
            }
            m if kind == "hostile" && mode.is_none() && !m.starts_with('-') => {
                mode = Some(hostile::Hostile::parse(m).ok_or(format!("unknown mode {m:?}"))?);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    match kind.as_str() {
        "app" => Ok(Cmd::App {
            listen,
            threads,
            variant,
        }),
        "hostile" => Ok(Cmd::Hostile {
            mode: mode.ok_or("hostile needs a mode")?,
            listen,
        }),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cmd = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mynah-testserver: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    // Keep the handle alive for the life of the process.
    let (url, _guard): (String, Box<dyn std::any::Any>) = match cmd {
        Cmd::App {
            listen,
            threads,
            variant,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let config = app::AppConfig {
                addr: listen,
                worker_threads: threads,
                variant,
                ..Default::default()
            };
            match app::start(config) {
                Ok(h) => (h.url(), Box::new(h)),
                Err(e) => {
                    eprintln!("mynah-testserver: cannot start app: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Cmd::Hostile { mode, listen } => match hostile::start_on(mode, listen.unwrap_or(any)) {
            Ok(h) => (h.url(), Box::new(h)),
            Err(e) => {
                eprintln!("mynah-testserver: cannot start hostile server: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{url}");
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}
