//! netif's wire format (`public/io/netif.h`): the TX and RX requests and
//! responses, their flags, the extra-info slot, and the two ring kinds.
use crate::proto::shared_ring::Kind;

/// Slots in each ring: 256 for both (12- and 8-byte slots in one page).
pub const RING_SIZE: u32 = 256;

/// `netif_tx_request`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// Grant of the page holding the data.
    pub gref: u32,
    /// Where the data starts in that page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// Bytes (for the first slot of a packet: the whole packet).
    pub size: u16,
}

/// `netif_tx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResponse {
    /// The request's id.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// `netif_rx_request`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding.
    pub pad: u16,
    /// Grant of the (writable) page the backend copies the packet into.
    pub gref: u32,
}

/// `netif_rx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponse {
    /// The request's id.
    pub id: u16,
    /// Where the data starts in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes received (> 0), or `NETIF_RSP_*` (≤ 0).
    pub status: i16,
}

const _: () = {
    assert!(core::mem::size_of::<TxRequest>() == 12);
    assert!(core::mem::size_of::<TxResponse>() == 4);
    assert!(core::mem::size_of::<RxRequest>() == 8);
    assert!(core::mem::size_of::<RxResponse>() == 8);
    assert!(Tx::SIZE == RING_SIZE && Rx::SIZE == RING_SIZE);
};

/// `NETTXF_csum_blank`: the checksum is to be filled in.
pub const NETTXF_CSUM_BLANK: u16 = 1;
/// `NETTXF_data_validated`.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the packet continues in the next slot.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: the next slot is a `netif_extra_info` (GSO).
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_data_validated`: the checksum was checked (or needs none).
pub const NETRXF_DATA_VALIDATED: u16 = 1;
/// `NETRXF_csum_blank`: the checksum was never computed (a local packet).
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the packet continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix`: a GSO prefix slot (only with `feature-gso-*-prefix`,
/// which we never ask for).
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const EXTRA_TYPE_GSO: u8 = 1;
/// One past the last extra-info type netif.h defines (`XEN_NETIF_EXTRA_TYPE_MAX`).
pub const EXTRA_TYPE_MAX: u8 = 5;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const EXTRA_FLAG_MORE: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const GSO_TYPE_TCPV4: u8 = 1;

/// `netif_extra_info`, which the backend writes over an RX response slot
/// (the slot after a response flagged `NETRXF_extra_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// For GSO: the segment size (`gso.size`).
    pub gso_size: u16,
    /// For GSO: `XEN_NETIF_GSO_TYPE_*` (`gso.type`).
    pub gso_type: u8,
}

impl ExtraInfo {
    /// Reads the extra info out of the slot's 8 bytes (taken as a response).
    pub fn from_slot(r: RxResponse) -> ExtraInfo {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&r.id.to_ne_bytes());
        b[2..4].copy_from_slice(&r.offset.to_ne_bytes());
        b[4..6].copy_from_slice(&r.flags.to_ne_bytes());
        b[6..8].copy_from_slice(&r.status.to_ne_bytes());
        ExtraInfo {
            kind: b[0],
            flags: b[1],
            gso_size: u16::from_ne_bytes([b[2], b[3]]),
            gso_type: b[4],
        }
    }

    /// The slot as the backend would write it (for tests and fakes).
    pub fn to_slot(self) -> RxResponse {
        let b = [
            self.kind,
            self.flags,
            self.gso_size.to_ne_bytes()[0],
            self.gso_size.to_ne_bytes()[1],
            self.gso_type,
            0,
            0,
            0,
        ];
        RxResponse {
            id: u16::from_ne_bytes([b[0], b[1]]),
            offset: u16::from_ne_bytes([b[2], b[3]]),
            flags: u16::from_ne_bytes([b[4], b[5]]),
            status: i16::from_ne_bytes([b[6], b[7]]),
        }
    }
}
/// `NETIF_RSP_NULL` (extra-info slots).
pub const NETIF_RSP_NULL: i16 = 1;

/// The transmit ring.
#[derive(Debug)]
pub enum Tx {}
impl Kind for Tx {
    type Req = TxRequest;
    type Rsp = TxResponse;
}

/// The receive ring.
#[derive(Debug)]
pub enum Rx {}
impl Kind for Rx {
    type Req = RxRequest;
    type Rsp = RxResponse;
}
