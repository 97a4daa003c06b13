//! Host tests: the socket types and the executor over the loopback driver
//! with a simulated clock.
extern crate std;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use embedded_io::{Read, Write};
use smoltcp::wire::IpEndpoint;
use spin::Mutex;

use crate::exec::{Aborted, Executor};
use crate::testing::{ADDR, stack};
use crate::{Limits, SocketError, TcpListener, TcpOptions, TcpStream, UdpSocket, dns};

fn ep(port: u16) -> IpEndpoint {
    IpEndpoint::new(ADDR.into(), port)
}

const T: Option<Duration> = Some(Duration::from_secs(5));

#[test]
fn blocking_echo_and_eof() {
    let (st, _) = stack(Limits::default());
    let mut l = TcpListener::bind(&st, 8000).unwrap();
    let mut c = TcpStream::connect(&st, ep(8000), T).unwrap();
    let mut s = l.accept(T).unwrap();
    assert_eq!(s.peer_addr(), c.local_addr());
    c.write_all(b"hello").unwrap();
    c.flush().unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    s.write_all(b"world").unwrap();
    let n = c.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"world");
    drop(c);
    assert_eq!(
        s.read(&mut buf),
        Ok(0),
        "the peer's close reads as end of stream"
    );
}

#[test]
fn large_transfer_is_exact() {
    let (st, _) = stack(Limits::default());
    let mut l = TcpListener::bind(&st, 8001).unwrap();
    let mut c = TcpStream::connect(&st, ep(8001), T).unwrap();
    let mut s = l.accept(T).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut got = Vec::new();
    let mut sent = 0;
    let mut buf = vec![0u8; 4096];
    // One thread: alternate writes and reads so neither buffer stalls.
    while got.len() < data.len() {
        if sent < data.len() {
            sent += c.write(&data[sent..]).unwrap();
        }
        if s.available() > 0 {
            let n = s.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        } else {
            st.poll();
        }
    }
    assert_eq!(got, data);
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let (st, _) = stack(Limits::default());
    let r = TcpStream::connect(&st, ep(9), T);
    assert_eq!(r.err(), Some(SocketError::Refused));
    assert_eq!(st.stats().sockets, 0, "the failed socket is not kept");
}

#[test]
fn peer_reset_reads_as_reset() {
    let (st, _) = stack(Limits::default());
    let mut l = TcpListener::bind(&st, 8002).unwrap();
    let mut c = TcpStream::connect(&st, ep(8002), T).unwrap();
    l.accept(T).unwrap().abort();
    let mut buf = [0u8; 4];
    assert_eq!(c.read(&mut buf), Err(SocketError::Reset));
    assert_eq!(c.write(b"x"), Err(SocketError::Reset));
}

#[test]
fn read_timeout_passes_on_the_clock() {
    let (st, clock) = stack(Limits::default());
    let mut l = TcpListener::bind(&st, 8003).unwrap();
    let mut c = TcpStream::connect(&st, ep(8003), T).unwrap();
    let _s = l.accept(T).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(1500)));
    let t0 = clock.now();
    let mut buf = [0u8; 4];
    assert_eq!(c.read(&mut buf), Err(SocketError::TimedOut));
    let waited = clock.now() - t0;
    assert!(waited.total_millis() >= 1500, "{waited}");
    assert!(waited.total_millis() < 3000, "{waited}");
    // Nothing to accept: the accept times out too.
    assert_eq!(
        l.accept(Some(Duration::from_millis(10))).err(),
        Some(SocketError::TimedOut)
    );
}

#[test]
fn port_in_use_and_freed() {
    let (st, _) = stack(Limits::default());
    let l = TcpListener::bind(&st, 8004).unwrap();
    assert_eq!(
        TcpListener::bind(&st, 8004).err(),
        Some(SocketError::AddrInUse)
    );
    assert_eq!(
        TcpListener::bind(&st, 0).err(),
        Some(SocketError::InvalidInput)
    );
    drop(l);
    assert_eq!(st.stats().sockets, 0);
    TcpListener::bind(&st, 8004).unwrap();
}

