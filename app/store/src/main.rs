//! `store`: records over TCP, kept on a raw disk by `rt::block::store`.
//!
//! Opens the store on `xvda` (a blank disk becomes one), checks what it
//! recovered and says so (`store: recovered N records ...`), brings the
//! network up and serves TCP port 9000: each line a client sends is one
//! record, answered `ok <sequence>` only once the record is durable
//! (written and the disk flushed) — or `error <why>`. A line `count`
//! answers the number of records.
//!
//! The records the guest test streams are `rec <id> <payload>` with the id
//! equal to the record's sequence number and a payload the id determines
//! ([`payload`]): on every boot the store checks each recovered record
//! against it, so a record that is torn, out of place or changed is caught
//! (`store: record K is damaged`); other records are taken as they are.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use rt::block::Disk;
use rt::block::store::{Store, StoreError};
use rt::net::io::{Read, Write};
use rt::net::{SocketError, TcpListener, TcpOptions, TcpStream};

rt::main!(main);

const PORT: u16 = 9000;
/// The longest line (record) taken; a longer one is refused.
const MAX_LINE: usize = 16 * 1024;

/// The payload of test record `id`: one letter, `50 + id * 37 % 1500` times.
fn payload(id: u64) -> Vec<u8> {
    vec![b'a' + (id % 26) as u8; 50 + (id * 37 % 1500) as usize]
}

/// Whether record `seq` is a test record that is not as it was written.
fn damaged(seq: u64, data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"rec ") else {
        return false;
    };
    let mut parts = rest.splitn(2, |&b| b == b' ');
    let id = parts
        .next()
        .and_then(|i| core::str::from_utf8(i).ok()?.parse::<u64>().ok());
    id != Some(seq) || parts.next() != Some(&payload(seq)[..])
}

fn main() -> i32 {
    match run() {
        Ok(()) => 0,
        Err(why) => {
            rt::println!("store: {why}");
            1
        }
    }
}

fn run() -> Result<(), String> {
    let disk = Disk::open("xvda").map_err(|e| format!("opening xvda: {e}"))?;
    let epoch = rt::time::Instant::now().as_nanos() ^ 0x5354_4f52_4500_0000;
    let t0 = rt::time::Instant::now();
    let (mut store, r) = Store::open(disk, epoch).map_err(|e| format!("opening the store: {e}"))?;
    let mut bad = Vec::new();
    store
        .for_each(|seq, data| {
            if damaged(seq, data) {
                bad.push(seq);
            }
        })
        .map_err(|e| format!("reading the store: {e}"))?;
    rt::println!(
        "store: recovered {} records ({} bytes) in {} ms; formatted {}; the scan stopped at {:?}; {} free",
        r.records,
        r.bytes,
        t0.elapsed().as_millis(),
        r.formatted,
        r.stop,
        store.free()
    );
    if let Some(k) = bad.first() {
        rt::println!("store: record {k} is damaged ({} in all)", bad.len());
    } else {
        rt::println!("store: all {} records intact", r.records);
    }
    let stack = rt::net::up().map_err(|e| format!("network: {e}"))?;
    let options = TcpOptions {
        rx_buffer: 65536,
        backlog: 1,
        ..TcpOptions::default()
    };
    let mut listener =
        TcpListener::bind_with(&stack, PORT, options).map_err(|e| format!("tcp {PORT}: {e}"))?;
    let addr = stack.address().map_or("?".into(), |a| format!("{a}"));
    rt::println!("store: serving records on {addr} tcp {PORT}");
    rt::println!("harness: net-ready");
    // One client at a time, one record at a time: the next line is read
    // only once this one's answer is queued.
    loop {
        let mut s = match listener.accept(None) {
            Ok(s) => s,
            Err(e) => {
                rt::println!("store: accept: {e}");
                continue;
            }
        };
        let mut acked = 0u64;
        let r = serve(&mut store, &mut s, &mut acked);
        match r {
            Ok(()) => rt::println!("store: client gone after {acked} records acknowledged"),
            Err(e) => rt::println!("store: client failed ({e}) after {acked} records acknowledged"),
        }
    }
}

/// Serves one client's lines until it closes.
fn serve<D: rt::block::BlockDevice>(
    store: &mut Store<D>,
    s: &mut TcpStream,
    acked: &mut u64,
) -> Result<(), SocketError> {
    let mut line: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < MAX_LINE + 1 {
                    line.push(b);
                }
                continue;
            }
            let answer = if line.len() > MAX_LINE {
                format!("error a record is at most {MAX_LINE} bytes\n")
            } else if line == b"count" {
                format!("count {}\n", store.len())
            } else {
                match store.append(&line) {
                    Ok(seq) => {
                        *acked += 1;
                        format!("ok {seq}\n")
                    }
                    Err(e @ (StoreError::Full { .. } | StoreError::TooLarge(_))) => {
                        format!("error {e}\n")
                    }
                    Err(e) => {
                        rt::println!("store: the disk failed: {e}");
                        format!("error {e}\n")
                    }
                }
            };
            line.clear();
            s.write_all(answer.as_bytes())?;
        }
    }
}
