//! TCP segmentation offload on transmit, by merging: consecutive full-size
//! TCP segments of one connection that the stack emits in one go (each
//! written to its own TX page) go to the backend as one GSO packet — the
//! first frame's headers and payload, then the next segments' payloads
//! packed behind it, page after page (`NETTXF_more_data` slots), with a
//! `XEN_NETIF_EXTRA_TYPE_GSO` slot giving the segment size. Each payload is
//! copied into the room left in the packet's last page, the rest staying
//! where it was written (that page becomes the packet's next slot); a page
//! emptied so is free at once. Like Linux's netfront, a packet thus fills
//! whole pages: up to 64 KiB in at most [`MAX_SEGMENTS`] slots. The backend
//! (Linux netback) hands dom0's stack one large packet and segments it
//! only if it leaves the host.
//!
//! The rules a merge keeps (so that segmenting the packet again yields
//! the very segments the stack sent): same Ethernet, IPv4 (no options, not
//! fragmented) and TCP headers byte for byte except the IP length, id and
//! checksum and the TCP sequence number, PSH and checksum; only ACK (and
//! PSH on the last) set; sequence numbers contiguous; every segment but
//! the last exactly the first's payload size; at most [`MAX_SEGMENTS`]
//! slots and 64 KiB of IP datagram.
use super::netif::TxRequest;

/// Most data slots of one GSO packet (Linux netback's limit is 18 slots
/// per packet, and it disables a vif that sends more than 20).
pub const MAX_SEGMENTS: usize = 17;
/// A page's bytes.
const PAGE: usize = crate::abi::PAGE_SIZE;
/// Largest IP datagram of a GSO packet (its frame's length must fit the
/// first request's 16-bit size).
const MAX_IP_LEN: usize = 65535 - 14;
/// Most header bytes a gathered packet's first frame has (Ethernet, IPv4
/// without options, TCP with the most options).
const MAX_HDR: usize = 14 + 20 + 60;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

/// A frame that may be part of a GSO packet: an IPv4 TCP data segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Segment {
    /// Bytes of headers (Ethernet, IPv4, TCP).
    pub hdr: usize,
    /// Bytes of TCP payload.
    pub payload: usize,
    /// Its sequence number.
    pub seq: u32,
    /// PSH is set (it ends a merge).
    pub psh: bool,
}

/// Reads `frame` as a mergeable segment: Ethernet + IPv4 without options,
/// unfragmented, TCP with only ACK or ACK|PSH set, some payload, and
/// exactly the IP length of the frame.
pub fn segment(frame: &[u8]) -> Option<Segment> {
    if frame.len() < 14 + 20 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[0] != 0x45 || ip[9] != 6 || fragment || total != ip.len() {
        return None;
    }
    let tcp = &ip[20..];
    // The fixed TCP header: the length check above keeps it in the frame.
    let th: &[u8; 20] = tcp.first_chunk()?;
    let thl = usize::from(th[12] >> 4) * 4;
    let flags = th[13];
    if thl < 20 || thl > tcp.len() || flags & !TCP_PSH != TCP_ACK || th[12] & 0x0f != 0 {
        return None;
    }
    let payload = tcp.len() - thl;
    (payload > 0).then(|| Segment {
        hdr: 14 + 20 + thl,
        payload,
        seq: u32::from_be_bytes([th[4], th[5], th[6], th[7]]),
        psh: flags & TCP_PSH != 0,
    })
}

/// A GSO packet being gathered: its slots (TX page, offset, length) in
/// order; the first holds the headers.
#[derive(Clone, Debug)]
pub struct Gather {
    /// The slots: (TX id, offset in its page, bytes).
    pub slots: [(u16, u16, u16); MAX_SEGMENTS],
    /// How many.
    pub n: usize,
    /// The first frame.
    pub first: Segment,
    /// A copy of the first frame's headers (compared with each next one).
    head: [u8; MAX_HDR],
    /// Payload bytes gathered.
    pub payload: usize,
    /// Segments gathered.
    pub segments: usize,
    /// A short or PSH segment came: nothing more may follow.
    pub ended: bool,
    /// The last segment had PSH.
    pub last_psh: bool,
}

