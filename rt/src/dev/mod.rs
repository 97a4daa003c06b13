//! Devices: the frontends this domain runs, one folder per device class
//! (`net/`: the vif under smoltcp; a block device goes in `blk/`), each the
//! driver logic of `rt_xen::dev::<class>` given the runtime's pages, grants,
//! event channels and xenstore — and the one registry of them, which code
//! that must reach every device walks ([`for_each`]: the listing of
//! devices, and `rt::suspend` telling each of a suspend and its outcome).
//! A device connecting to its backend says so ([`Connecting`]): a suspend
//! asked for meanwhile waits until it is done.
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
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

pub mod blk;
pub(crate) mod bus;
pub mod net;

pub use rt_xen::abi::hypercall::SuspendReturn as Resumed;

/// What every registered device offers the code that walks the registry.
pub trait Device: Send {
    /// The device's name: its class and id as under `device/` in xenstore
    /// (`vif/0`).
    fn name(&self) -> &str;
    /// Whether it is connected to its backend.
    fn connected(&self) -> bool;
    /// The domain is about to be suspended: stop using the rings, keep what
    /// is queued.
    fn suspend(&mut self);
    /// The domain runs again: in the same domain (the suspend was
    /// cancelled: carry on with the same rings) or in a new one (connect to
    /// the new backend: new rings, grants and channel).
    fn resume(&mut self, how: Resumed);
}

/// Devices in the middle of a handshake with their backend.
static CONNECTING: AtomicU32 = AtomicU32::new(0);

/// Held by a device while it connects to its backend (a handshake waits in
/// the idle loop, where the toolstack's requests are served): the domain
/// is not suspended meanwhile — a handshake cut by a suspend would go on
/// against a backend that is gone, and the device is not registered yet.
#[derive(Debug)]
pub struct Connecting(());

impl Connecting {
    /// Marks a connection under way until the value is dropped.
    pub fn start() -> Connecting {
        CONNECTING.fetch_add(1, Ordering::AcqRel);
        Connecting(())
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        CONNECTING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a device is connecting to its backend now (see [`Connecting`]).
pub fn connecting() -> bool {
    CONNECTING.load(Ordering::Acquire) > 0
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
    visit(&mut f);
}

/// [`for_each`]'s body, compiled once for every caller's closure.
#[inline(never)]
fn visit(f: &mut dyn FnMut(&mut dyn Device)) {
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
