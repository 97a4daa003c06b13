//! Boot: the two entry paths (PV, PVH) converge here and call the app's `main`.
//!
//! ```text
//! pv_start64 ──► pv::rt_pv_entry  ─┐  (Xen PV domU / dom0)
//!                                  ├─► enter_main ─► app main ─► rt::exit
//! pvh_start32 ─► pvh::rt_pvh_entry ┘  (Xen PVH domU / bare QEMU)
//! ```
use core::fmt;
use core::time::Duration;

use spin::Once;

use crate::platform::Platform;

mod pv;
mod pvh;

/// Longest command line we keep (Xen's `MAX_GUEST_CMDLINE`).
const CMDLINE_MAX: usize = 1024;

/// What the runtime learned while booting.
#[derive(Debug)]
pub struct BootInfo {
    platform: Platform,
    memory_bytes: u64,
    cmdline: Cmdline,
    entry_tsc: u64,
    main_tsc: u64,
}

#[derive(Debug)]
struct Cmdline {
    buf: [u8; CMDLINE_MAX],
    len: usize,
}

impl Cmdline {
    /// Copies a command line, stopping at NUL or the limit; invalid UTF-8 is cut
    /// at the first bad byte.
    fn new(raw: impl Iterator<Item = u8>) -> Self {
        let mut c = Cmdline {
            buf: [0; CMDLINE_MAX],
            len: 0,
        };
        for b in raw.take(CMDLINE_MAX).take_while(|&b| b != 0) {
            c.buf[c.len] = b;
            c.len += 1;
        }
        c.len = match core::str::from_utf8(&c.buf[..c.len]) {
            Ok(_) => c.len,
            Err(e) => e.valid_up_to(),
        };
        c
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl BootInfo {
    /// The boot mode.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// RAM given to the domain, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// The command line the image was started with.
    pub fn cmdline(&self) -> &str {
        self.cmdline.as_str()
    }

    /// Time from the first instruction of the entry point to `main`.
    pub fn entry_to_main(&self) -> Option<Duration> {
        crate::time::tsc_delta_to_duration(self.main_tsc.wrapping_sub(self.entry_tsc))
    }
}

impl fmt::Display for BootInfo {
    /// The one-line boot report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot: mode={} memory={} MiB",
            self.platform,
            self.memory_bytes >> 20
        )?;
        match self.entry_to_main() {
            Some(d) => write!(f, " entry-to-main={} us", d.as_micros())?,
            None => write!(
                f,
                " entry-to-main={} tsc-ticks",
                self.main_tsc.wrapping_sub(self.entry_tsc)
            )?,
        }
        write!(f, " cmdline={:?}", self.cmdline())
    }
}

static BOOT: Once<BootInfo> = Once::new();

unsafe extern "Rust" {
    /// Defined by `rt::main!` in the app.
    fn __rt_app_main() -> i32;
    /// Defined by `rt::main!`: the app's crate name.
    static __RT_APP_NAME: &'static str;
}

/// What the runtime learned while booting (available from the start of `main`).
pub fn boot_info() -> &'static BootInfo {
    BOOT.get().expect("rt::boot_info() called before main")
}

/// The application's crate name.
pub fn app_name() -> &'static str {
    // SAFETY: `rt::main!` defines this immutable static in every image.
    unsafe { __RT_APP_NAME }
}

/// Records the boot facts and runs the app. Never returns.
fn enter_main(platform: Platform, memory_bytes: u64, cmdline: impl Iterator<Item = u8>) -> ! {
    let entry_tsc = crate::arch::entry_tsc();
    let cmdline = Cmdline::new(cmdline);
    let main_tsc = crate::arch::rdtsc();
    BOOT.call_once(|| BootInfo {
        platform,
        memory_bytes,
        cmdline,
        entry_tsc,
        main_tsc,
    });
    // SAFETY: `rt::main!` defines this function in every image.
    let code = unsafe { __rt_app_main() };
    crate::exit(code)
}