impl Gather {
    /// A gather starting with frame `id` (segment `first`, bytes `frame`).
    pub fn new(id: u16, first: Segment, frame: &[u8]) -> Gather {
        let mut slots = [(0, 0, 0); MAX_SEGMENTS];
        slots[0] = (id, 0, frame.len() as u16);
        let mut head = [0; MAX_HDR];
        head[..first.hdr].copy_from_slice(&frame[..first.hdr]);
        Gather {
            slots,
            n: 1,
            first,
            head,
            payload: first.payload,
            segments: 1,
            ended: first.psh,
            last_psh: first.psh,
        }
    }

    /// Where the next payload bytes go: (the last slot's page, the offset
    /// past its bytes, the room left in that page).
    pub fn tail(&self) -> (u16, usize, usize) {
        let (id, off, len) = self.slots[self.n - 1];
        let end = usize::from(off) + usize::from(len);
        (id, end, PAGE - end)
    }

    /// Whether frame `next` (segment `s`) continues this packet.
    pub fn continues(&self, next: &[u8], s: &Segment) -> bool {
        let first = &self.head[..];
        if self.ended
            || (self.n == MAX_SEGMENTS && self.tail().2 < s.payload)
            || s.hdr != self.first.hdr
            || s.payload > self.first.payload
            || self.first.hdr - 14 + self.payload + s.payload > MAX_IP_LEN
            || s.seq != self.first.seq.wrapping_add(self.payload as u32)
        {
            return false;
        }
        let ip = 14;
        let tcp = ip + 20;
        // Both frames' headers are `hdr` bytes (equal above), at least the
        // fixed Ethernet, IPv4 and TCP headers ([`segment`]): checked once
        // here, the comparisons below stay in bounds without a check each.
        let hdr = s.hdr;
        if hdr < tcp + 20 || hdr > first.len() || hdr > next.len() {
            return false;
        }
        let (a, b) = (&first[..hdr], &next[..hdr]);
        // Ethernet; IP version, header length, TOS; flags, TTL, protocol;
        // addresses; TCP ports; ack number; data offset; flags but PSH;
        // window; urgent pointer; options.
        a[..ip + 2] == b[..ip + 2]
            && a[ip + 6..ip + 10] == b[ip + 6..ip + 10]
            && a[ip + 12..tcp] == b[ip + 12..tcp]
            && a[tcp..tcp + 4] == b[tcp..tcp + 4]
            && a[tcp + 8..tcp + 13] == b[tcp + 8..tcp + 13]
            && a[tcp + 13] & !TCP_PSH == b[tcp + 13] & !TCP_PSH
            && a[tcp + 14..tcp + 16] == b[tcp + 14..tcp + 16]
            && a[tcp + 18..] == b[tcp + 18..]
    }

    /// Adds segment `s` (which [`Self::continues`] accepted), written to
    /// page `id`: its first `copied` payload bytes were copied into the
    /// room of the last slot; the rest, if any, stays in page `id` as a new
    /// slot. Returns whether page `id` is still used (else it is free).
    pub fn push(&mut self, id: u16, s: &Segment, copied: usize) -> bool {
        self.slots[self.n - 1].2 += copied as u16;
        let kept = s.payload - copied > 0;
        if kept {
            self.slots[self.n] = (id, (s.hdr + copied) as u16, (s.payload - copied) as u16);
            self.n += 1;
        }
        self.payload += s.payload;
        self.segments += 1;
        self.last_psh = s.psh;
        if s.payload < self.first.payload || s.psh {
            self.ended = true;
        }
        kept
    }

    /// Rewrites the first frame's headers for the whole packet: IP total
    /// length and header checksum, PSH if the last segment had it, and
    /// the TCP checksum field set for offload (pseudo-header sum).
    pub fn patch_first(&self, first: &mut [u8; PAGE]) {
        const IP: usize = 14;
        let total = (self.first.hdr - 14 + self.payload) as u16;
        let ip_hdr: &mut [u8; 20] = first[IP..].first_chunk_mut().expect("in the page");
        ip_hdr[2..4].copy_from_slice(&total.to_be_bytes());
        super::csum::set_ipv4_checksum(ip_hdr);
        if self.last_psh {
            first[IP + 20 + 13] |= TCP_PSH;
        }
        // The pseudo-header sum over the whole packet's TCP length (the
        // payload past this frame's is in the other slots' pages).
        super::csum::set_pseudo_sum(first, 20, usize::from(total) - 20);
    }
}