#[test]
fn pool_full_is_no_buffer_and_slots_come_back() {
    let limits = Limits {
        sockets: 6,
        ..Limits::default()
    };
    let (st, clock) = stack(limits);
    let o = TcpOptions {
        backlog: 2,
        ..TcpOptions::default()
    };
    let mut l = TcpListener::bind_with(&st, 8005, o).unwrap();
    let mut pairs = Vec::new();
    // 2 backlog + (client, refilled listener) per connection: the pool of
    // six fills at the second connection.
    for _ in 0..2 {
        let c = TcpStream::connect(&st, ep(8005), T).unwrap();
        pairs.push((c, l.accept(T).unwrap()));
    }
    assert_eq!(st.stats().sockets, 6);
    assert_eq!(
        TcpStream::connect(&st, ep(8005), T).err(),
        Some(SocketError::NoBuffer)
    );
    assert!(st.stats().refused_pool_full >= 1);
    pairs.clear();
    // The dropped connections close in the background and free the pool.
    for _ in 0..100 {
        st.poll();
        clock.advance(smoltcp::time::Duration::from_millis(100));
    }
    let s = st.stats();
    assert_eq!(s.closing, 0);
    let c = TcpStream::connect(&st, ep(8005), T).unwrap();
    let mut s2 = l.accept(T).unwrap();
    drop(c);
    let mut b = [0u8; 1];
    assert_eq!(s2.read(&mut b), Ok(0));
}

#[test]
fn dropped_connections_never_leak_slots() {
    let (st, clock) = stack(Limits::default());
    let mut l = TcpListener::bind(&st, 8006).unwrap();
    let base = st.stats().sockets;
    for i in 0..200u32 {
        let mut c = TcpStream::connect(&st, ep(8006), T).unwrap();
        let mut s = l.accept(T).unwrap();
        c.write_all(&i.to_le_bytes()).unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), i);
        // Half the time the server closes first, else the client.
        if i % 2 == 0 {
            drop(s);
            drop(c);
        } else {
            drop(c);
            drop(s);
        }
    }
    for _ in 0..50 {
        st.poll();
        clock.advance(smoltcp::time::Duration::from_millis(500));
    }
    assert_eq!(st.stats().sockets, base, "{:?}", st.stats());
}

#[test]
fn a_peer_that_never_closes_is_reset_after_the_grace() {
    let (st, clock) = stack(Limits::default());
    let mut l = TcpListener::bind(&st, 8007).unwrap();
    let c = TcpStream::connect(&st, ep(8007), T).unwrap();
    let s = l.accept(T).unwrap();
    drop(s); // FIN sent; the client never closes its half.
    for _ in 0..30 {
        st.poll();
        clock.advance(smoltcp::time::Duration::from_secs(1));
    }
    assert_eq!(st.stats().closing, 0);
    assert_eq!(st.stats().closes_forced, 1);
    drop(c);
}

#[test]
fn udp_round_trip_and_errors() {
    let (st, _) = stack(Limits::default());
    let mut a = UdpSocket::bind(&st, 5000).unwrap();
    let b = UdpSocket::bind(&st, 0).unwrap();
    assert!(b.port() >= 49152);
    assert_eq!(
        UdpSocket::bind(&st, 5000).err(),
        Some(SocketError::AddrInUse)
    );
    b.send_to(b"ping", ep(5000)).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = a.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from.port, b.port());
    a.send_to(b"pong!", from).unwrap();
    let (n, _) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong!");
    // Truncation is an error, not silent.
    b.send_to(&[7u8; 64], ep(5000)).unwrap();
    assert_eq!(a.recv_from(&mut buf).err(), Some(SocketError::TooLarge));
    assert_eq!(
        a.send_to(&vec![0u8; 100_000], from).err(),
        Some(SocketError::TooLarge)
    );
    a.set_read_timeout(Some(Duration::from_millis(100)));
    assert_eq!(a.recv_from(&mut buf).err(), Some(SocketError::TimedOut));
}

#[test]
fn dns_literal_and_unanswered_query() {
    let (st, _) = stack(Limits::default());
    assert_eq!(
        dns::resolve(&st, "10.1.2.3", None).unwrap(),
        vec![smoltcp::wire::IpAddress::v4(10, 1, 2, 3)]
    );
    // Nobody serves DNS on the loopback: the query fails or times out,
    // and its socket is gone either way.
    let r = dns::resolve(&st, "example.org", Some(Duration::from_secs(3)));
    assert!(
        matches!(
            r,
            Err(SocketError::NameNotFound) | Err(SocketError::TimedOut)
        ),
        "{r:?}"
    );
    assert_eq!(st.stats().sockets, 0);
}

