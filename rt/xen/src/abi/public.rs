//! Xen's public headers: the structures and constants `rt` uses.
//!
//! Where `xen-sys` (bindings of Xen 4.14's public headers) has an item, it is
//! re-exported from there; the rest (HVM/PVH, memory_op, the console page) is
//! declared here from `xen/include/public/**`, with the offsets checked by
//! compile-time assertions against the values gcc computed from the headers.
#![allow(non_camel_case_types)]

pub use xen_sys::{
    arch_shared_info, mmu_update, multicall_entry, shared_info, start_info, trap_info, vcpu_info,
    vcpu_time_info,
};

/// Hypercall numbers (`__HYPERVISOR_*`, `public/xen.h`).
pub mod op {
    #![allow(missing_docs)]
    pub const SET_TRAP_TABLE: u32 = xen_sys::__HYPERVISOR_set_trap_table;
    pub const MMU_UPDATE: u32 = xen_sys::__HYPERVISOR_mmu_update;
    pub const FPU_TASKSWITCH: u32 = xen_sys::__HYPERVISOR_fpu_taskswitch;
    pub const MEMORY_OP: u32 = xen_sys::__HYPERVISOR_memory_op;
    pub const MULTICALL: u32 = xen_sys::__HYPERVISOR_multicall;
    pub const UPDATE_VA_MAPPING: u32 = xen_sys::__HYPERVISOR_update_va_mapping;
    pub const XEN_VERSION: u32 = xen_sys::__HYPERVISOR_xen_version;
    pub const CONSOLE_IO: u32 = xen_sys::__HYPERVISOR_console_io;
    pub const VCPU_OP: u32 = xen_sys::__HYPERVISOR_vcpu_op;
    pub const MMUEXT_OP: u32 = xen_sys::__HYPERVISOR_mmuext_op;
    pub const SCHED_OP: u32 = xen_sys::__HYPERVISOR_sched_op;
    pub const EVENT_CHANNEL_OP: u32 = xen_sys::__HYPERVISOR_event_channel_op;
    pub const HVM_OP: u32 = xen_sys::__HYPERVISOR_hvm_op;
    pub const GRANT_TABLE_OP: u32 = xen_sys::__HYPERVISOR_grant_table_op;
    pub const IRET: u32 = xen_sys::__HYPERVISOR_iret;
    pub const CALLBACK_OP: u32 = xen_sys::__HYPERVISOR_callback_op;
}

/// log2 of the size of a page, as Xen and the rings count it (`XEN_PAGE_SHIFT`).
pub const PAGE_SHIFT: u32 = 12;
/// Bytes of a page (`XEN_PAGE_SIZE`): a frame, a ring page, a grant.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// `DOMID_SELF` (`public/xen.h`).
pub const DOMID_SELF: u16 = 0x7ff0;

/// Fixed virtual address of the read-only machine-to-phys table in a 64-bit PV
/// guest (`MACH2PHYS_VIRT_START`, `public/arch-x86/xen-x86_64.h`).
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the M2P window.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;

/// `FLAT_KERNEL_CS` for 64-bit PV guests.
pub const FLAT_KERNEL_CS: u16 = 0xe033;

/// `start_info.flags`: this is the control domain.
pub const SIF_INITDOMAIN: u32 = xen_sys::SIF_INITDOMAIN;

/// `SHUTDOWN_suspend` (`public/sched.h`): the domain is to be saved; see
/// [`hypercall::suspend`](crate::abi::hypercall::suspend).
pub const SHUTDOWN_SUSPEND: u32 = 2;

/// `SCHEDOP_*` commands (`public/sched.h`).
pub mod sched {
    #![allow(missing_docs)]
    pub const YIELD: u64 = xen_sys::SCHEDOP_yield as u64;
    pub const BLOCK: u64 = xen_sys::SCHEDOP_block as u64;
    pub const SHUTDOWN: u64 = xen_sys::SCHEDOP_shutdown as u64;
    pub const POLL: u64 = xen_sys::SCHEDOP_poll as u64;
}

