//! The status page: uptime, memory, MMU, network, CPU share, server and
//! task counters.
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use crate::COUNTERS;

/// The page's text.
pub fn status() -> String {
    let mut p = String::new();
    let up = rt::time::uptime();
    let f = rt::mm::frame_stats();
    let h = rt::heap::stats();
    let m = rt::mm::stats();
    let info = rt::net::info();
    // Writing into a String cannot fail.
    let _ = writeln!(
        p,
        "{} on {} ({})",
        rt::app_name(),
        rt::platform(),
        info.map_or("no network".into(), |i| alloc::format!("{}", i.config.cidr))
    );
    let _ = writeln!(p, "uptime: {}.{:03} s", up.as_secs(), up.subsec_millis());
    let _ = writeln!(
        p,
        "memory: {} of {} frames free; heap {} KiB mapped, {} B in {} allocations",
        f.free,
        f.frames,
        h.mapped_bytes / 1024,
        h.allocated_bytes,
        h.allocations
    );
    let _ = writeln!(
        p,
        "mmu: {} updates in {} hypercalls, {} page tables",
        m.queued,
        m.hypercalls,
        m.tables_allocated - m.tables_released
    );
    if let Some(i) = info {
        let n = i.stats;
        let (tx_busy, rx_posted) = i.buffers;
        let _ = writeln!(
            p,
            "network: rx {} frames ({} B), tx {} frames ({} B); drops {}; buffers tx {tx_busy} in flight, rx {rx_posted} posted; sockets {} ({} closing, {} refused: pool full)",
            n.rx_frames,
            n.rx_bytes,
            n.tx_frames,
            n.tx_bytes,
            n.bad_ids
                + n.bad_lengths
                + n.bad_flags
                + n.bad_extras
                + n.bad_chains
                + n.bad_checksums
                + n.rx_errors
                + n.tx_errors
                + n.tx_ring_full,
            i.sockets.sockets,
            i.sockets.closing,
            i.sockets.refused_pool_full
        );
    }
    if let Some(i) = info {
        // Where the vCPU's time went since boot, and the guest's own share
        // of each answer: from its wake-up to the reply sent.
        let idle = rt::sched::idle_stats();
        let _ = writeln!(
            p,
            "cpu: blocked {} ms of {} ms in {} blocks; {} stack polls in {} ms; wake->send {}",
            idle.blocked.as_millis(),
            up.as_millis(),
            idle.blocks,
            i.polls,
            i.poll_time.as_millis(),
            i.turnaround
        );
    }
    let c = &COUNTERS;
    let _ = writeln!(
        p,
        "http: {} requests, {} connections ({} open), {} refused, {} broken, {} evicted",
        c.requests.load(Ordering::Relaxed),
        c.accepted.load(Ordering::Relaxed),
        c.open.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed),
        c.broken.load(Ordering::Relaxed),
        c.evicted.load(Ordering::Relaxed)
    );
    let t = rt::task::stats();
    let _ = writeln!(
        p,
        "tasks: {} alive, {} spawned, {} polls, {} blocks",
        t.alive, t.spawned, t.polls, t.blocks
    );
    let devices: Vec<String> = rt::dev::list()
        .into_iter()
        .map(|(name, up)| alloc::format!("{name} {}", if up { "connected" } else { "closed" }))
        .collect();
    let _ = writeln!(p, "devices: {}", devices.join(", "));
    p
}
