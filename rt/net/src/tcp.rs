//! TCP: [`TcpListener`] (a backlog of listening sockets, refilled as
//! connections are taken) and [`TcpStream`] (blocking calls with timeouts,
//! `embedded-io` and `embedded-io-async` traits).
//!
//! Each operation is one `poll_*` function that looks at the socket once
//! and, when it must wait, registers the task's waker with smoltcp; the
//! blocking calls loop on it through [`Stack::block`], the async ones are
//! futures over it.
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::Context;
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::wire::IpEndpoint;

use crate::stack::Inner;
use crate::{SocketError, Stack};

/// Buffer sizes and behaviour of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TcpOptions {
    /// Receive buffer (the window offered to the peer), bytes.
    pub rx_buffer: usize,
    /// Send buffer, bytes.
    pub tx_buffer: usize,
    /// Listening sockets a [`TcpListener`] keeps ready: connection requests
    /// that may arrive at once before the next ones are refused (smoltcp
    /// has no SYN queue: a SYN no listening socket takes is answered with
    /// a reset). Each holds its buffers, so a server expecting bursts of
    /// N clients sets N and pays N × (rx + tx) bytes.
    pub backlog: usize,
    /// Nagle's algorithm (off: small writes go out at once, as a
    /// request/response server wants).
    pub nagle: bool,
    /// A connection silent this long (no data, no ACK of a keep-alive) is
    /// reset; `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            rx_buffer: 16 * 1024,
            tx_buffer: 16 * 1024,
            backlog: 4,
            nagle: false,
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

fn new_socket(o: &TcpOptions) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; o.rx_buffer]),
        tcp::SocketBuffer::new(vec![0; o.tx_buffer]),
    );
    s.set_nagle_enabled(o.nagle);
    s.set_timeout(o.idle_timeout.map(crate::duration));
    if o.idle_timeout.is_some() {
        s.set_keep_alive(Some(smoltcp::time::Duration::from_secs(60)));
    }
    s
}

/// A TCP server socket: `bind`, then `accept` connections.
///
/// It keeps [`TcpOptions::backlog`] listening sockets; each accepted one
/// is replaced by a fresh one (when the pool has room — else the next
/// connection attempts are refused until a connection closes).
#[derive(Debug)]
pub struct TcpListener(Box<Listener>);

/// A [`TcpListener`]'s state, boxed: the listener is then one pointer, and
/// `bind`'s result and the futures that hold a listener move one word, not
/// the options and the backlog.
#[derive(Debug)]
struct Listener {
    stack: Stack,
    port: u16,
    options: TcpOptions,
    backlog: Vec<SocketHandle>,
}

impl TcpListener {
    /// Listens on `port` with default options.
    pub fn bind(stack: &Stack, port: u16) -> Result<TcpListener, SocketError> {
        Self::bind_with(stack, port, TcpOptions::default())
    }

    /// Listens on `port`; its connections get `options`.
    pub fn bind_with(
        stack: &Stack,
        port: u16,
        options: TcpOptions,
    ) -> Result<TcpListener, SocketError> {
        if port == 0 || options.backlog == 0 {
            return Err(SocketError::InvalidInput);
        }
        let mut g = stack.lock();
        if g.listening.contains(&port) {
            return Err(SocketError::AddrInUse);
        }
        g.listening.push(port);
        drop(g);
        let mut l = Box::new(Listener {
            stack: stack.clone(),
            port,
            options,
            backlog: Vec::new(),
        });
        l.refill(&mut l.stack.clone().lock());
        if l.backlog.is_empty() {
            // `l` is dropped: its port is freed.
            return Err(SocketError::NoBuffer);
        }
        Ok(TcpListener(l))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Waits for the next connection (`timeout`: at most that long).
    pub fn accept(&mut self, timeout: Option<Duration>) -> Result<TcpStream, SocketError> {
        let l = &mut self.0;
        let deadline = l.stack.deadline(timeout);
        let stack = l.stack.clone();
        stack.block(deadline, |g| l.poll_accept(g, None).map(Ok))
    }

    /// Waits for the next connection, as a future.
    pub async fn accept_async(&mut self) -> TcpStream {
        let l = &mut self.0;
        let stack = l.stack.clone();
        poll_fn(|cx| crate::ready(l.poll_accept(&mut stack.lock(), Some(cx)))).await
    }
}

impl Listener {
    /// Tops the backlog up to its size, as the pool allows.
    fn refill(&mut self, g: &mut Inner) {
        while self.backlog.len() < self.options.backlog {
            let Ok(h) = g.add(new_socket(&self.options)) else {
                return;
            };
            // A fresh socket on a nonzero port always listens.
            let _ = g.tcp(h).listen(self.port);
            self.backlog.push(h);
        }
    }

