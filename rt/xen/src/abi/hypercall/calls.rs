//! The typed hypercalls: one function per operation the runtime uses, each
//! taking any [`Hypervisor`] and returning `Result<_, XenError>` (or, for the
//! grant-table operations, their own status as well). Pointer arguments are
//! built here from references, so callers pass Rust values, not addresses.
use crate::abi::errno::XenError;
use crate::abi::gnttab::{self, OpError};
use crate::abi::{self, ShutdownReason, op};

use super::Hypervisor;

fn ptr<T>(r: &T) -> u64 {
    r as *const T as u64
}

/// `fpu_taskswitch(set)`: clears (or sets) CR0.TS for a PV guest.
pub fn fpu_taskswitch<H: Hypervisor + ?Sized>(h: &H, set: bool) -> Result<(), XenError> {
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { h.hypercall(op::FPU_TASKSWITCH, &[u64::from(set)]) }).map(drop)
}

/// `console_io(CONSOLEIO_write)`: Xen's own console (dom0, or debug Xen).
pub fn console_write<H: Hypervisor + ?Sized>(h: &H, bytes: &[u8]) -> Result<(), XenError> {
    let len = u64::try_from(bytes.len()).map_err(|_| XenError::EINVAL)?;
    // SAFETY: Xen reads `len` bytes from the slice, which outlives the call.
    let r = unsafe {
        h.hypercall(
            op::CONSOLE_IO,
            &[abi::CONSOLEIO_WRITE, len, bytes.as_ptr() as u64],
        )
    };
    XenError::check(r).map(drop)
}

/// `console_io(CONSOLEIO_read)`: input typed on Xen's console (dom0 only).
pub fn console_read<H: Hypervisor + ?Sized>(h: &H, buf: &mut [u8]) -> Result<usize, XenError> {
    let len = u64::try_from(buf.len()).map_err(|_| XenError::EINVAL)?;
    // SAFETY: Xen writes at most `len` bytes into the slice, which outlives the call.
    let r = unsafe {
        h.hypercall(
            op::CONSOLE_IO,
            &[abi::CONSOLEIO_READ, len, buf.as_mut_ptr() as u64],
        )
    };
    // Xen never reports more than it was given room for; clamp in case it did.
    XenError::check(r).map(|n| (n as usize).min(buf.len()))
}

/// `SCHEDOP_shutdown`: returns only if Xen refused.
pub fn shutdown<H: Hypervisor + ?Sized>(h: &H, reason: ShutdownReason) -> XenError {
    let arg = abi::sched_shutdown {
        reason: reason as u32,
    };
    // SAFETY: Xen reads the `sched_shutdown` struct, which outlives the call.
    let r = unsafe { h.hypercall(op::SCHED_OP, &[abi::sched::SHUTDOWN, ptr(&arg)]) };
    match XenError::check(r) {
        Err(e) => e,
        Ok(_) => XenError::EINTR, // "returned" without shutting down
    }
}

/// How a suspend came back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SuspendReturn {
    /// The domain goes on where it was: the save was a checkpoint
    /// (`xl save -c`) or failed. Its devices, ports and grants are intact.
    Cancelled,
    /// The domain runs in a new domain (restored, or migrated): every port,
    /// grant and backend is gone.
    NewDomain,
}

/// `SCHEDOP_shutdown(SHUTDOWN_suspend)`: the domain is saved, and this
/// returns when it runs again — in the same domain (a cancelled suspend:
/// Xen returns 1) or in a new one (0). A PV guest passes the MFN of its
/// start_info (`start_info_mfn`), where the saver finds it and the
/// restorer writes the new domain's; a PVH guest passes none. Fails if Xen
/// refused to suspend the domain (it then goes on as if cancelled).
pub fn suspend<H: Hypervisor + ?Sized>(
    h: &H,
    start_info_mfn: Option<u64>,
) -> Result<SuspendReturn, XenError> {
    let arg = abi::sched_shutdown {
        reason: abi::SHUTDOWN_SUSPEND,
    };
    let mut args = [abi::sched::SHUTDOWN, ptr(&arg), 0];
    let n = match start_info_mfn {
        Some(mfn) => {
            args[2] = mfn;
            3
        }
        None => 2,
    };
    // SAFETY: Xen reads the `sched_shutdown` struct, which outlives the
    // call; the MFN is a plain number. The domain's memory is saved and
    // restored whole around the call.
    let r = XenError::check(unsafe { h.hypercall(op::SCHED_OP, &args[..n]) })?;
    Ok(if r == 0 {
        SuspendReturn::NewDomain
    } else {
        SuspendReturn::Cancelled
    })
}

