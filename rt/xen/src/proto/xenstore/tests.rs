//! Host tests of the xenstore client against a fake xenstored that can
//! misbehave (stray replies, hostile payloads, floods of watch events, a
//! restore mid-reply).
extern crate std;
use super::*;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use core::cell::RefCell;
use proptest::prelude::*;
use std::rc::Rc;

fn page() -> Box<XenstoreInterface> {
    Box::new(XenstoreInterface {
        req: [0; RING_SIZE],
        rsp: [0; RING_SIZE],
        req_cons: 0,
        req_prod: 0,
        rsp_cons: 0,
        rsp_prod: 0,
        server_features: 0,
        connection: 0,
        error: 0,
    })
}

/// What the fake daemon does wrong, on purpose.
#[derive(Clone, Default)]
struct Faults {
    /// Send a watch event before each reply.
    event_first: bool,
    /// Send a stray reply (wrong id) before each reply.
    stray_first: bool,
    /// Claim an oversized payload.
    oversized: bool,
    /// Corrupt the rsp producer index.
    corrupt_index: bool,
    /// Answer transaction ends with EAGAIN this many times.
    eagain: u32,
    /// Never answer.
    mute: bool,
    /// Raw bytes to send instead of any reply.
    raw: Option<Vec<u8>>,
    /// Run only when the client waits, not when it notifies (a daemon in
    /// another domain answers after a while, not during the notify).
    lazy: bool,
    /// Refuse writes below this path (EACCES).
    refuse: Option<&'static str>,
}

/// A xenstored on the other side of the page: parses requests from `req`,
/// answers into `rsp` (a byte at a time when the ring is full).
struct Daemon {
    page: *mut XenstoreInterface,
    store: BTreeMap<String, Vec<u8>>,
    inbox: Vec<u8>,
    outbox: VecDeque<u8>,
    faults: Faults,
    next_tx: u32,
}

impl Daemon {
    fn reply(&mut self, ty: u32, id: u32, tx: u32, payload: &[u8]) {
        let len = if self.faults.oversized {
            5000
        } else {
            payload.len() as u32
        };
        for v in [ty, id, tx, len] {
            self.outbox.extend(v.to_le_bytes());
        }
        self.outbox.extend(payload);
    }

    fn run(&mut self) {
        // SAFETY: the test owns the page; client and daemon take turns.
        let p = unsafe { &mut *self.page };
        while p.req_cons != p.req_prod {
            self.inbox.push(p.req[p.req_cons as usize % RING_SIZE]);
            p.req_cons = p.req_cons.wrapping_add(1);
        }
        while self.inbox.len() >= HEADER {
            let len = u32_at(&self.inbox, 12) as usize;
            if self.inbox.len() < HEADER + len {
                break;
            }
            let m: Vec<u8> = self.inbox.drain(..HEADER + len).collect();
            self.handle(u32_at(&m, 0), u32_at(&m, 4), u32_at(&m, 8), &m[HEADER..]);
        }
        while !self.outbox.is_empty() && p.rsp_prod.wrapping_sub(p.rsp_cons) < RING_SIZE as u32 {
            p.rsp[p.rsp_prod as usize % RING_SIZE] = self.outbox.pop_front().unwrap();
            p.rsp_prod = p.rsp_prod.wrapping_add(1);
        }
        if self.faults.corrupt_index {
            p.rsp_prod = p.rsp_cons.wrapping_add(5000);
        }
    }

