//! `bench-echo sink ADDR:PORT BYTES`: asks a source port (echo's 19, this
//! binary's own in the Linux domU) for `BYTES` and reads them into a 1 MiB
//! buffer, nothing else: the receiving side of the bench's TCP guest ->
//! dom0 row costs dom0 one copy per byte (a shell pipe into `wc` cost three,
//! and dom0's CPU capped both guests alike). Prints `tx64: R MB/s, N bytes;
//! dom0 busy P% of C CPUs` — dom0's CPU share over the transfer from
//! `/proc/stat`, to tell a receiver-bound run from a sender-bound one.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Busy and total jiffies of all CPUs, and the CPU count, from /proc/stat.
fn cpu_times() -> Option<(u64, u64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let all: Vec<u64> = lines
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = all.iter().take(8).sum();
    let idle = all.get(3)? + all.get(4).copied().unwrap_or(0);
    let cpus = lines.filter(|l| l.starts_with("cpu")).count();
    Some((total - idle, total, cpus))
}

/// Runs the transfer; see the module doc.
pub fn sink(args: &[String]) -> Result<(), String> {
    let usage = "usage: bench-echo sink ADDR:PORT BYTES";
    let [addr, bytes] = args else {
        return Err(usage.into());
    };
    let n: u64 = bytes.parse().map_err(|_| usage.to_string())?;
    let mut c = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let cpu0 = cpu_times();
    let t0 = Instant::now();
    c.write_all(format!("{n} fast\n").as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < n {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got += k as u64,
            Err(e) => return Err(format!("{addr}: after {got} bytes: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let busy = match (cpu0, cpu_times()) {
        (Some((b0, t0, cpus)), Some((b1, t1, _))) if t1 > t0 => format!(
            "dom0 busy {:.0}% of {cpus} CPUs",
            100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
        ),
        _ => "dom0 busy unknown".into(),
    };
    println!(
        "tx64: {:.2} MB/s, {got} bytes; {busy}",
        got as f64 / 1e6 / secs
    );
    Ok(())
}
