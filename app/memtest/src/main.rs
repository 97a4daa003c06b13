//! `memtest`: the heap and the reservation on real Xen.
//!
//! Default run: grows the heap past 32 MiB with mixed allocation sizes
//! (checking every byte), frees it all, checks the heap counters return to
//! where they started and that `rt::heap::trim` gives the frames back; then
//! releases 8 MiB of reservation and grows it back, asking the harness after
//! each step what `xl list` shows (`harness: xl-mem <tag>` on the console; the
//! harness types back the memory column in MiB). Ends with
//! `test result: PASS memtest`.
//!
//! Command-line word `oom`: allocates 1 MiB blocks without bound; the runtime
//! must report the shortage and crash the domain.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

rt::main!(main);

const MIB: u64 = 1 << 20;

/// A failed check, with what was seen.
struct Fail(alloc::string::String);

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(Fail(alloc::format!($($fmt)*)));
        }
    };
}

fn main() -> i32 {
    let info = rt::boot_info();
    let words: Vec<&str> = info.cmdline().split(' ').collect();
    if words.contains(&"oom") {
        allocate_without_bound();
    }
    let r = heap_grows_and_returns().and_then(|()| balloon_moves_the_reservation());
    match r {
        Ok(()) => {
            rt::println!("test result: PASS memtest");
            0
        }
        Err(Fail(why)) => {
            rt::println!("memtest: FAIL {why}");
            rt::println!("test result: FAIL memtest");
            1
        }
    }
}

/// The size of allocation `i`: small, page-sized, large and odd sizes mixed.
fn size_of(i: usize) -> usize {
    const SIZES: [usize; 8] = [24, 100, 4096, 3000, 65536, 1 << 20, 7, 300_000];
    SIZES[i % SIZES.len()]
}

fn pattern(i: usize, j: usize) -> u8 {
    (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8
}

fn heap_grows_and_returns() -> Result<(), Fail> {
    let (setup_us, build_us, nr) = rt::mm::with(|m| (m.alloc_setup_us, m.build_us, m.nr_pages));
    rt::println!(
        "memtest: frame allocator set-up {setup_us} us for {} MiB ({nr} frames); address space {build_us} us",
        nr / 256
    );
    let s0 = rt::heap::stats();
    let f0 = rt::mm::frame_stats().free;
    let t0 = rt::mm::stats().tables_allocated;
    rt::println!(
        "memtest: start heap mapped={} KiB allocated={} B allocations={} free frames={f0}",
        s0.mapped_bytes / 1024,
        s0.allocated_bytes,
        s0.allocations
    );
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    let mut i = 0;
    while total < 40 * MIB {
        let n = size_of(i);
        let mut v = Vec::with_capacity(n);
        v.extend((0..n).map(|j| pattern(i, j)));
        total += n as u64;
        blocks.push(v);
        i += 1;
    }
    let s1 = rt::heap::stats();
    for (i, b) in blocks.iter().enumerate() {
        check!(
            b.iter().enumerate().all(|(j, &x)| x == pattern(i, j)),
            "block {i} ({} bytes) was overwritten",
            b.len()
        );
    }
    let grown = s1.grown_pages - s0.grown_pages;
    let us = s1.grow_us - s0.grow_us;
    rt::println!(
        "memtest: grew heap to {} KiB in {} steps for {} allocations ({total} bytes); growth {} us per MiB",
        s1.mapped_bytes / 1024,
        s1.growths - s0.growths,
        blocks.len(),
        us * 256 / grown.max(1)
    );
    check!(
        s1.mapped_bytes > 32 * MIB,
        "heap only {} bytes",
        s1.mapped_bytes
    );
    // Free in an interleaved order so neighbours coalesce from both sides.
    let mut odd: Vec<Vec<u8>> = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if !i.is_multiple_of(2) {
            odd.push(b);
        }
    }
    drop(odd);
    let s2 = rt::heap::stats();
    check!(
        s2.allocated_bytes == s0.allocated_bytes && s2.allocations == s0.allocations,
        "after freeing: {} bytes in {} allocations (started with {} in {})",
        s2.allocated_bytes,
        s2.allocations,
        s0.allocated_bytes,
        s0.allocations
    );
    let back = rt::heap::trim();
    let s3 = rt::heap::stats();
    let f3 = rt::mm::frame_stats().free;
    let tables = rt::mm::stats().tables_allocated - t0;
    let want = f0 as i64 - (s3.mapped_bytes as i64 - s0.mapped_bytes as i64) / 4096 - tables as i64;
    rt::println!(
        "memtest: freed; trim gave back {} KiB; heap mapped={} KiB; free frames={f3} (start {f0}, {tables} page tables kept)",
        back / 1024,
        s3.mapped_bytes / 1024
    );
    check!(
        f3 as i64 == want,
        "free frames {f3} after trim, want {want}"
    );
    Ok(())
}