    fn handle(&mut self, ty: u32, id: u32, tx: u32, body: &[u8]) {
        if self.faults.mute {
            return;
        }
        if let Some(raw) = self.faults.raw.clone() {
            self.outbox.extend(raw);
            return;
        }
        if self.faults.event_first {
            self.reply(ty::WATCH_EVENT, 0, 0, b"/some/path\0tok\0");
        }
        if self.faults.stray_first {
            self.reply(ty, id.wrapping_add(1000), tx, b"stray");
        }
        let mut parts = body.split(|&b| b == 0);
        let path = text(parts.next().unwrap_or(b""));
        match ty {
            ty::READ => match self.store.get(&path).cloned() {
                Some(v) => self.reply(ty, id, tx, &v),
                None => self.reply(ty::ERROR, id, tx, b"ENOENT\0"),
            },
            ty::WRITE if self.faults.refuse.is_some_and(|r| path.starts_with(r)) => {
                self.reply(ty::ERROR, id, tx, b"EACCES\0");
            }
            ty::WRITE => {
                let at = body.iter().position(|&b| b == 0).unwrap();
                self.store.insert(path, body[at + 1..].to_vec());
                self.reply(ty, id, tx, b"OK\0");
            }
            ty::DIRECTORY => {
                let prefix = std::format!("{path}/");
                let mut names: Vec<u8> = Vec::new();
                for k in self.store.keys().filter_map(|k| k.strip_prefix(&prefix)) {
                    names.extend(k.split('/').next().unwrap().as_bytes());
                    names.push(0);
                }
                self.reply(ty, id, tx, &names);
            }
            ty::RM => {
                self.store
                    .retain(|k, _| k != &path && !k.starts_with(&std::format!("{path}/")));
                self.reply(ty, id, tx, b"OK\0");
            }
            ty::WATCH => {
                self.reply(ty, id, tx, b"OK\0");
                let token = text(parts.next().unwrap_or(b""));
                let ev = std::format!("{path}\0{token}\0");
                self.reply(ty::WATCH_EVENT, 0, 0, ev.as_bytes());
            }
            ty::TRANSACTION_START => {
                self.next_tx += 1;
                let t = std::format!("{}\0", self.next_tx);
                self.reply(ty, id, tx, t.as_bytes());
            }
            ty::TRANSACTION_END if self.faults.eagain > 0 => {
                self.faults.eagain -= 1;
                self.reply(ty::ERROR, id, tx, b"EAGAIN\0");
            }
            _ => self.reply(ty, id, tx, b"OK\0"),
        }
    }
}

/// The link: each wait lets the daemon run; it gives up after 1000 waits.
struct FakeLink {
    daemon: Rc<RefCell<Daemon>>,
    waits: u32,
}

impl Link for FakeLink {
    fn notify(&mut self) {
        let mut d = self.daemon.borrow_mut();
        if !d.faults.lazy {
            d.run();
        }
    }
    fn wait(&mut self) -> bool {
        self.waits += 1;
        self.daemon.borrow_mut().run();
        self.waits < 1000
    }
}

fn client(
    faults: Faults,
) -> (
    Client<FakeLink>,
    Rc<RefCell<Daemon>>,
    Box<XenstoreInterface>,
) {
    let mut p = page();
    let daemon = Rc::new(RefCell::new(Daemon {
        page: &mut *p,
        store: BTreeMap::new(),
        inbox: Vec::new(),
        outbox: VecDeque::new(),
        faults,
        next_tx: 0,
    }));
    let link = FakeLink {
        daemon: daemon.clone(),
        waits: 0,
    };
    // SAFETY: the boxed page outlives the client in every test.
    let c = unsafe { Client::new(NonNull::from(&mut *p), link) };
    (c, daemon, p)
}

#[test]
fn read_write_directory_remove() {
    let (mut c, _d, _p) = client(Faults::default());
    c.write(0, "data/a", b"1").unwrap();
    c.write(0, "data/b/c", b"2").unwrap();
    assert_eq!(c.read(0, "data/a").unwrap(), "1");
    assert_eq!(c.directory(0, "data").unwrap(), ["a", "b"]);
    c.remove(0, "data/b").unwrap();
    assert_eq!(c.directory(0, "data").unwrap(), ["a"]);
    assert_eq!(c.read(0, "data/b/c"), Err(XsError::Error(XenError::ENOENT)));
}

#[test]
fn write_many_sends_back_to_back_and_waits_once_per_batch() {
    let lazy = Faults {
        lazy: true,
        ..Faults::default()
    };
    let keys: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            (
                std::format!("device/vif/0/key-{i}"),
                std::format!("{i}").into_bytes(),
            )
        })
        .collect();
    let entries: Vec<(&str, &[u8])> = keys.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();

    let (mut one_by_one, _d, _p) = client(lazy.clone());
    for (k, v) in &entries {
        one_by_one.write(0, k, v).unwrap();
    }
    assert_eq!(one_by_one.stats.round_trips, 8);
    assert!(one_by_one.link().waits >= 8);

    let (mut c, d, _p) = client(lazy);
    c.write_many(0, &entries).unwrap();
    assert_eq!(c.stats.requests, 8);
    assert_eq!(c.stats.round_trips, 1);
    assert_eq!(c.link().waits, 1, "one wait answers the whole batch");
    for (k, v) in &entries {
        assert_eq!(d.borrow().store.get(*k).map(Vec::as_slice), Some(*v));
    }
    // Nothing is left over for the next request.
    assert_eq!(c.read(0, "device/vif/0/key-3").unwrap(), "3");
    assert_eq!(c.stats.stray_replies, 0);
}

