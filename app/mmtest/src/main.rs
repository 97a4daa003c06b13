//! `mmtest`: the MMU layer on real Xen (PV and PVH).
//!
//! 1. maps 64 MiB of fresh frames in one batched range, writes and checks
//!    patterns, protects it read-only, unmaps it;
//! 2. asks the mapper for a writable mapping of a page-table frame: a typed
//!    error, and the domain keeps running;
//! 3. (PV) sends requests Xen must refuse *raw* — bypassing the mapper's own
//!    checks — and compares Xen's errno with what the model predicts for the
//!    same request on a modelled domain, printing the table;
//! 4. builds, pins, activates and drops a scratch address space;
//! 5. maps the same 64 MiB once batched and once page by page and prints
//!    `mm-bench: ...`, then the boot's own address-space build step by step
//!    (`mm-boot-steps: ...`: time, Xen's submits, the fill, the counts);
//! 6. with `dump-core` on the command line, waits for the harness to take an
//!    `xl dump-core` of the running domain.
//!
//! Ends with `test result: PASS mmtest` or `test result: FAIL mmtest`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::time::Duration;

use rt::mm::{self, Level, MapError, Mm, Pfn, Prot};
use rt_mm::model::{ModelBackend, XenModel};
use rt_mm::op::{Op, Outcome};
use rt_mm::pte::{self, table_flags};
use rt_mm::{Backend, FrameSource};
use rt_xen::XenError;
use x86_64_flags::HUGE_PAGE;

/// Where test mappings go: 1 TiB (L4 slot 2), far from the direct map and the heap.
const VA: u64 = 1 << 41;
/// 64 MiB.
const PAGES: u64 = 16384;
/// Fresh ranges (no tables yet) for the two ways of making new L1 tables:
/// built then linked, and linked empty then written entry by entry.
const VA_BUILD: u64 = 3 << 39;
const VA_ENTRY: u64 = 5 << 39;

mod x86_64_flags {
    /// PS bit of an upper-level entry.
    pub const HUGE_PAGE: u64 = 1 << 7;
}

rt::main!(main);

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, what: &str, r: Result<(), alloc::string::String>) {
        match r {
            Ok(()) => rt::println!("mmtest: ok   {what}"),
            Err(e) => {
                self.failed += 1;
                rt::println!("mmtest: FAIL {what}: {e}");
            }
        }
    }
}

/// The boot's address-space build step by step (`rt_mm::kernel::build_steps`),
/// as ` name=us/check-us/fill-us/submit-us/hypercalls/ptes/filled/made/released`
/// groups.
struct BuildSteps<'a>(&'a [rt_mm::kernel::Step; rt_mm::kernel::STEPS]);

impl core::fmt::Display for BuildSteps<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (name, s) in rt_mm::kernel::STEP_NAMES.iter().zip(self.0) {
            let us = |c: u64| rt::time::tsc_delta_to_duration(c).map_or(0, |d| d.as_micros());
            write!(
                f,
                " {name}={}/{}/{}/{}/{}/{}/{}/{}/{}/{}",
                us(s.cycles),
                us(s.check_cycles),
                us(s.fill_cycles),
                us(s.submit_cycles),
                s.hypercalls,
                s.pte_writes,
                s.entries_filled,
                s.tables,
                s.released,
                s.stolen_ns / 1000
            )?;
        }
        Ok(())
    }
}

