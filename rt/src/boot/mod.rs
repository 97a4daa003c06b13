//! Boot: the two entry paths (PV, PVH) converge here and call the app's `main`.
//!
//! ```text
//! pv_start64 ──► pv::rt_pv_entry  ─┐  (Xen PV domU / dom0)
//!                                  ├─► enter_main ─► app main ─► rt::exit
//! pvh_start32 ─► pvh::rt_pvh_entry ┘  (Xen PVH domU / bare QEMU)
//! ```
//!
//! May import: anything (the top layer: it wires the runtime together).
mod pv;
mod pvh;

use crate::platform::Platform;

unsafe extern "Rust" {
    /// Defined by `rt::main!` in the app.
    fn __rt_app_main() -> i32;
}

/// Finishes the runtime's set-up, records the boot facts and runs the app.
/// Never returns.
/// `cmdline` is the raw command line (up to its first NUL, if any); a slice
/// rather than an iterator so there is one copy of this code for PV and PVH.
fn enter_main(platform: Platform, memory_bytes: u64, cmdline: &[u8]) -> ! {
    if platform.is_xen() {
        if let Err(e) = crate::sched::init_timer() {
            crate::console::println!(
                "rt: stopping the periodic timer failed: {e} (the guest ticks at 100 Hz)"
            );
        }
        if let Err(e) = crate::event::init_upcalls() {
            crate::console::println!("rt: event upcalls unavailable ({e}): events are polled");
        }
        crate::bootinfo::mark("events");
        if let Err(e) = crate::control::start() {
            crate::console::println!(
                "rt: control: {e}: `xl shutdown` and `xl mem-set` are not served"
            );
        }
        crate::bootinfo::mark("control");
    }
    crate::bootinfo::record(platform, memory_bytes, cmdline);
    // Every boot says where its time and its Xen work went, phase by phase.
    crate::console::println!("{}", crate::bootinfo::timeline().report());
    if platform.is_xen() {
        crate::event::apply_cmdline();
    }
    // SAFETY: `rt::main!` defines this function in every image.
    let code = unsafe { __rt_app_main() };
    crate::exit::exit(code)
}