#[test]
fn read_many_answers_each_key_in_one_round_trip() {
    let (mut c, d, _p) = client(Faults {
        lazy: true,
        ..Faults::default()
    });
    d.borrow_mut().store.insert(
        "fe/backend".into(),
        b"/local/domain/0/backend/vif/1/0".to_vec(),
    );
    d.borrow_mut()
        .store
        .insert("fe/mac".into(), b"00:16:3e:00:00:02".to_vec());
    let v = c
        .read_many(0, &["fe/backend", "fe/missing", "fe/mac"])
        .unwrap();
    assert_eq!(
        v,
        [
            Ok(String::from("/local/domain/0/backend/vif/1/0")),
            Err(XsError::Error(XenError::ENOENT)),
            Ok(String::from("00:16:3e:00:00:02"))
        ]
    );
    assert_eq!(c.stats.round_trips, 1);
    assert_eq!(c.link().waits, 1);
    assert_eq!(c.read_many(0, &[]).unwrap(), []);
}

#[test]
fn a_daemon_that_stops_answering_fails_the_batch_in_time() {
    let (mut c, d, _p) = client(Faults {
        lazy: true,
        ..Faults::default()
    });
    d.borrow_mut().faults.mute = true;
    assert_eq!(c.read_many(0, &["a", "b"]), Err(XsError::Timeout));
    assert_eq!(c.write_many(0, &[("a", b"1")]), Err(XsError::Timeout));
}

#[test]
fn write_many_splits_what_does_not_fit_the_ring_at_once() {
    let (mut c, d, _p) = client(Faults {
        lazy: true,
        ..Faults::default()
    });
    let big = vec![b'v'; 400];
    let entries: Vec<(&str, &[u8])> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|k| (*k, &big[..]))
        .collect();
    c.write_many(0, &entries).unwrap();
    // 417 bytes a request: two fit the 1 KiB ring at once.
    assert_eq!(c.stats.round_trips, 3);
    assert_eq!(d.borrow().store.len(), 5);
    // One value longer than the ring goes alone, across it.
    let huge = vec![b'h'; 3000];
    c.write_many(0, &[("x", &huge[..]), ("y", b"1")]).unwrap();
    assert_eq!(d.borrow().store.get("x").map(Vec::len), Some(3000));
    assert_eq!(c.read(0, "y").unwrap(), "1");
}

#[test]
fn write_many_takes_every_reply_and_returns_the_first_error() {
    let (mut c, d, _p) = client(Faults {
        lazy: true,
        refuse: Some("ro/"),
        ..Faults::default()
    });
    let r = c.write_many(0, &[("rw/a", b"1"), ("ro/b", b"2"), ("rw/c", b"3")]);
    assert_eq!(r, Err(XsError::Error(XenError::EACCES)));
    // The daemon saw all three (a transaction around them is aborted by
    // its caller); no reply is left to confuse the next request.
    assert!(d.borrow().store.contains_key("rw/c"));
    assert_eq!(c.read(0, "rw/a").unwrap(), "1");
    assert_eq!(c.stats.stray_replies, 0);
    // Too long a value is refused before anything is sent.
    assert_eq!(
        c.write_many(0, &[("rw/huge", &[0; 5000])]),
        Err(XsError::TooLong)
    );
    assert_eq!(c.read(0, "rw/c").unwrap(), "3");
}

#[test]
fn write_many_queues_watch_events_and_drops_strays() {
    let (mut c, _d, _p) = client(Faults {
        event_first: true,
        stray_first: true,
        lazy: true,
        ..Faults::default()
    });
    c.write_many(0, &[("a", b"1"), ("b", b"2")]).unwrap();
    assert_eq!(c.stats.stray_replies, 2);
    assert!(c.take_event_for("tok").is_some());
}