/// Why the domain shuts down (`SHUTDOWN_*`, `public/sched.h`); `xl` maps these to
/// `on_poweroff`, `on_reboot` and `on_crash`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum ShutdownReason {
    /// Clean exit.
    Poweroff = 0,
    /// Restart requested.
    Reboot = 1,
    /// The guest failed.
    Crash = 3,
}

/// `CONSOLEIO_write` (`public/xen.h`).
pub const CONSOLEIO_WRITE: u64 = 0;
/// `CONSOLEIO_read`.
pub const CONSOLEIO_READ: u64 = 1;

/// `EVTCHNOP_send` (`public/event_channel.h`).
pub const EVTCHNOP_SEND: u64 = xen_sys::EVTCHNOP_send as u64;

/// `update_va_mapping` flags (`UVMF_*`, `public/xen.h`).
pub const UVMF_INVLPG: u64 = 2;

/// `XENMEM_add_to_physmap` (`public/memory.h`).
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `XENMEM_increase_reservation` .. `XENMEM_maximum_reservation`, `XENMEM_populate_physmap`.
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// Returns the domain's `tot_pages` (argument: a `domid_t`).
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// Returns the domain's `max_pages` (argument: a `domid_t`).
pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
/// Allocates frames for the listed guest pfns.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;

/// `struct xen_memory_reservation` (`public/memory.h`), 32 bytes:
/// `extent_start` is a guest handle (a pointer to `nr_extents` frame numbers).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xen_memory_reservation {
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    /// `address_bits` in the low byte (0: any), plus `XENMEMF_*` flags.
    pub mem_flags: u32,
    pub domid: u16,
}

/// `XENMAPSPACE_shared_info`.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;

/// `struct xen_add_to_physmap` (`public/memory.h`), 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xen_add_to_physmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

/// `HVMOP_get_param` (`public/hvm/hvm_op.h`).
pub const HVMOP_GET_PARAM: u64 = 1;
/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u64 = 0;
/// `HVM_PARAM_CALLBACK_IRQ` value type "vector" (bits 63:56): Xen injects
/// the IDT vector in bits 7:0 while `evtchn_upcall_pending` is set.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2 << 56;

/// `CALLBACKOP_register` (`public/callback.h`).
pub const CALLBACKOP_REGISTER: u64 = 0;
/// Callback types: event upcall, failsafe (Xen could not return to the guest).
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// See [`CALLBACKTYPE_EVENT`].
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// `CALLBACKF_mask_events`: deliver with event upcalls masked.
pub const CALLBACKF_MASK_EVENTS: u16 = 1;

/// `struct callback_register` (x86_64), 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct callback_register {
    pub ty: u16,
    pub flags: u16,
    pub pad: u32,
    pub address: u64,
}

/// `GNTTABOP_*` (`public/grant_table.h`).
pub mod gnttabop {
    #![allow(missing_docs)]
    pub const SETUP_TABLE: u64 = 2;
    pub const COPY: u64 = 5;
    pub const QUERY_SIZE: u64 = 6;
}

/// `XENMAPSPACE_grant_table` (PVH: place grant-table frame `idx` at a gfn).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// `struct gnttab_setup_table`, 24 bytes: `frame_list` is a guest handle.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gnttab_setup_table {
    pub dom: u16,
    pub nr_frames: u32,
    pub status: i16,
    pub frame_list: u64,
}

/// `struct gnttab_query_size`, 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct gnttab_query_size {
    pub dom: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
}

/// One side of a `gnttab_copy`: a grant reference (with `GNTCOPY_*_gref`)
/// or a frame of the caller's, plus the owning domain and an offset. 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct gnttab_copy_ptr {
    /// `union { grant_ref_t ref; xen_pfn_t gmfn; }`.
    pub u: u64,
    pub domid: u16,
    pub offset: u16,
}

/// `struct gnttab_copy`, 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct gnttab_copy {
    pub source: gnttab_copy_ptr,
    pub dest: gnttab_copy_ptr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
}

/// `gnttab_copy.flags`: the source is a grant reference.
pub const GNTCOPY_SOURCE_GREF: u16 = 1;
/// `gnttab_copy.flags`: the destination is a grant reference.
pub const GNTCOPY_DEST_GREF: u16 = 2;

