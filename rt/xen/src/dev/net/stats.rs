//! A vif's counters: every frame, every drop by its reason.
/// Counters (all frames, all drops by reason).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NetStats {
    /// Frames sent (requests published).
    pub tx_frames: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames the backend reported as not sent (error or dropped status).
    pub tx_errors: u64,
    /// Frames not sent because every TX slot was in flight.
    pub tx_ring_full: u64,
    /// TCP packets sent with checksum offload (`NETTXF_csum_blank`).
    pub tx_csum_offloaded: u64,
    /// Of those, GSO packets (several segments gathered into one).
    pub tx_gso: u64,
    /// Packets received and handed on.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Of the packets handed on, those that came as GSO (several MTUs).
    pub rx_gso: u64,
    /// Of the packets handed on, those whose checksum was verified here
    /// (the backend had not validated it).
    pub rx_csum_checked: u64,
    /// RX packets with an error status in one of their slots.
    pub rx_errors: u64,
    /// Answers whose id was out of range or not outstanding (TX), or not
    /// the buffer posted at that ring index (RX).
    pub bad_ids: u64,
    /// RX packets whose slots do not fit their page, or whose length is
    /// below an Ethernet header or above [`MAX_PACKET`](super::buffers::MAX_PACKET).
    pub bad_lengths: u64,
    /// RX packets with flags we did not negotiate (a GSO prefix, extra info
    /// on a continuation slot, unknown bits).
    pub bad_flags: u64,
    /// RX packets with an extra-info slot of an unknown type or a GSO type
    /// other than TCPv4, or more extra slots than there are types.
    pub bad_extras: u64,
    /// RX packets spread over more than [`MAX_DATA_SLOTS`](super::buffers::MAX_DATA_SLOTS) slots.
    pub bad_chains: u64,
    /// RX packets whose TCP or UDP checksum is wrong.
    pub bad_checksums: u64,
    /// Times the backend broke the ring protocol itself.
    pub ring_errors: u64,
    /// Notifications sent to the backend.
    pub notifies: u64,
}

impl NetStats {
    /// Adds `o`'s counters to these (a connection's to the vif's totals).
    /// Every field is named: a counter added to the struct cannot be
    /// forgotten here.
    pub fn add(&mut self, o: &NetStats) {
        let NetStats {
            tx_frames,
            tx_bytes,
            tx_errors,
            tx_ring_full,
            tx_csum_offloaded,
            tx_gso,
            rx_frames,
            rx_bytes,
            rx_gso,
            rx_csum_checked,
            rx_errors,
            bad_ids,
            bad_lengths,
            bad_flags,
            bad_extras,
            bad_chains,
            bad_checksums,
            ring_errors,
            notifies,
        } = *o;
        self.tx_frames += tx_frames;
        self.tx_bytes += tx_bytes;
        self.tx_errors += tx_errors;
        self.tx_ring_full += tx_ring_full;
        self.tx_csum_offloaded += tx_csum_offloaded;
        self.tx_gso += tx_gso;
        self.rx_frames += rx_frames;
        self.rx_bytes += rx_bytes;
        self.rx_gso += rx_gso;
        self.rx_csum_checked += rx_csum_checked;
        self.rx_errors += rx_errors;
        self.bad_ids += bad_ids;
        self.bad_lengths += bad_lengths;
        self.bad_flags += bad_flags;
        self.bad_extras += bad_extras;
        self.bad_chains += bad_chains;
        self.bad_checksums += bad_checksums;
        self.ring_errors += ring_errors;
        self.notifies += notifies;
    }
}
