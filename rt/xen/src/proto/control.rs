//! The toolstack's control keys, as pure logic: what `control/shutdown`
//! asks for, and where `memory/target` puts the reservation (`rt::control`
//! does the xenstore and hypercall side).
use crate::abi::PAGE_SIZE;

/// What the toolstack wrote into `control/shutdown`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Request {
    /// `xl shutdown` (also "halt").
    Poweroff,
    /// `xl reboot`.
    Reboot,
    /// `xl save`, `xl migrate`: save the domain.
    Suspend,
    /// Anything else: not supported, logged.
    Other,
}

/// Parses a `control/shutdown` value; `None` for the empty (acknowledged) one.
pub fn parse_request(v: &str) -> Option<Request> {
    match v.trim_end_matches('\0') {
        "" => None,
        "poweroff" | "halt" => Some(Request::Poweroff),
        "reboot" => Some(Request::Reboot),
        "suspend" => Some(Request::Suspend),
        _ => Some(Request::Other),
    }
}

/// Where the reservation should go (bytes) for a target of `target_kib`,
/// given the first target seen and the reservation (pages) at that time.
pub fn wanted_bytes(base: (u64, u64), target_kib: u64) -> u64 {
    let (base_kib, base_pages) = base;
    let base_bytes = base_pages.saturating_mul(PAGE_SIZE as u64);
    if target_kib >= base_kib {
        base_bytes.saturating_add((target_kib - base_kib).saturating_mul(1024))
    } else {
        base_bytes.saturating_sub((base_kib - target_kib).saturating_mul(1024))
    }
}

/// Pages the guest keeps free when the toolstack asks for less memory than
/// it uses (`xl mem-set` far below the working set): 1 MiB for the heap
/// and the drivers to go on with.
pub const KEEP_FREE_PAGES: u64 = 256;

/// The least the reservation may shrink to (bytes), holding
/// `current_pages` of which `free_pages` are free: the pages in use plus
/// [`KEEP_FREE_PAGES`] (never more than it holds: with less free, nothing
/// is given back).
pub fn floor_bytes(current_pages: u64, free_pages: u64) -> u64 {
    current_pages
        .saturating_sub(free_pages)
        .saturating_add(KEEP_FREE_PAGES)
        .min(current_pages)
        .saturating_mul(PAGE_SIZE as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(parse_request(""), None);
        assert_eq!(parse_request("\0"), None);
        assert_eq!(parse_request("poweroff"), Some(Request::Poweroff));
        assert_eq!(parse_request("halt"), Some(Request::Poweroff));
        assert_eq!(parse_request("reboot"), Some(Request::Reboot));
        assert_eq!(parse_request("suspend"), Some(Request::Suspend));
        assert_eq!(parse_request("s3"), Some(Request::Other));
    }

    #[test]
    fn target_moves_the_reservation_by_its_change() {
        const P: u64 = PAGE_SIZE as u64;
        // PVH: the toolstack's target differs from tot_pages by special pages.
        let base = (65536, 16380);
        assert_eq!(wanted_bytes(base, 65536), 16380 * P);
        assert_eq!(wanted_bytes(base, 32768), 16380 * P - (32 << 20));
        assert_eq!(wanted_bytes(base, 98304), 16380 * P + (32 << 20));
        assert_eq!(wanted_bytes(base, 0), 0);
    }

    #[test]
    fn a_target_below_the_working_set_stops_at_the_floor() {
        const P: u64 = PAGE_SIZE as u64;
        // 8192 pages held, 6000 free: 2192 in use, + 256 kept free.
        assert_eq!(floor_bytes(8192, 6000), (2192 + 256) * P);
        // Less free than the reserve: nothing is given back.
        assert_eq!(floor_bytes(8192, 100), 8192 * P);
        assert_eq!(floor_bytes(0, 0), 0);
        assert_eq!(floor_bytes(10, 50), 10 * P, "free > held (a racing count)");
    }

    proptest::proptest! {
        /// Any pair: the floor never exceeds what is held and never leaves
        /// less than the reserve free (when there was that much).
        #[test]
        fn the_floor_is_bounded(cur in 0u64..1 << 40, free in 0u64..1 << 40) {
            let f = floor_bytes(cur, free) / PAGE_SIZE as u64;
            proptest::prop_assert!(f <= cur);
            let free = free.min(cur);
            proptest::prop_assert!(cur - f <= free.saturating_sub(KEEP_FREE_PAGES));
        }
    }
}