/// HVM parameter indices (`public/hvm/params.h`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum HvmParam {
    /// How events are delivered (see [`HVM_PARAM_CALLBACK_TYPE_VECTOR`]).
    CallbackIrq = 0,
    /// GFN of the xenstore ring.
    StorePfn = 1,
    /// Event channel of the xenstore ring.
    StoreEvtchn = 2,
    /// GFN of the console ring.
    ConsolePfn = 17,
    /// Event channel of the console ring.
    ConsoleEvtchn = 18,
}

/// `struct xen_hvm_param`, 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xen_hvm_param {
    pub domid: u16,
    pub pad: u16,
    pub index: u32,
    pub value: u64,
}

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sched_shutdown {
    pub reason: u32,
}

/// `struct sched_poll`, 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sched_poll {
    pub ports: *const u32,
    pub nr_ports: u32,
    pub timeout: u64,
}

/// `struct evtchn_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evtchn_send {
    pub port: u32,
}

/// `mmu_update` command: a normal page-table update (`ptr` bits 2:0).
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;

/// `MMUEXT_*` commands (`public/xen.h`).
pub mod mmuext {
    #![allow(missing_docs)]
    pub const PIN_L1_TABLE: u32 = 0;
    pub const PIN_L2_TABLE: u32 = 1;
    pub const PIN_L3_TABLE: u32 = 2;
    pub const PIN_L4_TABLE: u32 = 3;
    pub const UNPIN_TABLE: u32 = 4;
    pub const NEW_BASEPTR: u32 = 5;
    pub const TLB_FLUSH_LOCAL: u32 = 6;
    pub const INVLPG_LOCAL: u32 = 7;
    pub const CLEAR_PAGE: u32 = 16;
}

/// `struct mmuext_op`, 24 bytes: `arg1` is an MFN or a linear address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mmuext_op {
    pub cmd: u32,
    pub pad: u32,
    pub arg1: u64,
    pub arg2: u64,
}

/// Offset of `vcpu_info.arch.cr2`: a PV guest's page-fault address.
pub const VCPU_INFO_CR2_OFFSET: usize = 16;

// Layout checks against the offsets gcc computed from Xen's headers.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<start_info>() == 1168);
    assert!(offset_of!(start_info, mfn_list) == 104);
    assert!(offset_of!(start_info, cmd_line) == 128);
    assert!(size_of::<shared_info>() == 3136);
    assert!(offset_of!(shared_info, evtchn_pending) == 2048);
    assert!(size_of::<vcpu_info>() == 64);
    assert!(offset_of!(vcpu_info, time) == 32);
    assert!(size_of::<trap_info>() == 16);
    assert!(size_of::<xen_add_to_physmap>() == 24);
    assert!(size_of::<xen_memory_reservation>() == 32);
    assert!(offset_of!(xen_memory_reservation, extent_order) == 16);
    assert!(offset_of!(xen_memory_reservation, domid) == 24);
    assert!(offset_of!(xen_add_to_physmap, gpfn) == 16);
    assert!(size_of::<xen_hvm_param>() == 16);
    assert!(offset_of!(xen_hvm_param, value) == 8);
    assert!(size_of::<sched_poll>() == 24);
    assert!(size_of::<mmuext_op>() == 24);
    assert!(size_of::<mmu_update>() == 16);
    assert!(size_of::<multicall_entry>() == 64);
    assert!(offset_of!(shared_info, arch) == 3088);
    assert!(offset_of!(sched_poll, timeout) == 16);
    assert!(size_of::<callback_register>() == 16);
    assert!(offset_of!(callback_register, address) == 8);
    assert!(size_of::<gnttab_setup_table>() == 24);
    assert!(offset_of!(gnttab_setup_table, status) == 8);
    assert!(offset_of!(gnttab_setup_table, frame_list) == 16);
    assert!(size_of::<gnttab_query_size>() == 16);
    assert!(offset_of!(gnttab_query_size, status) == 12);
    assert!(size_of::<gnttab_copy>() == 40);
    assert!(offset_of!(gnttab_copy, dest) == 16);
    assert!(offset_of!(gnttab_copy, len) == 32);
    assert!(offset_of!(gnttab_copy, status) == 36);
};