#[test]
fn sleeps_wake_in_deadline_order_without_spinning() {
    let (st, clock) = stack(Limits::default());
    let ex = Executor::new(Arc::new(st));
    let h = ex.handle();
    let order = Arc::new(Mutex::new(Vec::new()));
    let t0 = clock.now();
    let mut joins = Vec::new();
    for ms in [30u64, 10, 20] {
        let (h2, o) = (h.clone(), order.clone());
        joins.push(h.spawn(async move {
            h2.sleep(Duration::from_millis(ms)).await;
            o.lock().push(ms);
            ms
        }));
    }
    let sum = ex.block_on(async {
        let mut s = 0;
        for j in joins {
            s += j.await.unwrap();
        }
        s
    });
    assert_eq!(sum, 60);
    assert_eq!(*order.lock(), vec![10, 20, 30]);
    let elapsed = (clock.now() - t0).total_millis();
    assert!((30..=31).contains(&elapsed), "{elapsed} ms");
    let s = h.stats();
    assert_eq!((s.spawned, s.completed, s.alive), (3, 3, 0));
    assert!(s.blocks <= 4, "blocked {} times for three timers", s.blocks);
    assert_eq!(s.timers_fired, 3);
}

#[test]
fn timeout_cancels_the_inner_future() {
    let (st, clock) = stack(Limits::default());
    let ex = Executor::new(Arc::new(st.clone()));
    let h = ex.handle();
    let t0 = clock.now();
    let r = ex.block_on(h.timeout(Duration::from_millis(50), h.sleep(Duration::from_secs(60))));
    assert_eq!(r, Err(SocketError::TimedOut));
    assert_eq!((clock.now() - t0).total_millis(), 50);
    // The cancelled sleep left no timer: an empty block_on ends at once.
    let t1 = clock.now();
    ex.block_on(async {});
    assert_eq!(clock.now(), t1);
    // A timeout that is not reached gives the output.
    let r = ex.block_on(h.timeout(Duration::from_secs(1), async { 7 }));
    assert_eq!(r, Ok(7));
}

#[test]
fn abort_drops_the_task_and_its_socket() {
    let (st, _) = stack(Limits::default());
    let ex = Executor::new(Arc::new(st.clone()));
    let h = ex.handle();
    let st2 = st.clone();
    let task = h.spawn(async move {
        let mut l = TcpListener::bind(&st2, 8100).unwrap();
        let _s = l.accept_async().await; // never comes
    });
    ex.block_on(h.sleep(Duration::from_millis(5)));
    assert!(st.stats().sockets > 0);
    task.abort();
    assert!(task.is_finished());
    assert_eq!(ex.block_on(task), Err(Aborted));
    assert_eq!(st.stats().sockets, 0, "the listener went with the task");
    // Its port is free again.
    TcpListener::bind(&st, 8100).unwrap();
    let s = h.stats();
    assert_eq!((s.aborted, s.alive), (1, 0));
}

#[test]
fn a_device_down_for_good_fails_every_call_with_network_down() {
    let (st, clock) = stack(Limits::default());
    let mut l = TcpListener::bind(&st, 8200).unwrap();
    let mut c = TcpStream::connect(&st, ep(8200), T).unwrap();
    let mut s = l.accept(T).unwrap();
    let u = UdpSocket::bind(&st, 8201).unwrap();
    c.write_all(b"x").unwrap();
    assert!(!st.is_down());
    clock
        .down
        .store(true, core::sync::atomic::Ordering::Relaxed);
    let mut buf = [0u8; 8];
    // What had arrived is still read; then the network is down.
    assert_eq!(s.read(&mut buf), Ok(1));
    assert_eq!(s.read(&mut buf), Err(SocketError::NetworkDown));
    assert_eq!(c.write(b"y"), Err(SocketError::NetworkDown));
    assert_eq!(u.recv_from(&mut buf), Err(SocketError::NetworkDown));
    assert_eq!(u.send_to(b"z", ep(9)), Err(SocketError::NetworkDown));
    assert!(st.is_down());
    assert_eq!(
        TcpStream::connect(&st, ep(8200), T).err(),
        Some(SocketError::NetworkDown)
    );
    assert_eq!(l.accept(T).err(), Some(SocketError::NetworkDown));
    // Nothing leaks: the dropped sockets leave the pool.
    drop((c, s, u, l));
    st.poll();
    assert_eq!(st.stats().sockets, 0);
}

