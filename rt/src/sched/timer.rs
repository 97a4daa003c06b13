//! The one-shot timer: `VCPUOP_set_singleshot_timer` raises `VIRQ_TIMER`
//! at a deadline, which ends the vCPU's block in the idle loop.
//!
//! Invariant: [`arm`] is the only code that arms the timer (one vCPU), and
//! `ARMED_FOR` is the deadline it last armed for; while that lies ahead,
//! Xen holds a one-shot timer for exactly it.
//!
//! A restore into a new domain loses the timer and its channel: the channel
//! is bound again on first use in the new domain, and `ARMED_FOR` is
//! forgotten ([`lost`]) so the next wait arms afresh.
use core::sync::atomic::{AtomicU64, Ordering};

use rt_xen::XenError;
use rt_xen::abi::hypercall;

use crate::event::{Channel, VIRQ_TIMER};
use crate::time::Instant;
use crate::xen::HYPERVISOR;

/// The `VIRQ_TIMER` channel, bound (or not: `None`) once per set of ports
/// — the event epoch it was bound in.
static TIMER: spin::Mutex<Option<(u64, Option<Channel>)>> = spin::Mutex::new(None);

/// Runs `f` with the timer's channel, bound (and its port named) on first
/// use in this domain; `None` when it cannot be bound.
fn with_channel<R>(f: impl FnOnce(Option<&Channel>) -> R) -> R {
    let mut t = TIMER.lock();
    let epoch = crate::event::epoch();
    if t.as_ref().is_none_or(|(e, _)| *e != epoch) {
        let c = Channel::bind_virq(VIRQ_TIMER).ok();
        if let Some(c) = &c {
            crate::event::name_port(c.port(), "timer (VIRQ_TIMER)");
        }
        *t = Some((epoch, c));
    }
    f(t.as_ref().and_then(|(_, c)| c.as_ref()))
}

/// Takes the timer's event: true if it fired since the last look.
pub(super) fn take_fired() -> bool {
    with_channel(|c| c.is_some_and(Channel::take_pending))
}

/// The domain is about to be suspended: no timer is left armed.
pub(crate) fn stop() -> Result<(), XenError> {
    ARMED_FOR.store(0, Ordering::Relaxed);
    hypercall::stop_timer(&HYPERVISOR, 0, false)
}

/// The domain came back (restored, or its suspend cancelled): whatever was
/// armed is gone; the next wait arms the timer again.
pub(crate) fn lost() {
    ARMED_FOR.store(0, Ordering::Relaxed);
}

/// Makes the vCPU tickless: PV vCPUs start with a 10 ms periodic timer that
/// would wake an idle guest a hundred times a second. The caller reports a
/// failure (the guest then ticks at 100 Hz).
pub(crate) fn init() -> Result<(), XenError> {
    hypercall::stop_timer(&HYPERVISOR, 0, true)
}

/// What [`arm`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Armed {
    /// `VIRQ_TIMER` will fire at the deadline.
    Yes,
    /// The deadline has passed already: nothing to wait for.
    Passed,
    /// No timer channel, or Xen refused: nothing will wake a block.
    No,
}

/// The deadline (ns of Xen system time) the one-shot timer was last armed
/// for; 0 when none (see the module's invariant).
static ARMED_FOR: AtomicU64 = AtomicU64::new(0);

/// How far ahead an armed deadline must still be for [`arm`] to rely on
/// it. Xen fires a timer up to its `timer_slop` (50 us by default) early,
/// so one due sooner than this may have fired already (its event taken).
const KEEP_MARGIN_NS: u64 = 1_000_000;

/// Arms the one-shot timer to raise `VIRQ_TIMER` at `deadline`. A deadline
/// that has passed is never handed to Xen as "fire now" (see
/// `set_singleshot_timer`): it is reported.
///
/// A timer already armed for no later than `deadline` (and more than
/// [`KEEP_MARGIN_NS`] ahead) is kept: the block it ends comes no later
/// than asked, and the caller's loop arms again then. An idle server that
/// waits "10 s or the next packet" over and over thus arms once per 10 s,
/// not once per packet — on PVH every hypercall is a VM exit.
pub(super) fn arm(deadline: Instant) -> Armed {
    if !with_channel(|c| c.is_some()) {
        return Armed::No;
    }
    let now = Instant::now();
    if deadline <= now {
        return Armed::Passed;
    }
    let armed = ARMED_FOR.load(Ordering::Relaxed);
    if armed > now.as_nanos().saturating_add(KEEP_MARGIN_NS) && armed <= deadline.as_nanos() {
        return Armed::Yes;
    }
    let xen_deadline = crate::xen::xen_time(deadline.as_nanos());
    let r = hypercall::set_singleshot_timer(&HYPERVISOR, 0, xen_deadline);
    ARMED_FOR.store(
        if r.is_ok() { deadline.as_nanos() } else { 0 },
        Ordering::Relaxed,
    );
    match r {
        Ok(()) => Armed::Yes,
        // It passed between our look at the clock and Xen's.
        Err(XenError::ETIME) => Armed::Passed,
        Err(_) => Armed::No,
    }
}