    /// One look for a connection (async building block).
    fn poll_accept(&mut self, g: &mut Inner, cx: Option<&Context<'_>>) -> Option<TcpStream> {
        let mut found = None;
        for (i, &h) in self.backlog.iter().enumerate() {
            let s = g.tcp(h);
            match s.state() {
                State::Listen | State::SynReceived => {
                    if let Some(cx) = cx {
                        s.register_recv_waker(cx.waker());
                    }
                }
                State::Closed => {
                    // Reset while half-open: listen again.
                    let _ = s.listen(self.port);
                }
                _ => {
                    found = Some(i);
                    break;
                }
            }
        }
        let stream = found.map(|i| TcpStream::new(&self.stack, self.backlog.swap_remove(i)));
        self.refill(g);
        stream
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut g = self.stack.lock();
        g.listening.retain(|&p| p != self.port);
        for h in self.backlog.drain(..) {
            let s = g.tcp(h);
            if matches!(s.state(), State::Listen | State::Closed) {
                g.sockets.remove(h);
            } else {
                g.release_tcp(h);
            }
        }
    }
}

/// A TCP connection.
///
/// Reads and writes go through `embedded_io::{Read, Write}` (blocking, with
/// the timeouts set here) or `embedded_io_async::{Read, Write}`. Dropping
/// it closes the connection gracefully in the background.
#[derive(Debug)]
pub struct TcpStream {
    stack: Stack,
    h: SocketHandle,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// It was established once (a later `Closed` without FIN is a reset).
    established: bool,
    /// This side shut its sending half.
    shut_write: bool,
}

impl TcpStream {
    fn new(stack: &Stack, h: SocketHandle) -> TcpStream {
        TcpStream {
            stack: stack.clone(),
            h,
            read_timeout: None,
            write_timeout: None,
            established: true,
            shut_write: false,
        }
    }

    /// Connects to `to` with default options, waiting at most `timeout`.
    pub fn connect(
        stack: &Stack,
        to: impl Into<IpEndpoint>,
        timeout: Option<Duration>,
    ) -> Result<TcpStream, SocketError> {
        let mut s = Self::start_connect(stack, to.into(), &TcpOptions::default())?;
        let deadline = stack.deadline(timeout);
        let r = stack.block(deadline, |g| s.poll_connected(g, None));
        r.map(|()| s)
    }

    /// Connects to `to`, as a future (wrap it in [`crate::exec::Handle::timeout`]
    /// to bound it).
    pub async fn connect_async(
        stack: &Stack,
        to: impl Into<IpEndpoint>,
    ) -> Result<TcpStream, SocketError> {
        let mut s = Self::start_connect(stack, to.into(), &TcpOptions::default())?;
        let stack = stack.clone();
        poll_fn(|cx| {
            let mut g = stack.lock();
            let r = s.poll_connected(&mut g, Some(cx));
            crate::ready(g.gate(r))
        })
        .await?;
        Ok(s)
    }

    fn start_connect(
        stack: &Stack,
        to: IpEndpoint,
        o: &TcpOptions,
    ) -> Result<TcpStream, SocketError> {
        if to.port == 0 || to.addr.is_unspecified() {
            return Err(SocketError::InvalidInput);
        }
        let mut g = stack.lock();
        let port = g.ephemeral_port()?;
        let h = g.add(new_socket(o))?;
        let Inner {
            sockets, driver, ..
        } = &mut *g;
        let r = sockets
            .get_mut::<tcp::Socket>(h)
            .connect(driver.context(), to, port);
        if r.is_err() {
            g.sockets.remove(h);
            return Err(SocketError::Unreachable);
        }
        let mut s = TcpStream::new(stack, h);
        s.established = false;
        Ok(s)
    }

    fn poll_connected(
        &mut self,
        g: &mut Inner,
        cx: Option<&Context<'_>>,
    ) -> Option<Result<(), SocketError>> {
        let s = g.tcp(self.h);
        match s.state() {
            State::SynSent | State::SynReceived => {
                if let Some(cx) = cx {
                    s.register_send_waker(cx.waker());
                }
                None
            }
            State::Closed => Some(Err(SocketError::Refused)),
            _ => {
                self.established = true;
                Some(Ok(()))
            }
        }
    }

    /// Bounds each blocking read (`None`: wait for ever).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    /// Bounds each blocking write and flush (`None`: wait for ever).
    pub fn set_write_timeout(&mut self, t: Option<Duration>) {
        self.write_timeout = t;
    }

    /// The peer's address and port.
    pub fn peer_addr(&self) -> Option<IpEndpoint> {
        self.stack.lock().tcp(self.h).remote_endpoint()
    }

    /// This side's address and port.
    pub fn local_addr(&self) -> Option<IpEndpoint> {
        self.stack.lock().tcp(self.h).local_endpoint()
    }

    /// Bytes received and not read yet.
    pub fn available(&self) -> usize {
        self.stack.lock().tcp(self.h).recv_queue()
    }

    /// Closes the sending half (FIN); reading goes on until the peer closes.
    pub fn shutdown_write(&mut self) {
        self.shut_write = true;
        let mut g = self.stack.lock();
        g.tcp(self.h).close();
        g.poll();
    }

