//! What a socket call can fail with, as `std::io`-like kinds.

/// Why a socket call failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SocketError {
    /// The peer answered the connection request with a reset.
    Refused,
    /// The peer reset an established connection.
    Reset,
    /// The call's timeout (or the connection's) passed.
    TimedOut,
    /// No socket left in the stack's pool (see [`crate::Limits`]), or a
    /// buffer could not be had.
    NoBuffer,
    /// The socket is not connected (never was, or closed by this side).
    NotConnected,
    /// The port is taken, or the address cannot be bound.
    AddrInUse,
    /// No route to the address, or the address is not usable.
    Unreachable,
    /// An argument the stack cannot use (port 0, an empty datagram list...).
    InvalidInput,
    /// A datagram larger than the socket's buffer.
    TooLarge,
    /// The name did not resolve (no server answered, or it has no address).
    NameNotFound,
    /// No network: the stack is down or was never brought up.
    NetworkDown,
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SocketError::Refused => "connection refused",
            SocketError::Reset => "connection reset by peer",
            SocketError::TimedOut => "timed out",
            SocketError::NoBuffer => "no socket or buffer left (the pool is full)",
            SocketError::NotConnected => "not connected",
            SocketError::AddrInUse => "address in use",
            SocketError::Unreachable => "no route to the address",
            SocketError::InvalidInput => "invalid argument",
            SocketError::TooLarge => "datagram larger than the socket's buffer",
            SocketError::NameNotFound => "name not found",
            SocketError::NetworkDown => "the network is down",
        })
    }
}

impl core::error::Error for SocketError {}

impl embedded_io::Error for SocketError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self {
            SocketError::Refused => K::ConnectionRefused,
            SocketError::Reset => K::ConnectionReset,
            SocketError::TimedOut => K::TimedOut,
            SocketError::NoBuffer => K::OutOfMemory,
            SocketError::NotConnected => K::NotConnected,
            SocketError::AddrInUse => K::AddrInUse,
            SocketError::Unreachable => K::AddrNotAvailable,
            SocketError::InvalidInput | SocketError::TooLarge => K::InvalidInput,
            SocketError::NameNotFound => K::NotFound,
            SocketError::NetworkDown => K::Other,
        }
    }
}
