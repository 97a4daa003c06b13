//! The heap: talc as the global allocator over a region of its own that grows
//! on demand, by mapping fresh frames through the batched MMU layer, up to the
//! limit the image was built with (`image.toml`'s `[resources] heap`; default:
//! all free RAM).
//!
//! The region starts at [`HEAP_BASE`] (an L4 slot of its own) and grows in
//! steps of at least [`GROW_MIN_PAGES`]; [`trim`] unmaps the free top of it
//! and gives the frames back to the frame allocator. Growth takes the MMU
//! lock; code holding that lock (inside `rt::mm::with`) must not allocate — if
//! it does, the allocation fails loudly instead of deadlocking.
//!
//! Invariant: `[HEAP_BASE, HEAP_BASE + mapped_pages * PAGE_SIZE)` is mapped
//! read-write for the heap alone, and talc's heap ends at or below its end.
//!
//! May import: `mm`, `exit`, `console`, `time`, `arch`.
use core::alloc::Layout;
use core::ptr::NonNull;

use rt_mm::PAGE_SIZE;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use talc::sync::TalcLock;

/// Where the heap starts: L4 slot 128, away from the direct map (slot 0).
pub const HEAP_BASE: u64 = 0x0000_4000_0000_0000;
/// Smallest growth step (256 KiB).
pub const GROW_MIN_PAGES: u64 = 64;

/// The heap limit in MiB from the `RT_HEAP_LIMIT_MIB` the image was built
/// with (`cargo xtask build` sets it from `image.toml`); 0: no limit. Used by
/// `rt::main!`; a malformed value stops the build.
pub const fn parse_limit(v: Option<&str>) -> u64 {
    let Some(v) = v else { return 0 };
    let b = v.as_bytes();
    assert!(!b.is_empty(), "RT_HEAP_LIMIT_MIB is empty");
    let mut n: u64 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "RT_HEAP_LIMIT_MIB must be a number of MiB"
        );
        n = n * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    n
}

unsafe extern "Rust" {
    /// Defined by `rt::main!` from the build's `RT_HEAP_LIMIT_MIB`.
    static __RT_HEAP_LIMIT_MIB: u64;
}

/// The heap limit in bytes, if the image has one.
pub fn limit_bytes() -> Option<u64> {
    // SAFETY: `rt::main!` defines the static in every image; it is never written.
    let mib = unsafe { __RT_HEAP_LIMIT_MIB };
    (mib > 0).then_some(mib << 20)
}

/// Talc's source of memory: frames mapped at the end of the heap region.
#[derive(Debug)]
pub struct HeapSource {
    end: Option<NonNull<u8>>,
    mapped_pages: u64,
    growths: u64,
    grown_pages: u64,
    grow_us: u64,
    trimmed_pages: u64,
}

// SAFETY: the source is only touched under the allocator's lock.
unsafe impl Send for HeapSource {}

// SAFETY: `acquire` never uses the global allocator (no formatting, no
// collections); it maps memory and hands it to `talc` through `claim`/`extend`.
unsafe impl Source for HeapSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let need = layout.size() + layout.align() + talc::min_first_heap_size::<B>() + 64;
        let need_pages = (need as u64).div_ceil(PAGE_SIZE);
        let mapped = talc.source.mapped_pages;
        let mut pages = need_pages.max(GROW_MIN_PAGES);
        if let Some(limit) = limit_bytes() {
            let room = (limit / PAGE_SIZE).saturating_sub(mapped);
            if room < need_pages {
                out_of_memory(layout, mapped * PAGE_SIZE, Shortage::Limit);
            }
            pages = pages.min(room);
        }
        let va = HEAP_BASE + mapped * PAGE_SIZE;
        let t0 = crate::arch::rdtsc();
        if let Err(e) = crate::mm::grow_region(va, pages) {
            out_of_memory(layout, mapped * PAGE_SIZE, Shortage::Map(e));
        }
        let s = &mut talc.source;
        s.grow_us += crate::time::tsc_delta_to_duration(crate::arch::rdtsc().wrapping_sub(t0))
            .map_or(0, |d| d.as_micros() as u64);
        s.growths += 1;
        s.grown_pages += pages;
        s.mapped_pages += pages;
        let new_end = (va + pages * PAGE_SIZE) as *mut u8;
        let end = match talc.source.end {
            None => {
                // SAFETY: [HEAP_BASE, new_end) is mapped read-write for the heap
                // alone (the region invariant) and talc manages none of it.
                unsafe { talc.claim(HEAP_BASE as *mut u8, (new_end as u64 - HEAP_BASE) as usize) }
                    .ok_or(())?
            }
            Some(end) => {
                // SAFETY: the pages between the old end and `new_end` are
                // mapped, directly above the heap, for the heap alone.
                unsafe { talc.extend(end, new_end) }
            }
        };
        talc.source.end = Some(end);
        Ok(())
    }
}

