//! blkfront's request path against the fake blkback: data round trips of
//! every request shape, a full ring answered out of order, and a backend
//! that misbehaves in each way blkif allows it to (and some it does not).
extern crate std;

use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

use super::blkif::{
    OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE, RING_SIZE, RSP_EOPNOTSUPP, RSP_ERROR,
    Response,
};
use super::fake::{Back, Bufs, setup, setup_ring, setup_with};
use super::request::{Blkfront, IoError, Op, SubmitError, flush_op};

const MIB: usize = 1 << 20;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(0x9e37) ^ (i >> 9)) as u8)
        .collect()
}

/// Answers everything and collects `(tag, result, data)`.
fn drain(f: &mut Blkfront, b: &mut Back, bufs: &mut Bufs) -> Vec<(u64, Result<Vec<u8>, IoError>)> {
    b.serve_all(bufs);
    take(f, bufs)
}

fn take(f: &mut Blkfront, bufs: &Bufs) -> Vec<(u64, Result<Vec<u8>, IoError>)> {
    let mut out = Vec::new();
    f.complete(bufs, |tag, r| {
        out.push((
            tag,
            r.map(|d| {
                let mut v = vec![0; d.len()];
                d.copy_to(&mut v);
                v
            }),
        ))
    });
    out
}

fn write(f: &mut Blkfront, b: &mut Back, bufs: &mut Bufs, sector: u64, data: &[u8]) {
    let t = f
        .submit(bufs, Op::Write, sector, data.len(), Some(data))
        .unwrap();
    f.publish();
    let got = drain(f, b, bufs);
    assert_eq!(got, vec![(t, Ok(vec![]))]);
}

fn read(f: &mut Blkfront, b: &mut Back, bufs: &mut Bufs, sector: u64, len: usize) -> Vec<u8> {
    let t = f.submit(bufs, Op::Read, sector, len, None).unwrap();
    f.publish();
    let mut got = drain(f, b, bufs);
    assert_eq!(got.len(), 1);
    let (tag, r) = got.remove(0);
    assert_eq!(tag, t);
    r.unwrap()
}

#[test]
fn every_request_size_round_trips_through_the_disk() {
    let (mut f, mut b, mut bufs) = setup(4 * MIB, 512, 256);
    assert_eq!(f.max_request(), MIB);
    let mut sector = 0;
    for (i, len) in [512, 4096, 4096 + 1024, 44 * 1024, 64 * 1024, MIB]
        .into_iter()
        .enumerate()
    {
        let data = pattern(i as u64, len);
        write(&mut f, &mut b, &mut bufs, sector, &data);
        assert_eq!(
            &b.disk[sector as usize * 512..][..len],
            &data[..],
            "{len} on disk"
        );
        assert_eq!(
            read(&mut f, &mut b, &mut bufs, sector, len),
            data,
            "{len} read back"
        );
        sector += (len as u64).div_ceil(512) + 3;
    }
    assert_eq!(f.stats.indirect, 4, "64 KiB and 1 MiB, each way");
    let t = f.submit(&mut bufs, Op::Flush, 0, 0, None).unwrap();
    f.publish();
    assert_eq!(drain(&mut f, &mut b, &mut bufs), vec![(t, Ok(vec![]))]);
    assert_eq!(b.flushes, 1);
    assert_eq!((f.free_pages(), f.in_flight()), (512, 0), "every page home");
}

#[test]
fn without_indirect_requests_the_limit_is_eleven_pages() {
    let (mut f, mut b, mut bufs) = setup(MIB, 64, 0);
    assert_eq!(f.max_request(), 44 * 1024);
    assert_eq!(
        f.submit(&mut bufs, Op::Read, 0, 48 * 1024, None),
        Err(SubmitError::TooLarge)
    );
    let data = pattern(7, 44 * 1024);
    write(&mut f, &mut b, &mut bufs, 8, &data);
    assert_eq!(read(&mut f, &mut b, &mut bufs, 8, data.len()), data);
    assert_eq!(f.stats.indirect, 0);
    for bad in [0, 100, 513] {
        assert_eq!(
            f.submit(&mut bufs, Op::Read, 0, bad, None),
            Err(SubmitError::Unaligned),
            "{bad}"
        );
    }
}

