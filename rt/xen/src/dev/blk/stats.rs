//! A vbd's counters: what it moved, and what its backend did wrong.

/// Counters of one vbd connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkStats {
    /// Read requests submitted.
    pub reads: u64,
    /// Write requests submitted.
    pub writes: u64,
    /// Flush (or barrier) requests submitted.
    pub flushes: u64,
    /// Requests that listed their pages in an indirect page.
    pub indirect: u64,
    /// Bytes asked to be read.
    pub bytes_read: u64,
    /// Bytes asked to be written.
    pub bytes_written: u64,
    /// Requests that failed (error status, protocol, gone).
    pub errors: u64,
    /// Answers with an id not in flight (unknown, stale, duplicate).
    pub bad_ids: u64,
    /// Answers echoing the wrong operation.
    pub bad_ops: u64,
    /// Times the backend broke the ring's indices.
    pub ring_errors: u64,
    /// Notifications sent to the backend.
    pub notifies: u64,
}
