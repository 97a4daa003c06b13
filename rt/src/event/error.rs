//! Why an event-channel operation failed.
use rt_xen::XenError;
use rt_xen::abi::evtchn::HandlerError;

/// Why a channel operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventError {
    /// Not on Xen (bare QEMU): there are no event channels.
    NoHypervisor,
    /// Xen refused the operation.
    Xen(XenError),
    /// The handler table refused.
    Handler(HandlerError),
}

impl core::fmt::Display for EventError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EventError::NoHypervisor => f.write_str("not running on Xen"),
            EventError::Xen(e) => write!(f, "{e}"),
            EventError::Handler(e) => write!(f, "{e}"),
        }
    }
}

impl From<XenError> for EventError {
    fn from(e: XenError) -> Self {
        EventError::Xen(e)
    }
}

/// `Ok` when there are event channels: on Xen, shared_info mapped.
pub(crate) fn on_xen() -> Result<(), EventError> {
    if crate::platform::platform().is_xen() && crate::xen::shared_info().is_some() {
        Ok(())
    } else {
        Err(EventError::NoHypervisor)
    }
}