/// Asks the harness for `xl list`'s memory column (MiB).
fn xl_mem(tag: &str) -> Result<u64, Fail> {
    rt::println!("harness: xl-mem {tag}");
    let mut line = [0u8; 32];
    let text = rt::console::read_line(&mut line);
    text.trim()
        .parse()
        .map_err(|_| Fail(alloc::format!("harness answered {text:?} to xl-mem {tag}")))
}

fn balloon_moves_the_reservation() -> Result<(), Fail> {
    let r0 = rt::mm::reservation().map_err(|e| Fail(alloc::format!("reservation: {e}")))?;
    let x0 = xl_mem("start")?;
    let f0 = rt::mm::frame_stats().free;
    rt::println!(
        "memtest: reservation {} pages (max {}), xl list {x0} MiB, free frames {f0}",
        r0.current_pages,
        r0.max_pages
    );
    let t = rt::time::cycles();
    let r1 = rt::mm::release_to(r0.current_pages * 4096 - 8 * MIB)
        .map_err(|e| Fail(alloc::format!("release_to: {e}")))?;
    let release_cycles = rt::time::cycles() - t;
    check!(
        r1.current_pages == r0.current_pages - 2048 && r1.released_pages == 2048,
        "after release_to: {r1:?}"
    );
    let x1 = xl_mem("released")?;
    check!(
        x1 + 8 == x0,
        "xl list shows {x1} MiB after giving back 8 (was {x0})"
    );
    let t = rt::time::cycles();
    let r2 = rt::mm::grow_to(r0.current_pages * 4096)
        .map_err(|e| Fail(alloc::format!("grow_to: {e}")))?;
    let grow_cycles = rt::time::cycles() - t;
    check!(
        r2.current_pages == r0.current_pages && r2.released_pages == 0,
        "after grow_to: {r2:?}"
    );
    let x2 = xl_mem("regrown")?;
    check!(
        x2 == x0,
        "xl list shows {x2} MiB after growing back (was {x0})"
    );
    // Growing past the boot memory is refused with a reason, and changes nothing.
    let over = rt::mm::grow_to((r0.max_pages + 256) * 4096);
    let now = rt::mm::reservation().map_err(|e| Fail(alloc::format!("reservation: {e}")))?;
    check!(
        r0.max_pages == r0.current_pages
            || matches!(
                over,
                Err(rt::mm::ReservationError::Balloon(
                    rt::mm::BalloonError::NothingAbsent { done: 0 }
                ))
            ),
        "grow_to past the boot memory: {over:?}"
    );
    check!(
        now.current_pages == r0.current_pages,
        "after a refused grow_to: {now:?}"
    );
    if let Err(e) = over {
        rt::println!("memtest: grow_to past the boot memory refused: {e}");
    }
    let nr = rt::mm::with(|m| m.nr_pages);
    let storage = (rt::mm::Balloon::words_needed(nr) as u64 * 8).div_ceil(4096);
    let f2 = rt::mm::frame_stats().free;
    check!(
        f2 + storage == f0,
        "free frames {f2} after the round trip, want {f0} - {storage} (balloon bookkeeping)"
    );
    // The frames that came back are usable: 8 MiB on the heap, every byte checked.
    let v: Vec<u8> = (0..8 * MIB as usize).map(|j| pattern(3, j)).collect();
    check!(
        v.iter().enumerate().all(|(j, &x)| x == pattern(3, j)),
        "regrown memory does not hold its contents"
    );
    let us = |c: u64| rt::time::tsc_delta_to_duration(c).map_or(0, |d| d.as_micros());
    rt::println!(
        "memtest: balloon 8 MiB: release {} us, regrow {} us; xl list {x0} -> {x1} -> {x2} MiB",
        us(release_cycles),
        us(grow_cycles)
    );
    Ok(())
}

fn allocate_without_bound() -> ! {
    let limit = rt::heap::stats().limit_bytes;
    rt::println!(
        "memtest: allocating 1 MiB blocks without bound (heap limit {})",
        limit.map_or("none".into(), |l| alloc::format!("{} MiB", l / MIB))
    );
    let mut keep: Vec<Vec<u8>> = Vec::new();
    loop {
        keep.push(alloc::vec![0xa5u8; MIB as usize]);
        if keep.len().is_multiple_of(8) {
            rt::println!("memtest: holding {} MiB", keep.len());
        }
    }
}