/// `SCHEDOP_yield`.
pub fn sched_yield<H: Hypervisor + ?Sized>(h: &H) -> Result<(), XenError> {
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { h.hypercall(op::SCHED_OP, &[abi::sched::YIELD, 0]) }).map(drop)
}

/// `SCHEDOP_poll`: blocks until one of `ports` is pending or Xen system time
/// reaches `timeout_ns` (absolute; 0 = no timeout). Does not clear the pending bits.
pub fn sched_poll<H: Hypervisor + ?Sized>(
    h: &H,
    ports: &[u32],
    timeout_ns: u64,
) -> Result<(), XenError> {
    let nr_ports = u32::try_from(ports.len()).map_err(|_| XenError::EINVAL)?;
    let arg = abi::sched_poll {
        ports: ports.as_ptr(),
        nr_ports,
        timeout: timeout_ns,
    };
    // SAFETY: Xen reads the struct and `nr_ports` ports; both outlive the call.
    XenError::check(unsafe { h.hypercall(op::SCHED_OP, &[abi::sched::POLL, ptr(&arg)]) }).map(drop)
}

/// `EVTCHNOP_send`: notifies the other end of `port`.
pub fn evtchn_send<H: Hypervisor + ?Sized>(h: &H, port: u32) -> Result<(), XenError> {
    let arg = abi::evtchn_send { port };
    // SAFETY: Xen reads the struct, which outlives the call.
    XenError::check(unsafe { h.hypercall(op::EVENT_CHANNEL_OP, &[abi::EVTCHNOP_SEND, ptr(&arg)]) })
        .map(drop)
}

/// `HVMOP_get_param` for this domain.
pub fn hvm_get_param<H: Hypervisor + ?Sized>(h: &H, param: abi::HvmParam) -> Result<u64, XenError> {
    let mut arg = abi::xen_hvm_param {
        domid: abi::DOMID_SELF,
        pad: 0,
        index: param as u32,
        value: 0,
    };
    // SAFETY: Xen reads and writes the struct, which outlives the call.
    XenError::check(unsafe {
        h.hypercall(
            op::HVM_OP,
            &[abi::HVMOP_GET_PARAM, &mut arg as *mut _ as u64],
        )
    })?;
    Ok(arg.value)
}

/// `HVMOP_set_param` for this domain.
pub fn hvm_set_param<H: Hypervisor + ?Sized>(
    h: &H,
    param: abi::HvmParam,
    value: u64,
) -> Result<(), XenError> {
    let arg = abi::xen_hvm_param {
        domid: abi::DOMID_SELF,
        pad: 0,
        index: param as u32,
        value,
    };
    // SAFETY: Xen reads the struct, which outlives the call.
    XenError::check(unsafe { h.hypercall(op::HVM_OP, &[abi::HVMOP_SET_PARAM, ptr(&arg)]) })
        .map(drop)
}

/// `callback_op(CALLBACKOP_register)`: where Xen enters a PV guest for
/// events (`CALLBACKTYPE_EVENT`) or when it cannot return to it (failsafe).
///
/// # Safety
/// `address` must be an entry stub that copes with the frame Xen builds for
/// that callback type (`create_bounce_frame`) and returns with `HYPERVISOR_iret`.
pub unsafe fn register_callback<H: Hypervisor + ?Sized>(
    h: &H,
    ty: u16,
    address: u64,
    flags: u16,
) -> Result<(), XenError> {
    let arg = abi::callback_register {
        ty,
        flags,
        pad: 0,
        address,
    };
    // SAFETY: Xen reads the struct; the entry point is the caller's promise.
    XenError::check(unsafe { h.hypercall(op::CALLBACK_OP, &[abi::CALLBACKOP_REGISTER, ptr(&arg)]) })
        .map(drop)
}