fn main() -> i32 {
    let mut c = Checks { failed: 0 };
    let pv = rt::platform() == rt::Platform::XenPv;
    let frames = match take_frames(PAGES) {
        Ok(f) => f,
        Err(e) => {
            rt::println!("mmtest: cannot get {PAGES} frames: {e}");
            rt::println!("test result: FAIL mmtest");
            return 1;
        }
    };
    c.check(
        "map 64 MiB, write and verify patterns, protect, unmap",
        map_range_test(&frames),
    );
    c.check(
        "a writable mapping of a page-table frame is refused",
        refuse_table_test(),
    );
    c.check(
        "Xen keeps the runstate area: a 20 ms sleep is counted whole, not all running",
        runstate_test(),
    );
    if pv {
        c.check("raw requests: Xen's errno is the model's", raw_vs_model());
    } else {
        rt::println!(
            "mmtest: skip raw requests vs the model (PVH: auto-translated, Xen does not validate guest tables)"
        );
    }
    c.check(
        "scratch space: build, pin, activate, drop",
        scratch_space_test(),
    );
    c.check("batched vs page by page", bench(&frames, pv));
    mm::with(|m| {
        for &p in &frames {
            m.frames.free_frame(p);
        }
        let s = m.mmu.stats();
        rt::println!(
            "mm-stats: queued={} hypercalls={} ops_per_hypercall={:.1} pins={} unpins={} flushes={} tables={}/{}",
            s.queued,
            s.hypercalls,
            s.ops_per_hypercall(),
            s.pins,
            s.unpins,
            s.flushes,
            s.tables_allocated,
            s.tables_released
        );
        let mib = m.nr_pages / 256;
        rt::println!(
            "mm-boot: build_us={} ram_mib={mib} us_per_mib={:.1} frame_allocator_setup_us={}",
            m.build_us,
            m.build_us as f64 / mib.max(1) as f64,
            m.alloc_setup_us
        );
        rt::println!(
            "mm-boot-steps: step=us/check-us/fill-us/submit-us/hypercalls/ptes-sent/entries-filled/tables-made/tables-released/stolen-us{}",
            BuildSteps(&m.build_steps)
        );
    });
    if rt::boot_info()
        .cmdline()
        .split(' ')
        .any(|w| w == "dump-core")
    {
        rt::println!("mmtest: ready for dump-core");
        let mut b = [0u8; 1];
        rt::console::read_blocking(&mut b);
        rt::println!("mmtest: resumed after dump-core");
    }
    if c.failed == 0 {
        rt::println!("test result: PASS mmtest");
        0
    } else {
        rt::println!("test result: FAIL mmtest");
        1
    }
}

/// The runtime's runstate area is registered and Xen writes it: over a
/// 20 ms sleep the four states together grow by the time that passed
/// (within 1 ms: the reads count the period in progress up to now), and
/// not all of it as running — the vCPU blocked (or, when dom0 had the CPU,
/// waited runnable), so Xen rewrote the area. How the 20 ms split varies:
/// under the harness's load a PVH sleep showed 0.6 ms blocked and 17 ms
/// runnable. Stolen time since boot never exceeds runnable plus offline.
fn runstate_test() -> Result<(), alloc::string::String> {
    let total = |r: &rt::sched::Runstate| r.running + r.runnable + r.blocked + r.offline;
    let t0 = rt::time::Instant::now();
    let before = rt::sched::runstate().ok_or("no runstate area (Xen refused it)")?;
    rt::sched::sleep(Duration::from_millis(20));
    let after = rt::sched::runstate().ok_or("the runstate area went away")?;
    let elapsed = t0.elapsed();
    let us = |d: Duration| d.as_micros() as u64;
    let grew = |a: Duration, b: Duration| us(a.saturating_sub(b));
    let all = total(&after).saturating_sub(total(&before));
    rt::println!(
        "mmtest: runstate over a 20 ms sleep ({} us): all states +{} us: blocked +{} us, runnable +{} us, running +{} us; stolen since boot {} us",
        us(elapsed),
        us(all),
        grew(after.blocked, before.blocked),
        grew(after.runnable, before.runnable),
        grew(after.running, before.running),
        us(rt::sched::stolen())
    );
    let slack = Duration::from_millis(1);
    if all > elapsed + slack || all + slack < elapsed.min(Duration::from_millis(20)) {
        return Err(alloc::format!(
            "the states grew by {} us in {} us",
            us(all),
            us(elapsed)
        ));
    }
    if all.saturating_sub(after.running.saturating_sub(before.running)) == Duration::ZERO {
        return Err("a 20 ms sleep counted as running only: Xen did not rewrite the area".into());
    }
    if rt::sched::stolen() > after.runnable + after.offline {
        return Err("stolen time exceeds runnable plus offline".into());
    }
    Ok(())
}

fn take_frames(n: u64) -> Result<Vec<Pfn>, &'static str> {
    let mut v = Vec::with_capacity(n as usize); // allocate before taking the MMU lock
    mm::with(|m| {
        for _ in 0..n {
            match m.frames.alloc_frame() {
                Some(p) => v.push(p),
                None => {
                    for &p in &v {
                        m.frames.free_frame(p);
                    }
                    return Err("out of frames");
                }
            }
        }
        Ok(())
    })?;
    Ok(v)
}

