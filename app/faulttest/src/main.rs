//! `faulttest`: faults on purpose, so the runtime's page-fault report can be
//! checked. The command line picks the fault:
//! - `guard`: a write into the page below the boot stack (what a stack
//!   overflow hits first); the report must name it a stack overflow;
//! - `overflow`: unbounded recursion into that guard page. The report must
//!   name it a stack overflow — on PVH, where the fault is taken on its own
//!   (IST) stack. On PV, Xen pushes the exception frame on the faulting stack,
//!   cannot, and crashes the domain itself, so there is no report to check;
//! - `write-text`: a write into the image's code (mapped read-only: W^X);
//! - `exec-data`: a call into a data page (mapped no-execute: W^X);
//! - `null`: a read of page 0 (unmapped);
//! - `oom`: allocates 1 MiB blocks until memory runs out: the runtime must say
//!   what was asked and what is left, then crash the domain.
//!
//! The runtime must print the fault and its page-table walk, then shut the
//! domain down as crashed; reaching the end of `main` is a failure.
#![no_std]
#![no_main]

extern crate alloc;

rt::main!(main);

unsafe extern "C" {
    static boot_stack_guard: u8;
}

static mut DATA_PAGE: [u8; 64] = [0xc3; 64]; // `ret`, in a no-execute page

fn main() -> i32 {
    let which = rt::boot_info().cmdline().split(' ').next().unwrap_or("");
    rt::println!("faulttest: {which}");
    match which {
        "guard" => {
            let p = (&raw const boot_stack_guard) as *mut u64;
            // SAFETY: deliberately invalid: the guard page is unmapped, so this
            // faults and the runtime ends the domain.
            unsafe { p.add(511).write_volatile(1) };
        }
        "overflow" => {
            let n = recurse(1 << 20);
            rt::println!("recursion returned {n}");
        }
        "write-text" => {
            let p = main as *const () as *mut u8;
            // SAFETY: deliberately invalid: code is mapped read-only.
            unsafe { p.write_volatile(0x90) };
        }
        "exec-data" => {
            // SAFETY: deliberately invalid: data is mapped no-execute.
            let f: extern "C" fn() =
                unsafe { core::mem::transmute((&raw const DATA_PAGE).cast::<u8>()) };
            f();
        }
        "null" => {
            // SAFETY: deliberately invalid: page 0 is unmapped.
            let v = unsafe { core::ptr::read_volatile(core::ptr::without_provenance::<u64>(8)) };
            rt::println!("read {v}");
        }
        "oom" => {
            let mut blocks: alloc::vec::Vec<alloc::vec::Vec<u8>> = alloc::vec::Vec::new();
            loop {
                let mut b = alloc::vec::Vec::with_capacity(1 << 20);
                b.push(1);
                blocks.push(b);
                if blocks.len().is_multiple_of(16) {
                    rt::println!("faulttest: {} MiB allocated", blocks.len());
                }
            }
        }
        other => rt::println!("faulttest: unknown fault {other:?}"),
    }
    rt::println!("faulttest: FAIL: no fault");
    1
}

/// Recurses `n` deep with a kilobyte of stack per call.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let mut buf = [0u8; 1024];
    core::hint::black_box(&mut buf);
    buf[7] = n as u8;
    if n == 0 {
        0
    } else {
        recurse(n - 1) + u64::from(core::hint::black_box(buf[7]))
    }
}
