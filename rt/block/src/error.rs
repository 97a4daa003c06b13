//! Why a block call failed: one type for every disk and what is built on it.
use alloc::string::String;

use rt_xen::dev::blk::IoError;
use rt_xen::proto::xenbus::HandshakeError;

/// How long a request may stay unanswered before a call gives up, seconds.
pub const IO_TIMEOUT_S: u64 = 30;

/// Why a block call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The backend reported an I/O error (its blkif status).
    Io(i16),
    /// The backend does not do this (no flush or barrier offered, or it
    /// answered `EOPNOTSUPP`).
    NotSupported,
    /// The range lies (partly) beyond the disk's end.
    OutOfRange {
        /// The first sector asked for.
        sector: u64,
        /// Sectors asked for.
        count: u64,
        /// The disk's size in sectors.
        sectors: u64,
    },
    /// A write to a read-only disk.
    ReadOnly,
    /// The buffer is not a whole number of sectors.
    Unaligned {
        /// The buffer's length.
        len: usize,
        /// The disk's sector size.
        sector_size: u32,
    },
    /// The backend closed (or broke the protocol): the disk is gone.
    Gone,
    /// The backend did not answer within [`IO_TIMEOUT_S`] seconds.
    TimedOut,
    /// No such disk in the domain's config.
    NoDevice(String),
    /// Connecting to the backend failed.
    Connect(HandshakeError),
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::Io(s) => write!(f, "the backend reported an I/O error (status {s})"),
            BlockError::NotSupported => write!(f, "the disk's backend does not support this"),
            BlockError::OutOfRange {
                sector,
                count,
                sectors,
            } => write!(
                f,
                "sectors {sector}..{} lie beyond the disk's {sectors}",
                sector.saturating_add(*count)
            ),
            BlockError::ReadOnly => write!(f, "the disk is read-only"),
            BlockError::Unaligned { len, sector_size } => write!(
                f,
                "{len} bytes is not a whole number of {sector_size}-byte sectors"
            ),
            BlockError::Gone => write!(f, "the disk's backend is gone"),
            BlockError::TimedOut => write!(
                f,
                "the disk's backend did not answer within {IO_TIMEOUT_S} s"
            ),
            BlockError::NoDevice(d) => write!(f, "no disk {d} in the domain's config"),
            BlockError::Connect(e) => write!(f, "connecting the disk: {e}"),
        }
    }
}

impl core::error::Error for BlockError {}

impl From<IoError> for BlockError {
    fn from(e: IoError) -> Self {
        match e {
            IoError::Backend(s) => BlockError::Io(s),
            IoError::NotSupported => BlockError::NotSupported,
            IoError::Protocol | IoError::Gone => BlockError::Gone,
        }
    }
}