/// `GNTTABOP_query_size`: (frames the grant table has, most it may have).
pub fn gnttab_query_size<H: Hypervisor + ?Sized>(h: &H) -> Result<(u32, u32), OpError> {
    let mut arg = abi::gnttab_query_size {
        dom: abi::DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: Xen reads and writes the one struct, which outlives the call.
    XenError::check(unsafe {
        h.hypercall(
            op::GRANT_TABLE_OP,
            &[abi::gnttabop::QUERY_SIZE, &mut arg as *mut _ as u64, 1],
        )
    })?;
    gnttab::status(arg.status)?;
    Ok((arg.nr_frames, arg.max_nr_frames))
}

/// `GNTTABOP_setup_table`: grows the table to `frames.len()` frames and
/// writes their frame numbers (MFNs: the PV way of finding them).
pub fn gnttab_setup_table<H: Hypervisor + ?Sized>(
    h: &H,
    frames: &mut [u64],
) -> Result<(), OpError> {
    let mut arg = abi::gnttab_setup_table {
        dom: abi::DOMID_SELF,
        nr_frames: u32::try_from(frames.len()).map_err(|_| XenError::E2BIG)?,
        status: 0,
        frame_list: frames.as_mut_ptr() as u64,
    };
    // SAFETY: Xen writes `nr_frames` entries of `frames`, which outlives the call.
    XenError::check(unsafe {
        h.hypercall(
            op::GRANT_TABLE_OP,
            &[abi::gnttabop::SETUP_TABLE, &mut arg as *mut _ as u64, 1],
        )
    })?;
    gnttab::status(arg.status)
}

/// `GNTTABOP_copy` of each entry; each entry's own status is checked (the
/// first failure is returned).
pub fn gnttab_copy<H: Hypervisor + ?Sized>(
    h: &H,
    ops: &mut [abi::gnttab_copy],
) -> Result<(), OpError> {
    // SAFETY: Xen reads the entries and writes their status; the frames
    // they name are checked by Xen against the grants and our ownership.
    XenError::check(unsafe {
        h.hypercall(
            op::GRANT_TABLE_OP,
            &[
                abi::gnttabop::COPY,
                ops.as_mut_ptr() as u64,
                ops.len() as u64,
            ],
        )
    })?;
    ops.iter().try_for_each(|o| gnttab::status(o.status))
}

/// `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)`: places grant-table frame
/// `idx` at guest frame `gpfn` (PVH), growing the table if needed.
///
/// # Safety
/// The page at `gpfn` must not hold anything the guest still needs: Xen
/// gives up whatever RAM was there.
pub unsafe fn map_grant_frame_at<H: Hypervisor + ?Sized>(
    h: &H,
    idx: u64,
    gpfn: u64,
) -> Result<(), XenError> {
    // SAFETY: forwarded from the caller.
    unsafe { add_to_physmap(h, abi::XENMAPSPACE_GRANT_TABLE, idx, gpfn) }
}

/// `set_trap_table`: installs a PV guest's virtual IDT. The table must end with
/// an entry whose `address` is 0, as Xen requires.
pub fn set_trap_table<H: Hypervisor + ?Sized>(
    h: &H,
    table: &[abi::trap_info],
) -> Result<(), XenError> {
    if table.last().is_none_or(|t| t.address != 0) {
        return Err(XenError::EINVAL);
    }
    // SAFETY: Xen reads entries up to the terminator, which is inside the slice.
    XenError::check(unsafe { h.hypercall(op::SET_TRAP_TABLE, &[table.as_ptr() as u64]) }).map(drop)
}

/// `update_va_mapping(va, pte, flags)`: rewrites the L1 entry mapping `va`.
///
/// # Safety
/// Changing a mapping can invalidate memory that Rust code still references:
/// the caller must ensure nothing live depends on the old mapping of `va`.
pub unsafe fn update_va_mapping<H: Hypervisor + ?Sized>(
    h: &H,
    va: u64,
    pte: u64,
    flags: u64,
) -> Result<(), XenError> {
    // SAFETY: no pointer arguments; the mapping change is the caller's responsibility.
    XenError::check(unsafe { h.hypercall(op::UPDATE_VA_MAPPING, &[va, pte, flags]) }).map(drop)
}

/// `multicall(entries)`: runs every entry in order; each sub-call's return
/// value lands in its `result`. Fails only if the list itself was rejected.
///
/// # Safety
/// Every pointer argument inside the entries must be valid for its sub-call,
/// and the sub-calls must not break invariants the caller relies on.
pub unsafe fn multicall<H: Hypervisor + ?Sized>(
    h: &H,
    entries: &mut [abi::multicall_entry],
) -> Result<(), XenError> {
    let n = entries.len() as u64;
    // SAFETY: Xen reads and writes `n` entries of the slice, which outlives the call;
    // the sub-calls' own arguments are the caller's responsibility.
    XenError::check(unsafe { h.hypercall(op::MULTICALL, &[entries.as_mut_ptr() as u64, n]) })
        .map(drop)
}

/// `XENMEM_add_to_physmap(XENMAPSPACE_shared_info)`: places the shared_info page
/// at guest frame `gpfn` (PVH/HVM). Whatever RAM was at `gpfn` is given up.
///
/// # Safety
/// The page at `gpfn` must not hold anything the guest still needs.
pub unsafe fn map_shared_info_at<H: Hypervisor + ?Sized>(h: &H, gpfn: u64) -> Result<(), XenError> {
    // SAFETY: forwarded from the caller.
    unsafe { add_to_physmap(h, abi::XENMAPSPACE_SHARED_INFO, 0, gpfn) }
}

/// `XENMEM_add_to_physmap` of frame `idx` of `space` at `gpfn`.
///
/// # Safety
/// As for the public callers: whatever was at `gpfn` is given up.
unsafe fn add_to_physmap<H: Hypervisor + ?Sized>(
    h: &H,
    space: u32,
    idx: u64,
    gpfn: u64,
) -> Result<(), XenError> {
    let arg = abi::xen_add_to_physmap {
        domid: abi::DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: Xen reads the struct; replacing the frame is the caller's responsibility.
    XenError::check(unsafe { h.hypercall(op::MEMORY_OP, &[abi::XENMEM_ADD_TO_PHYSMAP, ptr(&arg)]) })
        .map(drop)
}

/// `VCPUOP_*` (`public/vcpu.h`).
mod vcpuop {
    pub const REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
    pub const STOP_PERIODIC_TIMER: u64 = 7;
    pub const SET_SINGLESHOT_TIMER: u64 = 8;
    pub const STOP_SINGLESHOT_TIMER: u64 = 9;
}

/// `struct vcpu_set_singleshot_timer` (`public/vcpu.h`), 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SingleshotTimer {
    timeout_abs_ns: u64,
    flags: u32,
}

/// `VCPU_SSHOTTMR_future`: refuse (`ETIME`) a deadline that has passed
/// instead of raising the event at once.
pub const SSHOTTMR_FUTURE: u32 = 1;

/// `VCPUOP_set_singleshot_timer` with `VCPU_SSHOTTMR_future`: `VIRQ_TIMER`
/// fires on the calling vCPU (`vcpu`) at Xen system time `deadline_ns`; a
/// deadline that has already passed gives `ETIME` and arms nothing.
///
/// Never asking Xen for an event that is due at once keeps the event from
/// being raised inside the hypercall itself, while the caller runs with
/// events off: under QEMU's emulated SVM, returning to a PVH guest with
/// the callback vector pending and interrupts off right after such a
/// hypercall ended in triple faults (see rt::event's HVM notes).
pub fn set_singleshot_timer<H: Hypervisor + ?Sized>(
    h: &H,
    vcpu: u32,
    deadline_ns: u64,
) -> Result<(), XenError> {
    let arg = SingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags: SSHOTTMR_FUTURE,
    };
    // SAFETY: Xen reads the struct, live for the call.
    XenError::check(unsafe {
        h.hypercall(
            op::VCPU_OP,
            &[vcpuop::SET_SINGLESHOT_TIMER, u64::from(vcpu), ptr(&arg)],
        )
    })
    .map(drop)
}

