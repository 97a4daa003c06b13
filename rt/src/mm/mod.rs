//! Memory management on this machine: the MMU layer of `rt-mm` wired to the
//! PV or the native backend, the runtime's own address space, and its frames.
//!
//! At boot (`init`) the runtime leaves the tables it was started with for
//! its own address space: all RAM in an identity direct map (va == pfn << 12),
//! the image W^X (text RX, rodata R+NX, data RW+NX), page 0 and a guard page
//! under each stack unmapped, page-table frames read-only. On PV the new root
//! is pinned and activated with `MMUEXT_NEW_BASEPTR`, then Xen's boot tables
//! are unpinned and their frames join the free frames; on PVH the boot tables
//! in .bss are freed the same way after `mov cr3`.
//!
//! May import: `xen`, `time`, `arch`, `platform`. Prints nothing: errors
//! are returned (boot and the fault reporter print them).
mod balloon;
mod native;
mod p2m;
mod pv;

use core::fmt::Write;
use core::mem::MaybeUninit;

use rt_mm::frames::BitmapFrames;
use rt_mm::kernel::{self, DirectRights, Layout};
use rt_mm::pte;
pub use rt_mm::{
    AllocStats, Balloon, BalloonError, Level, MapError, Mmu, PAGE_SIZE, Pfn, Prot, Space, Stats,
};
use rt_mm::{Backend, FrameAllocator, FrameSource};
use rt_xen::XenError;
use spin::Mutex;

pub use self::balloon::{Reservation, ReservationError, grow_to, release_to, reservation};
pub(crate) use self::balloon::{Shed, shed, unshed};
pub use self::native::NativeBackend;
pub use self::p2m::P2mList;
pub(crate) use self::p2m::{publish_p2m, republish_p2m};
pub use self::pv::{PvBackend, XenM2p};

/// Pages that hold `bytes`.
fn pages_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// Ops the MMU queues before it submits on its own.
pub(crate) const QUEUE: usize = rt_mm::mmu::QUEUE;

/// The backend of this boot — PV or native, chosen by the boot path — as
/// the MMU layer holds it: one trait object, installed once (`install`).
pub type Machine = &'static mut (dyn Backend + Send);

/// Moves `backend` into `slot` for the rest of the run and lends it out for
/// good; `None` if that slot was filled already (a backend is installed
/// once per boot).
pub(crate) fn install<B: Backend + Send>(
    slot: &'static Mutex<Option<B>>,
    backend: B,
) -> Option<Machine> {
    // The lock is never released: the backend belongs to the MMU from now on.
    let guard = slot.try_lock()?;
    Some(spin::MutexGuard::leak(guard).insert(backend))
}

/// The memory state apps reach through [`with`].
#[derive(Debug)]
pub struct Mm {
    /// The MMU layer.
    pub mmu: Mmu<'static, Machine>,
    /// Free frames.
    pub frames: FrameAllocator<'static>,
    /// The runtime's address space (active).
    pub kernel: Space,
    /// Frames of RAM.
    pub nr_pages: u64,
    /// Microseconds the boot address space took to build.
    pub build_us: u64,
    /// Microseconds the frame allocator took to set up.
    pub alloc_setup_us: u64,
    /// What each step of the address space's build cost
    /// ([`rt_mm::kernel::STEP_NAMES`]; cycles are TSC ticks).
    pub build_steps: [kernel::Step; kernel::STEPS],
    /// Frames given back to Xen (created on the first [`release_to`]).
    pub balloon: Option<Balloon<'static>>,
    /// PV: the p2m's frame list for the toolstack (`publish_p2m`).
    pub p2m_list: Option<P2mList>,
    /// The pfns the last suspend gave back ([`shed`]), one bit each; made
    /// on the first suspend, reused by every one after (no heap use).
    shed_bits: Option<&'static mut [u64]>,
}

