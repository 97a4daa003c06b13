//! The judges: each reads one guest's run (its console, how it ended, what
//! the harness and dom0 reported) and says PASS with a detail or FAIL with
//! why — by what the guest printed, never by luck of timing alone.
//!
//! - `boot`: hello (every way of booting), fault reports, the MMU and
//!   memory tests;
//! - `shell`: the scripted shell sessions, the timer storm, single requests;
//! - `net`: echo, httpd, the vif detach, DHCP, create/destroy cycles;
//! - `lifecycle`: save/restore, checkpoints, migration;
//! - `libvirt`: the guest managed through `virsh` only;
//! - `hostile`: a hostile toolstack's garbage in the guest's xenstore keys,
//!   the console flood, the soak;
//! - `backend`: a backend driving its state machine out of order;
//! - `blk`: block storage, checked in dom0 after the guest.
//!
//! The scripts a judge's guest is driven by sit with the judge: the
//! console input here, dom0's network checks in `scripts/dom0/tests/`.
pub mod backend;
pub mod blk;
pub mod boot;
pub mod hostile;
pub mod libvirt;
pub mod lifecycle;
pub mod net;
pub mod shell;

use crate::harness::GuestRun;

/// A harness report `KEY...` about the run, as `key=value` words.
pub fn event_fields<'a>(run: &'a GuestRun, prefix: &str) -> Option<Vec<(&'a str, &'a str)>> {
    run.events.iter().find(|e| e.starts_with(prefix)).map(|e| {
        e.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect()
    })
}

pub fn field<T: std::str::FromStr>(fields: &[(&str, &str)], key: &str) -> Option<T> {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// The shell's console lines without a leading prompt: what the runtime
/// prints while the shell waits (`rt: the toolstack asked ...`) follows it.
pub fn shell_lines(run: &GuestRun) -> impl Iterator<Item = &str> {
    run.console.iter().map(|l| l.trim_start_matches("rt> "))
}
