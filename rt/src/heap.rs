//! The heap: talc as the global allocator over a region of its own that grows
//! on demand, by mapping fresh frames through the batched MMU layer.
//!
//! The region starts at [`HEAP_BASE`] (an L4 slot of its own) and only ever
//! grows, in steps of at least [`GROW_MIN_PAGES`]. Growth takes the MMU lock;
//! code holding that lock (inside `rt::mm::with`) must not allocate — if it
//! does, the allocation fails loudly instead of deadlocking.
use core::alloc::Layout;
use core::ptr::NonNull;

use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use talc::sync::TalcLock;

/// Where the heap starts: L4 slot 128, away from the direct map (slot 0).
pub const HEAP_BASE: u64 = 0x0000_4000_0000_0000;
/// Smallest growth step (256 KiB).
pub const GROW_MIN_PAGES: u64 = 64;

/// Talc's source of memory: frames mapped at the end of the heap region.
#[derive(Debug)]
pub struct HeapSource {
    end: Option<NonNull<u8>>,
    mapped_pages: u64,
}

// SAFETY: the source is only touched under the allocator's lock.
unsafe impl Send for HeapSource {}

// SAFETY: `acquire` never uses the global allocator (no formatting, no
// collections); it maps memory and hands it to `talc` through `claim`/`extend`.
unsafe impl Source for HeapSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let need = layout.size() + layout.align() + talc::min_first_heap_size::<B>() + 64;
        let pages = (need as u64).div_ceil(4096).max(GROW_MIN_PAGES);
        let va = HEAP_BASE + talc.source.mapped_pages * 4096;
        if let Err(e) = crate::mm::grow_region(va, pages) {
            out_of_memory(layout, talc.source.mapped_pages * 4096, e);
        }
        talc.source.mapped_pages += pages;
        let new_end = (va + pages * 4096) as *mut u8;
        let end = match talc.source.end {
            None => {
                // SAFETY: [HEAP_BASE, new_end) was just mapped read-write for the
                // heap alone and nothing else refers to it.
                unsafe { talc.claim(HEAP_BASE as *mut u8, (pages * 4096) as usize) }.ok_or(())?
            }
            Some(end) => {
                // SAFETY: the pages between the old end and `new_end` were just
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
    });

/// The heap cannot grow: say what was asked and what there is, then shut the
/// domain down as crashed. Runs under the allocator's lock, so it must not
/// allocate: everything is formatted straight to the console.
fn out_of_memory(layout: Layout, heap_bytes: u64, why: crate::mm::MapError) -> ! {
    let free = crate::mm::free_frames();
    crate::console::print_fatal(format_args!(
        "\nrt: out of memory: asked for {} bytes (align {}); heap {} KiB mapped, limit: all free RAM; ",
        layout.size(),
        layout.align(),
        heap_bytes / 1024
    ));
    match (free, why) {
        (_, crate::mm::MapError::Busy) => crate::console::print_fatal(format_args!(
            "the MMU was busy: an allocation inside rt::mm::with cannot grow the heap\n"
        )),
        (Some(f), _) => {
            crate::console::print_fatal(format_args!("{f} free frames ({} KiB)\n", f * 4))
        }
        (None, _) => crate::console::print_fatal(format_args!("free frames unknown\n")),
    }
    crate::exit::crash()
}

/// Bytes of the heap region mapped so far.
pub fn mapped_bytes() -> u64 {
    ALLOCATOR
        .try_lock()
        .map_or(0, |t| t.source.mapped_pages * 4096)
}
