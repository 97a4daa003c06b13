//! `cargo xtask fuzz`: the property tests of every parser of cross-domain
//! data, run with many more cases than `cargo xtask test` gives them
//! (`PROPTEST_CASES`, 100,000 by default): xenstore replies and watch
//! events (`rt_xen::proto::xenstore`), the xenbus handshake's keys and a
//! backend's state, the control keys, the console ring, netif responses
//! (`rt_xen::dev::net`), blkif responses (`rt_xen::dev::blk`), the shared
//! ring, and `image.toml` (`xtask::manifest`).
//!
//! Coverage-guided fuzzers (cargo-fuzz, cargo-afl) want a nightly compiler
//! or an AFL++ toolchain built for them: this machine has stable Rust
//! only, so the property tests are the fuzzers. A failing case is shrunk
//! and written by proptest into the crate's `proptest-regressions/` files,
//! which every later `cargo test` replays first: commit them with the fix,
//! and the crash stays a regression test.
use std::time::Instant;

use anyhow::{Result, bail};

/// The suites: (crate, test-name filters, what they parse).
const SUITES: &[(&str, &[&str], &str)] = &[
    (
        "rt-xen",
        &["proto::"],
        "xenstore replies, xenbus keys and states, control keys, console and shared rings",
    ),
    (
        "rt-xen",
        &["dev::net::"],
        "netif responses (rx, tx, GSO, checksums)",
    ),
    ("rt-xen", &["dev::blk::"], "blkif responses"),
    ("xtask", &["manifest::"], "image.toml"),
];

/// Runs every suite with `cases` cases per property; prints each suite's
/// seconds and result, fails if one failed.
pub fn run(cases: u32) -> Result<()> {
    println!("== cargo xtask fuzz: {cases} cases per property test (PROPTEST_CASES)");
    let mut failed = Vec::new();
    for (krate, filters, what) in SUITES {
        let t = Instant::now();
        let st =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(crate::image::root())
                .args(["test", "--release", "-q", "-p", krate, "--lib", "--"])
                .args(*filters)
                .env("PROPTEST_CASES", cases.to_string())
                .status()?;
        let ok = st.success();
        println!(
            "{:<8} {:<14} {:>8.1} s  {}  ({what})",
            krate,
            filters.join(","),
            t.elapsed().as_secs_f64(),
            if ok { "PASS" } else { "FAIL" }
        );
        if !ok {
            failed.push(format!("{krate} {}", filters.join(",")));
        }
    }
    if !failed.is_empty() {
        bail!(
            "failing: {} (the shrunk cases are in proptest-regressions/: keep them)",
            failed.join("; ")
        );
    }
    Ok(())
}