/// The memory state once boot made it. All zero bytes until then, so the
/// static lives in .bss: an `Option<Mm>`'s `None` is not all zero (its
/// niche sits in a field), which put the whole 17 KiB of it into every
/// image's file as .data.
struct Slot {
    ready: bool,
    mm: MaybeUninit<Mm>,
}

impl Slot {
    /// The memory state, once boot made it.
    fn as_ref(&self) -> Option<&Mm> {
        // SAFETY: `ready` is set only by `set`, after `mm` was written.
        self.ready.then(|| unsafe { self.mm.assume_init_ref() })
    }

    /// The memory state, once boot made it.
    fn as_mut(&mut self) -> Option<&mut Mm> {
        if !self.ready {
            return None;
        }
        // SAFETY: as in `as_ref`.
        Some(unsafe { self.mm.assume_init_mut() })
    }

    /// Boot's memory state (set once; a second call replaces it).
    fn set(&mut self, mm: Mm) {
        if self.ready {
            // SAFETY: `ready` says `mm` holds a value; it is replaced next.
            unsafe { self.mm.assume_init_drop() };
        }
        self.mm.write(mm);
        self.ready = true;
    }
}

static MM: Mutex<Slot> = Mutex::new(Slot {
    ready: false,
    mm: MaybeUninit::zeroed(),
});

/// Runs `f` with the memory state. Panics if called before boot set it up.
pub fn with<R>(f: impl FnOnce(&mut Mm) -> R) -> R {
    f(MM.lock()
        .as_mut()
        .expect("rt::mm used before the address space exists"))
}

/// Free frames, if the memory state can be read right now (not while
/// someone holds it).
pub fn free_frames() -> Option<u64> {
    MM.try_lock()
        .and_then(|g| g.as_ref().map(|m| m.frames.free_count()))
}

/// MMU counters (all zero before the address space exists).
pub fn stats() -> Stats {
    MM.try_lock()
        .and_then(|g| g.as_ref().map(|m| m.mmu.stats()))
        .unwrap_or_default()
}

/// The guest's own p2m (PV): entries and the pages holding them, and how
/// many entries are invalid because their frames went back to Xen. `None`
/// on PVH, where Xen keeps the physmap.
pub fn p2m_info() -> Option<(u64, u64, u64)> {
    if !crate::platform::platform().is_pv() {
        return None;
    }
    let g = MM.try_lock()?;
    let m = g.as_ref()?;
    let absent = m.balloon.as_ref().map_or(0, |b| b.absent());
    Some((m.nr_pages, pages_for(m.nr_pages * 8), absent))
}

/// What boot code knows about memory when it hands over to [`init`].
pub(crate) struct BootMemory<'a> {
    /// Frames `[0, nr_pages)` may be RAM.
    pub nr_pages: u64,
    /// Frames below this are mapped (readable, writable) by the boot tables.
    pub readable: u64,
    /// Free frames, as `[start, end)` ranges.
    pub free: &'a [(u64, u64)],
    /// RAM, as `[start, end)` frame ranges (PVH memory maps have holes).
    pub ram: &'a [(u64, u64)],
    /// Frames that hold something other than ordinary RAM contents and must not
    /// be direct-mapped at their pfn (PV: the page shared_info replaced).
    pub skip: &'a [u64],
    /// Machine frames to map at an address of their own: (va, frame, rights).
    pub machine: &'a [(u64, u64, Prot)],
    /// Xen's boot root (PV), adopted and released during the switch.
    pub boot_root: Option<Pfn>,
    /// Frames to free once the new space is active (PVH's boot tables).
    pub free_after: (u64, u64),
}

/// Pages that stay unmapped: page 0 and the stack guards.
fn guard_pages() -> [u64; 5] {
    let ist = crate::arch::idt::guard_pages();
    [
        0,
        (&raw const crate::arch::boot_stack_guard) as u64 >> 12,
        ist[0],
        ist[1],
        ist[2],
    ]
}