/// The `netif_extra_info` slot of a GSO packet (`XEN_NETIF_EXTRA_TYPE_GSO`,
/// TCPv4, segment size `mss`), as the TX request slot it occupies.
pub fn extra_slot(mss: u16) -> TxRequest {
    use super::netif::{EXTRA_TYPE_GSO, GSO_TYPE_TCPV4};
    let m = mss.to_ne_bytes();
    let b = [EXTRA_TYPE_GSO, 0, m[0], m[1], GSO_TYPE_TCPV4, 0, 0, 0];
    TxRequest {
        gref: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        offset: u16::from_ne_bytes([b[4], b[5]]),
        flags: u16::from_ne_bytes([b[6], b[7]]),
        id: 0,
        size: 0,
    }
}

/// What netback and dom0's stack do with a GSO packet leaving the host:
/// cut it into `mss`-byte segments, each with the first's headers, its own
/// sequence number, IP length, id and checksums, PSH only on the last.
/// For the host tests, as the other side.
#[cfg(test)]
pub(crate) fn resegment(pkt: &[u8], mss: usize) -> alloc::vec::Vec<alloc::vec::Vec<u8>> {
    let ip = 14;
    let thl = usize::from(pkt[ip + 20 + 12] >> 4) * 4;
    let hdr = ip + 20 + thl;
    let seq0 = u32::from_be_bytes([pkt[ip + 24], pkt[ip + 25], pkt[ip + 26], pkt[ip + 27]]);
    let id0 = u16::from_be_bytes([pkt[ip + 4], pkt[ip + 5]]);
    let psh = pkt[ip + 20 + 13] & TCP_PSH != 0;
    let chunks: alloc::vec::Vec<&[u8]> = pkt[hdr..].chunks(mss).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut f = pkt[..hdr].to_vec();
            f.extend_from_slice(c);
            let total = (20 + thl + c.len()) as u16;
            f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
            f[ip + 4..ip + 6].copy_from_slice(&id0.wrapping_add(k as u16).to_be_bytes());
            super::csum::set_ipv4_checksum(f[ip..].first_chunk_mut().unwrap());
            let seq = seq0.wrapping_add((k * mss) as u32);
            f[ip + 24..ip + 28].copy_from_slice(&seq.to_be_bytes());
            if k != last || !psh {
                f[ip + 20 + 13] &= !TCP_PSH;
            }
            super::csum::set_pseudo_sum(&mut f, 20, thl + c.len());
            super::csum::complete_tcp(&mut f);
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::net::fake::tcp_frame;
    use alloc::vec::Vec;

    /// A segment of `len` bytes at `seq` (flags ACK, PSH if asked).
    fn seg(seq: u32, len: usize, psh: bool) -> Vec<u8> {
        let mut f = tcp_frame(len, seq as u8);
        f[14 + 24..14 + 28].copy_from_slice(&seq.to_be_bytes());
        if psh {
            f[14 + 20 + 13] |= TCP_PSH;
        }
        f
    }

    #[test]
    fn contiguous_full_segments_merge_and_anything_else_ends_it() {
        let a = seg(1000, 1000, false);
        let sa = segment(&a).expect("a data segment");
        assert_eq!(
            (sa.hdr, sa.payload, sa.seq, sa.psh),
            (54, 1000, 1000, false)
        );
        let mut g = Gather::new(1, sa, &a);
        let b = seg(2000, 1000, false);
        let sb = segment(&b).unwrap();
        assert!(g.continues(&b, &sb));
        // A gap, another port, a different ack, a bigger segment: no.
        let gap = seg(2500, 1000, false);
        assert!(!g.continues(&gap, &segment(&gap).unwrap()));
        let mut port = b.clone();
        port[14 + 22] ^= 1;
        assert!(!g.continues(&port, &segment(&port).unwrap()));
        let mut ack = b.clone();
        ack[14 + 28] ^= 1;
        assert!(!g.continues(&ack, &segment(&ack).unwrap()));
        let big = seg(2000, 1200, false);
        assert!(!g.continues(&big, &segment(&big).unwrap()));
        g.push(2, &sb, 0);
        // A PSH segment may end the packet; nothing follows it.
        let c = seg(3000, 1000, true);
        let sc = segment(&c).unwrap();
        assert!(g.continues(&c, &sc));
        g.push(3, &sc, 0);
        assert!(g.ended && g.last_psh);
        let d = seg(4000, 1000, false);
        assert!(!g.continues(&d, &segment(&d).unwrap()));
        // Not data segments: no payload, SYN/FIN, IP options.
        assert!(segment(&seg(5000, 0, false)).is_none());
        let mut fin = seg(5000, 10, false);
        fin[14 + 20 + 13] |= 0x01;
        assert!(segment(&fin).is_none());
        let mut opts = seg(5000, 10, false);
        opts[14] = 0x46;
        assert!(segment(&opts).is_none());
    }

    #[test]
    fn a_short_segment_ends_it_and_the_slot_limit_holds() {
        let a = seg(0, 1000, false);
        let mut g = Gather::new(0, segment(&a).unwrap(), &a);
        // Each segment kept in its own page: a slot each, up to the limit.
        for k in 1..MAX_SEGMENTS {
            let f = seg(1000 * k as u32, 1000, false);
            let s = segment(&f).unwrap();
            assert!(g.continues(&f, &s), "segment {k}");
            assert!(g.push(k as u16, &s, 0));
        }
        // At the limit, a segment still goes while the last page has room
        // for all of it (packed there, its own page freed)...
        let mut seq = 1000 * MAX_SEGMENTS as u32;
        loop {
            let f = seg(seq, 1000, false);
            let s = segment(&f).unwrap();
            if g.tail().2 < 1000 {
                // ...and not once it has not.
                assert!(!g.continues(&f, &s));
                break;
            }
            assert!(g.continues(&f, &s));
            assert!(!g.push(99, &s, 1000), "packed whole: the page is free");
            seq += 1000;
        }
        assert_eq!(g.n, MAX_SEGMENTS);
        let b = seg(0, 100, false);
        let mut h = Gather::new(0, segment(&b).unwrap(), &b);
        let short = seg(100, 40, false);
        h.push(1, &segment(&short).unwrap(), 0);
        assert!(h.ended);
    }

    #[test]
    fn a_payload_split_across_pages_keeps_its_rest_where_it_was() {
        let a = seg(0, 1460, false);
        let mut g = Gather::new(3, segment(&a).unwrap(), &a);
        assert_eq!(g.tail(), (3, 1514, PAGE - 1514));
        let b = seg(1460, 1460, false);
        let sb = segment(&b).unwrap();
        assert!(!g.push(4, &sb, 1460), "fits whole");
        assert_eq!(g.tail(), (3, 2974, PAGE - 2974));
        let c = seg(2920, 1460, false);
        let sc = segment(&c).unwrap();
        let room = g.tail().2;
        assert!(g.push(5, &sc, room), "the rest stays in page 5");
        assert_eq!(
            g.slots[..g.n],
            [
                (3, 0, PAGE as u16),
                (5, (54 + room) as u16, (1460 - room) as u16)
            ]
        );
        assert_eq!(g.payload, 3 * 1460);
    }

    #[test]
    fn the_merged_packet_resegments_into_the_segments_sent() {
        let frames: Vec<Vec<u8>> = (0..4).map(|k| seg(7000 + 1400 * k, 1400, k == 3)).collect();
        let mut g = Gather::new(0, segment(&frames[0]).unwrap(), &frames[0]);
        for (k, f) in frames.iter().enumerate().skip(1) {
            g.push(k as u16, &segment(f).unwrap(), 0);
        }
        let mut page = [0u8; PAGE];
        page[..frames[0].len()].copy_from_slice(&frames[0]);
        g.patch_first(&mut page);
        let mut pkt = page[..frames[0].len()].to_vec();
        for f in &frames[1..] {
            pkt.extend_from_slice(&f[54..]);
        }
        let out = resegment(&pkt, 1400);
        assert_eq!(out.len(), 4);
        for (k, (o, f)) in out.iter().zip(&frames).enumerate() {
            assert_eq!(o[54..], f[54..], "payload {k}");
            assert_eq!(o[14 + 24..14 + 28], f[14 + 24..14 + 28], "seq {k}");
            assert_eq!(o[14 + 33] & TCP_PSH != 0, k == 3, "PSH only on the last");
            assert!(crate::dev::net::csum::l4_checksum_ok(o));
        }
    }
}
