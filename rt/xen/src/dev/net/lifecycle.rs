//! A vif's life across the domain's suspends and its backend's changes, as
//! a state machine: what netfront does at each event. `rt`'s vif acts on the
//! actions; the host tests walk every path, failures included.
//!
//! ```text
//!             suspend                 cancelled
//! Connected ──────────► Suspended ───────────────► Connected (notify)
//!     ▲                     │ new domain
//!     │ connected           ▼
//!     └──────────── Reconnecting ◄── connect failed (retry later, backing off)
//! any ── backend closed ──► Closed (for good)
//! ```
//!
//! Invariant: the rings are used only when [`Phase::usable`]; in a new
//! domain nothing of the old connection is used again (its grants, channel
//! and backend are gone) — the vif connects afresh, as many times as it
//! takes, and the app sees the network down meanwhile, not a hang.

/// Milliseconds before the first retry of a failed reconnection; each
/// further retry waits twice as long, up to [`RETRY_MAX_MS`].
pub const RETRY_MS: u64 = 1000;
/// The longest wait between two reconnection attempts.
pub const RETRY_MAX_MS: u64 = 30_000;

/// Where the vif stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Connected: the rings are in use.
    Connected,
    /// The domain is being suspended: the rings are left alone (what is
    /// queued stays queued).
    Suspended,
    /// Resumed in a new domain: (re)connecting to the new backend.
    Reconnecting {
        /// Attempts that failed so far.
        failures: u32,
        /// When the next attempt is due (ms on the caller's clock).
        retry_at_ms: u64,
    },
    /// The backend closed the connection (`xl network-detach`) or vanished:
    /// the network is down for good.
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
    /// A reconnection attempt succeeded.
    Connected,
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
    /// The backend closed or vanished.
    BackendClosed,
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
    /// backend: new rings, new grants, a new channel, the same MAC.
    Connect,
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

    /// The next phase and what to do.
    pub fn step(self, ev: Event) -> (Phase, Action) {
        use Phase::*;
        match (self, ev) {
            (Closed, _) => (Closed, Action::None),
            (_, Event::BackendClosed) => (Closed, Action::None),
            (_, Event::Suspend) => (Suspended, Action::None),
            (Suspended, Event::Cancelled) => (Connected, Action::Notify),
            (_, Event::NewDomain { now_ms }) => (
                Reconnecting {
                    failures: 0,
                    retry_at_ms: now_ms,
                },
                Action::Connect,
            ),
            (Reconnecting { .. }, Event::Connected) => (Connected, Action::Notify),
            (Reconnecting { failures, .. }, Event::ConnectFailed { now_ms }) => {
                let wait = RETRY_MS
                    .saturating_mul(1 << failures.min(16))
                    .min(RETRY_MAX_MS);
                (
                    Reconnecting {
                        failures: failures.saturating_add(1),
                        retry_at_ms: now_ms.saturating_add(wait),
                    },
                    Action::None,
                )
            }
            (p @ Reconnecting { retry_at_ms, .. }, Event::Tick { now_ms })
                if now_ms >= retry_at_ms =>
            {
                (p, Action::Connect)
            }
            // Anything else changes nothing: a cancel while connected (no
            // suspend was seen), a tick before the retry is due, a late
            // connect report.
            (p, _) => (p, Action::None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_checkpoint_carries_on_with_the_same_rings() {
        let (p, a) = Phase::Connected.step(Event::Suspend);
        assert_eq!((p, a), (Phase::Suspended, Action::None));
        assert!(!p.usable(), "no ring use while suspended");
        assert_eq!(p.step(Event::Cancelled), (Phase::Connected, Action::Notify));
    }

    #[test]
    fn a_new_domain_reconnects_and_retries_with_backoff_until_it_works() {
        let (p, a) = Phase::Suspended.step(Event::NewDomain { now_ms: 100 });
        assert_eq!(a, Action::Connect);
        let (p, a) = p.step(Event::ConnectFailed { now_ms: 200 });
        assert_eq!(
            (p, a),
            (
                Phase::Reconnecting {
                    failures: 1,
                    retry_at_ms: 200 + RETRY_MS
                },
                Action::None
            )
        );
        assert!(!p.usable());
        assert_eq!(p.retry_due(), Some(200 + RETRY_MS), "a waiter wakes for it");
        assert_eq!(Phase::Connected.retry_due(), None);
        assert_eq!(
            p.step(Event::Tick { now_ms: 1000 }).1,
            Action::None,
            "not due"
        );
        let (p, a) = p.step(Event::Tick { now_ms: 1200 });
        assert_eq!(a, Action::Connect);
        let (p, _) = p.step(Event::ConnectFailed { now_ms: 1300 });
        assert_eq!(
            p,
            Phase::Reconnecting {
                failures: 2,
                retry_at_ms: 1300 + 2 * RETRY_MS
            }
        );
        assert_eq!(p.step(Event::Connected), (Phase::Connected, Action::Notify));
    }

    #[test]
    fn a_closed_backend_is_final() {
        for p in [
            Phase::Connected,
            Phase::Suspended,
            Phase::Reconnecting {
                failures: 3,
                retry_at_ms: 0,
            },
        ] {
            assert_eq!(p.step(Event::BackendClosed), (Phase::Closed, Action::None));
        }
        for ev in [
            Event::Suspend,
            Event::Cancelled,
            Event::NewDomain { now_ms: 0 },
            Event::Connected,
            Event::Tick { now_ms: u64::MAX },
        ] {
            assert_eq!(Phase::Closed.step(ev), (Phase::Closed, Action::None));
        }
    }

    proptest! {
        /// Any sequence of events: the rings are usable only right after a
        /// connection (the start, a cancel, a reconnect), a retry is never
        /// due further off than the cap, and once closed it stays closed.
        #[test]
        fn any_events_keep_the_invariants(evs in prop::collection::vec((0u8..7, 0u64..100_000), 0..60)) {
            let mut p = Phase::Connected;
            let mut closed = false;
            for (k, t) in evs {
                let ev = match k {
                    0 => Event::Suspend,
                    1 => Event::Cancelled,
                    2 => Event::NewDomain { now_ms: t },
                    3 => Event::Connected,
                    4 => Event::ConnectFailed { now_ms: t },
                    5 => Event::Tick { now_ms: t },
                    _ => Event::BackendClosed,
                };
                let before = p;
                let (next, a) = p.step(ev);
                if next.usable() && !before.usable() {
                    prop_assert!(matches!(ev, Event::Cancelled | Event::Connected));
                    prop_assert_eq!(a, Action::Notify);
                }
                if let Phase::Reconnecting { retry_at_ms, .. } = next
                    && let Event::ConnectFailed { now_ms } = ev
                {
                    prop_assert!(retry_at_ms <= now_ms + RETRY_MAX_MS);
                }
                closed |= next == Phase::Closed;
                prop_assert!(!closed || next == Phase::Closed);
                p = next;
            }
        }
    }
}