fn err(e: MapError) -> alloc::string::String {
    alloc::format!("{e}")
}

fn pattern(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a
}

fn map_range_test(frames: &[Pfn]) -> Result<(), alloc::string::String> {
    mm::with(|m: &mut Mm| {
        m.mmu
            .map_frames(&m.kernel, VA, frames, Prot::RW, &mut m.frames)?
            .flush()
    })
    .map_err(err)?;
    for i in 0..PAGES {
        let p = (VA + i * 4096) as *mut u64;
        // SAFETY: [VA, VA + 64 MiB) was just mapped read-write to frames we own.
        unsafe {
            p.write_volatile(pattern(i));
            p.add(511).write_volatile(!pattern(i));
        }
    }
    for i in 0..PAGES {
        let p = (VA + i * 4096) as *const u64;
        // SAFETY: as above.
        let (a, b) = unsafe { (p.read_volatile(), p.add(511).read_volatile()) };
        if a != pattern(i) || b != !pattern(i) {
            return Err(alloc::format!("page {i}: read {a:#x}/{b:#x}"));
        }
    }
    mm::with(|m| m.mmu.protect_range(&m.kernel, VA, PAGES, Prot::R)?.flush()).map_err(err)?;
    let e = mm::with(|m| m.mmu.translate(m.kernel.root(), VA + 4096)).map_err(err)?;
    if Prot::of_entry(e).write {
        return Err("protect_range left the page writable".into());
    }
    // SAFETY: still mapped (read-only now).
    let back = unsafe { ((VA + 4096) as *const u64).read_volatile() };
    if back != pattern(1) {
        return Err("contents changed by protect_range".into());
    }
    mm::with(|m| m.mmu.unmap_range(&m.kernel, VA, PAGES)?.flush()).map_err(err)?;
    let e = mm::with(|m| m.mmu.translate(m.kernel.root(), VA)).map_err(err)?;
    if e != 0 {
        return Err(alloc::format!("unmapped page still has entry {e:#x}"));
    }
    Ok(())
}

/// Some L1 table of the kernel space (the one mapping the direct map's page 16).
fn kernel_l1(m: &Mm) -> Result<Pfn, MapError> {
    let (l1, _) = m
        .mmu
        .find_l1(m.kernel.root(), 16 << 12)?
        .ok_or(MapError::NotMapped(16 << 12))?;
    Ok(l1)
}

fn refuse_table_test() -> Result<(), alloc::string::String> {
    let r = mm::with(|m| {
        let l1 = kernel_l1(m)?;
        m.mmu
            .map_frames(&m.kernel, VA, &[l1], Prot::RW, &mut m.frames)
            .map(drop)
            .map(|_| l1)
    });
    match r {
        Err(MapError::PageTableFrame(p)) => {
            rt::println!(
                "mmtest: refused as expected: {}",
                MapError::PageTableFrame(p)
            );
            Ok(())
        }
        Ok(l1) => Err(alloc::format!("mapping {l1} writable was accepted")),
        Err(e) => Err(alloc::format!("unexpected error: {e}")),
    }
}

