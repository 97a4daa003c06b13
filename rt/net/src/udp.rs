//! UDP: [`UdpSocket`], datagrams to and from any peer, blocking with
//! timeouts or async.
use alloc::vec;
use core::future::poll_fn;
use core::task::Context;
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self, PacketMetadata, RecvError, SendError};
use smoltcp::wire::IpEndpoint;

use crate::stack::Inner;
use crate::{SocketError, Stack};

/// Datagrams each buffer holds, and bytes of payload in all.
const PACKETS: usize = 32;
const BYTES: usize = 32 * 1536;

/// A UDP socket bound to a local port.
#[derive(Debug)]
pub struct UdpSocket {
    stack: Stack,
    h: SocketHandle,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl UdpSocket {
    /// Binds `port` (0: an ephemeral port).
    pub fn bind(stack: &Stack, port: u16) -> Result<UdpSocket, SocketError> {
        let mut g = stack.lock();
        let port = if port == 0 { g.ephemeral_port()? } else { port };
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![PacketMetadata::EMPTY; PACKETS], vec![0; BYTES]),
            udp::PacketBuffer::new(vec![PacketMetadata::EMPTY; PACKETS], vec![0; BYTES]),
        );
        let taken = g.sockets.iter().any(|(_, s)| match s {
            smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
            _ => false,
        });
        if taken || s.bind(port).is_err() {
            return Err(SocketError::AddrInUse);
        }
        let h = g.add(s)?;
        Ok(UdpSocket {
            stack: stack.clone(),
            h,
            read_timeout: None,
            write_timeout: None,
        })
    }

    /// The local port.
    pub fn port(&self) -> u16 {
        self.stack
            .lock()
            .sockets
            .get::<udp::Socket>(self.h)
            .endpoint()
            .port
    }

    /// Bounds each blocking receive (`None`: wait for ever).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    /// Bounds each blocking send (`None`: wait for ever).
    pub fn set_write_timeout(&mut self, t: Option<Duration>) {
        self.write_timeout = t;
    }

    fn poll_send(
        &self,
        g: &mut Inner,
        buf: &[u8],
        to: IpEndpoint,
        cx: Option<&Context<'_>>,
    ) -> Option<Result<usize, SocketError>> {
        let s = g.sockets.get_mut::<udp::Socket>(self.h);
        if buf.len() > s.payload_send_capacity() {
            return Some(Err(SocketError::TooLarge));
        }
        match s.send_slice(buf, to) {
            Ok(()) => Some(Ok(buf.len())),
            Err(SendError::Unaddressable) => Some(Err(SocketError::Unreachable)),
            Err(SendError::BufferFull) => {
                if let Some(cx) = cx {
                    s.register_send_waker(cx.waker());
                }
                None
            }
        }
    }

    fn poll_recv(
        &self,
        g: &mut Inner,
        buf: &mut [u8],
        cx: Option<&Context<'_>>,
    ) -> Option<Result<(usize, IpEndpoint), SocketError>> {
        let s = g.sockets.get_mut::<udp::Socket>(self.h);
        match s.recv_slice(buf) {
            Ok((n, meta)) => Some(Ok((n, meta.endpoint))),
            // The datagram is dropped (smoltcp has dequeued it).
            Err(RecvError::Truncated) => Some(Err(SocketError::TooLarge)),
            Err(RecvError::Exhausted) => {
                if let Some(cx) = cx {
                    s.register_recv_waker(cx.waker());
                }
                None
            }
        }
    }

    /// Sends one datagram to `to`, waiting for buffer room up to the write
    /// timeout.
    pub fn send_to(&self, buf: &[u8], to: impl Into<IpEndpoint>) -> Result<usize, SocketError> {
        let to = to.into();
        let deadline = self.stack.deadline(self.write_timeout);
        self.stack
            .block(deadline, |g| self.poll_send(g, buf, to, None))
    }

    /// Receives one datagram: its length and sender. A datagram longer than
    /// `buf` is dropped with [`SocketError::TooLarge`].
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, IpEndpoint), SocketError> {
        let deadline = self.stack.deadline(self.read_timeout);
        self.stack.block(deadline, |g| self.poll_recv(g, buf, None))
    }

    /// [`UdpSocket::send_to`] as a future.
    pub async fn send_to_async(
        &self,
        buf: &[u8],
        to: impl Into<IpEndpoint>,
    ) -> Result<usize, SocketError> {
        let to = to.into();
        poll_fn(|cx| {
            let mut g = self.stack.lock();
            let r = self.poll_send(&mut g, buf, to, Some(cx));
            crate::ready(g.gate(r))
        })
        .await
    }

    /// [`UdpSocket::recv_from`] as a future.
    pub async fn recv_from_async(
        &self,
        buf: &mut [u8],
    ) -> Result<(usize, IpEndpoint), SocketError> {
        poll_fn(|cx| {
            let mut g = self.stack.lock();
            let r = self.poll_recv(&mut g, buf, Some(cx));
            crate::ready(g.gate(r))
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut g = self.stack.lock();
        // What is queued goes out first.
        g.poll();
        g.sockets.remove(self.h);
    }
}
