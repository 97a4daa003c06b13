//! Strict parsers for text that comes from outside the guest — a request
//! read from a socket, a value another domain wrote — the runtime's own
//! (`rt_xen::proto::value`), one copy each in the image: a decimal number
//! ([`decimal`]: ASCII digits only, no sign, ASCII whitespace around it
//! allowed, `None` past `u64::MAX`), an IPv4 address ([`ipv4`]), a flag
//! that reads "1" ([`is_on`]) and a value without the ASCII whitespace
//! around it ([`trimmed`]). An app that parses with them instead of
//! core's `str::parse` does not carry a second parser.
pub use rt_xen::proto::value::{decimal, ipv4, is_on, trimmed};