#[global_allocator]
static ALLOCATOR: TalcLock<spin::Mutex<()>, HeapSource, talc::DefaultBinning> =
    TalcLock::new(HeapSource {
        end: None,
        mapped_pages: 0,
        growths: 0,
        grown_pages: 0,
        grow_us: 0,
        trimmed_pages: 0,
    });

/// Why the heap could not grow.
enum Shortage {
    /// The image's heap limit is reached.
    Limit,
    /// Mapping more failed (no frames, or the MMU lock was held).
    Map(crate::mm::MapError),
}

/// The heap cannot grow: say what was asked and what there is, then shut the
/// domain down as crashed. Runs under the allocator's lock, so it must not
/// allocate: everything is formatted straight to the console.
fn out_of_memory(layout: Layout, heap_bytes: u64, why: Shortage) -> ! {
    use crate::console::print_fatal as p;
    p(format_args!(
        "\nrt: out of memory: asked for {} bytes (align {}); heap {} KiB, ",
        layout.size(),
        layout.align(),
        heap_bytes / 1024
    ));
    match limit_bytes() {
        Some(l) => p(format_args!("limit {} KiB; ", l / 1024)),
        None => p(format_args!("limit: all free RAM; ")),
    }
    match crate::mm::free_frames() {
        Some(f) => p(format_args!("{f} free frames ({} KiB)\n", f * 4)),
        None => p(format_args!("free frames unknown\n")),
    }
    match why {
        Shortage::Limit => p(format_args!(
            "rt: the heap reached the limit set in image.toml ([resources] heap)\n"
        )),
        Shortage::Map(crate::mm::MapError::Busy) => p(format_args!(
            "rt: the MMU was busy: an allocation inside rt::mm::with cannot grow the heap\n"
        )),
        Shortage::Map(crate::mm::MapError::NoFrames) => {
            p(format_args!("rt: the domain has no free frames left\n"))
        }
        Shortage::Map(e) => p(format_args!("rt: growing the heap failed: {e}\n")),
    }
    crate::exit::crash()
}

/// What the heap holds and has done.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HeapStats {
    /// Bytes of the heap region mapped now.
    pub mapped_bytes: u64,
    /// The image's heap limit (`None`: all free RAM).
    pub limit_bytes: Option<u64>,
    /// Bytes in live allocations (their layouts' sizes).
    pub allocated_bytes: u64,
    /// Live allocations.
    pub allocations: u64,
    /// Allocations ever made.
    pub total_allocations: u64,
    /// Times the region grew, and by how many pages in all.
    pub growths: u64,
    /// Pages mapped by growth in all.
    pub grown_pages: u64,
    /// Microseconds spent growing (mapping frames) in all.
    pub grow_us: u64,
    /// Pages given back by [`trim`] in all.
    pub trimmed_pages: u64,
}

/// The heap's counters.
pub fn stats() -> HeapStats {
    let t = ALLOCATOR.lock();
    let c = t.counters();
    HeapStats {
        mapped_bytes: t.source.mapped_pages * PAGE_SIZE,
        limit_bytes: limit_bytes(),
        allocated_bytes: c.allocated_bytes as u64,
        allocations: c.allocation_count as u64,
        total_allocations: c.total_allocation_count,
        growths: t.source.growths,
        grown_pages: t.source.grown_pages,
        grow_us: t.source.grow_us,
        trimmed_pages: t.source.trimmed_pages,
    }
}

/// Bytes of the heap region mapped so far (0 if the heap is busy).
pub fn mapped_bytes() -> u64 {
    ALLOCATOR
        .try_lock()
        .map_or(0, |t| t.source.mapped_pages * PAGE_SIZE)
}

/// Gives the free pages at the top of the heap back to the frame allocator
/// (unmapping them), e.g. before [`crate::mm::release_to`]. Returns the
/// bytes given back. Must not be called inside `rt::mm::with`.
pub fn trim() -> u64 {
    let mut t = ALLOCATOR.lock();
    let Some(end) = t.source.end else { return 0 };
    // SAFETY: `end` is the heap's current end, as returned by claim/extend;
    // our source allows manual management. Truncation stops at what is
    // allocated (talc's reserved region).
    let new_end = unsafe { t.truncate(end, HEAP_BASE as *mut u8) };
    t.source.end = new_end;
    let keep = new_end.map_or(0, |e| (e.as_ptr() as u64 - HEAP_BASE).div_ceil(PAGE_SIZE));
    let drop = t.source.mapped_pages.saturating_sub(keep);
    if drop == 0 {
        return 0;
    }
    match crate::mm::shrink_region(HEAP_BASE + keep * PAGE_SIZE, drop) {
        Ok(_) => {
            t.source.mapped_pages = keep;
            t.source.trimmed_pages += drop;
            drop * PAGE_SIZE
        }
        // The pages stay mapped (and are extended into on the next growth).
        Err(_) => 0,
    }
}
