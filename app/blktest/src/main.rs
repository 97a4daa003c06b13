//! `blktest`: block storage on real Xen, through `rt::block`.
//!
//! On disk `xvda` (writable, its size whatever the config gives): writes a
//! pattern across the whole disk — the first third in 4 KiB requests, the
//! second in 64 KiB, the rest in 1 MiB — flushes, reads it all back in the
//! same sizes and checks every byte; then 4 KiB random reads at queue depth
//! 1 and 32. Prints the figures (`blk: figures ...`), the grants the data
//! path issued (none: the pool is granted once), and the CRC-32 of the
//! disk's bytes (`blk: crc32 CRC BYTES`), which dom0 compares with the
//! backing file's (through `gzip`'s trailer) after the domain is gone. On `xvdb` (read-only, its first
//! bytes written by dom0: `read-only disk\n`): reads them, and a write must
//! fail as read-only. Out-of-range and unaligned requests must fail with
//! their errors. Ends with `test result: PASS blk`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use rt::block::crc32::Crc32;
use rt::block::{BlockDevice, BlockError, Disk};
use rt::time::Instant;

rt::main!(main);

const KIB: usize = 1024;
const MIB: usize = 1 << 20;

/// What dom0 writes at the start of the read-only disk.
const RO_TEXT: &[u8] = b"read-only disk\n";

struct Fail(String);

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(Fail(format!($($fmt)*)));
        }
    };
}

fn main() -> i32 {
    if rt::boot_info()
        .cmdline()
        .split_whitespace()
        .any(|w| w == "bench")
    {
        return match bench() {
            Ok(line) => {
                rt::println!("{line}");
                0
            }
            Err(Fail(why)) => {
                rt::println!("bench-disk: {why}");
                1
            }
        };
    }
    match run() {
        Ok(()) => {
            rt::println!("test result: PASS blk");
            0
        }
        Err(Fail(why)) => {
            rt::println!("blk: FAIL {why}");
            rt::println!("test result: FAIL blk");
            1
        }
    }
}

/// The pattern's byte at disk offset `o`: differs between neighbouring
/// bytes, sectors and MiBs, so a misplaced sector shows.
fn pattern(o: u64) -> u8 {
    (o.wrapping_mul(7) ^ (o >> 9).wrapping_mul(13) ^ (o >> 20).wrapping_mul(101)) as u8
}

fn fill(buf: &mut [u8], at: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(at + i as u64);
    }
}

/// MB/s of `bytes` moved since `t0`.
fn mbps(bytes: u64, t0: Instant) -> String {
    let ns = t0.elapsed().as_nanos().max(1) as u64;
    let x100 = bytes * 100_000 / ns; // (bytes / 1e6) / (ns / 1e9) * 100
    format!("{}.{:02}", x100 / 100, x100 % 100)
}