/// Why the address space could not be set up.
#[derive(Debug)]
pub enum InitError {
    /// A backend was installed already (the address space is built once).
    Again,
    /// Not enough free frames below the boot mapping for the bookkeeping.
    NoBootFrames,
    /// More frames to leave out of the direct map than it has room for.
    TooManyHoles,
    /// The mapper failed.
    Map(MapError),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Again => f.write_str("the address space was built already"),
            InitError::NoBootFrames => f.write_str("no free frames for the page-table bookkeeping"),
            InitError::TooManyHoles => {
                f.write_str("too many frames to leave out of the direct map")
            }
            InitError::Map(e) => write!(f, "{e}"),
        }
    }
}

/// Takes `n` contiguous frames for bookkeeping from the first free range
/// below `limit` that has room; they are zeroed and never freed.
fn take_boot_frames(free: &mut [(u64, u64)], n: u64, limit: u64) -> Option<&'static mut [u8]> {
    let r = free.iter_mut().find(|r| r.0 + n <= r.1.min(limit))?;
    let start = r.0;
    r.0 += n;
    let bytes = (n * PAGE_SIZE) as usize;
    // SAFETY: the frames were free RAM, are mapped read-write at their identity
    // address by the boot tables (below `limit`), and leave the free ranges here
    // so nothing else will ever use them.
    let s = unsafe { core::slice::from_raw_parts_mut((start << 12) as *mut u8, bytes) };
    s.fill(0);
    Some(s)
}

/// Builds and activates the runtime's address space.
pub(crate) fn init(machine: Machine, boot: &BootMemory<'_>) -> Result<(), InitError> {
    let t0 = crate::arch::rdtsc();
    let mut free = [(0u64, 0u64); 8];
    let n = boot.free.len().min(free.len());
    free[..n].copy_from_slice(&boot.free[..n]);
    let free = &mut free[..n];
    let types_pages = pages_for(boot.nr_pages);
    let words = BitmapFrames::words_for(boot.nr_pages);
    let bits_pages = pages_for(words as u64 * 8);
    let types =
        take_boot_frames(free, types_pages, boot.readable).ok_or(InitError::NoBootFrames)?;
    let bits = take_boot_frames(free, bits_pages, boot.readable).ok_or(InitError::NoBootFrames)?;
    let types = &mut types[..boot.nr_pages as usize];
    // SAFETY: the frames are 8-byte aligned (page aligned), zeroed, and the
    // slice covers `words` u64s inside them.
    let bits: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(bits.as_mut_ptr().cast(), words) };
    let mut frames = BitmapFrames::new(bits);
    for &(s, e) in free.iter() {
        frames.add_range(Pfn(s), Pfn(e));
    }
    let mut mmu = Mmu::new(machine, types, boot.boot_root);
    // Holes: the guard pages, then the frames to skip.
    let mut holes = [0u64; 8];
    let guards = guard_pages();
    let n = guards.len() + boot.skip.len();
    let holes = holes.get_mut(..n).ok_or(InitError::TooManyHoles)?;
    holes[..guards.len()].copy_from_slice(&guards);
    holes[guards.len()..].copy_from_slice(boot.skip);
    let image = crate::arch::image_layout();
    let rights = DirectRights {
        ram: boot.ram,
        holes,
        text: image.text,
        rodata: image.rodata,
    };
    let layout = Layout {
        nr_pages: boot.nr_pages,
        readable: boot.readable,
        rights: &|p| rights.run(p),
        machine: boot.machine,
    };
    let boot_space = boot.boot_root.map(|r| Space::adopt(r, true));
    let (kernel, build_steps) =
        kernel::build_steps(&mut mmu, &mut frames, boot_space, &layout).map_err(InitError::Map)?;
    frames.add_range(Pfn(boot.free_after.0), Pfn(boot.free_after.1));
    let us = |since: u64| {
        crate::time::tsc_delta_to_duration(crate::arch::rdtsc().wrapping_sub(since))
            .map_or(0, |d| d.as_micros() as u64)
    };
    let build_us = us(t0);

    // From here on the whole direct map exists: hand the free frames over to
    // the frame allocator in one pass over the boot bitmap.
    let t1 = crate::arch::rdtsc();
    let words = FrameAllocator::words_needed(boot.nr_pages);
    let pages = pages_for(words as u64 * 8);
    let storage = frames.take_run(pages).ok_or(InitError::NoBootFrames)?;
    // SAFETY: `pages` consecutive free frames just taken out of the free set,
    // mapped read-write at their identity address; used only by the allocator.
    let storage: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(storage.addr() as *mut u64, words) };
    let alloc = FrameAllocator::from_bitmap(storage, boot.nr_pages, frames.bits())
        .ok_or(InitError::NoBootFrames)?;
    let alloc_setup_us = us(t1);
    MM.lock().set(Mm {
        mmu,
        frames: alloc,
        kernel,
        nr_pages: boot.nr_pages,
        build_us,
        alloc_setup_us,
        build_steps,
        balloon: None,
        shed_bits: None,
        p2m_list: None,
    });
    Ok(())
}