#[test]
fn values_longer_than_the_ring_cross_it() {
    let (mut c, _d, _p) = client(Faults::default());
    let big = vec![b'z'; 3000];
    c.write(0, "data/big", &big).unwrap();
    assert_eq!(c.read(0, "data/big").unwrap().len(), 3000);
    assert_eq!(c.write(0, "data/huge", &[0; 5000]), Err(XsError::TooLong));
}

#[test]
fn watch_events_are_queued_while_a_reply_is_awaited() {
    let (mut c, d, _p) = client(Faults::default());
    c.watch("control/shutdown", "ctl").unwrap();
    d.borrow_mut().faults.event_first = true;
    c.write(0, "data/x", b"y").unwrap();
    let ev = c.take_event().unwrap();
    assert_eq!(
        (ev.path.as_str(), ev.token.as_str()),
        ("control/shutdown", "ctl")
    );
    assert_eq!(c.take_event().unwrap().token, "tok");
    assert_eq!(c.take_event(), None);
}

#[test]
fn events_taken_by_token_leave_the_others_in_order() {
    let (mut c, d, _p) = client(Faults::default());
    c.watch("control/shutdown", "ctl").unwrap();
    d.borrow_mut().faults.event_first = true;
    c.write(0, "data/x", b"y").unwrap();
    assert_eq!(c.take_event_for("tok").unwrap().token, "tok");
    assert_eq!(c.take_event_for("tok"), None);
    assert_eq!(c.take_event_for("other"), None);
    assert_eq!(c.take_event().unwrap().token, "ctl");
    assert_eq!(c.take_event(), None);
}

/// What a restore does to the page: a new daemon, the indices from zero
/// (the old ones were far along), a half-sent reply lost.
fn restore(d: &Rc<RefCell<Daemon>>) {
    let mut d = d.borrow_mut();
    d.inbox.clear();
    d.outbox.clear();
    // SAFETY: the test owns the page; client and daemon take turns.
    let p = unsafe { &mut *d.page };
    (p.req_cons, p.req_prod, p.rsp_cons, p.rsp_prod) = (0, 0, 0, 0);
}

#[test]
fn after_a_restore_the_client_talks_to_the_new_daemon() {
    let (mut c, d, _p) = client(Faults::default());
    for i in 0..40 {
        c.write(0, &std::format!("data/{i}"), &[b'v'; 100]).unwrap();
    }
    c.watch("control/shutdown", "ctl").unwrap();
    c.poll().unwrap();
    restore(&d);
    // Without taking up the new indices, the client cannot go on.
    assert!(c.read(0, "data/1").is_err());
    c.reconnect();
    assert_eq!(c.read(0, "data/1").unwrap(), "v".repeat(100));
    c.write(0, "data/new", b"x").unwrap();
    assert_eq!(c.read(0, "data/new").unwrap(), "x");
    assert_eq!(
        c.take_event_for("ctl").map(|e| e.path),
        Some("control/shutdown".into()),
        "events queued before the restore stay for their owner"
    );
}

#[test]
fn a_restore_mid_reply_is_recovered_by_reconnect() {
    let (mut c, d, _p) = client(Faults::default());
    c.write(0, "k", b"v").unwrap();
    d.borrow_mut().faults.mute = true;
    assert!(c.read(0, "k").is_err(), "no reply: the client gives up");
    restore(&d);
    d.borrow_mut().faults.mute = false;
    c.reconnect();
    assert_eq!(c.read(0, "k").unwrap(), "v");
}

#[test]
fn a_storm_on_one_key_takes_one_place_and_keeps_the_others_events() {
    let (mut c, _d, _p) = client(Faults::default());
    // The fake daemon fires a watch's event when it is set: setting the
    // same watch 500 times is a storm of identical events.
    c.watch("control/shutdown", "shutdown").unwrap();
    for _ in 0..500 {
        c.watch("memory/target", "target").unwrap();
    }
    c.poll().unwrap();
    assert_eq!((c.stats.events, c.stats.dropped_events), (501, 0));
    assert_eq!(c.stats.coalesced_events, 499);
    assert_eq!(
        c.take_event_for("shutdown").unwrap().path,
        "control/shutdown"
    );
    assert!(c.take_event_for("target").is_some());
    assert!(c.take_event().is_none());
}

