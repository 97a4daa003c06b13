//! Event channels for apps and drivers: owning channels (bind a VIRQ,
//! allocate an unbound port, bind to another domain's port), send, mask and
//! unmask, handlers registered by port, upcall delivery, and the polling
//! path.
//!
//! May import: `xen`, `arch`, `platform`. Prints nothing (a failure is a
//! returned error or a counter in [`stats`]), so that the console, which
//! waits on its own event channel, can sit above it.
//!
//! - `bits`: shared_info's bitmaps as the scan needs them, and the latch
//!   that keeps events taken from them for their owners;
//! - `deliver`: how events reach the runtime (the PV callback, the PVH
//!   vector, or polling), the handler table, blocking the vCPU until an
//!   event, the polling wait, the counters;
//! - `channel`: [`Channel`], the owning handle apps and drivers use;
//! - `ports`: the ports the runtime has open, and the names of its own.
//!
//! Delivery: Xen enters the runtime through the PV event callback or the
//! PVH callback vector (`events.S`), which runs the handlers of the pending
//! ports and latches the events of ports without one for their owners
//! ([`Channel::take_pending`], [`wait`]). To obey the red-zone rule of the
//! design (the precompiled `core` keeps data below rsp), upcalls are enabled
//! only inside `block`, in out-of-line stubs: PV `SCHEDOP_block` (which
//! unmasks atomically), PVH `sti; nop; hlt` with the vector on its own IST
//! stack (an event that arrives just before the hlt makes it skip the hlt).
//! Everywhere else events stay masked (PV `evtchn_upcall_mask`, PVH IF=0).
//! Code that waits calls `rt::sched::idle`, which serves the runtime's
//! services and arms the timer before it blocks here.
//!
//! The polling path: [`poll`] runs the same delivery from ordinary code, and
//! [`wait`] blocks in `SCHEDOP_poll` until one of the given ports fires.
mod bits;
mod channel;
mod deliver;
mod error;
mod ports;

pub use rt_xen::abi::evtchn::{NR_PORTS, Port, VIRQ_TIMER};

pub use self::channel::{Channel, known_ports, port_state};
pub use self::deliver::{
    Delivery, EventStats, WAIT_PORTS, clear_pending, delivery, poll, stats, wait, wait_port,
};
pub(crate) use self::deliver::{apply_cmdline, block, epoch, init_upcalls, reset};
pub use self::error::EventError;
pub(crate) use self::error::on_xen as available;
pub(crate) use self::ports::name_port;
