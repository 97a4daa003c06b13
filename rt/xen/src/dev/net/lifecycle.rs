//! A vif's life across the domain's suspends and its backend's changes, as
//! a state machine: what netfront does at each event. `rt`'s vif acts on the
//! actions; the host tests walk every path, failures included.
//!
//! ```text
//!             suspend                 cancelled
//! Connected ──────────► Suspended ───────────────► Connected (notify)
//!   ▲    │                  │ new domain
//!   │    │ backend closed   ▼
//!   │    └─────────► Reconnecting ◄── connect failed (retry later, backing off)
//!   └── connected ─────────┘ │ closed too often, or failed too often after a close
//!                            ▼
//! any ── backend gone ──► Closed (for good: the app's sockets get "network down")
//! ```
//!
//! Invariants: the rings are used only when [`Phase::usable`]; in a new
//! domain nothing of the old connection is used again (its grants, channel
//! and backend are gone) — the vif connects afresh, as many times as it
//! takes, and the app sees the network down meanwhile, not a hang. A
//! backend that closes the connection (its state Closing or Closed) gets a
//! reconnection after a back-off, from the start of the handshake
//! ("rearmed": the frontend goes back to Initialising and waits for
//! InitWait); one that keeps closing it — [`CLOSE_LIMIT`] times in a row,
//! each within [`STABLE_MS`] of connecting, failed attempts included — is
//! given up on: the work a hostile backend can cause is bounded.

/// Milliseconds before the first retry of a failed reconnection; each
/// further retry waits twice as long, up to [`RETRY_MAX_MS`].
pub const RETRY_MS: u64 = 1000;
/// The longest wait between two reconnection attempts.
pub const RETRY_MAX_MS: u64 = 30_000;
/// A connection that lasted this long before its backend closed it was
/// stable: the count of closes starts again.
pub const STABLE_MS: u64 = 10_000;
/// Closes in a row (and failed attempts to reconnect after them) after
/// which the vif gives up.
pub const CLOSE_LIMIT: u32 = 5;

/// Where the vif stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Connected: the rings are in use.
    Connected,
    /// The domain is being suspended: the rings are left alone (what is
    /// queued stays queued).
    Suspended,
    /// Resumed in a new domain, or the backend closed: (re)connecting.
    Reconnecting {
        /// Attempts that failed so far.
        failures: u32,
        /// When the next attempt is due (ms on the caller's clock).
        retry_at_ms: u64,
        /// The backend closed (same domain): the attempt starts by going
        /// back to Initialising. False in a new domain (fresh directories).
        rearm: bool,
    },
    /// Down for good: the backend vanished, or was given up on.
    Closed,
}

/// What happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// The domain is about to be suspended.
    Suspend,
    /// The suspend was cancelled: the same domain goes on.
    Cancelled,
    /// The domain runs in a new domain (restored or migrated), at `now_ms`.
    NewDomain {
        /// The caller's clock.
        now_ms: u64,
    },
    /// A (re)connection attempt succeeded at `now_ms`.
    Connected {
        /// The caller's clock.
        now_ms: u64,
    },
    /// A reconnection attempt failed at `now_ms`.
    ConnectFailed {
        /// The caller's clock.
        now_ms: u64,
    },
    /// Time passes: a due retry is started.
    Tick {
        /// The caller's clock.
        now_ms: u64,
    },
    /// The backend's state went Closing or Closed at `now_ms` (the
    /// frontend has answered Closing then Closed).
    BackendClosed {
        /// The caller's clock.
        now_ms: u64,
    },
    /// The backend (or our device directory) vanished, or is being
    /// removed by the toolstack (`online` not 1): a detach.
    BackendGone,
}

/// What to do about it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    /// Nothing.
    None,
    /// Tell the backend to look at the rings (events may have been missed
    /// while suspended).
    Notify,
    /// Drop the old connection and run the handshake with the (new)
    /// backend: new rings, new grants, a new channel, the same MAC; when
    /// `rearm`, first go back to Initialising and wait for InitWait.
    Connect {
        /// See [`Phase::Reconnecting::rearm`].
        rearm: bool,
    },
    /// Give up: say so; the network is down for good.
    GiveUp,
}

