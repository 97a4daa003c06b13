//! Devices: the frontends this domain runs, one folder per device class
//! (`net/`: the vif under smoltcp; a block device goes in `blk/`), each the
//! driver logic of `rt_xen::dev::<class>` given the runtime's pages, grants,
//! event channels and xenstore — and the one registry of them, which code
//! that must reach every device walks ([`for_each`]: the listing of
//! devices now, suspend and resume next).
//!
//! May import: the runtime's services (`event`, `sched`, `grant`,
//! `xenstore`, `time`, `console`, `bootinfo`); nothing imports a device but
//! the app and boot.
//!
//! A device registers the state it shares with its owner; the registry
//! holds it weakly, so a device the app drops leaves the list by itself.
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

pub mod net;

/// What every registered device offers the code that walks the registry.
pub trait Device: Send {
    /// The device's name: its class and id as under `device/` in xenstore
    /// (`vif/0`).
    fn name(&self) -> &str;
    /// Whether it is connected to its backend.
    fn connected(&self) -> bool;
}

/// A registered device, as the registry holds it (weakly).
type Entry = Weak<Mutex<dyn Device>>;

/// The registered devices, by registration number.
static REGISTRY: Mutex<Vec<(u64, Entry)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Keeps a device in the registry; dropping it takes the device out.
#[derive(Debug)]
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        REGISTRY.lock().retain(|(id, _)| *id != self.0);
    }
}

/// Enters `dev` in the registry for as long as the returned value lives.
pub fn register<D: Device + 'static>(dev: &Arc<Mutex<D>>) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let weak: Entry = Arc::downgrade(dev) as Entry;
    REGISTRY.lock().push((id, weak));
    Registration(id)
}

/// Runs `f` on every registered device that is still alive, in the order
/// they registered. The registry is not locked while `f` runs (each device
/// is), so `f` may register or drop devices.
pub fn for_each(mut f: impl FnMut(&mut dyn Device)) {
    let live: Vec<Arc<Mutex<dyn Device>>> = REGISTRY
        .lock()
        .iter()
        .filter_map(|(_, w)| w.upgrade())
        .collect();
    for d in live {
        f(&mut *d.lock());
    }
}

/// Each registered device's name and whether it is connected.
pub fn list() -> Vec<(String, bool)> {
    let mut v = Vec::new();
    for_each(|d| v.push((String::from(d.name()), d.connected())));
    v
}
