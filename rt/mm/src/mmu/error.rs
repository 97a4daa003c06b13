//! Why a mapping operation did not happen (or did not complete).
use core::fmt;

use rt_xen::XenError;

use crate::frame::Pfn;
use crate::op::Refused;

/// Why a mapping operation did not happen (or did not complete).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapError {
    /// The address is not page aligned.
    Unaligned(u64),
    /// The range leaves the lower half of the address space (or is empty).
    OutOfRange(u64),
    /// The frame is not one of ours.
    NoSuchFrame(Pfn),
    /// A writable mapping of a page-table frame was asked for.
    PageTableFrame(Pfn),
    /// `protect_range` over an address that is not mapped.
    NotMapped(u64),
    /// The frame source is empty.
    NoFrames,
    /// The space is active and cannot be released.
    Busy,
    /// An entry the walk found points outside our memory.
    Corrupt {
        /// The table holding it.
        table: Pfn,
        /// Its index.
        index: usize,
    },
    /// A frame the mapper fills before it becomes a table could not be
    /// written (it is typed or not mapped writable).
    NotWritable(Pfn),
    /// Xen refused an operation of the batch.
    Refused(Refused),
    /// Xen rejected the batch as a whole.
    Submit(XenError),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Unaligned(va) => write!(f, "address {va:#x} is not page aligned"),
            MapError::OutOfRange(va) => {
                write!(f, "range at {va:#x} is empty or leaves the lower half")
            }
            MapError::NoSuchFrame(p) => write!(f, "{p} is not a frame of this domain"),
            MapError::PageTableFrame(p) => {
                write!(f, "{p} is a page table and cannot be mapped writable")
            }
            MapError::NotMapped(va) => write!(f, "{va:#x} is not mapped"),
            MapError::NoFrames => f.write_str("no free frames for page tables"),
            MapError::Busy => f.write_str("the address space is active"),
            MapError::Corrupt { table, index } => write!(
                f,
                "entry {index} of table {table} points outside our memory"
            ),
            MapError::NotWritable(p) => {
                write!(
                    f,
                    "{p} cannot be filled: it is not an ordinary writable frame"
                )
            }
            MapError::Refused(r) => write!(f, "{r}"),
            MapError::Submit(e) => write!(f, "batch rejected: {e}"),
        }
    }
}