    /// Resets the connection at once (RST), dropping what is unsent.
    pub fn abort(self) {
        let mut g = self.stack.lock();
        g.tcp(self.h).abort();
        g.poll();
        g.sockets.remove(self.h);
        drop(g);
        core::mem::forget(self);
    }

    /// The error for a socket that cannot move data any more.
    fn dead(&self, state: State) -> SocketError {
        match state {
            State::Closed if self.established => SocketError::Reset,
            State::Closed => SocketError::Refused,
            _ => SocketError::NotConnected,
        }
    }

    fn poll_read(
        &mut self,
        g: &mut Inner,
        buf: &mut [u8],
        cx: Option<&Context<'_>>,
    ) -> Option<Result<usize, SocketError>> {
        if buf.is_empty() {
            return Some(Ok(0));
        }
        let s = g.tcp(self.h);
        let state = s.state();
        match s.recv_slice(buf) {
            Ok(0) => {}
            Ok(n) => return Some(Ok(n)),
            Err(RecvError::Finished) => return Some(Ok(0)),
            Err(RecvError::InvalidState) => {
                if !matches!(state, State::SynSent | State::SynReceived) {
                    return Some(Err(self.dead(state)));
                }
            }
        }
        if let Some(cx) = cx {
            g.tcp(self.h).register_recv_waker(cx.waker());
        }
        None
    }

    fn poll_write(
        &mut self,
        g: &mut Inner,
        buf: &[u8],
        cx: Option<&Context<'_>>,
    ) -> Option<Result<usize, SocketError>> {
        if buf.is_empty() {
            return Some(Ok(0));
        }
        if self.shut_write {
            return Some(Err(SocketError::NotConnected));
        }
        let s = g.tcp(self.h);
        let state = s.state();
        if !matches!(state, State::SynSent | State::SynReceived) {
            if !s.may_send() {
                return Some(Err(self.dead(state)));
            }
            match s.send_slice(buf) {
                Ok(0) => {}
                Ok(n) => return Some(Ok(n)),
                Err(_) => return Some(Err(self.dead(state))),
            }
        }
        if let Some(cx) = cx {
            g.tcp(self.h).register_send_waker(cx.waker());
        }
        None
    }

    /// Sent data acknowledged by the peer (or the connection dead).
    fn poll_flush(
        &mut self,
        g: &mut Inner,
        cx: Option<&Context<'_>>,
    ) -> Option<Result<(), SocketError>> {
        let s = g.tcp(self.h);
        if s.send_queue() == 0 {
            return Some(Ok(()));
        }
        let state = s.state();
        // Unsent data can still go out in these states (the last three
        // only after this side's own FIN).
        let open = match state {
            State::Established | State::CloseWait | State::SynSent | State::SynReceived => true,
            State::FinWait1 | State::Closing | State::LastAck => self.shut_write,
            _ => false,
        };
        if !open {
            return Some(Err(self.dead(state)));
        }
        if let Some(cx) = cx {
            s.register_send_waker(cx.waker());
        }
        None
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.stack.lock().release_tcp(self.h);
    }
}

impl embedded_io::ErrorType for TcpStream {
    type Error = SocketError;
}

impl embedded_io::Read for TcpStream {
    /// Reads what has arrived (at least one byte), waiting for it up to the
    /// read timeout; `Ok(0)` once the peer closed its half.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        let deadline = self.stack.deadline(self.read_timeout);
        let stack = self.stack.clone();
        stack.block(deadline, |g| self.poll_read(g, buf, None))
    }
}

impl embedded_io::Write for TcpStream {
    /// Queues as much of `buf` as the send buffer takes (at least a byte),
    /// waiting for room up to the write timeout.
    fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        let deadline = self.stack.deadline(self.write_timeout);
        let stack = self.stack.clone();
        stack.block(deadline, |g| self.poll_write(g, buf, None))
    }

    /// Waits until the peer acknowledged everything written.
    fn flush(&mut self) -> Result<(), SocketError> {
        let deadline = self.stack.deadline(self.write_timeout);
        let stack = self.stack.clone();
        stack.block(deadline, |g| self.poll_flush(g, None))
    }
}

impl embedded_io::ReadReady for TcpStream {
    fn read_ready(&mut self) -> Result<bool, SocketError> {
        let mut g = self.stack.lock();
        g.poll();
        let s = g.tcp(self.h);
        Ok(s.can_recv() || !s.may_recv())
    }
}

impl embedded_io_async::Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        let stack = self.stack.clone();
        poll_fn(|cx| {
            let mut g = stack.lock();
            let r = self.poll_read(&mut g, buf, Some(cx));
            crate::ready(g.gate(r))
        })
        .await
    }
}

impl embedded_io_async::Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        let stack = self.stack.clone();
        poll_fn(|cx| {
            let mut g = stack.lock();
            let r = self.poll_write(&mut g, buf, Some(cx));
            crate::ready(g.gate(r))
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        let stack = self.stack.clone();
        poll_fn(|cx| {
            let mut g = stack.lock();
            let r = self.poll_flush(&mut g, Some(cx));
            crate::ready(g.gate(r))
        })
        .await
    }
}
