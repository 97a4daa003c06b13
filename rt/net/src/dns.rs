//! Name lookup through smoltcp's DNS socket: [`resolve`] asks the stack's
//! DNS server (from DHCP or the configuration) for IPv4 addresses.
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use smoltcp::socket::dns::{self, GetQueryResultError};
use smoltcp::wire::{DnsQueryType, IpAddress};

use crate::stack::Inner;
use crate::{SocketError, Stack};

/// How long [`resolve`] waits when not told.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The IPv4 addresses of `name` (a dotted address is returned as is).
pub fn resolve(
    stack: &Stack,
    name: &str,
    timeout: Option<Duration>,
) -> Result<Vec<IpAddress>, SocketError> {
    if let Ok(a) = name.parse::<smoltcp::wire::Ipv4Address>() {
        return Ok(vec![IpAddress::Ipv4(a)]);
    }
    let mut g = stack.lock();
    let servers = g.driver.dns_servers();
    let Some(&server) = servers.first() else {
        return Err(SocketError::NameNotFound);
    };
    let h = g.add(dns::Socket::new(&[server], vec![None]))?;
    let Inner {
        sockets, driver, ..
    } = &mut *g;
    let q = sockets
        .get_mut::<dns::Socket>(h)
        .start_query(driver.context(), name, DnsQueryType::A);
    let Ok(q) = q else {
        g.sockets.remove(h);
        return Err(SocketError::InvalidInput);
    };
    drop(g);
    let deadline = stack.deadline(Some(timeout.unwrap_or(TIMEOUT)));
    let r = stack.block(deadline, |g| {
        match g.sockets.get_mut::<dns::Socket>(h).get_query_result(q) {
            Ok(addrs) => Some(Ok(addrs.into_iter().collect())),
            Err(GetQueryResultError::Pending) => None,
            Err(GetQueryResultError::Failed) => Some(Err(SocketError::NameNotFound)),
        }
    });
    stack.lock().sockets.remove(h);
    r
}