/// Writes what the page tables say about `va` (for a page-fault report): the
/// entry at each level with its frame translated back to a pfn, and whether
/// `va` (or the faulting stack pointer `rsp`) is in a stack guard page. Never blocks: if the MMU is busy (the fault hit
/// inside it) it says so.
pub(crate) fn describe_fault(out: &mut dyn Write, va: u64, rsp: u64) {
    // A stack that ran into its guard page leaves the stack pointer there too,
    // which identifies an overflow even where the fault address is unreliable.
    if guard_pages()[1..].contains(&(rsp >> 12)) {
        let _ = writeln!(
            out,
            "rt: the stack pointer {rsp:#x} is in a stack guard page: stack overflow"
        );
    } else if guard_pages()[1..].contains(&(va >> 12)) {
        let _ = writeln!(out, "rt: {va:#x} is a stack guard page: stack overflow");
    } else if va >> 12 == 0 {
        let _ = writeln!(out, "rt: {va:#x} is in page 0: null pointer dereference");
    }
    let Some(guard) = MM.try_lock() else {
        let _ = writeln!(
            out,
            "rt: (page-table walk unavailable: the fault hit inside the MMU layer)"
        );
        return;
    };
    let Some(mm) = guard.as_ref() else {
        let _ = writeln!(
            out,
            "rt: (page-table walk unavailable: fault before the address space was built)"
        );
        return;
    };
    let root = mm.mmu.active().unwrap_or(mm.kernel.root());
    let walk = mm.mmu.walk(root, va);
    for (i, e) in walk.iter().enumerate() {
        let Some(e) = *e else { break };
        let level = 4 - i;
        let hw = pte::frame(e);
        match mm.mmu.backend().pfn_of(hw) {
            Some(p) if pte::present(e) => {
                let _ = writeln!(out, "rt:   L{level} entry {e:#018x} -> frame {hw:#x} ({p})");
            }
            _ if pte::present(e) => {
                let _ = writeln!(
                    out,
                    "rt:   L{level} entry {e:#018x} -> frame {hw:#x} (not RAM of ours)"
                );
            }
            _ => {
                let _ = writeln!(out, "rt:   L{level} entry {e:#018x} (not present)");
            }
        }
    }
}

/// Maps `pages` fresh frames read-write at `va` in the kernel space (the heap's
/// growth). Fails if the MMU is busy (an allocation inside [`with`]) or the
/// frames run out; a partial growth is undone.
pub(crate) fn grow_region(va: u64, pages: u64) -> Result<(), MapError> {
    let mut guard = MM.try_lock().ok_or(MapError::Busy)?;
    let mm = guard.as_mut().ok_or(MapError::NoFrames)?;
    rt_mm::region::map_fresh(&mut mm.mmu, &mm.kernel, &mut mm.frames, va, pages)
}

/// Unmaps `pages` pages of a region grown by [`grow_region`] from `va`; their
/// frames become free. Returns the number of frames freed.
pub(crate) fn shrink_region(va: u64, pages: u64) -> Result<u64, MapError> {
    let mut guard = MM.try_lock().ok_or(MapError::Busy)?;
    let mm = guard.as_mut().ok_or(MapError::NoFrames)?;
    rt_mm::region::unmap_fresh(&mut mm.mmu, &mm.kernel, &mut mm.frames, va, pages)
}