#[test]
fn a_full_ring_answered_in_reverse_completes_each_request_with_its_data() {
    // One page (32 requests) and a ring of four pages (128).
    for (order, slots) in [(0, RING_SIZE as usize), (2, 128)] {
        let (mut f, mut b, mut bufs) = setup_ring(MIB, 160, 256, Some(OP_FLUSH_DISKCACHE), order);
        assert_eq!(f.ring_slots(), slots);
        for i in 0..slots as u64 {
            b.disk[i as usize * 4096..][..4096].copy_from_slice(&pattern(i, 4096));
        }
        let tags: Vec<u64> = (0..slots as u64)
            .map(|i| f.submit(&mut bufs, Op::Read, i * 8, 4096, None).unwrap())
            .collect();
        assert_eq!(
            f.submit(&mut bufs, Op::Read, 0, 4096, None),
            Err(SubmitError::Busy)
        );
        f.publish();
        let reqs = b.requests();
        assert_eq!(reqs.len(), slots);
        let answers: Vec<Response> = reqs.iter().map(|r| b.serve(&mut bufs, r)).collect();
        for a in answers.into_iter().rev() {
            b.respond(a);
        }
        let got = take(&mut f, &bufs);
        assert_eq!(got.len(), slots);
        for (tag, data) in got {
            let i = tags.iter().position(|&t| t == tag).unwrap() as u64;
            assert_eq!(
                data.unwrap(),
                pattern(i, 4096),
                "order {order}: request {i}"
            );
        }
        assert_eq!((f.free_pages(), f.in_flight()), (160, 0));
    }
}

#[test]
fn the_pool_bounds_what_is_in_flight() {
    let (mut f, _b, mut bufs) = setup(4 * MIB, 300, 256);
    f.submit(&mut bufs, Op::Read, 0, MIB, None).unwrap();
    assert!(!f.can_submit(MIB));
    assert_eq!(
        f.submit(&mut bufs, Op::Read, 0, MIB, None),
        Err(SubmitError::Busy)
    );
    assert!(f.can_submit(44 * 4096));
}

#[test]
fn unknown_duplicate_and_stale_ids_are_counted_and_complete_nothing() {
    let (mut f, mut b, mut bufs) = setup(MIB, 64, 256);
    // Four requests: four answers are the most the ring may carry.
    let t: Vec<u64> = (0..4)
        .map(|i| f.submit(&mut bufs, Op::Read, i * 8, 4096, None).unwrap())
        .collect();
    f.publish();
    let r = b.requests().remove(0);
    // A response for a request never made, then one for a slot not in use.
    b.respond(Response::new(t[0] + (1 << 16), OP_READ, 0));
    b.respond(Response::new(9, OP_READ, 0));
    assert!(take(&mut f, &bufs).is_empty());
    assert_eq!(f.stats.bad_ids, 2);
    let rsp = b.serve(&mut bufs, &r);
    b.respond(rsp);
    b.respond(rsp); // the same answer twice
    let got = take(&mut f, &bufs);
    assert_eq!(got.len(), 1, "completed once");
    assert_eq!(f.stats.bad_ids, 3);
    // The slot is reused with a new generation: the old id is stale.
    let t2 = f.submit(&mut bufs, Op::Read, 0, 4096, None).unwrap();
    assert_eq!(t2 & 0xffff, t[0] & 0xffff, "same slot (LIFO)");
    f.publish();
    b.requests();
    b.respond(Response::new(t[0], OP_READ, 0));
    assert!(take(&mut f, &bufs).is_empty());
    assert_eq!(
        (f.stats.bad_ids, f.in_flight()),
        (4, 4),
        "t2 and three others wait"
    );
    assert!(!f.is_gone());
}

#[test]
fn error_statuses_and_wrong_operations_fail_just_that_request() {
    let (mut f, mut b, mut bufs) = setup(MIB, 64, 256);
    let ta = f
        .submit(&mut bufs, Op::Write, 0, 4096, Some(&[1; 4096]))
        .unwrap();
    let tb = f.submit(&mut bufs, Op::Flush, 0, 0, None).unwrap();
    let tc = f.submit(&mut bufs, Op::Read, 0, 4096, None).unwrap();
    let td = f.submit(&mut bufs, Op::Read, 0, 64 * 1024, None).unwrap();
    let te = f.submit(&mut bufs, Op::Read, 0, 4096, None).unwrap();
    f.publish();
    let reqs = b.requests();
    assert_eq!(reqs[3].operation(), OP_INDIRECT);
    b.respond(Response::new(ta, OP_WRITE, RSP_ERROR));
    b.respond(Response::new(tb, reqs[1].operation(), RSP_EOPNOTSUPP));
    b.respond(Response::new(tc, OP_WRITE, 0));
    b.respond(Response::new(td, OP_INDIRECT, 0)); // accepted for an indirect read
    b.respond(Response::new(te, OP_READ, -77));
    let got: Vec<_> = take(&mut f, &bufs)
        .into_iter()
        .map(|(t, r)| (t, r.map(|d| d.len())))
        .collect();
    assert_eq!(
        got,
        vec![
            (ta, Err(IoError::Backend(RSP_ERROR))),
            (tb, Err(IoError::NotSupported)),
            (tc, Err(IoError::Protocol)),
            (td, Ok(64 * 1024)),
            (te, Err(IoError::Backend(-77))),
        ]
    );
    assert_eq!((f.stats.errors, f.stats.bad_ops), (4, 1));
    assert_eq!((f.free_pages(), f.in_flight()), (64, 0));
    // The device carries on.
    let data = pattern(3, 8192);
    write(&mut f, &mut b, &mut bufs, 16, &data);
    assert_eq!(read(&mut f, &mut b, &mut bufs, 16, 8192), data);
}

