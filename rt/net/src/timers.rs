//! The executor's armed timers: a vector kept sorted by (deadline, id).
//!
//! A `BTreeMap` did the same job but linked ~4 KiB of B-tree code into every
//! networked image; the timers armed at once are a few per task, so a sorted
//! vector (binary search, shifting insert and remove) is as fast in practice
//! and a fraction of the size.
//!
//! Invariant: `entries` is sorted by key, strictly (no key twice).
use alloc::vec::Vec;
use core::task::Waker;

use smoltcp::time::Instant;

/// A timer's key: its deadline and a unique id (two timers may share a
/// deadline).
pub(crate) type Key = (Instant, u64);

/// Armed timers, earliest first.
#[derive(Default)]
pub(crate) struct Timers {
    entries: Vec<(Key, Waker)>,
}

impl Timers {
    /// No timers.
    pub(crate) const fn new() -> Self {
        Timers {
            entries: Vec::new(),
        }
    }

    /// Arms `key` to wake `waker`; a key armed already gets the new waker.
    pub(crate) fn insert(&mut self, key: Key, waker: Waker) {
        match self.entries.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.entries[i].1 = waker,
            Err(i) => self.entries.insert(i, (key, waker)),
        }
    }

    /// Disarms `key` (nothing if it is not armed).
    pub(crate) fn remove(&mut self, key: &Key) {
        if let Ok(i) = self.entries.binary_search_by(|(k, _)| k.cmp(key)) {
            self.entries.remove(i);
        }
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.first().map(|((at, _), _)| *at)
    }

    /// Takes out the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Waker> {
        if self.next_deadline()? > now {
            return None;
        }
        Some(self.entries.remove(0).1)
    }

    /// How many timers are armed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use proptest::prelude::*;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    fn waker() -> Waker {
        Waker::from(Arc::new(Noop))
    }
    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn earliest_first_and_only_when_due() {
        let mut t = Timers::new();
        t.insert((at(30), 1), waker());
        t.insert((at(10), 2), waker());
        t.insert((at(10), 0), waker());
        assert_eq!(t.next_deadline(), Some(at(10)));
        assert!(t.pop_due(at(9)).is_none());
        assert!(t.pop_due(at(10)).is_some());
        assert!(t.pop_due(at(10)).is_some());
        assert!(t.pop_due(at(29)).is_none());
        assert_eq!(t.next_deadline(), Some(at(30)));
        t.remove(&(at(30), 1));
        assert_eq!(t.next_deadline(), None);
        assert!(t.pop_due(at(1000)).is_none());
    }

    #[test]
    fn a_key_armed_twice_is_one_timer() {
        let mut t = Timers::new();
        t.insert((at(5), 7), waker());
        t.insert((at(5), 7), waker());
        assert_eq!(t.len(), 1);
        t.remove(&(at(5), 7));
        t.remove(&(at(5), 7));
        assert_eq!(t.len(), 0);
    }

    proptest! {
        /// Any sequence of arms, disarms and pops behaves as the ordered map
        /// it replaces.
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec((0u8..3, 0i64..50, 0u64..4), 0..200)) {
            let mut t = Timers::new();
            let mut m: BTreeMap<Key, ()> = BTreeMap::new();
            for (op, ms, id) in ops {
                let k = (at(ms), id);
                match op {
                    0 => { t.insert(k, waker()); m.insert(k, ()); }
                    1 => { t.remove(&k); m.remove(&k); }
                    _ => {
                        let due = m.first_key_value().is_some_and(|(f, _)| f.0 <= at(ms));
                        if due { m.pop_first(); }
                        prop_assert_eq!(t.pop_due(at(ms)).is_some(), due);
                    }
                }
                prop_assert_eq!(t.len(), m.len());
                prop_assert_eq!(t.next_deadline(), m.keys().next().map(|k| k.0));
            }
        }
    }
}
