//! `rt`: link an application against this crate and it becomes one bootable
//! Xen image — PV domU, PVH domU, PV dom0, or a bare QEMU PVH guest.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! rt::main!(main);
//! fn main() {
//!     rt::println!("hello from {} ({})", rt::app_name(), rt::platform());
//! }
//! ```
//!
//! The app sees one API whatever it booted as: [`println!`], [`exit`],
//! [`boot_info`]; [`platform`] tells it the mode only when it asks. A panic
//! prints its message and location and shuts the domain down as crashed.
//!
//! The runtime in layers, bottom up (each module says at its top what it
//! may import; nothing imports upward — see ARCHITECTURE.md):
//!
//! ```text
//! boot/                          entry paths → main: wires everything
//! task                           async tasks for apps (executor over net + timers)
//! dev/ (net/ blk/)               device frontends, the device registry
//! control trap                   the toolstack's requests; fatal traps
//! suspend                        save, checkpoint, migrate: suspend and come back
//! grant xenstore heap            services over Xen and memory
//! mm/ exit                       the MMU layer's backends; leaving
//! console                        output, input (waits through sched)
//! sched/                         idle loop + services, timer, sleep
//! event/                         channels, upcalls, polling
//! time bootinfo                  clocks; what boot learned
//! xen/ qemu                      the hypervisor (hypercall page, shared_info); bare QEMU
//! arch/ platform                 the CPU; the boot mode
//! ```
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
extern crate kmem; // memcpy & co. for the precompiled core

mod arch;
mod boot;
mod bootinfo;
pub mod console;
pub mod control;
pub mod dev;
pub mod event;
mod exit;
pub mod grant;
pub mod heap;
pub mod mm;
pub mod parse;
mod platform;
mod qemu;
pub mod sched;
mod suspend;
pub mod task;
pub mod time;
mod trap;
mod xen;
pub mod xenstore;

pub use bootinfo::{BootInfo, Timeline, app_name, boot_info, timeline};
pub use dev::blk as block;
pub use dev::net;
pub use exit::{MainResult, exit, reboot};
pub use platform::{Platform, platform};
pub use xen::hypercalls_issued;

/// Declares the app's entry function: `rt::main!(main);`.
///
/// The function takes no arguments and returns `()`, an `i32` exit code, or a
/// `Result<(), E: Display>`; returning ends the domain through [`exit`].
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __rt_app_main() -> i32 {
            $crate::MainResult::exit_code($main())
        }

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static __RT_APP_NAME: &str = env!("CARGO_PKG_NAME");

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static __RT_HEAP_LIMIT_MIB: u64 =
            $crate::heap::parse_limit(option_env!("RT_HEAP_LIMIT_MIB"));

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static __RT_NETWORK: &str = match option_env!("RT_NETWORK") {
            Some(s) => s,
            None => "",
        };
    };
}

/// Precompiled `core` (built with unwinding for this target) references
/// `rust_eh_personality` from its unwind tables. With `panic = "abort"` nothing
/// ever unwinds, so the symbol only has to exist.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// Precompiled `alloc` has landing pads that call `_Unwind_Resume`. Nothing
/// unwinds with `panic = "abort"`; if this is ever reached, stop loudly.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    crate::console::print_fatal(format_args!(
        "\nrt: _Unwind_Resume reached (unwinding is not supported)\n"
    ));
    crate::exit::crash()
}
