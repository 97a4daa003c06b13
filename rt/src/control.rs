//! Control by the toolstack: `xl shutdown`, `xl reboot`, `xl save` and `xl
//! migrate` (the domain's `control/shutdown` key) and `xl mem-set`
//! (`memory/target`).
//!
//! A service of the idle loop (`start` registers it with `rt::sched`), so
//! it runs whenever the app waits (console input, sleeps, the network): the
//! first run watches both keys, later runs take the watches' events (only
//! ours: other watches stay queued for the app) and act. An app that never
//! waits is not told; Xen's `xl destroy` still works.
//!
//! The memory target is followed relative to its first value, as Linux does
//! for HVM guests: the reservation moves by the change of `memory/target`
//! (KiB), so pages the toolstack counts differently (PVH special pages) do
//! not make the guest balloon at boot.
//!
//! A suspend (`xl save`, `xl migrate`) comes as `control/shutdown =
//! "suspend"` or, quicker, as an event on the suspend channel the domain
//! offers in `device/suspend/event-channel`; either runs `rt::suspend`.
//!
//! May import: `suspend`, `xenstore`, `mm`, `sched`, `exit`, `console`,
//! `dev`, `event`, `platform`.
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use rt_xen::abi::PAGE_SIZE;
use rt_xen::proto::control::{KEEP_FREE_PAGES, Request, floor_bytes, parse_request, wanted_bytes};
use rt_xen::proto::untrusted::{Limit, Shown};
use spin::Mutex;

use crate::dev::Resumed;
use crate::event::Channel;
use crate::sched::{ServiceError, Wake};

/// Watch tokens (xenstored echoes them with each event).
const SHUTDOWN_TOKEN: &str = "rt:control/shutdown";
const TARGET_TOKEN: &str = "rt:memory/target";
const SHUTDOWN_PATH: &str = "control/shutdown";
const TARGET_PATH: &str = "memory/target";

/// Not started yet / watching / unavailable (no xenstore, or it failed).
const IDLE: u8 = 0;
const WATCHING: u8 = 1;
const OFF: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(IDLE);
/// Set while a service runs: printing or ballooning must not re-enter it.
static BUSY: AtomicBool = AtomicBool::new(false);

/// The first `memory/target` (KiB) and the reservation (pages) then.
static BASE: Mutex<Option<(u64, u64)>> = Mutex::new(None);

/// Registers the service with the idle loop (boot code, on Xen).
pub(crate) fn start() -> Result<(), ServiceError> {
    crate::sched::register_service(service)
}

/// Takes and acts on the toolstack's requests (see the module doc). Asks
/// the idle loop not to block when xenstored wrote more meanwhile: a wait
/// in the service took the port's event, so blocking could miss it.
fn service() -> Wake {
    let on = crate::platform::platform().is_xen() && STATE.load(Ordering::Acquire) != OFF;
    if on && !BUSY.swap(true, Ordering::AcqRel) {
        if let Err(e) = serve() {
            crate::console::println!(
                "rt: control: xenstore failed ({e}): `xl shutdown` and `xl mem-set` are not served"
            );
            STATE.store(OFF, Ordering::Release);
        }
        BUSY.store(false, Ordering::Release);
    }
    if crate::xenstore::unread() {
        Wake::Now
    } else {
        Wake::Sleep
    }
}

fn serve() -> Result<(), crate::xenstore::XsError> {
    if crate::xenstore::port().is_none() {
        STATE.store(OFF, Ordering::Release);
        return Ok(());
    }
    if STATE.load(Ordering::Acquire) == IDLE {
        advertise()?;
        // Each watch fires once at once: the first target becomes the base.
        crate::xenstore::watch(SHUTDOWN_PATH, SHUTDOWN_TOKEN)?;
        crate::xenstore::watch(TARGET_PATH, TARGET_TOKEN)?;
        STATE.store(WATCHING, Ordering::Release);
    }
    if suspend_signalled() {
        crate::console::println!("rt: the toolstack signalled a suspend (save or migrate)");
        suspend_now()?;
    }
    if SUSPEND_WAITING.load(Ordering::Acquire) && !crate::dev::connecting() {
        SUSPEND_WAITING.store(false, Ordering::Release);
        crate::console::println!("rt: the device is up: suspending now");
        suspend_now()?;
    }
    while crate::xenstore::take_event_for(SHUTDOWN_TOKEN)?.is_some() {
        shutdown_requested()?;
    }
    while crate::xenstore::take_event_for(TARGET_TOKEN)?.is_some() {
        target_changed()?;
    }
    Ok(())
}

