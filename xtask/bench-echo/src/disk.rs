//! The storage bench's workload on Linux, run when the kernel command line
//! names a disk (`bench.disk=/dev/xvda`): the same requests `app/blktest`
//! makes in its `bench` mode, through `O_DIRECT` so Linux's page cache does
//! not answer for the disk — 128 MiB written in 1 MiB requests and flushed
//! (`fsync`), read back in 1 MiB requests, then 4 KiB random reads one at a
//! time and 32 at a time (32 threads). Prints one line:
//! `bench-disk: seq-write W MB/s seq-read R MB/s qd1 A IOPS qd32 B IOPS`.
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

/// `O_DIRECT` on x86_64 Linux.
const O_DIRECT: i32 = 0o40000;
/// Bytes written, then read, sequentially.
pub const SEQ_BYTES: u64 = 128 << 20;
/// Random reads at queue depth 1, and in all at queue depth 32.
pub const QD1_READS: u64 = 1000;
pub const QD32_READS: u64 = 4096;

/// A page-aligned buffer (`O_DIRECT` needs aligned memory).
struct Aligned {
    ptr: *mut u8,
    layout: Layout,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, layout }
    }
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` owns `layout.size()` initialised bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// The xorshift the guest uses, for the same offsets.
fn next(x: &mut u64, blocks: u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    (*x % blocks) * 4096
}

fn per_s(n: f64, t: Instant) -> f64 {
    n / t.elapsed().as_secs_f64()
}

/// Runs the workload on `dev`; returns the line to print.
pub fn bench(dev: &str) -> std::io::Result<String> {
    let f: File = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(O_DIRECT)
        .open(dev)?;
    let mut buf = Aligned::new(1 << 20);
    buf.bytes()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    let t = Instant::now();
    let mut at = 0;
    while at < SEQ_BYTES {
        f.write_all_at(buf.bytes(), at)?;
        at += 1 << 20;
    }
    f.sync_all()?;
    let write = per_s(SEQ_BYTES as f64 / 1e6, t);
    let t = Instant::now();
    let mut at = 0;
    while at < SEQ_BYTES {
        f.read_exact_at(buf.bytes(), at)?;
        at += 1 << 20;
    }
    let read = per_s(SEQ_BYTES as f64 / 1e6, t);
    let blocks = SEQ_BYTES / 4096;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut small = Aligned::new(4096);
    let t = Instant::now();
    for _ in 0..QD1_READS {
        f.read_exact_at(small.bytes(), next(&mut x, blocks))?;
    }
    let qd1 = per_s(QD1_READS as f64, t);
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..32u64 {
            let f = &f;
            s.spawn(move || {
                let mut b = Aligned::new(4096);
                let mut x = 0x9e37_79b9_7f4a_7c15 ^ (k + 1);
                for _ in 0..QD32_READS / 32 {
                    if let Err(e) = f.read_exact_at(b.bytes(), next(&mut x, blocks)) {
                        eprintln!("bench-disk: {e}");
                        return;
                    }
                }
            });
        }
    });
    let qd32 = per_s(QD32_READS as f64, t);
    Ok(format!(
        "bench-disk: seq-write {write:.2} MB/s seq-read {read:.2} MB/s qd1 {qd1:.0} IOPS qd32 {qd32:.0} IOPS"
    ))
}
