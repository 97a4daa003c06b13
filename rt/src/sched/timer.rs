//! The one-shot timer: `VCPUOP_set_singleshot_timer` raises `VIRQ_TIMER`
//! at a deadline, which ends the vCPU's block in the idle loop.
//!
//! Invariant: [`arm`] is the only code that arms the timer (one vCPU), and
//! `ARMED_FOR` is the deadline it last armed for; while that lies ahead,
//! Xen holds a one-shot timer for exactly it.
use core::sync::atomic::{AtomicU64, Ordering};

use rt_xen::XenError;
use rt_xen::abi::hypercall;

use crate::event::{Channel, VIRQ_TIMER};
use crate::time::Instant;
use crate::xen::HYPERVISOR;

/// The `VIRQ_TIMER` channel, bound on first use.
static TIMER: spin::Once<Option<Channel>> = spin::Once::new();

/// The timer's channel (bound, and its port named, on first use).
pub(super) fn channel() -> Option<&'static Channel> {
    TIMER
        .call_once(|| {
            let c = Channel::bind_virq(VIRQ_TIMER).ok();
            if let Some(c) = &c {
                crate::event::name_port(c.port(), "timer (VIRQ_TIMER)");
            }
            c
        })
        .as_ref()
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
    if channel().is_none() {
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
    let r = hypercall::set_singleshot_timer(&HYPERVISOR, 0, deadline.as_nanos());
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