/// The requests of the raw cases, built against whatever domain `b` and `m`
/// describe: (name, op).
fn raw_cases<B: Backend>(
    mmu: &rt_mm::Mmu<'_, B>,
    root: Pfn,
    data: Pfn,
) -> Result<[(&'static str, Op); 7], MapError> {
    let (l1, idx) = mmu
        .find_l1(root, data.addr())?
        .ok_or(MapError::NotMapped(data.addr()))?;
    let l3 = pte::frame(mmu.entry(root, 0));
    let l3 = mmu
        .backend()
        .pfn_of(l3)
        .ok_or(MapError::NoSuchFrame(root))?;
    let l2 = mmu
        .backend()
        .pfn_of(pte::frame(mmu.entry(l3, 0)))
        .ok_or(MapError::NoSuchFrame(l3))?;
    let hw = |p: Pfn| mmu.backend().hw_frame(p).ok_or(MapError::NoSuchFrame(p));
    let free_slot = (0..512u16)
        .rev()
        .find(|&i| !pte::present(mmu.entry(l2, usize::from(i))))
        .ok_or(MapError::NoFrames)?;
    Ok([
        (
            "writable mapping of an L1 frame",
            Op::Write {
                table: l1,
                index: idx as u16,
                value: pte::make(hw(l1)?, Prot::RW.leaf_flags()),
            },
        ),
        (
            "pin the pinned root again",
            Op::Pin {
                level: Level::L4,
                table: root,
            },
        ),
        ("unpin a table that is not pinned", Op::Unpin { table: l1 }),
        (
            "entry in Xen's L4 slot 256",
            Op::Write {
                table: root,
                index: 256,
                value: pte::make(hw(l3)?, table_flags()),
            },
        ),
        (
            "superpage (PSE) in an L2",
            Op::Write {
                table: l2,
                index: free_slot,
                value: pte::make(hw(data)?, table_flags()) | HUGE_PAGE,
            },
        ),
        (
            "link a writable-mapped frame as a table",
            Op::Write {
                table: l2,
                index: free_slot,
                value: pte::make(hw(data)?, table_flags()),
            },
        ),
        ("clear a page that is a table", Op::ClearPage { frame: l1 }),
    ])
}

fn outcome<B: Backend>(b: &mut B, op: Op) -> Result<(), XenError> {
    let mut out = [Outcome::Skipped];
    b.submit(&[op], &mut out)?;
    match out[0] {
        Outcome::Done => Ok(()),
        Outcome::Failed(e) => Err(e),
        Outcome::Skipped => Err(XenError::EINTR),
    }
}

fn show(r: Result<(), XenError>) -> alloc::string::String {
    match r {
        Ok(()) => "accepted".into(),
        Err(e) => alloc::format!("{e}"),
    }
}

fn raw_vs_model() -> Result<(), alloc::string::String> {
    // The model: a small PV domain as Xen's builder makes it, booted by the
    // same kernel-space code the runtime ran at boot.
    let nr = 4096;
    let d = XenModel::pv_domain(nr, 1024).map_err(|e| alloc::format!("model domain: {e}"))?;
    let mut types = alloc::vec![0u8; nr as usize];
    let mut bits = alloc::vec![0u64; rt_mm::frames::BitmapFrames::words_for(nr)];
    let mut frames = rt_mm::frames::BitmapFrames::new(&mut bits);
    frames.add_range(Pfn(1), Pfn(256));
    frames.add_range(Pfn(d.free_from), Pfn(nr));
    // On the heap: an Mmu carries its 512-op queue.
    let mut model = alloc::boxed::Box::new(rt_mm::Mmu::new(
        ModelBackend::new(d.xen),
        &mut types,
        Some(d.boot_l4),
    ));
    let layout = rt_mm::kernel::Layout {
        nr_pages: nr,
        readable: d.region,
        rights: &|p: Pfn| {
            rt_mm::kernel::DirectRights {
                ram: &[(0, nr)],
                holes: &[0],
                text: (0, 0),
                rodata: (0, 0),
            }
            .run(p)
        },
        machine: &[],
    };
    let mk = rt_mm::kernel::build(
        &mut model,
        &mut frames,
        Some(rt_mm::Space::adopt(d.boot_l4, true)),
        &layout,
    )
    .map_err(err)?;
    let model_data = frames.alloc_frame().ok_or("model: no frame")?;
    let model_cases = raw_cases(&model, mk.root(), model_data).map_err(err)?;

    let xen_cases = mm::with(|m| {
        let data = m.frames.alloc_frame().ok_or(MapError::NoFrames)?;
        raw_cases(&m.mmu, m.kernel.root(), data).map(|c| (c, data))
    })
    .map_err(err)?;
    let (xen_cases, data) = xen_cases;

    rt::println!(
        "mmtest: {:<42} {:<14} {:<14} agree",
        "raw request (mapper bypassed)",
        "model",
        "xen"
    );
    let mut bad = 0;
    for ((name, mop), (_, xop)) in model_cases.iter().zip(xen_cases.iter()) {
        let predicted = outcome(model.backend_mut(), *mop);
        let actual = mm::with(|m| outcome(m.mmu.backend_mut(), *xop));
        let agree = predicted == actual && actual.is_err();
        bad += u32::from(!agree);
        rt::println!(
            "mmtest: {name:<42} {:<14} {:<14} {}",
            show(predicted),
            show(actual),
            if agree { "yes" } else { "NO" }
        );
    }
    model
        .backend()
        .xen
        .check_invariants()
        .map_err(|e| alloc::format!("model invariants: {e}"))?;
    mm::with(|m| m.frames.free_frame(data));
    if bad > 0 {
        return Err(alloc::format!("{bad} case(s) differ or were accepted"));
    }
    Ok(())
}

fn scratch_space_test() -> Result<(), alloc::string::String> {
    let before = mm::with(|m| (m.frames.free_count(), m.mmu.stats()));
    let data = take_frames(16).map_err(alloc::string::String::from)?;
    let sum = mm::with(|m| -> Result<u64, MapError> {
        let mut s = m.mmu.new_space(&mut m.frames, Some((&m.kernel, 0..1)))?;
        m.mmu
            .map_frames(&s, VA, &data, Prot::RW, &mut m.frames)?
            .flush()?;
        m.mmu.activate(&mut s)?;
        // Running on the scratch space: the direct map (code, stacks, console)
        // is shared; VA is only mapped here.
        let mut sum = 0;
        for i in 0..16u64 {
            let p = (VA + i * 4096) as *mut u64;
            // SAFETY: mapped read-write in the active (scratch) space to our frames.
            unsafe {
                p.write_volatile(i + 1);
                sum += p.read_volatile();
            }
        }
        let mut k = rt_mm::Space::adopt(m.kernel.root(), true);
        m.mmu.activate(&mut k)?;
        m.mmu.release(s, &mut m.frames).map_err(|(_, e)| e)?;
        for &p in &data {
            m.frames.free_frame(p);
        }
        Ok(sum)
    })
    .map_err(err)?;
    let after = mm::with(|m| (m.frames.free_count(), m.mmu.stats()));
    if sum != (1..=16).sum::<u64>() {
        return Err(alloc::format!("scratch space read back {sum}"));
    }
    if after.0 != before.0 {
        return Err(alloc::format!(
            "frames not returned: {} free before, {} after",
            before.0,
            after.0
        ));
    }
    // PV pins the root before activating it and unpins it on release; the
    // native backend has nothing to pin.
    let want = u64::from(rt::platform() == rt::Platform::XenPv);
    if after.1.pins - before.1.pins != want || after.1.unpins - before.1.unpins != want {
        return Err(alloc::format!("expected {want} pin(s) and unpin(s)"));
    }
    Ok(())
}

/// What one 64 MiB map into fresh address space cost: its cycles,
/// hypercalls, entries Xen validated one by one, L1 tables built whole, and
/// the cycles of its final submit, of the mapper's checks before queueing
/// and of filling the new tables.
struct Fresh {
    cycles: u64,
    hypercalls: u64,
    pte_writes: u64,
    tables: u64,
    submit: u64,
    check: u64,
    fill: u64,
    /// Of `cycles`' time: Xen kept the vCPU from running (not the map's).
    stolen: core::time::Duration,
}

/// Maps 64 MiB at `va`, where no table exists yet, one way or the other,
/// and says what it cost; then unmaps (the tables stay).
fn map_fresh(
    frames: &[Pfn],
    va: u64,
    build_then_link: bool,
) -> Result<Fresh, alloc::string::String> {
    let s0 = mm::stats();
    let stolen0 = rt::sched::stolen();
    let t0 = rt::time::cycles();
    let mut submit_from = 0;
    let r = mm::with(|m| {
        m.mmu.set_build_then_link(build_then_link);
        let r = m
            .mmu
            .map_frames(&m.kernel, va, frames, Prot::RW, &mut m.frames)
            .and_then(|p| {
                submit_from = rt::time::cycles();
                p.flush()
            });
        m.mmu.set_build_then_link(true);
        r
    });
    let end = rt::time::cycles();
    let stolen = rt::sched::stolen().saturating_sub(stolen0);
    let cycles = end - t0;
    r.map_err(err)?;
    let s = mm::stats();
    // SAFETY: the range was just mapped read-write to frames we own.
    let last = unsafe {
        let p = (va + (PAGES - 1) * 4096) as *mut u64;
        p.write_volatile(pattern(PAGES - 1));
        p.read_volatile()
    };
    if last != pattern(PAGES - 1) {
        return Err(alloc::format!(
            "{va:#x}: the last page reads back {last:#x}"
        ));
    }
    mm::with(|m| m.mmu.unmap_range(&m.kernel, va, PAGES)?.flush()).map_err(err)?;
    Ok(Fresh {
        cycles,
        hypercalls: s.hypercalls - s0.hypercalls,
        pte_writes: s.pte_writes - s0.pte_writes,
        tables: s.tables_filled - s0.tables_filled,
        submit: end - submit_from,
        check: s.check_cycles - s0.check_cycles,
        fill: s.fill_cycles - s0.fill_cycles,
        stolen,
    })
}

/// What the guest's side of built-then-linked costs at the least, on this
/// platform: the 16,384 entries of a 64 MiB map stored into 32 ordinary
/// frames by plain stores (no mapper, no checks), and the 16,384
/// pfn-to-machine lookups the mapper makes (PV: the p2m array; PVH: none,
/// the identity). Returns (store cycles, lookup cycles).
fn baselines(frames: &[Pfn]) -> Result<(u64, u64), alloc::string::String> {
    let tables: Vec<Pfn> = mm::with(|m| {
        (0..PAGES / 512)
            .map(|_| m.frames.alloc_frame())
            .collect::<Option<Vec<Pfn>>>()
    })
    .ok_or("no free frames for the store baseline")?;
    let t0 = rt::time::cycles();
    for (i, &p) in frames.iter().enumerate() {
        let at = tables[i / 512].addr() + (i % 512) as u64 * 8;
        // SAFETY: the frame was just taken from the frame allocator: free RAM
        // of ours, mapped read-write at its identity address on PV and PVH,
        // referred to by nothing else until it is given back below.
        unsafe { (at as *mut u64).write_volatile((p.0 << 12) | 0x67) };
    }
    let stores = rt::time::cycles() - t0;
    let t1 = rt::time::cycles();
    let sum = mm::with(|m| {
        let b = m.mmu.backend();
        frames
            .iter()
            .fold(0u64, |a, &p| a.wrapping_add(b.hw_frame(p).unwrap_or(0)))
    });
    let lookups = rt::time::cycles() - t1;
    core::hint::black_box(sum);
    mm::with(|m| {
        for t in tables {
            m.frames.free_frame(t);
        }
    });
    Ok((stores, lookups))
}

fn bench(frames: &[Pfn], pv: bool) -> Result<(), alloc::string::String> {
    // New tables: built then linked (the default path), and entry by entry.
    let us = |c: u64| rt::time::tsc_delta_to_duration(c).map_or(0, |d| d.as_micros());
    let b = map_fresh(frames, VA_BUILD, true)?;
    let e = map_fresh(frames, VA_ENTRY, false)?;
    rt::println!(
        "mm-bench: fresh_build_us={} fresh_build_hypercalls={} fresh_build_pte_writes={} fresh_build_tables={} fresh_entry_us={} fresh_entry_hypercalls={} fresh_entry_pte_writes={} fresh_entry_tables={}",
        us(b.cycles),
        b.hypercalls,
        b.pte_writes,
        b.tables,
        us(e.cycles),
        e.hypercalls,
        e.pte_writes,
        e.tables
    );
    // Where the time goes: the last submit (on PV: Xen validating the batch;
    // earlier submits of a full queue count as ours), and of ours the
    // mapper's checks of the frames before queueing and the filling of the
    // new tables (the rest: walking to the L2s, queueing the links and the
    // read-only entries, the frame source).
    rt::println!(
        "mm-bench: fresh_build_submit_us={} fresh_entry_submit_us={} fresh_build_check_us={} fresh_build_fill_us={}",
        us(b.submit),
        us(e.submit),
        us(b.check),
        us(b.fill)
    );
    // Time in the maps that was not theirs: Xen ran something else (dom0,
    // under the harness) while the vCPU was runnable.
    rt::println!(
        "mm-bench: fresh_build_stolen_us={} fresh_entry_stolen_us={}",
        b.stolen.as_micros(),
        e.stolen.as_micros()
    );
    // The floor under the guest's side of built-then-linked: the same
    // entries by plain stores, and the pfn-to-machine lookups it makes.
    let (sc, lc) = baselines(frames)?;
    rt::println!(
        "mm-bench: plain_store_us={} p2m_lookup_us={}",
        us(sc),
        us(lc)
    );
    // The timed parts lie inside the whole (a clock that went wrong, or
    // counters that counted elsewhere, would make the split a lie).
    if b.check + b.fill + b.submit > b.cycles {
        return Err(alloc::format!(
            "built then linked: checks {} + fill {} + submit {} cycles exceed the map's {}",
            b.check,
            b.fill,
            b.submit,
            b.cycles
        ));
    }
    if b.tables != PAGES / 512 || e.tables != 0 || b.pte_writes * 64 > e.pte_writes {
        return Err(alloc::format!(
            "new tables: built {} (want {}), {} vs {} entry writes",
            b.tables,
            PAGES / 512,
            b.pte_writes,
            e.pte_writes
        ));
    }
    // Both runs start from the same state: the range's tables exist, nothing mapped.
    let s0 = mm::stats();
    let t0 = rt::time::cycles();
    mm::with(|m| {
        m.mmu
            .map_frames(&m.kernel, VA, frames, Prot::RW, &mut m.frames)?
            .flush()
    })
    .map_err(err)?;
    let batched_cycles = rt::time::cycles() - t0;
    let batched_calls = mm::stats().hypercalls - s0.hypercalls;
    mm::with(|m| m.mmu.unmap_range(&m.kernel, VA, PAGES)?.flush()).map_err(err)?;

    let s1 = mm::stats();
    let t1 = rt::time::cycles();
    let mut naive_calls = 0u64;
    for (i, &p) in frames.iter().enumerate() {
        let va = VA + i as u64 * 4096;
        if pv {
            let hw = mm::with(|m| m.mmu.backend().hw_frame(p)).ok_or("no mfn")?;
            // SAFETY: [VA, VA + 64 MiB) is this test's own range; the frames are ours.
            unsafe { mm::update_va_mapping(va, pte::make(hw, Prot::RW.leaf_flags())) }
                .map_err(|e| alloc::format!("update_va_mapping: {e}"))?;
            naive_calls += 1;
        } else {
            mm::with(|m| {
                m.mmu
                    .map_frames(&m.kernel, va, &[p], Prot::RW, &mut m.frames)?
                    .flush()
            })
            .map_err(err)?;
        }
    }
    let naive_cycles = rt::time::cycles() - t1;
    naive_calls += mm::stats().hypercalls - s1.hypercalls;
    // Check the page-by-page result like the batched one, then clean up.
    // SAFETY: the last page was just mapped read-write.
    unsafe { ((VA + (PAGES - 1) * 4096) as *mut u64).write_volatile(7) };
    mm::with(|m| m.mmu.unmap_range(&m.kernel, VA, PAGES)?.flush()).map_err(err)?;
    rt::println!(
        "mm-bench: pages={PAGES} batched_hypercalls={batched_calls} naive_hypercalls={naive_calls} batched_cycles={batched_cycles} naive_cycles={naive_cycles}"
    );
    rt::println!(
        "mm-bench: cycle ratio naive/batched = {:.1}",
        naive_cycles as f64 / batched_cycles.max(1) as f64
    );
    // The same in time (pvclock's TSC scale) and page-table updates per second.
    if let (Some(b), Some(n)) = (
        rt::time::tsc_delta_to_duration(batched_cycles),
        rt::time::tsc_delta_to_duration(naive_cycles),
    ) {
        rt::println!(
            "mm-bench: batched_us={} naive_us={} batched_updates_per_s={:.0} naive_updates_per_s={:.0}",
            b.as_micros(),
            n.as_micros(),
            PAGES as f64 / b.as_secs_f64().max(1e-9),
            PAGES as f64 / n.as_secs_f64().max(1e-9)
        );
    }
    if pv && batched_calls > 64 {
        return Err(alloc::format!(
            "64 MiB took {batched_calls} hypercalls (goal: at most 64)"
        ));
    }
    Ok(())
}
