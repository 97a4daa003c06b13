//! GDT, TSS and IDT for PVH boots (Xen PVH and bare QEMU).
//!
//! Every exception gate uses an IST stack, so the CPU always switches stacks and
//! never writes a frame into the interrupted code's red zone (the precompiled
//! `core` uses it even though our crates are built without). #DF, NMI and #MC
//! get their own IST so a fault while handling a fault still has a good stack.
//! Handlers are the assembly stubs of traps.S (`set_handler_fn` needs the
//! nightly x86-interrupt ABI).
use rt_xen::abi::PAGE_SIZE;
use rt_xen::once::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::{Entry, InterruptDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use super::trap_stubs;

const IST_SIZE: usize = 16 * 1024;
/// IST index (0-based in the x86_64 crate) for ordinary exceptions.
const IST_EXCEPTION: u16 = 0;
/// IST index for #DF, NMI and #MC.
const IST_CRITICAL: u16 = 1;
/// IST index for the event-channel callback vector.
const IST_EVENT: u16 = 2;
/// The IDT vector Xen injects for event channels (`HVM_PARAM_CALLBACK_IRQ`).
pub const EVENT_VECTOR: u8 = 0xf3;

/// An IST stack with an unmapped guard page below it (once the runtime's own
/// address space is active).
#[repr(C, align(4096))]
struct Stack {
    guard: [u8; PAGE_SIZE],
    stack: [u8; IST_SIZE],
}

impl Stack {
    const fn new() -> Stack {
        Stack {
            guard: [0; PAGE_SIZE],
            stack: [0; IST_SIZE],
        }
    }
}

static mut IST_EXCEPTION_STACK: Stack = Stack::new();
static mut IST_CRITICAL_STACK: Stack = Stack::new();
static mut IST_EVENT_STACK: Stack = Stack::new();

/// Frames of the IST stacks' guard pages.
pub fn guard_pages() -> [u64; 3] {
    [
        (&raw const IST_EXCEPTION_STACK) as u64 >> 12,
        (&raw const IST_CRITICAL_STACK) as u64 >> 12,
        (&raw const IST_EVENT_STACK) as u64 >> 12,
    ]
}

struct Tables {
    gdt: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<Tables> = Once::new();
static IDT: Once<InterruptDescriptorTable> = Once::new();

fn stack_top(s: *mut Stack) -> VirtAddr {
    VirtAddr::new(s as u64 + size_of::<Stack>() as u64)
}

/// Loads the GDT (with a TSS holding the IST stacks) and an IDT whose every
/// exception gate leads to the fatal-trap reporter. Idempotent.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[usize::from(IST_EXCEPTION)] =
            stack_top(&raw mut IST_EXCEPTION_STACK);
        tss.interrupt_stack_table[usize::from(IST_CRITICAL)] =
            stack_top(&raw mut IST_CRITICAL_STACK);
        tss.interrupt_stack_table[usize::from(IST_EVENT)] = stack_top(&raw mut IST_EVENT_STACK);
        tss
    });
    let t = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        Tables {
            gdt,
            code,
            data,
            tss,
        }
    });
    t.gdt.load();
    // SAFETY: the selectors index the GDT just loaded, which lives in a static.
    unsafe {
        CS::set_reg(t.code);
        DS::set_reg(t.data);
        ES::set_reg(t.data);
        SS::set_reg(t.data);
        load_tss(t.tss);
    }
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: each stub is a valid exception entry point that never
        // returns, and each IST index used is set in the TSS above.
        unsafe {
            for v in [0u8, 1, 3, 4, 5, 6, 7, 9, 16, 19, 20] {
                gate(&mut idt[v], v, IST_EXCEPTION);
            }
            // The gates the x86_64 crate types by their frames (error codes,
            // a page-fault address, no return): #DF, NMI and #MC on the
            // critical stack.
            gate(&mut idt.non_maskable_interrupt, 2, IST_CRITICAL);
            gate(&mut idt.double_fault, 8, IST_CRITICAL);
            gate(&mut idt.machine_check, 18, IST_CRITICAL);
            gate(&mut idt.invalid_tss, 10, IST_EXCEPTION);
            gate(&mut idt.segment_not_present, 11, IST_EXCEPTION);
            gate(&mut idt.stack_segment_fault, 12, IST_EXCEPTION);
            gate(&mut idt.general_protection_fault, 13, IST_EXCEPTION);
            gate(&mut idt.page_fault, 14, IST_EXCEPTION);
            gate(&mut idt.alignment_check, 17, IST_EXCEPTION);
            gate(&mut idt.cp_protection_exception, 21, IST_EXCEPTION);
            // Interrupts are only enabled inside `rt_hvm_idle`; the gate
            // clears IF, so the handler is never re-entered.
            idt[EVENT_VECTOR]
                .set_handler_addr(VirtAddr::new(super::hvm_event_vector as *const () as u64))
                .set_stack_index(IST_EVENT);
        }
        idt
    });
    idt.load();
}

/// Points gate `e` at the stub of exception vector `v` (traps.S), on IST
/// stack `ist`.
///
/// # Safety
/// `e` must be vector `v`'s gate, and `ist` an IST index set in the TSS.
#[inline(never)] // one body per gate type, not one per gate
unsafe fn gate<F>(e: &mut Entry<F>, v: u8, ist: u16) {
    // SAFETY: trap_stubs is a read-only table assembled into the image.
    let stub = unsafe { trap_stubs[usize::from(v)] };
    // SAFETY: the stub is the exception entry point for `v` (traps.S), it
    // never returns, and the caller vouches for `ist`.
    unsafe {
        e.set_handler_addr(VirtAddr::new(stub)).set_stack_index(ist);
    }
}
