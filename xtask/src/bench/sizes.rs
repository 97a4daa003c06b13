//! Image sizes (`cargo xtask bench --sizes-only`, and the end of the boot and
//! full benches): each image against its goal, where its bytes go by area
//! of the runtime (boot, memory, Xen services, save/restore and toolstack
//! control, netfront, TCP/IP, sockets, Rust's core, the app), and its ten
//! biggest symbols — from `nm` (binutils, which the image build needs).
//!
//! The areas are what a size goal is argued with: a figure over its goal
//! shows which feature holds the bytes (LTO inlines a call tree into its
//! caller, so a symbol's bytes are its area's, not its callees').
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::image::{self, Built};

/// One symbol of an image: (address, bytes, nm's type letter, demangled name).
pub(super) type Symbol = (u64, u64, char, String);

/// Parses `nm -S --size-sort -C` output: the symbols that take space in the
/// file (text, read-only and initialised data), biggest first.
pub(super) fn parse_nm(text: &str) -> Vec<Symbol> {
    let mut v: Vec<Symbol> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let size = u64::from_str_radix(f.next()?, 16).ok()?;
            let ty = f.next()?.chars().next()?;
            let name = f.next()?.trim();
            "tTrRdD"
                .contains(ty)
                .then(|| (addr, size, ty, name.to_string()))
        })
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.3.cmp(&b.3)));
    v
}

/// The symbols of an image (from its unstripped twin), biggest first.
fn symbols(debug_elf: &Path) -> Result<Vec<Symbol>> {
    let out = Command::new("nm")
        .args(["-S", "--size-sort", "-C"])
        .arg(debug_elf)
        .output()
        .context("nm (from binutils) lists the image's symbols")?;
    if !out.status.success() {
        bail!("nm {} failed", debug_elf.display());
    }
    Ok(parse_nm(&String::from_utf8_lossy(&out.stdout)))
}

/// The areas an image's bytes are counted in, in the order they print, each
/// with the path prefixes of its code. The first area with a matching
/// prefix takes a symbol (so the narrower prefixes come first).
const AREAS: [(&str, &[&str]); 11] = [
    (
        "save/restore, xl shutdown, xl mem-set",
        &[
            "rt::suspend",
            "rt::control",
            "rt::mm::balloon",
            "rt_xen::proto::control",
            "rt::grant::resume",
            "rt_mm::reservation",
        ],
    ),
    (
        "boot: PV/PVH entry, traps, IDT",
        &[
            "rt_pv_entry",
            "rt_pvh_entry",
            "rt_fatal_trap",
            "rt_failsafe",
            "rt::boot",
            "rt::arch",
            "rt::trap",
            "rt::bootinfo",
            "rt::platform",
            "rt::qemu",
            "rt::exit",
            "rt::panic",
            "x86_64",
        ],
    ),
    (
        "memory: MMU, p2m, frames, heap",
        &[
            "rt_mm",
            "rt::mm",
            "rt::heap",
            "talc",
            "kmem",
            "__rustc::__rust_alloc",
            "__rustc::__rust_realloc",
            "__rustc::__rust_dealloc",
            "__rustc::__rust_alloc_zeroed",
        ],
    ),
    ("netfront", &["rt::dev::net", "rt_xen::dev::net"]),
    (
        "blkfront, filesystem",
        &["rt::dev::blk", "rt_xen::dev::blk", "rt_block"],
    ),
    (
        "Xen services: events, grants, xenstore, xenbus, clock, console",
        &[
            "rt::event",
            "rt::grant",
            "rt::xenstore",
            "rt::xen",
            "rt::time",
            "rt::sched",
            "rt::console",
            "rt::dev",
            "rt::task",
            "rt_event_upcall",
            "rt_hvm",
            "rt_xen",
            "uart_16550",
        ],
    ),
    ("TCP/IP: smoltcp", &["smoltcp", "heapless", "managed"]),
    (
        "sockets and executor: rt-net",
        &["rt_net", "rt::net", "embedded_io", "embedded_io_async"],
    ),
    (
        "Rust's core and alloc: formatting, collections, panics",
        &[
            "core",
            "alloc",
            "spin",
            "__rustc",
            "compiler_builtins",
            "memcpy",
            "memmove",
            "memset",
            "memcmp",
            "bcmp",
            "__udivti3",
            "__umodti3",
            "__divti3",
            "__modti3",
            "_Unwind_Resume",
            "rust_eh_personality",
            "T",
            "u8",
            "u16",
            "u32",
            "u64",
            "usize",
            "i8",
            "i16",
            "i32",
            "i64",
            "isize",
            "str",
            "bool",
            "char",
        ],
    ),
    ("the app", &["__rt_app_main"]),
    ("other", &[]),
];

