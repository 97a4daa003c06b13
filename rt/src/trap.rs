//! Fatal exceptions: report what happened and shut the domain down as crashed.
//!
//! PV: installed as the virtual IDT with `set_trap_table`; the page-fault
//! address comes from `vcpu_info.arch.cr2`. PVH: installed in the IDT (on IST
//! stacks, see `arch::idt`); the address comes from CR2. Also the PV
//! failsafe callback: Xen could not return to the guest.
//!
//! May import: `mm` (the page-table walk of a fault), `exit`, `console`,
//! `xen`, `arch`, `platform`.
use rt_xen::abi::hypercall;
use rt_xen::abi::{self, trap_info};

use crate::arch::{TRAP_VECTORS, pv_trap_stubs};
use crate::platform::{Platform, platform};
use crate::xen::HYPERVISOR;

/// The frame traps.S hands to [`rt_fatal_trap`].
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; TRAP_VECTORS] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
];

/// Vectors a PV guest registers (Xen delivers no #DF, NMI or #MC through the table).
const PV_VECTORS: [u8; 18] = [
    0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21,
];

/// Installs the PV virtual IDT. Without it Xen kills the domain on the first
/// exception and only says so in its own log.
pub fn install_pv() -> Result<(), rt_xen::XenError> {
    let mut table = [trap_info {
        vector: 0,
        flags: 0,
        cs: 0,
        address: 0,
    }; PV_VECTORS.len() + 1];
    for (slot, &v) in table.iter_mut().zip(PV_VECTORS.iter()) {
        // `int3`/`into` executed by the (ring-3) PV kernel need a DPL-3 gate.
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        // SAFETY: pv_trap_stubs is a read-only table assembled into the image.
        let address = unsafe { pv_trap_stubs[usize::from(v)] };
        *slot = trap_info {
            vector: v,
            flags: dpl,
            cs: abi::FLAT_KERNEL_CS,
            address,
        };
    }
    hypercall::set_trap_table(&HYPERVISOR, &table)
}

fn fault_address() -> u64 {
    match platform() {
        Platform::XenPv | Platform::XenPvDom0 => crate::xen::vcpu0().map_or(0, |v| {
            // SAFETY: vcpu_info is inside the mapped shared_info page.
            unsafe { (v.cast::<u8>().add(abi::VCPU_INFO_CR2_OFFSET) as *const u64).read_volatile() }
        }),
        // SAFETY: written by the trap stub before it called us; read-only here.
        _ => unsafe { core::ptr::addr_of!(crate::arch::trap_cr2).read_volatile() },
    }
}

/// Formats the page-table walk of a faulting address (and the faulting rsp).
struct FaultWalk(u64, u64);

impl core::fmt::Display for FaultWalk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        struct Adapter<'a, 'b>(&'a mut core::fmt::Formatter<'b>);
        impl core::fmt::Write for Adapter<'_, '_> {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                self.0.write_str(s)
            }
        }
        crate::mm::describe_fault(&mut Adapter(f), self.0, self.1);
        Ok(())
    }
}

#[unsafe(no_mangle)]
extern "C" fn rt_fatal_trap(f: &TrapFrame) -> ! {
    // First, before any output: printing makes hypercalls, and a VM exit may
    // not preserve CR2 (seen under QEMU's emulated SVM).
    let va = if f.vector == 14 { fault_address() } else { 0 };
    let name = NAMES.get(f.vector as usize).copied().unwrap_or("unknown");
    crate::console::print_fatal(format_args!(
        "\nrt: fatal exception {} ({name}) error={:#x} rip={:#x} rsp={:#x} rflags={:#x} cs={:#x}\n",
        f.vector, f.error, f.rip, f.rsp, f.rflags, f.cs
    ));
    if f.vector == 14 {
        let access = match (f.error & 2 != 0, f.error & 16 != 0) {
            (_, true) => "instruction fetch",
            (true, _) => "write",
            _ => "read",
        };
        let why = if f.error & 1 != 0 {
            "protection violation"
        } else {
            "page not present"
        };
        crate::console::print_fatal(format_args!("rt: page fault: {access} at {va:#x}: {why}\n"));
        crate::console::print_fatal(format_args!("{}", FaultWalk(va, f.rsp)));
    }
    crate::exit::crash()
}

/// The PV failsafe callback (events.S): Xen could not return to the guest.
#[unsafe(no_mangle)]
extern "C" fn rt_failsafe(frame: &[u64; 11]) -> ! {
    crate::console::print_fatal(format_args!(
        "\nrt: Xen could not return to the guest (failsafe callback): rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} ss={:#x} ds={:#x} es={:#x} fs={:#x} gs={:#x}\n",
        frame[6], frame[7], frame[8], frame[9], frame[10], frame[2], frame[3], frame[4], frame[5]
    ));
    crate::exit::crash()
}
