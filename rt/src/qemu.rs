//! Bare QEMU (PVH boot without Xen): COM1 console, exit through QEMU's
//! `isa-debug-exit` device, and a TSC calibrated against the PIT.
//!
//! May import: `arch`.
use rt_xen::once::Once;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550Tty};
use x86_64::instructions::port::Port;

/// `isa-debug-exit` I/O port used by the test harness (`iobase=0xf4`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// ACPI PM1a control port QEMU's firmware programs; SLP_EN|SLP_TYP=S5 powers off.
const ACPI_PM1A_CNT: u16 = 0x604;
const ACPI_POWEROFF: u16 = 0x2000;

/// Opens COM1, or returns `None` if no UART answers.
pub fn serial() -> Option<Uart16550Tty<PioBackend>> {
    // SAFETY: 0x3f8 is COM1 on PC-compatible machines and nothing else drives it.
    unsafe { Uart16550Tty::new_port(0x3f8, Config::default()) }.ok()
}

/// Ends the QEMU run. With `-device isa-debug-exit,iobase=0xf4` QEMU exits with
/// status `(code << 1) | 1`; otherwise ACPI poweroff; otherwise halt forever.
pub fn exit(code: i32) -> ! {
    // SAFETY: writes to fixed PC I/O ports that, if present, end the VM; on a
    // machine without them the writes are ignored.
    unsafe {
        Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32);
        Port::<u16>::new(ACPI_PM1A_CNT).write(ACPI_POWEROFF);
    }
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

static TSC_HZ: Once<Option<u64>> = Once::new();

/// The TSC frequency, measured once against PIT channel 2 (about 10 ms).
pub fn tsc_hz() -> Option<u64> {
    *TSC_HZ.call_once(calibrate)
}

fn calibrate() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const LATCH: u16 = 11_932; // 10 ms
    // SAFETY: the PIT (0x42/0x43) and the speaker-gate port (0x61) exist on every
    // PC QEMU emulates; channel 2 only drives the speaker, whose output we keep off.
    unsafe {
        let mut gate = Port::<u8>::new(0x61);
        let mut cmd = Port::<u8>::new(0x43);
        let mut ch2 = Port::<u8>::new(0x42);
        let v = gate.read();
        gate.write((v & !0x02) | 0x01); // gate channel 2 on, speaker off
        cmd.write(0xb0); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count)
        ch2.write(LATCH as u8);
        ch2.write((LATCH >> 8) as u8);
        let t0 = crate::arch::rdtsc();
        let mut spins = 0u32;
        while gate.read() & 0x20 == 0 {
            spins += 1;
            if spins > 100_000_000 {
                return None; // no PIT output: leave the frequency unknown
            }
        }
        let ticks = crate::arch::rdtsc().wrapping_sub(t0);
        Some(ticks * PIT_HZ / u64::from(LATCH))
    }
}
