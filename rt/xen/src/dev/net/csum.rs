//! TCP/UDP checksums of IPv4 frames, the part of the stack's work netfront
//! does itself: the check of received frames, since it negotiated checksum
//! offload (a packet the backend did not vouch for is checked here, once);
//! and checksum offload on transmit ([`offload_tcp`]): a TCP frame leaves
//! with only the pseudo-header sum in its checksum field and
//! `NETTXF_csum_blank`, and the backend (Linux: `CHECKSUM_PARTIAL`)
//! completes it — the guest never sums the payload it sends.

/// The Internet checksum's one's-complement sum of `data`, added to `sum`.
fn ones_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    // Fold now and then is not needed: 64 KiB of 0xffff stays below 2^32.
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The IPv4 packet of an Ethernet frame, if whole and unfragmented:
/// (its header length, its total length).
fn ipv4(frame: &[u8]) -> Option<(usize, usize)> {
    const IPV4: [u8; 2] = [0x08, 0x00];
    if frame.len() < 14 + 20 || frame[12..14] != IPV4 {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() || fragment {
        return None;
    }
    Some((ihl, total))
}

/// Prepares a TCP frame for checksum offload: its checksum field gets the
/// pseudo-header's sum (addresses, protocol, TCP length; not complemented),
/// which the backend completes over the segment. Returns whether the frame
/// is such a frame (an IPv4 TCP segment, whole, unfragmented); others are
/// left untouched and must carry their own checksum.
pub fn offload_tcp(frame: &mut [u8]) -> bool {
    const TCP: u8 = 6;
    let Some((ihl, total)) = ipv4(frame) else {
        return false;
    };
    if frame.get(14 + 9) != Some(&TCP) || total - ihl < 20 {
        return false;
    }
    set_pseudo_sum(frame, ihl, total - ihl);
    true
}

/// Fills in the header checksum of the 20-byte IPv4 header `hdr`.
pub(crate) fn set_ipv4_checksum(hdr: &mut [u8; 20]) {
    hdr[10..12].copy_from_slice(&[0, 0]);
    let sum = !fold(ones_sum(0, hdr));
    hdr[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Puts the pseudo-header sum of a TCP segment of `tcp_len` bytes into the
/// checksum field of the TCP header that follows `frame`'s IPv4 header of
/// `ihl` bytes (for offload; the caller checked the headers are there: a
/// frame too short for them is left as it is).
pub(crate) fn set_pseudo_sum(frame: &mut [u8], ihl: usize, tcp_len: usize) {
    const TCP: u8 = 6;
    let Some(addresses) = frame.get(14 + 12..14 + 20) else {
        return;
    };
    let mut sum = ones_sum(0, addresses);
    sum += u32::from(TCP) + tcp_len as u32;
    let [hi, lo] = fold(sum).to_be_bytes();
    if let Some([a, b]) = frame.get_mut(14 + ihl + 16..14 + ihl + 18) {
        (*a, *b) = (hi, lo);
    }
}

/// What the backend does to a frame sent with `NETTXF_csum_blank`: sums
/// the TCP segment (its checksum field holding the pseudo-header sum) and
/// stores the complement. For the host tests, as the other side.
#[cfg(test)]
pub(crate) fn complete_tcp(frame: &mut [u8]) {
    let (ihl, total) = ipv4(frame).expect("an IPv4 frame");
    let l4 = &mut frame[14 + ihl..14 + total];
    let sum = !fold(ones_sum(0, l4));
    l4[16..18].copy_from_slice(&sum.to_be_bytes());
}

/// Whether an Ethernet frame's IPv4 TCP or UDP checksum is right. Frames of
/// other kinds, fragments and malformed headers give true: the stack checks
/// (and drops) those itself; only the TCP/UDP checksum is left to us.
pub fn l4_checksum_ok(frame: &[u8]) -> bool {
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    let Some((ihl, total)) = ipv4(frame) else {
        return true;
    };
    // Both in the frame: `ipv4` checked 20 <= ihl <= total <= its length.
    let (Some(ip), Some(l4)) = (frame.get(14..14 + 20), frame.get(14 + ihl..14 + total)) else {
        return true;
    };
    let proto = ip[9];
    match proto {
        TCP if l4.len() >= 20 => {}
        UDP if l4.len() >= 8 => {
            if l4[6..8] == [0, 0] {
                // No checksum sent.
                return true;
            }
        }
        TCP | UDP => return false,
        _ => return true,
    }
    let mut sum = ones_sum(0, &ip[12..20]);
    sum += u32::from(proto) + l4.len() as u32;
    fold(ones_sum(sum, l4)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::net::fake::{tcp_frame, udp_frame};
    use proptest::prelude::*;

    proptest! {
        /// Offloaded: the pseudo-header sum the guest leaves, completed as
        /// the backend completes it, is the right checksum — for any
        /// payload length (odd ones too) and content.
        #[test]
        fn an_offloaded_checksum_completes_to_the_right_one(len in 0usize..9000, seed in any::<u8>()) {
            let good = tcp_frame(len, seed);
            let mut f = good.clone();
            // Whatever smoltcp left in the field is replaced.
            let at = 14 + 20 + 16;
            f[at] ^= 0x5a;
            prop_assert!(offload_tcp(&mut f));
            complete_tcp(&mut f);
            prop_assert!(l4_checksum_ok(&f));
            prop_assert_eq!(f, good);
        }
    }

    #[test]
    fn only_whole_tcp_segments_are_offloaded() {
        let mut udp = udp_frame(33, true);
        let before = udp.clone();
        assert!(!offload_tcp(&mut udp));
        assert_eq!(udp, before, "not TCP: untouched");
        let mut frag = tcp_frame(10, 1);
        frag[14 + 6] |= 0x20;
        assert!(!offload_tcp(&mut frag));
        let mut short = tcp_frame(0, 1);
        short[14 + 2..14 + 4].copy_from_slice(&30u16.to_be_bytes());
        assert!(!offload_tcp(&mut short), "a TCP header cut short");
        let mut arp = tcp_frame(10, 1);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!offload_tcp(&mut arp));
    }

    #[test]
    fn the_checksum_check_takes_good_frames_and_rejects_damaged_ones() {
        for f in [
            tcp_frame(0, 1),
            tcp_frame(1460, 2),
            tcp_frame(60001, 3),
            udp_frame(33, true),
        ] {
            assert!(l4_checksum_ok(&f), "a good {}-byte frame", f.len());
            for at in [14 + 12, 14 + 20 + 4, f.len() - 1] {
                let mut bad = f.clone();
                bad[at] ^= 0x10;
                assert!(!l4_checksum_ok(&bad), "damage at {at} of {}", f.len());
            }
        }
        // No UDP checksum: nothing to check.
        let mut none = udp_frame(20, false);
        assert!(l4_checksum_ok(&none));
        let last = none.len() - 1;
        none[last] ^= 1;
        assert!(l4_checksum_ok(&none));
        // A TCP header cut short by the IP length: wrong.
        let mut short = tcp_frame(0, 1);
        short[14 + 2..14 + 4].copy_from_slice(&30u16.to_be_bytes());
        assert!(!l4_checksum_ok(&short));
        // Not ours to judge: ARP, an IP length past the frame, a fragment.
        let mut arp = tcp_frame(10, 1);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(l4_checksum_ok(&arp));
        let mut long = tcp_frame(10, 1);
        long[14 + 2..14 + 4].copy_from_slice(&2000u16.to_be_bytes());
        assert!(l4_checksum_ok(&long));
        let mut frag = tcp_frame(10, 1);
        frag[14 + 6] |= 0x20;
        let last = frag.len() - 1;
        frag[last] ^= 1;
        assert!(l4_checksum_ok(&frag));
    }
}
