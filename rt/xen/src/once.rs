//! [`Once`]: a value set once and read for the rest of the run — the
//! runtime's set-once statics (the boot facts, the descriptor tables, the
//! executor, the TSC's frequency).
//!
//! Unlike `spin::Once` it never spins: the guest has one vCPU, so a second
//! caller while the value is being set can only be an event handler that
//! interrupted its initialiser, which spinning would hang for ever; it
//! panics instead, saying so. That leaves a small fast path (one load) and
//! one shared claim function, where `spin::Once` compiled its whole
//! wait-and-retry state machine into every static (~480 bytes each).
use core::cell::UnsafeCell;
use core::fmt;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

/// No value, nobody setting it.
const EMPTY: u8 = 0;
/// The caller that claimed it is computing the value.
const BUSY: u8 = 1;
/// The value is set (and never changes again).
const READY: u8 = 2;

/// A value set once (by [`Once::call_once`]) and then shared.
///
/// Invariant: `value` is initialised exactly when `state` is `READY`; it is
/// written only by the one caller whose claim moved `state` from `EMPTY` to
/// `BUSY`, and published by the `Release` store of `READY`.
pub struct Once<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by the single caller that won the
// EMPTY -> BUSY claim (a compare-exchange), and read only after `READY` is
// observed with `Acquire` (paired with the writer's `Release`), so no read
// races the write. Sharing `&Once<T>` hands out `&T` to other contexts
// (T: Sync) and moves the value in from whoever set it (T: Send).
unsafe impl<T: Send + Sync> Sync for Once<T> {}

impl<T> Once<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, once set.
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY means the value was written (the invariant) and
            // is never written again; the Acquire load orders this read
            // after the writer's Release store.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, set by `f` on the first call (later calls return it and
    /// do not run their `f`).
    ///
    /// # Panics
    /// If called while the value is being set (from inside `f`, or from an
    /// event handler that interrupted it), or after an earlier `f` panicked.
    pub fn call_once(&self, f: impl FnOnce() -> T) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        claim(&self.state);
        let v = f();
        // SAFETY: `claim` made this caller the only writer (state BUSY);
        // nobody reads before READY is stored below.
        unsafe { (*self.value.get()).write(v) };
        self.state.store(READY, Ordering::Release);
        // SAFETY: written just above and READY from now on.
        unsafe { (*self.value.get()).assume_init_ref() }
    }
}

impl<T> Default for Once<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for Once<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means initialised; `&mut self` means no reader
            // is left, and the value is dropped once, here.
            unsafe { self.value.get_mut().assume_init_drop() }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Once<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(v) => f.debug_tuple("Once").field(v).finish(),
            None => f.write_str("Once(<not set>)"),
        }
    }
}

/// Makes the caller the one that sets the value (EMPTY -> BUSY), or panics:
/// the part of [`Once::call_once`] that does not depend on `T`, compiled
/// once.
#[inline(never)]
#[cold]
fn claim(state: &AtomicU8) {
    if state
        .compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        panic!(
            "rt: a set-once value was asked for while it was being set (from its own initialiser or an event handler that interrupted it)"
        );
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::rc::Rc;
    use core::cell::Cell;

    #[test]
    fn empty_until_set_then_the_first_value_for_ever() {
        let o = Once::new();
        assert_eq!(o.get(), None);
        let runs = Cell::new(0);
        let v = o.call_once(|| {
            runs.set(runs.get() + 1);
            7u32
        });
        assert_eq!(*v, 7);
        let again = o.call_once(|| {
            runs.set(runs.get() + 1);
            9
        });
        assert_eq!((*again, o.get(), runs.get()), (7, Some(&7), 1));
    }

    #[test]
    #[should_panic(expected = "while it was being set")]
    fn asking_for_it_while_it_is_being_set_panics_instead_of_hanging() {
        let o: Once<u32> = Once::new();
        o.call_once(|| *o.call_once(|| 1) + 1);
    }

    #[test]
    fn after_a_panicking_initialiser_the_cell_stays_unset_and_says_why() {
        let o: Once<u32> = Once::new();
        let first = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
            o.call_once(|| panic!("initialiser failed"));
        }));
        assert!(first.is_err());
        assert_eq!(o.get(), None);
        let second = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
            o.call_once(|| 3);
        }));
        assert!(second.is_err(), "a half-set cell is never handed out");
    }

    #[test]
    fn the_value_is_dropped_with_the_cell_and_only_when_set() {
        let live = Rc::new(());
        {
            let o = Once::new();
            o.call_once(|| live.clone());
            assert_eq!(Rc::strong_count(&live), 2);
        }
        assert_eq!(Rc::strong_count(&live), 1);
        let empty: Once<Rc<()>> = Once::new();
        drop(empty);
        assert_eq!(Rc::strong_count(&live), 1);
    }

    #[test]
    fn debug_shows_the_value_or_that_it_is_not_set() {
        let o = Once::new();
        assert_eq!(std::format!("{o:?}"), "Once(<not set>)");
        o.call_once(|| 5u8);
        assert_eq!(std::format!("{o:?}"), "Once(5)");
    }
}
