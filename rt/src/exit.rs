//! Leaving: `rt::exit`, what `main` may return, and the panic handler.
//!
//! May import: `console`, `xen`, `qemu`, `platform`.
use core::fmt::Display;
use core::panic::PanicInfo;

use rt_xen::abi::ShutdownReason;
use rt_xen::abi::hypercall;

use crate::platform::{Platform, platform};
use crate::xen::HYPERVISOR;

/// Ends the program: exit code 0 powers the domain off, anything else shuts it
/// down as crashed (`xl` applies `on_crash`). On bare QEMU the code becomes
/// QEMU's exit status through `isa-debug-exit`.
pub fn exit(code: i32) -> ! {
    if code != 0 {
        crate::console::println!("rt: exit code {code}: shutting down as crashed");
    }
    shutdown(code)
}

/// Asks Xen to reboot the domain (`SHUTDOWN_reboot`: `xl` applies `on_reboot`).
/// Bare QEMU has no reboot path here: it powers off instead, saying so.
pub fn reboot() -> ! {
    if platform().is_xen() {
        crate::console::flush();
        let err = hypercall::shutdown(&HYPERVISOR, ShutdownReason::Reboot);
        crate::console::print_fatal(format_args!("rt: SCHEDOP_shutdown refused: {err}\n"));
        crash()
    }
    crate::console::println!("rt: reboot is not available without Xen: powering off");
    shutdown(0)
}

/// Shuts down as crashed without further output.
pub(crate) fn crash() -> ! {
    shutdown(1)
}

fn shutdown(code: i32) -> ! {
    let p = platform();
    if p.is_xen() {
        crate::console::flush();
        let reason = if code == 0 {
            ShutdownReason::Poweroff
        } else {
            ShutdownReason::Crash
        };
        let err = hypercall::shutdown(&HYPERVISOR, reason);
        crate::console::print_fatal(format_args!("rt: SCHEDOP_shutdown refused: {err}\n"));
        loop {
            crate::xen::yield_cpu();
        }
    }
    if p == Platform::QemuPvh {
        crate::qemu::exit(code);
    }
    // Entry code has not identified the platform: nothing we can call.
    loop {
        core::hint::spin_loop();
    }
}

/// What an app's `main` may return.
pub trait MainResult {
    /// The exit code for [`exit`].
    fn exit_code(self) -> i32;
}

impl MainResult for () {
    fn exit_code(self) -> i32 {
        0
    }
}

impl MainResult for i32 {
    fn exit_code(self) -> i32 {
        self
    }
}

impl<E: Display> MainResult for Result<(), E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                crate::console::println!("rt: main returned an error: {e}");
                1
            }
        }
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => crate::console::print_fatal(format_args!(
            "\nrt: panicked at {}:{}:{}: {}\n",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        )),
        None => crate::console::print_fatal(format_args!("\nrt: panicked: {}\n", info.message())),
    }
    crash()
}