/// `VCPUOP_stop_singleshot_timer` (`periodic = false`) or
/// `VCPUOP_stop_periodic_timer` (`true`: PV vCPUs start with a 10 ms tick).
pub fn stop_timer<H: Hypervisor + ?Sized>(
    h: &H,
    vcpu: u32,
    periodic: bool,
) -> Result<(), XenError> {
    let cmd = if periodic {
        vcpuop::STOP_PERIODIC_TIMER
    } else {
        vcpuop::STOP_SINGLESHOT_TIMER
    };
    // SAFETY: these commands take no argument struct.
    XenError::check(unsafe { h.hypercall(op::VCPU_OP, &[cmd, u64::from(vcpu), 0]) }).map(drop)
}

/// `VCPUOP_register_runstate_memory_area`: Xen keeps vCPU `vcpu`'s
/// runstate at `area` from now on (rewritten at each state change, and at
/// once when the caller is that vCPU). The address is virtual: it must stay
/// mapped, at the same address, in every page table the vCPU runs on. The
/// registration belongs to the vCPU, so a restored domain makes it again.
///
/// # Safety
/// `area` must be valid for Xen's writes for as long as it is registered
/// (a static, never reused for anything else).
pub unsafe fn register_runstate_area<H: Hypervisor + ?Sized>(
    h: &H,
    vcpu: u32,
    area: *mut crate::abi::runstate::RunstateInfo,
) -> Result<(), XenError> {
    // `struct vcpu_register_runstate_memory_area`: the address, as a u64.
    let arg: u64 = area as u64;
    // SAFETY: Xen reads the one-word struct during the call; the area's
    // lifetime is the caller's promise.
    XenError::check(unsafe {
        h.hypercall(
            op::VCPU_OP,
            &[
                vcpuop::REGISTER_RUNSTATE_MEMORY_AREA,
                u64::from(vcpu),
                ptr(&arg),
            ],
        )
    })
    .map(drop)
}

