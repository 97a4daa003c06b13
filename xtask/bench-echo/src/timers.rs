//! The Linux PVH control guest's timer storm (`bench.timers=N`): N sleeps
//! of 300 us back to back, as our shell's `timers N` does, reported in the
//! same shape (`timers: N sleeps of 300 us in MS ms`), then a poweroff.
//! The test `pvh-linux-control` runs it unpinned, to tell a fault of the
//! environment (nested Xen under TCG) from one of ours.
use std::time::{Duration, Instant};

/// Sleeps of this long each, as the shell's storm.
const SLEEP: Duration = Duration::from_micros(300);

/// Runs the storm `n` (a count; anything else is reported and skipped),
/// with a progress line every 10,000 sleeps, then powers the domain off.
pub fn storm_and_power_off(n: &str) -> ! {
    match n.parse::<u32>() {
        Ok(n) => {
            let t0 = Instant::now();
            for i in 1..=n {
                std::thread::sleep(SLEEP);
                if i % 10_000 == 0 {
                    println!("timers: {i} of {n} at {} ms", t0.elapsed().as_millis());
                }
            }
            println!(
                "timers: {n} sleeps of 300 us in {} ms (linux)",
                t0.elapsed().as_millis()
            );
        }
        Err(e) => println!("timers: bench.timers={n}: not a count: {e}"),
    }
    // The initramfs's /sbin/poweroff is `busybox poweroff -f`.
    let r = std::process::Command::new("/sbin/poweroff").status();
    println!("timers: poweroff did not take: {r:?}");
    std::process::exit(1)
}