fn run() -> Result<(), Fail> {
    rt::println!("blk: disks in the config: {:?}", rt::block::disks());
    let t0 = Instant::now();
    let mut d = Disk::open("xvda").map_err(|e| Fail(format!("opening xvda: {e}")))?;
    let g = d.geometry();
    rt::println!(
        "blk: xvda connected in {} ms: {} bytes, sectors {}/{} bytes, read-only {}, flush {}, barrier {}, persistent {}, indirect {}, max request {}, ring {} requests",
        t0.elapsed().as_millis(),
        d.capacity(),
        g.sector_size,
        g.physical_sector_size,
        g.read_only,
        g.flush,
        g.barrier,
        g.persistent,
        g.indirect_segments,
        d.max_request(),
        d.ring_slots()
    );
    check!(d.capacity() >= 3 * MIB as u64, "xvda is smaller than 3 MiB");
    check!(
        d.ring_slots() > 32,
        "a one-page ring although blkback offers more"
    );
    let grants0 = rt::grant::stats().map(|(s, _, _)| s.granted).unwrap_or(0);
    let ss = u64::from(d.sector_size());
    let cap = d.capacity();
    let third = (cap / 3) / MIB as u64 * MIB as u64;
    let parts = [
        (0, third, 4 * KIB),
        (third, 2 * third, 64 * KIB),
        (2 * third, cap, MIB),
    ];
    let mut buf = vec![0u8; MIB];
    let mut sum = Crc32::new();
    let mut figures = Vec::new();
    for &(from, to, req) in &parts {
        let t = Instant::now();
        let mut at = from;
        while at < to {
            let n = (req as u64).min(to - at) as usize;
            fill(&mut buf[..n], at);
            sum.update(&buf[..n]);
            d.write(at / ss, &buf[..n])
                .map_err(|e| Fail(format!("write of {n} at {at}: {e}")))?;
            at += n as u64;
        }
        figures.push(format!("write {}K {} MB/s", req / KIB, mbps(to - from, t)));
    }
    let t = Instant::now();
    d.flush().map_err(|e| Fail(format!("flush: {e}")))?;
    figures.push(format!("flush {} ms", t.elapsed().as_millis()));
    let mut want = vec![0u8; MIB];
    for &(from, to, req) in &parts {
        let t = Instant::now();
        let mut at = from;
        while at < to {
            let n = (req as u64).min(to - at) as usize;
            d.read(at / ss, &mut buf[..n])
                .map_err(|e| Fail(format!("read of {n} at {at}: {e}")))?;
            fill(&mut want[..n], at);
            if buf[..n] != want[..n] {
                let i = (0..n).find(|&i| buf[i] != want[i]).unwrap_or(0);
                return Err(Fail(format!(
                    "read back of {n} at {at}: byte {} is {:#x}, wrote {:#x}",
                    at + i as u64,
                    buf[i],
                    want[i]
                )));
            }
            at += n as u64;
        }
        figures.push(format!("read {}K {} MB/s", req / KIB, mbps(to - from, t)));
    }
    rt::println!("blk: pattern written and read back, {cap} bytes");
    // Random 4 KiB reads: one at a time, then 32 in flight.
    let blocks = cap / 4096;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % blocks) * 4096
    };
    let n = 256;
    let t = Instant::now();
    for _ in 0..n {
        let at = next();
        d.read(at / ss, &mut buf[..4096])
            .map_err(|e| Fail(format!("random read at {at}: {e}")))?;
        fill(&mut want[..4096], at);
        check!(
            buf[..4096] == want[..4096],
            "random read at {at}: wrong data"
        );
    }
    let qd1 = n as u64 * 1_000_000_000 / (t.elapsed().as_nanos() as u64).max(1);
    let mut bufs = vec![[0u8; 4096]; 32];
    let rounds = 32;
    let t = Instant::now();
    for _ in 0..rounds {
        let ats: Vec<u64> = (0..32).map(|_| next()).collect();
        let mut reads: Vec<(u64, &mut [u8])> = ats
            .iter()
            .zip(bufs.iter_mut())
            .map(|(&at, b)| (at / ss, &mut b[..]))
            .collect();
        d.read_many(&mut reads)
            .map_err(|e| Fail(format!("32 reads in flight: {e}")))?;
        for (at, b) in ats.iter().zip(bufs.iter()) {
            fill(&mut want[..4096], *at);
            check!(b[..] == want[..4096], "queued read at {at}: wrong data");
        }
    }
    let qd32 = (rounds * 32) as u64 * 1_000_000_000 / (t.elapsed().as_nanos() as u64).max(1);
    figures.push(format!("4K random read QD1 {qd1} IOPS QD32 {qd32} IOPS"));
    let grants = rt::grant::stats().map(|(s, _, _)| s.granted).unwrap_or(0) - grants0;
    let st = d.stats();
    let moved = (st.bytes_read + st.bytes_written) as f64 / MIB as f64;
    rt::println!("blk: figures {}", figures.join(", "));
    rt::println!(
        "blk: requests: {} reads, {} writes, {} flushes, {} indirect; {:.0} MiB moved, {grants} grants issued by the data path, {} errors",
        st.reads,
        st.writes,
        st.flushes,
        st.indirect,
        moved,
        st.errors
    );
    check!(grants == 0, "the data path issued {grants} grants");
    check!(st.indirect > 0, "no indirect request was used");
    // The typed errors.
    let e = d.read(d.sectors() - 1, &mut buf[..2 * ss as usize]);
    check!(
        matches!(e, Err(BlockError::OutOfRange { .. })),
        "a read past the end gave {e:?}"
    );
    let e = d.write(0, &buf[..100]);
    check!(
        matches!(e, Err(BlockError::Unaligned { .. })),
        "a write of 100 bytes gave {e:?}"
    );
    rt::println!("blk: out of range and unaligned requests refused");
    read_only_disk()?;
    rt::println!("blk: crc32 {} {}", sum.value(), cap);
    Ok(())
}

