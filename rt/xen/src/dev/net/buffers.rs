//! The buffer pages of a vif and the limits of what passes through them.
use super::netif::{EXTRA_TYPE_MAX, RING_SIZE};
use crate::abi::PAGE_SIZE;

/// Largest frame sent (Ethernet without FCS, MTU 1500).
pub const MAX_FRAME: usize = 1514;
/// Largest packet accepted: a GSO packet (an IPv4 packet of at most 64 KiB)
/// with its Ethernet header.
pub const MAX_PACKET: usize = 14 + 65535;
/// Smallest frame netback accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Most data slots of one received packet (`XEN_NETIF_NR_SLOTS_MIN`:
/// netback fills whole pages, so 64 KiB takes 17).
pub const MAX_DATA_SLOTS: u32 = 18;
/// Most extra-info slots of one packet (one of each type).
pub const MAX_EXTRA_SLOTS: u32 = EXTRA_TYPE_MAX as u32 - 1;
/// Slots of each ring, and the most buffers of each direction.
pub const SLOTS: usize = RING_SIZE as usize;
/// The index of buffer `id` in the per-id arrays (`[_; SLOTS]`). The ids
/// netfront uses are below [`SLOTS`] — the TX free stack and the RX posts
/// start as `0..count` with `count <= SLOTS`, and an id in a backend's
/// answer is checked before it is used — so the mask never changes one: it
/// spares each use a bounds check and its panic path.
pub(super) fn index_of(id: u16) -> usize {
    const { assert!(SLOTS.is_power_of_two()) };
    usize::from(id) % SLOTS
}

/// The fewest buffers of each direction: one packet's most slots (data and
/// extras) and one more, so the largest packet always fits in what is posted.
pub const MIN_BUFFERS: usize = (MAX_DATA_SLOTS + MAX_EXTRA_SLOTS) as usize + 1;

/// Buffers of each direction for a vif set up with `free_frames` free: a
/// full ring when memory allows, else what keeps the two directions at half
/// of the free frames (so the heap keeps the rest), never fewer than
/// [`MIN_BUFFERS`]. A small guest (PVH in 2 MiB) gets a working vif with
/// less throughput instead of none.
pub fn buffers_for(free_frames: u64) -> usize {
    usize::try_from(free_frames / 4)
        .unwrap_or(SLOTS)
        .clamp(MIN_BUFFERS, SLOTS)
}

/// The buffer pages: one per slot and direction.
pub trait Pages {
    /// TX page `id`, to copy a frame into.
    fn tx_page(&mut self, id: u16) -> &mut [u8; PAGE_SIZE];
    /// RX page `id`, as the backend left it.
    fn rx_page(&self, id: u16) -> &[u8; PAGE_SIZE];
    /// Copies `len` bytes at `from_at` of TX page `from` to `to_at` of TX
    /// page `to` (two different pages). The default goes through a stack
    /// buffer; an implementation that can borrow both pages at once
    /// copies directly.
    fn tx_copy(&mut self, from: u16, from_at: usize, to: u16, to_at: usize, len: usize) {
        let mut tmp = [0u8; MAX_FRAME];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(tmp.len());
            tmp[..n].copy_from_slice(&self.tx_page(from)[from_at + done..from_at + done + n]);
            self.tx_page(to)[to_at + done..to_at + done + n].copy_from_slice(&tmp[..n]);
            done += n;
        }
    }
}