/// A `xen_memory_reservation` of `n` single frames listed at `list` (ours).
fn reservation_of(list: u64, n: usize) -> abi::xen_memory_reservation {
    abi::xen_memory_reservation {
        extent_start: list,
        nr_extents: n as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: abi::DOMID_SELF,
    }
}

/// `XENMEM_decrease_reservation` of single frames: gives the frames in
/// `frames` (PV: MFNs; translated guests: pfns) back to Xen. Returns how many
/// it took: Xen stops at the first frame it refuses.
///
/// # Safety
/// Nothing may use the frames any more (PV: no mapping left, or Xen keeps the
/// page alive and the reservation does not shrink).
pub unsafe fn decrease_reservation<H: Hypervisor + ?Sized>(
    h: &H,
    frames: &[u64],
) -> Result<usize, XenError> {
    let arg = reservation_of(frames.as_ptr() as u64, frames.len());
    // SAFETY: Xen reads the struct and the list it points to, both live for
    // the call; giving up the frames is the caller's responsibility.
    let r = XenError::check(unsafe {
        h.hypercall(
            op::MEMORY_OP,
            &[abi::XENMEM_DECREASE_RESERVATION, ptr(&arg)],
        )
    })?;
    Ok((r as usize).min(frames.len()))
}

/// `XENMEM_populate_physmap` of single frames for the pfns in `list`. Returns
/// how many were populated; for a PV guest Xen overwrites each of those
/// entries with the new frame's MFN (translated guests: the list is unchanged).
pub fn populate_physmap<H: Hypervisor + ?Sized>(
    h: &H,
    list: &mut [u64],
) -> Result<usize, XenError> {
    let arg = reservation_of(list.as_mut_ptr() as u64, list.len());
    // SAFETY: Xen reads the struct and reads/writes the list, both live for
    // the call; the new frames are not mapped anywhere yet.
    let r = XenError::check(unsafe {
        h.hypercall(op::MEMORY_OP, &[abi::XENMEM_POPULATE_PHYSMAP, ptr(&arg)])
    })?;
    Ok((r as usize).min(list.len()))
}

