//! Values other domains write (xenstore keys, the toolstack's command line),
//! parsed strictly and out of line: a decimal number, a feature flag, an
//! IPv4 address. One copy of each parser in the image instead of core's
//! `parse`, `trim_ascii` and `Ipv4Addr::from_str` inlined at every use.

/// `s` without the ASCII whitespace around it.
#[inline(never)]
pub fn trimmed(s: &str) -> &str {
    s.trim_ascii()
}

/// Whether a flag (a backend's `feature-*` key) is on: it reads "1", ASCII
/// whitespace around it allowed.
pub fn is_on(s: &str) -> bool {
    trimmed(s) == "1"
}

/// A decimal number: ASCII digits only (no sign), ASCII whitespace around
/// them allowed. `None` for anything else, an empty value or one over
/// `u64::MAX`.
#[inline(never)]
pub fn decimal(s: &str) -> Option<u64> {
    let t = trimmed(s);
    if t.is_empty() {
        return None;
    }
    t.bytes().try_fold(0u64, |n, b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A dotted-quad IPv4 address, `a.b.c.d`: four decimal numbers up to 255,
/// without signs, whitespace or leading zeros (what core's `Ipv4Addr`
/// parser takes).
#[inline(never)]
pub fn ipv4(s: &str) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in octets.iter_mut() {
        let p = parts.next()?;
        let b = p.as_bytes();
        if b.is_empty() || b.len() > 3 || (b.len() > 1 && b[0] == b'0') {
            return None;
        }
        let mut n = 0u16;
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u16::from(c - b'0');
        }
        *o = u8::try_from(n).ok()?;
    }
    parts.next().is_none().then_some(octets)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn decimal_takes_digits_only() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal(" 42\n"), Some(42));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal("18446744073709551616"), None);
        for bad in ["", "  ", "+1", "-1", "1 2", "0x10", "1e3", "٣"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn flags_are_on_only_for_one() {
        assert!(is_on("1"));
        assert!(is_on(" 1\n"));
        for off in ["", "0", "11", "true", "+1", "1 1"] {
            assert!(!is_on(off), "{off:?}");
        }
    }

    #[test]
    fn addresses_are_four_octets() {
        assert_eq!(ipv4("10.0.0.2"), Some([10, 0, 0, 2]));
        assert_eq!(ipv4("255.255.255.255"), Some([255; 4]));
        for bad in [
            "",
            "10.0.0",
            "10.0.0.2.",
            "10.0.0.256",
            "10.0.0.02",
            "10..0.2",
            " 10.0.0.2",
            "+1.0.0.2",
            "1.0.0.2/24",
            "1.0.0.1000",
        ] {
            assert_eq!(ipv4(bad), None, "{bad:?}");
        }
    }

    proptest! {
        /// On any text of digits (and a few others), `decimal` is core's
        /// unsigned parse without its leading `+`, after trimming.
        #[test]
        fn decimal_is_cores_parse(s in "[ 0-9+a-]{0,24}") {
            let core = if s.trim_ascii().starts_with('+') {
                None
            } else {
                s.trim_ascii().parse::<u64>().ok()
            };
            prop_assert_eq!(decimal(&s), core);
        }

        /// `ipv4` takes exactly what core's `Ipv4Addr` parser takes, for
        /// any text made of digits and dots (and a few others).
        #[test]
        fn ipv4_is_cores_parse(s in "[0-9.+ a]{0,20}") {
            prop_assert_eq!(ipv4(&s), s.parse::<Ipv4Addr>().ok().map(|a| a.octets()));
        }

        /// The same on texts that are dotted quads of small numbers, which
        /// random text seldom is.
        #[test]
        fn ipv4_on_quads(parts in proptest::collection::vec(0u32..1000, 3..6), zero in any::<bool>()) {
            let mut s = parts.iter().map(|p| format!("{p}")).collect::<Vec<_>>().join(".");
            if zero {
                s.insert(0, '0');
            }
            prop_assert_eq!(ipv4(&s), s.parse::<Ipv4Addr>().ok().map(|a| a.octets()));
        }
    }
}