/// The path a symbol's code belongs to: the type a trait is implemented
/// for (`<X as Trait>::f` is X's), the type a value is dropped of
/// (`core::ptr::drop_in_place<X>` is X's), else the name itself.
fn owner(name: &str) -> &str {
    let mut s = name;
    loop {
        let before = s;
        if let Some(inner) = s.strip_prefix("core::ptr::drop_in_place<") {
            s = inner;
        }
        for p in [
            "<", "&", "*const ", "*mut ", "mut ", "impl ", "dyn ", "[", "(",
        ] {
            s = s.strip_prefix(p).unwrap_or(s);
        }
        if s == before {
            return s;
        }
    }
}

/// Whether `path` is `prefix` or inside it (`rt::mm` holds `rt::mm::init`
/// and `rt::mm` but not `rt::mmio`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| {
        rest.is_empty() || !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_')
    })
}

/// The area (an index into [`AREAS`]) of a symbol of the image of `app`.
pub(super) fn area_of(name: &str, app: &str) -> usize {
    let o = owner(name);
    let other = AREAS.len() - 1;
    let app_area = other - 1;
    if under(o, app) {
        return app_area;
    }
    AREAS
        .iter()
        .position(|(_, prefixes)| prefixes.iter().any(|p| under(o, p)))
        .unwrap_or(other)
}

/// Bytes per area of an image's named symbols (each address counted once:
/// identical code folding gives several names one body).
pub(super) fn by_area(symbols: &[Symbol], app: &str) -> [u64; AREAS.len()] {
    let mut seen = BTreeSet::new();
    let mut bytes = [0u64; AREAS.len()];
    for (addr, size, _, name) in symbols {
        if seen.insert(*addr) {
            bytes[area_of(name, app)] += size;
        }
    }
    bytes
}

/// The image sizes against their goals, where each image's bytes go by
/// area, and each image's ten biggest symbols. `images`: (app, image, goal
/// KiB).
pub(super) fn table(images: &[(&str, &Built, u64)]) -> Result<String> {
    let mut t = String::from(
        "\nImage sizes (stripped ELF, what `xl create` loads):\n\n| image | bytes | KiB | goal KiB |\n|---|---|---|---|\n",
    );
    for (name, b, goal) in images {
        let _ = writeln!(
            t,
            "| {name} | {} | {:.1} | {goal} |",
            b.size,
            b.size as f64 / 1024.0
        );
    }
    let syms = images
        .iter()
        .map(|(_, b, _)| symbols(&b.debug_elf))
        .collect::<Result<Vec<_>>>()?;
    let areas: Vec<_> = images
        .iter()
        .zip(&syms)
        .map(|((name, _, _), s)| by_area(s, name))
        .collect();
    t.push_str("\nWhere the bytes go (named symbols by area; LTO inlines a call tree into its caller's area):\n\n| area |");
    for (name, _, _) in images {
        let _ = write!(t, " {name} |");
    }
    t.push_str("\n|---|");
    t.push_str(&"---|".repeat(images.len()));
    t.push('\n');
    for (i, (area, _)) in AREAS.iter().enumerate() {
        if areas.iter().all(|a| a[i] == 0) {
            continue;
        }
        let _ = write!(t, "| {area} |");
        for a in &areas {
            let _ = write!(t, " {} |", a[i]);
        }
        t.push('\n');
    }
    t.push_str("| no symbol: strings, panic locations, tables, ELF headers |");
    for ((_, b, _), a) in images.iter().zip(&areas) {
        let named: u64 = a.iter().sum();
        let _ = write!(t, " {} |", b.size.saturating_sub(named));
    }
    t.push('\n');
    for ((name, _, _), s) in images.iter().zip(&syms) {
        let _ = write!(
            t,
            "\nTen biggest symbols of {name}:\n\n| bytes | symbol |\n|---|---|\n"
        );
        for (_, size, _, sym) in s.iter().take(10) {
            let _ = writeln!(t, "| {size} | `{}` |", sym.replace('|', "\\|"));
        }
    }
    Ok(t)
}

