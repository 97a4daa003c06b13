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
}