/// The domain's current (`XENMEM_current_reservation`, `tot_pages`) or
/// maximum (`XENMEM_maximum_reservation`, `max_pages`) reservation in pages.
pub fn reservation<H: Hypervisor + ?Sized>(h: &H, maximum: bool) -> Result<u64, XenError> {
    let domid: u16 = abi::DOMID_SELF;
    let cmd = if maximum {
        abi::XENMEM_MAXIMUM_RESERVATION
    } else {
        abi::XENMEM_CURRENT_RESERVATION
    };
    // SAFETY: Xen reads the domid the pointer refers to, live for the call.
    XenError::check(unsafe { h.hypercall(op::MEMORY_OP, &[cmd, ptr(&domid)]) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::hypercall::fake::Fake;

    #[test]
    fn shutdown_passes_a_pointer_to_the_reason() {
        let h = Fake {
            capture: Some((1, 4)),
            ..Default::default()
        };
        h.replies.borrow_mut().push_back(-1);
        assert_eq!(shutdown(&h, ShutdownReason::Crash), XenError::EPERM);
        let c = &h.calls.borrow()[0];
        assert_eq!((c.op, c.args[0]), (op::SCHED_OP, 2));
        assert_eq!(c.pointee, 3u32.to_le_bytes());
    }

    #[test]
    fn reservation_calls_pass_the_list_and_clamp_the_count() {
        let h = Fake {
            capture: Some((1, 32)),
            ..Default::default()
        };
        let frames = [7u64, 8, 9];
        // A Xen that claims more than it was given is clamped; a partial
        // answer is passed on.
        h.replies.borrow_mut().extend([5, 2]);
        // SAFETY: the fake touches no frames.
        assert_eq!(unsafe { decrease_reservation(&h, &frames) }, Ok(3));
        let mut list = [1u64, 2, 3];
        assert_eq!(populate_physmap(&h, &mut list), Ok(2));
        let calls = h.calls.borrow();
        assert_eq!(calls[0].args[0], abi::XENMEM_DECREASE_RESERVATION);
        assert_eq!(calls[1].args[0], abi::XENMEM_POPULATE_PHYSMAP);
        let arg = &calls[0].pointee;
        assert_eq!(arg[..8], (frames.as_ptr() as u64).to_le_bytes());
        assert_eq!(arg[8..16], 3u64.to_le_bytes(), "nr_extents");
        assert_eq!(arg[16..20], 0u32.to_le_bytes(), "order 0");
        assert_eq!(arg[24..26], abi::DOMID_SELF.to_le_bytes());
        // The reservation queries take a bare domid (not captured: 2 bytes).
        let h = Fake::default();
        h.replies.borrow_mut().extend([-12, 4096]);
        assert_eq!(reservation(&h, false), Err(XenError::ENOMEM));
        assert_eq!(reservation(&h, true), Ok(4096));
        let calls = h.calls.borrow();
        assert_eq!(calls[0].args[0], abi::XENMEM_CURRENT_RESERVATION);
        assert_eq!(calls[1].args[0], abi::XENMEM_MAXIMUM_RESERVATION);
    }

    #[test]
    fn timers_pass_vcpu_and_deadline() {
        let h = Fake {
            capture: Some((2, 16)),
            ..Default::default()
        };
        set_singleshot_timer(&h, 0, 123_456_789).unwrap();
        let c = h.calls.borrow()[0].clone();
        assert_eq!((c.op, c.args[0], c.args[1]), (op::VCPU_OP, 8, 0));
        assert_eq!(c.pointee[..8], 123_456_789u64.to_le_bytes());
        assert_eq!(c.pointee[8..12], SSHOTTMR_FUTURE.to_le_bytes());
        let h = Fake::default();
        h.replies.borrow_mut().extend([0, -22]);
        stop_timer(&h, 0, true).unwrap();
        assert_eq!(stop_timer(&h, 0, false), Err(XenError::EINVAL));
        let calls = h.calls.borrow();
        assert_eq!((calls[0].args[0], calls[1].args[0]), (7, 9));
    }

    #[test]
    fn suspend_passes_start_info_on_pv_and_reads_both_returns() {
        let h = Fake {
            capture: Some((1, 4)),
            ..Default::default()
        };
        h.replies.borrow_mut().extend([0, 1, -22]);
        assert_eq!(suspend(&h, Some(0x1234)), Ok(SuspendReturn::NewDomain));
        assert_eq!(suspend(&h, None), Ok(SuspendReturn::Cancelled));
        assert_eq!(suspend(&h, None), Err(XenError::EINVAL));
        let calls = h.calls.borrow();
        assert_eq!(
            calls[0].args,
            [abi::sched::SHUTDOWN, calls[0].args[1], 0x1234]
        );
        assert_eq!(calls[0].pointee, 2u32.to_le_bytes(), "SHUTDOWN_suspend");
        assert_eq!(calls[1].args.len(), 2, "PVH passes no start_info");
    }

    #[test]
    fn shutdown_that_returns_success_is_still_reported() {
        let h = Fake::default();
        assert_eq!(shutdown(&h, ShutdownReason::Poweroff), XenError::EINTR);
    }

    #[test]
    fn console_write_passes_length_and_buffer() {
        let h = Fake::default();
        console_write(&h, b"abc").unwrap();
        let c = &h.calls.borrow()[0];
        assert_eq!((c.op, c.args[0], c.args[1]), (op::CONSOLE_IO, 0, 3));
    }

    #[test]
    fn hvm_get_param_reads_back_the_value_and_maps_errors() {
        struct Writes;
        impl Hypervisor for Writes {
            unsafe fn hypercall(&self, _op: u32, args: &[u64]) -> i64 {
                // SAFETY: the caller passes a valid xen_hvm_param.
                let p = unsafe { &mut *(args[1] as *mut abi::xen_hvm_param) };
                assert_eq!((p.domid, p.index), (abi::DOMID_SELF, 17));
                p.value = 0xfeffc;
                0
            }
        }
        assert_eq!(
            hvm_get_param(&Writes, abi::HvmParam::ConsolePfn),
            Ok(0xfeffc)
        );
        let h = Fake::default();
        h.replies.borrow_mut().push_back(-22);
        assert_eq!(
            hvm_get_param(&h, abi::HvmParam::StorePfn),
            Err(XenError::EINVAL)
        );
    }

    #[test]
    fn trap_table_must_be_terminated() {
        let h = Fake::default();
        let entry = abi::trap_info {
            vector: 14,
            flags: 0,
            cs: abi::FLAT_KERNEL_CS,
            address: 0x1000,
        };
        let end = abi::trap_info {
            vector: 0,
            flags: 0,
            cs: 0,
            address: 0,
        };
        assert_eq!(set_trap_table(&h, &[entry]), Err(XenError::EINVAL));
        assert_eq!(set_trap_table(&h, &[]), Err(XenError::EINVAL));
        assert!(h.calls.borrow().is_empty());
        set_trap_table(&h, &[entry, end]).unwrap();
        assert_eq!(h.calls.borrow()[0].op, op::SET_TRAP_TABLE);
    }

    #[test]
    fn poll_passes_ports_and_timeout() {
        let h = Fake {
            capture: Some((1, 24)),
            ..Default::default()
        };
        sched_poll(&h, &[5, 7], 1234).unwrap();
        let c = &h.calls.borrow()[0];
        assert_eq!(c.args[0], abi::sched::POLL);
        assert_eq!(u32::from_le_bytes(c.pointee[8..12].try_into().unwrap()), 2);
        assert_eq!(
            u64::from_le_bytes(c.pointee[16..24].try_into().unwrap()),
            1234
        );
    }
}