/// `cargo xtask bench --sizes-only`: builds hello and echo and prints
/// their size table (no Xen needed).
pub fn run() -> Result<()> {
    let hello = image::build_app_as("hello", None, "hello")?;
    let echo = image::build_app_as("echo", None, "echo")?;
    println!(
        "{}",
        table(&[("hello", &hello, 100), ("echo", &echo, 200)])?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(name: &str, app: &str) -> &'static str {
        AREAS[area_of(name, app)].0
    }

    #[test]
    fn nm_lines_become_the_biggest_symbols_with_space_in_the_file() {
        let text = "0000000000100000 0000000000000010 T small\n\
                    0000000000100010 000000000000155f T rt::mm::init\n\
                    0000000000200000 0000000000004000 B bss_only\n\
                    0000000000110000 0000000000000200 r <core::fmt::Arguments as core::fmt::Display>::fmt\n\
                    garbage line\n";
        let v = parse_nm(text);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(v[0], (0x100010, 0x155f, 'T', "rt::mm::init".into()));
        assert_eq!(v[1].3, "<core::fmt::Arguments as core::fmt::Display>::fmt");
        assert_eq!(v[2].1, 0x10);
    }

    #[test]
    fn symbols_fall_in_the_area_of_the_code_they_belong_to() {
        let cases = [
            ("rt::suspend::come_back", "save/restore"),
            ("rt::mm::balloon::move_reservation", "save/restore"),
            ("rt::mm::init", "memory"),
            ("rt::mmio::read", "other"),
            (
                "rt_mm::mmu::map::<impl rt_mm::mmu::Mmu<B>>::map_pfns",
                "memory",
            ),
            (
                "<rt::mm::pv::PvBackend as rt_mm::backend::Backend>::submit",
                "memory",
            ),
            ("rt::dev::net::vif::Vif::handshake", "netfront"),
            (
                "<rt::dev::net::VifDriver as rt_net::stack::Driver>::poll",
                "netfront",
            ),
            ("rt::dev::bus::backend_now", "Xen services"),
            (
                "core::ptr::drop_in_place<rt_xen::dev::net::tx::TxPath>",
                "netfront",
            ),
            (
                "core::ptr::drop_in_place<&mut smoltcp::socket::tcp::Socket>",
                "TCP/IP",
            ),
            ("<&T as core::fmt::Display>::fmt", "Rust's core"),
            ("<u64 as core::fmt::Display>::fmt", "Rust's core"),
            ("<core::fmt::Formatter>::pad", "Rust's core"),
            ("rt_net::exec::Handle::spawn::{{closure}}", "sockets"),
            ("rt_pvh_entry", "boot"),
            ("__rt_app_main", "the app"),
            ("echo::net_stats_line", "the app"),
            ("echoes::thing", "other"),
            ("memmove", "Rust's core"),
            (
                "embedded_io_async::Write::write_all::{{closure}}",
                "sockets",
            ),
        ];
        for (name, want) in cases {
            assert!(
                area(name, "echo").starts_with(want),
                "{name}: {} (want {want})",
                area(name, "echo")
            );
        }
    }

    #[test]
    fn folded_bodies_count_once() {
        let s = vec![
            (
                0x10,
                0x40,
                't',
                "core::ptr::drop_in_place<smoltcp::A>".into(),
            ),
            (
                0x10,
                0x40,
                't',
                "core::ptr::drop_in_place<smoltcp::B>".into(),
            ),
            (0x50, 0x8, 't', "hello::greet".into()),
        ];
        let a = by_area(&s, "hello");
        assert_eq!(a.iter().sum::<u64>(), 0x48);
        assert_eq!(a[area_of("smoltcp::A", "hello")], 0x40);
        assert_eq!(a[AREAS.len() - 2], 0x8);
    }
}