#[test]
fn a_flood_of_events_keeps_the_newest_and_counts_the_rest() {
    let (mut c, _d, _p) = client(Faults::default());
    let n = MAX_QUEUED_EVENTS + 8;
    for i in 0..n {
        c.watch(&std::format!("data/{i}"), "flood").unwrap();
    }
    c.poll().unwrap();
    assert_eq!(c.stats.events, n as u64);
    assert_eq!(c.stats.dropped_events, 8);
    assert_eq!(c.take_event().unwrap().path, "data/8");
    let mut left = 1;
    while c.take_event().is_some() {
        left += 1;
    }
    assert_eq!(left, MAX_QUEUED_EVENTS);
}

#[test]
fn unwatch_drops_the_watchs_queued_events_only() {
    let (mut c, _d, _p) = client(Faults::default());
    c.watch("a/b", "t").unwrap();
    c.watch("a/bc", "t").unwrap();
    c.watch("a/b", "u").unwrap();
    c.poll().unwrap();
    c.unwatch("a/b", "t").unwrap();
    let left: Vec<_> = core::iter::from_fn(|| c.take_event())
        .map(|e| (e.path, e.token))
        .collect();
    assert_eq!(
        left,
        [("a/bc".into(), "t".into()), ("a/b".into(), "u".into())]
    );
}

#[test]
fn stray_replies_are_dropped_and_counted() {
    let (mut c, d, _p) = client(Faults::default());
    d.borrow_mut().faults.stray_first = true;
    c.write(0, "k", b"v").unwrap();
    assert_eq!(c.read(0, "k").unwrap(), "v");
    assert_eq!(c.stats.stray_replies, 2);
}

#[test]
fn transactions_retry_on_eagain_and_abort_on_error() {
    let (mut c, d, _p) = client(Faults::default());
    d.borrow_mut().faults.eagain = 2;
    let mut runs = 0;
    c.transaction(|c, tx| {
        runs += 1;
        c.write(tx, "t/x", b"1")
    })
    .unwrap();
    assert_eq!((runs, c.stats.retries), (3, 2));
    let r: Result<(), _> = c.transaction(|c, tx| c.read(tx, "missing").map(drop));
    assert_eq!(r, Err(XsError::Error(XenError::ENOENT)));
    d.borrow_mut().faults.eagain = 100;
    let r = c.transaction(|c, tx| c.write(tx, "t/x", b"2"));
    assert_eq!(
        r,
        Err(XsError::Error(XenError::EAGAIN)),
        "gives up after the retries"
    );
}

#[test]
fn a_hostile_daemon_gets_typed_errors_not_panics() {
    let (mut c, _d, _p) = client(Faults {
        oversized: true,
        ..Faults::default()
    });
    assert_eq!(c.read(0, "x"), Err(XsError::Oversized(5000)));
    assert_eq!(
        c.read(0, "x"),
        Err(XsError::Broken),
        "the stream cannot be framed any more"
    );

    let (mut c, _d, _p) = client(Faults {
        corrupt_index: true,
        ..Faults::default()
    });
    assert!(matches!(
        c.read(0, "x"),
        Err(XsError::Ring(RingError::Corrupt { .. }))
    ));

    let (mut c, _d, _p) = client(Faults {
        mute: true,
        ..Faults::default()
    });
    assert_eq!(c.read(0, "x"), Err(XsError::Timeout));

    // A reply of another type with the right id.
    let mut raw = Vec::new();
    for v in [ty::DIRECTORY, 1, 0, 2] {
        raw.extend(u32::to_le_bytes(v));
    }
    raw.extend(b"a\0");
    let (mut c, _d, _p) = client(Faults {
        raw: Some(raw),
        ..Faults::default()
    });
    assert!(matches!(c.read(0, "x"), Err(XsError::BadReply(_))));
}

proptest! {
    /// Whatever bytes the daemon sends back, the client returns a value or
    /// a typed error — never a panic — and stays within its buffers.
    #[test]
    fn random_replies_never_panic(raw in prop::collection::vec(any::<u8>(), 0..3000)) {
        let (mut c, _d, _p) = client(Faults { raw: Some(raw), ..Faults::default() });
        let _ = c.read(0, "x");
        let _ = c.poll();
        while c.take_event().is_some() {}
        prop_assert!(c.rx.len() <= HEADER + PAYLOAD_MAX + RING_SIZE);
    }
}
