//! `hello`: prints a greeting naming the boot mode, the one-line boot report,
//! and exits cleanly. Command-line words: `timeline` also prints the boot
//! milestones; `read-line` asks for a line on the console and echoes it back
//! (a check that typing reaches the guest).
#![no_std]
#![no_main]

rt::main!(main);

fn main() {
    rt::println!("hello from {} ({})", rt::app_name(), rt::platform());
    let info = rt::boot_info();
    rt::println!("{info}");
    let has = |word| info.cmdline().split(' ').any(|w| w == word);
    if has("timeline") {
        rt::println!("{}", info.timeline());
    }
    if has("read-line") {
        read_line();
    }
}

fn read_line() {
    rt::print!("type a line: ");
    let mut line = [0u8; 80];
    let text = rt::console::read_line(&mut line);
    rt::println!("you typed: \"{}\"", rt::console::Escaped(text));
}