mod asynch {
    use super::*;
    use embedded_io_async::{Read, Write};

    #[test]
    fn many_async_connections_without_state_machines() {
        let (st, _) = stack(Limits::default());
        let ex = Executor::new(Arc::new(st.clone()));
        let h = ex.handle();
        const N: usize = 24;
        let (st2, h2) = (st.clone(), h.clone());
        let server = h.spawn(async move {
            // A burst of N connection requests: N listening sockets, or the
            // ones beyond the backlog are refused (no SYN queue in smoltcp).
            let o = TcpOptions {
                backlog: N,
                ..TcpOptions::default()
            };
            let mut l = TcpListener::bind_with(&st2, 7, o).unwrap();
            let mut conns = Vec::new();
            for _ in 0..N {
                let mut s = l.accept_async().await;
                conns.push(h2.spawn(async move {
                    let mut buf = [0u8; 64];
                    let mut total = 0;
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) => return total,
                            Ok(n) => {
                                total += n;
                                s.write_all(&buf[..n]).await.unwrap();
                            }
                            Err(e) => panic!("server read: {e}"),
                        }
                    }
                }));
            }
            let mut total = 0;
            for c in conns {
                total += c.await.unwrap();
            }
            total
        });
        let mut clients = Vec::new();
        for i in 0..N {
            let (st3, h3) = (st.clone(), h.clone());
            clients.push(h.spawn(async move {
                let mut c = TcpStream::connect_async(&st3, ep(7)).await.unwrap();
                let msg = alloc::format!("client {i} says hello");
                // Staggered: the server interleaves them.
                h3.sleep(Duration::from_millis(i as u64)).await;
                c.write_all(msg.as_bytes()).await.unwrap();
                let mut got = vec![0u8; msg.len()];
                c.read_exact(&mut got).await.unwrap();
                assert_eq!(String::from_utf8(got).unwrap(), msg);
                msg.len()
            }));
        }
        let sent: usize = ex.block_on(async {
            let mut s = 0;
            for c in clients {
                s += c.await.unwrap();
            }
            s
        });
        let echoed = ex.block_on(server).unwrap();
        assert_eq!(sent, echoed);
        let s = h.stats();
        assert_eq!(s.alive, 0);
        assert!(
            s.blocks < 200,
            "{} blocks: the executor should not spin",
            s.blocks
        );
    }

    #[test]
    fn waiting_tasks_hear_network_down_at_once() {
        let (st, clock) = stack(Limits::default());
        let ex = Executor::new(Arc::new(st.clone()));
        let h = ex.handle();
        let mut l = TcpListener::bind(&st, 8300).unwrap();
        let mut c = TcpStream::connect(&st, ep(8300), T).unwrap();
        let mut s = l.accept(T).unwrap();
        let u = UdpSocket::bind(&st, 8301).unwrap();
        let tcp = h.spawn(async move {
            let mut buf = [0u8; 8];
            s.read(&mut buf).await
        });
        let udp = h.spawn(async move {
            let mut buf = [0u8; 8];
            u.recv_from_async(&mut buf).await.map(|(n, _)| n)
        });
        let h2 = h.clone();
        let t0 = clock.now();
        let down = clock.down.clone();
        h.spawn(async move {
            h2.sleep(Duration::from_millis(10)).await;
            down.store(true, core::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(ex.block_on(tcp), Ok(Err(SocketError::NetworkDown)));
        assert_eq!(ex.block_on(udp), Ok(Err(SocketError::NetworkDown)));
        assert!(
            (clock.now() - t0).total_millis() < 100,
            "no waiting out a timer"
        );
        assert_eq!(
            ex.block_on(async { c.write(b"late").await }),
            Err(SocketError::NetworkDown)
        );
    }
}
