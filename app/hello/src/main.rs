//! `hello`: prints a greeting naming the boot mode, the one-line boot report,
//! and exits cleanly.
#![no_std]
#![no_main]

rt::main!(main);

fn main() {
    rt::println!("hello from {} ({})", rt::app_name(), rt::platform());
    rt::println!("{}", rt::boot_info());
}