/// Frame-allocator counters (all zero before the address space exists).
pub fn frame_stats() -> rt_mm::AllocStats {
    MM.try_lock()
        .and_then(|g| g.as_ref().map(|m| m.frames.stats()))
        .unwrap_or_default()
}

/// Rewrites the L1 entry mapping `va` in the active tables with one
/// `update_va_mapping` hypercall and flushes that page (PV only): the
/// page-at-a-time baseline the batched mapper is measured against.
///
/// # Safety
/// `entry` must not map anything Rust code relies on being mapped differently,
/// and `va` must lie in a region the caller owns (no runtime structure).
pub unsafe fn update_va_mapping(va: u64, entry: u64) -> Result<(), XenError> {
    // SAFETY: forwarded from the caller.
    unsafe {
        rt_xen::abi::hypercall::update_va_mapping(
            &crate::xen::HYPERVISOR,
            va,
            entry,
            rt_xen::abi::UVMF_INVLPG,
        )
    }
}

/// Frees frames handed back by an app (see [`with`]).
pub fn free_frame(pfn: Pfn) {
    with(|m| m.frames.free_frame(pfn));
}

/// Where the grant table's frames are mapped (their own window: the frames
/// are Xen's, not RAM of ours, so they are not in the direct map).
pub const GRANT_TABLE_VA: u64 = 0x0000_5000_0000_0000;

/// Maps frames `hw` that are not RAM of ours (Xen's, such as the grant
/// table's: MFNs on PV, gfns on PVH) read-write at consecutive pages from
/// `va` in the runtime's address space.
pub(crate) fn map_machine_frames(va: u64, hw: &[u64]) -> Result<(), MapError> {
    let mut guard = MM.try_lock().ok_or(MapError::Busy)?;
    let mm = guard.as_mut().ok_or(MapError::NoFrames)?;
    for (i, &f) in hw.iter().enumerate() {
        mm.mmu
            .map_machine(
                &mm.kernel,
                va + i as u64 * PAGE_SIZE,
                f,
                1,
                Prot::RW,
                &mut mm.frames,
            )?
            .flush()?;
    }
    Ok(())
}

/// Unmaps `pages` pages mapped by [`map_machine_frames`] from `va` (the
/// frames are Xen's: nothing goes back to the frame allocator).
pub(crate) fn unmap_machine_frames(va: u64, pages: u64) -> Result<(), MapError> {
    let mut guard = MM.try_lock().ok_or(MapError::Busy)?;
    let mm = guard.as_mut().ok_or(MapError::NoFrames)?;
    mm.mmu.unmap_range(&mm.kernel, va, pages)?.flush()
}

/// Takes `n` consecutive free frames (zeroed, mapped read-write at their
/// identity address), or `None` if there are none.
pub fn alloc_frames(n: u64) -> Option<Pfn> {
    let at = MM.try_lock()?.as_mut()?.frames.alloc_contiguous(n, 1)?;
    // SAFETY: the frames were free: ordinary RAM of ours, mapped read-write
    // at their identity address, used by nothing else yet.
    unsafe { core::ptr::write_bytes(at.addr() as *mut u8, 0, (n * PAGE_SIZE) as usize) };
    Some(at)
}

/// The number Xen knows frame `pfn` by: its MFN on PV, the pfn itself on PVH.
pub fn xen_frame(pfn: Pfn) -> Option<u64> {
    MM.try_lock()?.as_ref()?.mmu.backend().hw_frame(pfn)
}

/// The pfn of one of our frames as Xen knows it (PV: an MFN, through the
/// M2P checked against the p2m), if it is ours.
pub fn pfn_of_frame(hw: u64) -> Option<Pfn> {
    MM.try_lock()?.as_ref()?.mmu.backend().pfn_of(hw)
}