/// One line a second about refused `control/shutdown` values, and one
/// about refused `memory/target` values (dom0 may flip them hundreds of
/// times a second).
static SHUTDOWN_LIMIT: Mutex<Limit> = Mutex::new(Limit::new());
static TARGET_LIMIT: Mutex<Limit> = Mutex::new(Limit::new());
/// And one about targets below the working set.
static FLOOR_LIMIT: Mutex<Limit> = Mutex::new(Limit::new());

/// Whether a line about a refused value may go out now (see `Limit`).
fn allow(limit: &Mutex<Limit>) -> Option<u64> {
    limit
        .lock()
        .allow(crate::time::Instant::now().as_millis(), 1000)
}

/// The value at `path`; `None` if it does not exist.
fn read_key(path: &str) -> Result<Option<alloc::string::String>, crate::xenstore::XsError> {
    match crate::xenstore::read(path) {
        Ok(v) => Ok(Some(v)),
        Err(crate::xenstore::XsError::Error(rt_xen::XenError::ENOENT)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn shutdown_requested() -> Result<(), crate::xenstore::XsError> {
    let Some(v) = read_key(SHUTDOWN_PATH)? else {
        return Ok(());
    };
    let Some(req) = parse_request(&v) else {
        return Ok(());
    };
    // Acknowledge, as Linux does: the key goes back to empty.
    crate::xenstore::write(SHUTDOWN_PATH, "")?;
    match req {
        Request::Poweroff => {
            crate::console::println!("rt: the toolstack asked to power off ({})", Shown(&v));
            crate::exit::exit(0)
        }
        Request::Reboot => {
            crate::console::println!("rt: the toolstack asked to reboot");
            crate::exit::reboot()
        }
        Request::Suspend => {
            crate::console::println!("rt: the toolstack asked to suspend (save or migrate)");
            suspend_now()
        }
        Request::Other => {
            if let Some(held) = allow(&SHUTDOWN_LIMIT) {
                crate::console::println!(
                    "rt: control/shutdown = {} is not supported: ignored ({held} more held back)",
                    Shown(&v)
                );
            }
            Ok(())
        }
    }
}

/// What the domain offers the toolstack, written into its xenstore
/// directory at the first run and again in each new domain (a restored or
/// migrated domain's directory is the toolstack's new one).
fn advertise() -> Result<(), crate::xenstore::XsError> {
    // What Linux advertises: the toolstack may ask for these.
    crate::xenstore::write("control/feature-poweroff", "1")?;
    crate::xenstore::write("control/feature-reboot", "1")?;
    if crate::platform::platform() != crate::platform::Platform::XenPvDom0 {
        crate::xenstore::write("control/feature-suspend", "1")?;
        offer_suspend_channel()?;
    }
    Ok(())
}

/// The suspend event channel: when the toolstack made the node
/// `device/suspend/event-channel` (libxl does), a port for dom0 is written
/// there and the toolstack signals it instead of writing
/// `control/shutdown` (quicker: no xenstore round trip). The toolstack
/// binds it; Xen tells the toolstack when the domain has suspended.
static SUSPEND_CHANNEL: Mutex<Option<Channel>> = Mutex::new(None);
const SUSPEND_CHANNEL_PATH: &str = "device/suspend/event-channel";

fn offer_suspend_channel() -> Result<(), crate::xenstore::XsError> {
    // The old domain's channel (if any) went with it.
    let old = SUSPEND_CHANNEL.lock().take();
    drop(old);
    if read_key(SUSPEND_CHANNEL_PATH)?.is_none() {
        return Ok(());
    }
    let chan = match Channel::alloc_unbound(TOOLSTACK_DOMAIN) {
        Ok(c) => c,
        Err(e) => {
            crate::console::println!(
                "rt: control: no suspend event channel ({e}): suspends come through xenstore"
            );
            return Ok(());
        }
    };
    crate::event::name_port(chan.port(), "suspend");
    crate::xenstore::write(SUSPEND_CHANNEL_PATH, &alloc::format!("{}", chan.port().0))?;
    *SUSPEND_CHANNEL.lock() = Some(chan);
    Ok(())
}

/// The domain that runs the toolstack.
const TOOLSTACK_DOMAIN: u16 = 0;

/// Whether the toolstack signalled the suspend channel since the last look.
fn suspend_signalled() -> bool {
    SUSPEND_CHANNEL
        .lock()
        .as_ref()
        .is_some_and(|c| !c.is_stale() && c.take_pending())
}

/// A suspend was asked for while a device connected; it runs once the
/// device is up (the idle loop serves it again as soon as the handshake
/// waits no more).
static SUSPEND_WAITING: AtomicBool = AtomicBool::new(false);

/// Suspends the domain (see `rt::suspend`) and says how it came back; in a
/// new domain, offers the toolstack what it offered before. While a device
/// connects to its backend the suspend waits (see `rt::dev::Connecting`).
fn suspend_now() -> Result<(), crate::xenstore::XsError> {
    if crate::dev::connecting() {
        if !SUSPEND_WAITING.swap(true, Ordering::AcqRel) {
            crate::console::println!(
                "rt: a device is connecting to its backend: the suspend waits until it is up"
            );
        }
        return Ok(());
    }
    let timing = match crate::suspend::suspend() {
        Ok((Resumed::Cancelled, t)) => {
            crate::console::println!(
                "rt: resumed in the same domain (the save was a checkpoint or failed)"
            );
            t
        }
        Ok((Resumed::NewDomain, t)) => {
            crate::console::println!("rt: resumed in a new domain (restored or migrated)");
            advertise()?;
            t
        }
        Err(e) => {
            crate::console::println!("rt: suspend failed: {e}");
            return Ok(());
        }
    };
    crate::console::println!(
        "rt: suspend: quiesced in {} us ({} free pages handed to Xen), running again {} us after the hypercall returned",
        timing.quiesce_us,
        timing.shed_pages,
        timing.back_us
    );
    if let Some(e) = timing.shed_stopped {
        crate::console::println!(
            "rt: suspend: handing free pages to Xen stopped short ({e}): the save held more"
        );
    }
    Ok(())
}

fn target_changed() -> Result<(), crate::xenstore::XsError> {
    let Some(v) = read_key(TARGET_PATH)? else {
        return Ok(());
    };
    let Some(target_kib) = rt_xen::proto::value::decimal(&v) else {
        if let Some(held) = allow(&TARGET_LIMIT) {
            crate::console::println!(
                "rt: memory/target = {} is not a number of KiB: ignored ({held} more held back)",
                Shown(&v)
            );
        }
        return Ok(());
    };
    let before = match crate::mm::reservation() {
        Ok(r) => r,
        Err(e) => {
            crate::console::println!("rt: memory target {target_kib} KiB: no reservation ({e})");
            return Ok(());
        }
    };
    let base = *BASE
        .lock()
        .get_or_insert((target_kib, before.current_pages));
    let mut want = wanted_bytes(base, target_kib);
    let have = before.current_pages * PAGE_SIZE as u64;
    // Far below the working set: give back what is free but a reserve,
    // and say so (the toolstack's figure is refused, not obeyed into an
    // out-of-memory crash).
    let floor = floor_bytes(before.current_pages, crate::mm::free_frames().unwrap_or(0));
    if want < floor {
        if let Some(held) = allow(&FLOOR_LIMIT) {
            crate::console::println!(
                "rt: memory target {target_kib} KiB is below what the guest uses: refused, going to {} KiB ({} KiB kept free; {held} more held back)",
                floor / 1024,
                KEEP_FREE_PAGES * PAGE_SIZE as u64 / 1024
            );
        }
        want = floor;
    }
    if want == have {
        return Ok(());
    }
    let r = if want < have {
        crate::mm::release_to(want)
    } else {
        crate::mm::grow_to(want)
    };
    match r {
        Ok(after) => crate::console::println!(
            "rt: memory target {target_kib} KiB: reservation {} -> {} KiB",
            before.current_pages * 4,
            after.current_pages * 4
        ),
        Err(e) => crate::console::println!(
            "rt: memory target {target_kib} KiB: reservation stays at {} KiB ({e})",
            before.current_pages * 4
        ),
    }
    Ok(())
}
