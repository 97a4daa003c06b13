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
    let mut len = 0;
    loop {
        let mut b = [0u8; 1];
        rt::console::read_blocking(&mut b);
        match b[0] {
            b'\r' | b'\n' => break,
            c if len < line.len() => {
                line[len] = c;
                len += 1;
                rt::print!("{}", char::from(c));
            }
            _ => {}
        }
    }
    let text = core::str::from_utf8(&line[..len]).unwrap_or("(not UTF-8)");
    rt::println!("\nyou typed: {text:?}");
}