/// Bytes written, then read, sequentially by the bench.
const SEQ_BYTES: u64 = 128 << 20;

/// The storage bench (`bench` on the command line): what `bench-echo` does
/// on the Linux domU (`xtask/bench-echo/src/disk.rs`) — 128 MiB written in
/// 1 MiB requests and flushed, read back, 1000 random 4 KiB reads one at a
/// time and 4096 in batches of 32 — and the grants issued per MiB moved.
fn bench() -> Result<String, Fail> {
    let granted = || rt::grant::stats().map(|(s, _, _)| s.granted).unwrap_or(0);
    let before_open = granted();
    let mut d = Disk::open("xvda").map_err(|e| Fail(format!("opening xvda: {e}")))?;
    let ss = u64::from(d.sector_size());
    let grants0 = granted();
    let mut buf = vec![0u8; MIB];
    fill(&mut buf, 0);
    let rate = |n: f64, t: Instant| n * 1e9 / (t.elapsed().as_nanos().max(1) as f64);
    let t = Instant::now();
    let mut at = 0;
    while at < SEQ_BYTES {
        d.write(at / ss, &buf)
            .map_err(|e| Fail(format!("write at {at}: {e}")))?;
        at += MIB as u64;
    }
    d.flush().map_err(|e| Fail(format!("flush: {e}")))?;
    let write = rate(SEQ_BYTES as f64 / 1e6, t);
    let t = Instant::now();
    let mut at = 0;
    while at < SEQ_BYTES {
        d.read(at / ss, &mut buf)
            .map_err(|e| Fail(format!("read at {at}: {e}")))?;
        at += MIB as u64;
    }
    let read = rate(SEQ_BYTES as f64 / 1e6, t);
    let blocks = SEQ_BYTES / 4096;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % blocks) * 4096
    };
    let t = Instant::now();
    for _ in 0..1000 {
        let at = next();
        d.read(at / ss, &mut buf[..4096])
            .map_err(|e| Fail(format!("read at {at}: {e}")))?;
    }
    let qd1 = rate(1000.0, t);
    let mut bufs = vec![[0u8; 4096]; 32];
    let t = Instant::now();
    for _ in 0..4096 / 32 {
        let mut reads: Vec<(u64, &mut [u8])> =
            bufs.iter_mut().map(|b| (next() / ss, &mut b[..])).collect();
        d.read_many(&mut reads)
            .map_err(|e| Fail(format!("32 reads: {e}")))?;
    }
    let qd32 = rate(4096.0, t);
    let grants = granted() - grants0;
    let moved = (2 * SEQ_BYTES + 5096 * 4096) as f64 / MIB as f64;
    Ok(format!(
        "bench-disk: seq-write {write:.2} MB/s seq-read {read:.2} MB/s qd1 {qd1:.0} IOPS qd32 {qd32:.0} IOPS grants-per-MiB {:.3} ({} granted once at connect for {moved:.0} MiB)",
        grants as f64 / moved,
        grants0 - before_open
    ))
}

fn read_only_disk() -> Result<(), Fail> {
    let mut d = Disk::open_with("xvdb", 16).map_err(|e| Fail(format!("opening xvdb: {e}")))?;
    check!(d.read_only(), "xvdb is not read-only");
    let mut buf = vec![0u8; d.sector_size() as usize];
    d.read(0, &mut buf)
        .map_err(|e| Fail(format!("reading xvdb: {e}")))?;
    check!(
        buf.starts_with(RO_TEXT),
        "xvdb starts with {:?}",
        &buf[..16]
    );
    let e = d.write(0, &buf);
    check!(e == Err(BlockError::ReadOnly), "a write to xvdb gave {e:?}");
    rt::println!("blk: xvdb read-only: read back, write refused");
    Ok(())
}
