//! Lets the `live` feature build where only libpcap's runtime package is installed.
//!
//! The `pcap` crate links `-lpcap`, which needs the `libpcap.so` link that Debian ships in
//! `libpcap-dev`. The runtime library (`libpcap.so.0.8`, in `libpcap0.8`) is on most systems
//! already, since many tools depend on it; when it is there and the link is not, this script puts a
//! `libpcap.so` link to it in `OUT_DIR` and adds that to the linker's search path, so that
//! `cargo run -- demo` works on a fresh machine without `-dev` packages.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_LIVE").is_none()
        || std::env::var_os("LIBPCAP_LIBDIR").is_some()
        || std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
    ];
    if dirs
        .iter()
        .any(|d| Path::new(d).join("libpcap.so").exists())
    {
        return;
    }
    let Some(runtime) = dirs.iter().find_map(|d| {
        ["libpcap.so.1", "libpcap.so.0.8"]
            .iter()
            .map(|f| Path::new(d).join(f))
            .find(|p| p.exists())
    }) else {
        println!(
            "cargo:warning=libpcap is not installed: `mynah record` needs it \
             (apt-get install libpcap0.8, or libpcap-dev); or build with --no-default-features"
        );
        return;
    };
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let link = Path::new(&out).join("libpcap.so");
    let _ = std::fs::remove_file(&link);
    if std::os::unix::fs::symlink(&runtime, &link).is_ok() {
        println!(
            "cargo:rustc-link-search=native={}",
            Path::new(&out).display()
        );
    }
}