#[test]
fn a_backend_claiming_too_many_responses_fails_everything_in_flight() {
    let (mut f, mut b, mut bufs) = setup(MIB, 64, 256);
    let t: Vec<u64> = (0..3)
        .map(|i| f.submit(&mut bufs, Op::Read, i * 8, 4096, None).unwrap())
        .collect();
    f.publish();
    b.requests();
    b.set_idx(2, 40);
    let got = take(&mut f, &bufs);
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|(tag, r)| t.contains(tag) && *r == Err(IoError::Protocol))
    );
    assert!(f.is_gone());
    assert_eq!(f.stats.ring_errors, 1);
    assert_eq!(
        f.submit(&mut bufs, Op::Read, 0, 4096, None),
        Err(SubmitError::Gone)
    );
}

#[test]
fn a_backend_closing_mid_request_fails_what_is_outstanding_and_then_all() {
    let (mut f, mut b, mut bufs) = setup(MIB, 64, 256);
    let t1 = f
        .submit(&mut bufs, Op::Write, 0, 4096, Some(&[9; 4096]))
        .unwrap();
    let t2 = f.submit(&mut bufs, Op::Read, 8, 8192, None).unwrap();
    f.publish();
    b.requests();
    let mut failed = Vec::new();
    assert_eq!(f.fail_all(IoError::Gone, |t, e| failed.push((t, e))), 2);
    assert_eq!(failed, vec![(t1, IoError::Gone), (t2, IoError::Gone)]);
    // A late answer is ignored; new requests are refused.
    b.respond(Response::new(t1, OP_WRITE, 0));
    assert!(take(&mut f, &bufs).is_empty());
    assert_eq!(
        f.submit(&mut bufs, Op::Flush, 0, 0, None),
        Err(SubmitError::Gone)
    );
}

#[test]
fn flush_without_flush_or_barrier_is_refused() {
    let (mut f, _b, mut bufs) = setup_with(MIB, 16, 0, flush_op(false, false));
    assert_eq!(
        f.submit(&mut bufs, Op::Flush, 0, 0, None),
        Err(SubmitError::NotSupported)
    );
    // A barrier stands in for a flush where only that is offered.
    let (mut f, mut b, mut bufs) = setup_with(MIB, 16, 0, flush_op(false, true));
    f.submit(&mut bufs, Op::Flush, 0, 0, None).unwrap();
    f.publish();
    assert_eq!(b.requests()[0].operation(), super::blkif::OP_WRITE_BARRIER);
}

proptest! {
    /// A backend answering at random — good answers, errors, wrong ids,
    /// wrong operations, duplicates — interleaved with requests of random
    /// sizes: nothing panics, each tag completes at most once, and pages
    /// in flight plus free pages always make the pool.
    #[test]
    fn random_backends_never_lose_a_page(
        ops in proptest::collection::vec((0u8..4, 1usize..300, any::<u64>(), any::<i16>()), 1..200)
    ) {
        let (mut f, mut b, mut bufs) = setup(2 * MIB, 320, 256);
        let mut pending: Vec<super::blkif::Request> = Vec::new();
        let mut done: Vec<u64> = Vec::new();
        let mut outstanding: Vec<(u64, usize)> = Vec::new();
        for (op, pages, noise, status) in ops {
            match op {
                0 => {
                    let len = pages * 4096;
                    let kind = if noise % 2 == 0 { Op::Read } else { Op::Write };
                    let src = vec![noise as u8; len];
                    if let Ok(t) = f.submit(&mut bufs, kind, noise % 256, len, Some(&src)) {
                        outstanding.push((t, pages));
                    }
                    f.publish();
                    pending.extend(b.requests());
                }
                1 if !pending.is_empty() => {
                    let r = pending.remove((noise as usize) % pending.len());
                    let mut rsp = b.serve(&mut bufs, &r);
                    match noise % 5 {
                        0 => rsp.status = status,
                        1 => rsp.id ^= noise >> 8,
                        2 => rsp.operation = (noise >> 16) as u8,
                        3 => b.respond(rsp),
                        _ => {}
                    }
                    b.respond(rsp);
                }
                _ => {
                    f.complete(&bufs, |t, _| done.push(t));
                }
            }
            let mut sorted = done.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), done.len(), "a tag completed twice");
            outstanding.retain(|(t, _)| !done.contains(t));
            let in_use: usize = outstanding.iter().map(|(_, p)| p).sum();
            if f.is_gone() {
                // The ring broke: what was in flight stays out of the pool.
                prop_assert!(f.free_pages() + in_use <= f.pool());
                prop_assert_eq!(f.in_flight(), 0);
            } else {
                prop_assert_eq!(f.free_pages() + in_use, f.pool());
            }
        }
    }
}