impl Phase {
    /// Whether the rings may be used.
    pub fn usable(self) -> bool {
        self == Phase::Connected
    }

    /// When the next reconnection attempt is due (ms on the caller's
    /// clock), if one is: a waiting caller should wake by then.
    pub fn retry_due(self) -> Option<u64> {
        match self {
            Phase::Reconnecting { retry_at_ms, .. } => Some(retry_at_ms),
            _ => None,
        }
    }
}

/// The back-off before retry `n` (0: the first).
fn backoff(n: u32) -> u64 {
    RETRY_MS.saturating_mul(1 << n.min(16)).min(RETRY_MAX_MS)
}

/// A vif's phase and what it remembers across connections: how often in a
/// row the backend closed it early.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Life {
    phase: Phase,
    /// Closes in a row, each within [`STABLE_MS`] of connecting.
    closes: u32,
    /// When the current connection was made.
    connected_at_ms: u64,
}

impl Life {
    /// A vif connected at `now_ms`.
    pub fn new(now_ms: u64) -> Life {
        Life {
            phase: Phase::Connected,
            closes: 0,
            connected_at_ms: now_ms,
        }
    }

    /// Where the vif stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The backend's closes in a row (for the log).
    pub fn closes(&self) -> u32 {
        self.closes
    }

    /// Moves on by `ev`; what to do.
    pub fn step(&mut self, ev: Event) -> Action {
        use Phase::*;
        let (phase, action) = match (self.phase, ev) {
            (Closed, _) => (Closed, Action::None),
            (_, Event::BackendGone) => (Closed, Action::None),
            (p, Event::BackendClosed { now_ms }) => {
                let early =
                    p != Connected || now_ms.saturating_sub(self.connected_at_ms) < STABLE_MS;
                self.closes = if early { self.closes + 1 } else { 1 };
                if self.closes >= CLOSE_LIMIT {
                    (Closed, Action::GiveUp)
                } else {
                    (
                        Reconnecting {
                            failures: 0,
                            retry_at_ms: now_ms.saturating_add(backoff(self.closes - 1)),
                            rearm: true,
                        },
                        Action::None,
                    )
                }
            }
            (Connected, Event::Suspend) => (Suspended, Action::None),
            (Suspended, Event::Cancelled) => (Connected, Action::Notify),
            (_, Event::NewDomain { now_ms }) => {
                self.closes = 0;
                (
                    Reconnecting {
                        failures: 0,
                        retry_at_ms: now_ms,
                        rearm: false,
                    },
                    Action::Connect { rearm: false },
                )
            }
            (Reconnecting { .. }, Event::Connected { now_ms }) => {
                self.connected_at_ms = now_ms;
                (Connected, Action::Notify)
            }
            (
                Reconnecting {
                    failures, rearm, ..
                },
                Event::ConnectFailed { now_ms },
            ) => {
                let failures = failures.saturating_add(1);
                if rearm && self.closes.saturating_add(failures) >= CLOSE_LIMIT {
                    (Closed, Action::GiveUp)
                } else {
                    let wait = backoff(failures.saturating_add(self.closes).saturating_sub(1));
                    (
                        Reconnecting {
                            failures,
                            retry_at_ms: now_ms.saturating_add(wait),
                            rearm,
                        },
                        Action::None,
                    )
                }
            }
            (
                p @ Reconnecting {
                    retry_at_ms, rearm, ..
                },
                Event::Tick { now_ms },
            ) if now_ms >= retry_at_ms => (p, Action::Connect { rearm }),
            // Anything else changes nothing: a cancel while connected (no
            // suspend was seen), a suspend while reconnecting (no rings in
            // use; the attempt holds suspends off itself), a tick before the
            // retry is due, a late connect report.
            (p, _) => (p, Action::None),
        };
        self.phase = phase;
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn at(phase: Phase) -> Life {
        Life {
            phase,
            ..Life::new(0)
        }
    }

    #[test]
    fn a_checkpoint_carries_on_with_the_same_rings() {
        let mut l = Life::new(0);
        assert_eq!(l.step(Event::Suspend), Action::None);
        assert_eq!(l.phase(), Phase::Suspended);
        assert!(!l.phase().usable(), "no ring use while suspended");
        assert_eq!(l.step(Event::Cancelled), Action::Notify);
        assert_eq!(l.phase(), Phase::Connected);
    }

    #[test]
    fn a_new_domain_reconnects_and_retries_with_backoff_until_it_works() {
        let mut l = at(Phase::Suspended);
        assert_eq!(
            l.step(Event::NewDomain { now_ms: 100 }),
            Action::Connect { rearm: false }
        );
        assert_eq!(l.step(Event::ConnectFailed { now_ms: 200 }), Action::None);
        assert_eq!(
            l.phase(),
            Phase::Reconnecting {
                failures: 1,
                retry_at_ms: 200 + RETRY_MS,
                rearm: false
            }
        );
        assert!(!l.phase().usable());
        assert_eq!(
            l.phase().retry_due(),
            Some(200 + RETRY_MS),
            "a waiter wakes for it"
        );
        assert_eq!(Phase::Connected.retry_due(), None);
        assert_eq!(
            l.step(Event::Tick { now_ms: 1000 }),
            Action::None,
            "not due"
        );
        assert_eq!(
            l.step(Event::Tick { now_ms: 1200 }),
            Action::Connect { rearm: false }
        );
        l.step(Event::ConnectFailed { now_ms: 1300 });
        assert_eq!(l.phase().retry_due(), Some(1300 + 2 * RETRY_MS));
        // A new domain's backend may be slow: no giving up.
        for t in 0..50 {
            assert_eq!(l.step(Event::ConnectFailed { now_ms: t }), Action::None);
        }
        assert_eq!(l.phase().retry_due(), Some(49 + RETRY_MAX_MS));
        assert_eq!(l.step(Event::Connected { now_ms: 9 }), Action::Notify);
        assert_eq!(l.phase(), Phase::Connected);
    }

    #[test]
    fn a_backend_that_closes_once_gets_a_rearmed_reconnection() {
        let mut l = Life::new(0);
        assert_eq!(
            l.step(Event::BackendClosed { now_ms: 50_000 }),
            Action::None
        );
        assert_eq!(
            l.phase(),
            Phase::Reconnecting {
                failures: 0,
                retry_at_ms: 50_000 + RETRY_MS,
                rearm: true
            }
        );
        assert_eq!(l.step(Event::Tick { now_ms: 50_500 }), Action::None);
        assert_eq!(
            l.step(Event::Tick { now_ms: 51_000 }),
            Action::Connect { rearm: true }
        );
        assert_eq!(l.step(Event::Connected { now_ms: 51_100 }), Action::Notify);
        // Stable for long enough: the next close starts the count again.
        l.step(Event::BackendClosed {
            now_ms: 51_100 + STABLE_MS,
        });
        assert_eq!(l.closes(), 1);
    }

    #[test]
    fn a_backend_that_keeps_closing_is_given_up_on() {
        let mut l = Life::new(0);
        let mut t = 0;
        for n in 1..CLOSE_LIMIT {
            t += 100;
            assert_eq!(l.step(Event::BackendClosed { now_ms: t }), Action::None);
            assert_eq!(l.closes(), n);
            let due = l.phase().retry_due().unwrap();
            assert_eq!(due, t + RETRY_MS * (1 << (n - 1)), "backing off");
            t = due;
            assert_eq!(
                l.step(Event::Tick { now_ms: t }),
                Action::Connect { rearm: true }
            );
            l.step(Event::Connected { now_ms: t });
        }
        assert_eq!(
            l.step(Event::BackendClosed { now_ms: t + 100 }),
            Action::GiveUp
        );
        assert_eq!(l.phase(), Phase::Closed);
    }

    #[test]
    fn a_backend_that_never_comes_back_after_closing_is_given_up_on() {
        let mut l = Life::new(0);
        l.step(Event::BackendClosed { now_ms: 100_000 });
        let mut acts = Vec::new();
        for t in 0..CLOSE_LIMIT as u64 {
            acts.push(l.step(Event::ConnectFailed {
                now_ms: 200_000 + t,
            }));
        }
        assert_eq!(acts.iter().filter(|a| **a == Action::GiveUp).count(), 1);
        assert_eq!(acts[CLOSE_LIMIT as usize - 2], Action::GiveUp);
        assert_eq!(l.phase(), Phase::Closed);
    }

    #[test]
    fn a_closed_vif_stays_closed() {
        for p in [
            Phase::Connected,
            Phase::Suspended,
            Phase::Reconnecting {
                failures: 3,
                retry_at_ms: 0,
                rearm: true,
            },
        ] {
            let mut l = at(p);
            assert_eq!(l.step(Event::BackendGone), Action::None);
            assert_eq!(l.phase(), Phase::Closed);
        }
        for ev in [
            Event::Suspend,
            Event::Cancelled,
            Event::NewDomain { now_ms: 0 },
            Event::Connected { now_ms: 0 },
            Event::Tick { now_ms: u64::MAX },
            Event::BackendClosed { now_ms: 0 },
        ] {
            let mut l = at(Phase::Closed);
            assert_eq!(l.step(ev), Action::None);
            assert_eq!(l.phase(), Phase::Closed);
        }
    }

    #[test]
    fn a_suspend_while_reconnecting_is_no_connection() {
        let mut l = at(Phase::Reconnecting {
            failures: 0,
            retry_at_ms: 5,
            rearm: true,
        });
        l.step(Event::Suspend);
        assert_eq!(l.step(Event::Cancelled), Action::None);
        assert!(!l.phase().usable(), "cancelled back into no connection");
    }

    proptest! {
        /// Any sequence of events: the rings are usable only right after a
        /// connection (the start, a cancel, a reconnect); a retry is never
        /// due further off than the cap; giving up happens once, after a
        /// close or a failed rearmed attempt, and then the vif stays closed;
        /// the backend never gets more than CLOSE_LIMIT quick closes.
        #[test]
        fn any_events_keep_the_invariants(evs in prop::collection::vec((0u8..8, 0u64..100_000), 0..80)) {
            let mut l = Life::new(0);
            let mut closed = false;
            for (k, t) in evs {
                let ev = match k {
                    0 => Event::Suspend,
                    1 => Event::Cancelled,
                    2 => Event::NewDomain { now_ms: t },
                    3 => Event::Connected { now_ms: t },
                    4 => Event::ConnectFailed { now_ms: t },
                    5 => Event::Tick { now_ms: t },
                    6 => Event::BackendClosed { now_ms: t },
                    _ => Event::BackendGone,
                };
                let before = l.phase();
                let a = l.step(ev);
                let next = l.phase();
                if next.usable() && !before.usable() {
                    let connecting = matches!(ev, Event::Cancelled | Event::Connected { .. });
                    prop_assert!(connecting);
                    prop_assert_eq!(a, Action::Notify);
                }
                if let Phase::Reconnecting { retry_at_ms, .. } = next
                    && let Event::ConnectFailed { now_ms } | Event::BackendClosed { now_ms } = ev
                {
                    prop_assert!(retry_at_ms <= now_ms + RETRY_MAX_MS);
                }
                if a == Action::GiveUp {
                    prop_assert!(!closed);
                    let failing = matches!(ev, Event::BackendClosed { .. } | Event::ConnectFailed { .. });
                    prop_assert!(failing);
                }
                if let Action::Connect { rearm } = a {
                    prop_assert_eq!(Some(rearm), match before {
                        Phase::Reconnecting { rearm, .. } if matches!(ev, Event::Tick { .. }) => Some(rearm),
                        _ => Some(false),
                    });
                }
                prop_assert!(l.closes() < CLOSE_LIMIT || next == Phase::Closed);
                closed |= next == Phase::Closed;
                prop_assert!(!closed || next == Phase::Closed);
            }
        }
    }
}
